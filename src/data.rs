//! Data files: the crate's one CSV reader ([`CsvReader`], on the `csv` crate), and snapshot
//! tables on it: CSV with a header, one row per point, read the same way by every command
//! (`compare`, `uot`, `infer`, `forward`, `fates`, the scenario `csv` source, the plot readers).
//!
//! Every column has a role; none is guessed ([`ColumnSpec`]):
//! - coordinates: the columns `x1..xd` (any order in the file, read as `x1, x2, …`), or exactly
//!   the columns named by `--columns a,b,c` (scenario key `columns = [...]`), in that order;
//! - `time` (or `t`): the time point of the row; `w` (or `weight`): its mass (default 1);
//! - `id`: the row's name (any string), carried to every per-cell output;
//! - the label column (`--label-column NAME`, any strings) and the growth column
//!   (`--growth-column NAME`, numbers), when named;
//! - `step`, `parent` (the engine's `snapshots.csv`), `source_id`, `target_id` (`infer`'s
//!   `prediction.csv`): bookkeeping of the engine's own files, skipped;
//! - a first column with an empty name (R's `write.csv` row names): skipped;
//! - columns named in `--ignore-columns` (scenario key `ignore_columns`): skipped.
//!
//! Any other column is an error that names it and the fix. Fields may be quoted (`"time","x1"`,
//! `"1.5"`; `""` inside quotes is a quote), as R's `write.csv` writes them. Numbers are the
//! field's text through `str::parse::<f64>`. Every problem is a one-line error naming the file
//! and line: ragged rows (an unterminated quote makes one), non-numbers, NaN or infinities,
//! negative weights, a missing or empty time selection.

use crate::error::DataError;
use crate::particles::Cloud;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which columns of a snapshot file are read, and how (module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    /// Coordinate columns in order (`None`: the `x1..xd` columns).
    pub columns: Option<Vec<String>>,
    /// Columns skipped.
    pub ignore: Vec<String>,
    /// A column of string labels.
    pub label: Option<String>,
    /// A column of per-row numbers (prior growth rates).
    pub growth: Option<String>,
    /// How the user names coordinates and ignored columns where this spec comes from (the
    /// options `--columns` / `--ignore-columns`, or scenario keys): used in the error's fix.
    pub options: (String, String),
}

impl Default for ColumnSpec {
    fn default() -> Self {
        Self {
            columns: None,
            ignore: Vec::new(),
            label: None,
            growth: None,
            options: ("--columns".into(), "--ignore-columns".into()),
        }
    }
}

/// A parsed snapshot table.
#[derive(Debug, Clone)]
pub struct SnapshotTable {
    /// The file the table was read from (named in errors).
    pub file: PathBuf,
    /// The number of coordinate columns.
    pub dim: usize,
    /// Coordinate column names.
    pub coords: Vec<String>,
    /// Time of each row (if the file has a time column).
    pub time: Option<Vec<f64>>,
    /// Weight of each row (if the file has a weight column).
    pub w: Option<Vec<f64>>,
    /// Positions, row-contiguous.
    pub x: Vec<f64>,
    /// The `id` of each row (if the file has an `id` column).
    pub id: Option<Vec<String>>,
    /// The label of each row (if a label column was named).
    pub labels: Option<Vec<String>>,
    /// The growth rate of each row (if a growth column was named).
    pub growth: Option<Vec<f64>>,
}

const TIME: [&str; 2] = ["time", "t"];
const WEIGHT: [&str; 2] = ["w", "weight"];
const ID: &str = "id";
const BOOKKEEPING: [&str; 4] = ["step", "parent", "source_id", "target_id"];

impl SnapshotTable {
    /// The number of rows.
    pub fn len(&self) -> usize {
        self.x.len() / self.dim
    }
    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// Distinct time values, ascending.
    pub fn times(&self) -> Vec<f64> {
        let mut t = self.time.clone().unwrap_or_default();
        t.sort_by(f64::total_cmp);
        t.dedup();
        t
    }

    /// The indices of the rows at time `t` (all rows when `t` is `None` and the file has at most
    /// one time).
    pub fn rows_at(&self, t: Option<f64>) -> Result<Vec<usize>, DataError> {
        let invalid = |msg: String| DataError::Invalid { file: self.file.clone(), msg };
        match (t, &self.time) {
            (None, Some(_)) if self.times().len() > 1 => Err(invalid(format!(
                "has {} time points ({}); choose one",
                self.times().len(),
                fmt_list(&self.times())
            ))),
            (None, _) => Ok((0..self.len()).collect()),
            (Some(t), Some(times)) => {
                let r: Vec<usize> = (0..self.len()).filter(|&i| times[i] == t).collect();
                if r.is_empty() {
                    return Err(invalid(format!(
                        "no rows at time {t}; times in the file: {}",
                        fmt_list(&self.times())
                    )));
                }
                Ok(r)
            }
            (Some(_), None) => Err(invalid("has no time column to select from".into())),
        }
    }

    /// The cloud of the given rows; weights default to 1 per row.
    pub fn cloud(&self, rows: &[usize]) -> Result<Cloud, DataError> {
        let invalid = |msg: String| DataError::Invalid { file: self.file.clone(), msg };
        let d = self.dim;
        let mut x = Vec::with_capacity(rows.len() * d);
        for &i in rows {
            x.extend_from_slice(&self.x[i * d..(i + 1) * d]);
        }
        let w: Vec<f64> = rows.iter().map(|&i| self.w.as_ref().map_or(1.0, |w| w[i])).collect();
        let total = w.iter().sum::<f64>();
        if total <= 0.0 {
            return Err(invalid("selected rows have zero total weight".into()));
        }
        if !total.is_finite() {
            return Err(invalid(format!("selected rows' total weight overflows ({total})")));
        }
        Ok(Cloud::new_unchecked(d, x, w))
    }

    /// The rows at time `t` as a cloud ([`Self::rows_at`], [`Self::cloud`]).
    pub fn select(&self, t: Option<f64>) -> Result<Cloud, DataError> {
        self.cloud(&self.rows_at(t)?)
    }

    /// The rows of `sel` as a cloud, with their ids (if the file has an `id` column).
    pub fn select_as(&self, sel: Selection) -> Result<(Cloud, Option<Vec<String>>), DataError> {
        let rows = self.rows_at(sel.time)?;
        let c = self.cloud(&rows)?;
        let c = if sel.normalize { c.with_mass(1.0) } else { c };
        Ok((c, self.id.as_ref().map(|id| pick_rows(id, &rows))))
    }
}

/// Which rows of a table a command uses, and whether their weights are scaled to total mass 1
/// (`--normalize`; unit-weight snapshots of different sizes then become probability measures).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Selection {
    /// The time of the rows used (`None`: all rows, when the file has at most one time).
    pub time: Option<f64>,
    /// Scale the weights to total mass 1.
    pub normalize: bool,
}

/// `v[i]` for the given rows.
pub fn pick_rows<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
    rows.iter().map(|&i| v[i].clone()).collect()
}

fn fmt_list(v: &[f64]) -> String {
    let s: Vec<String> = v.iter().take(12).map(|t| t.to_string()).collect();
    if v.len() > 12 {
        format!("{}, …", s.join(", "))
    } else {
        s.join(", ")
    }
}

/// The crate's one CSV reader, on the `csv` crate: every CSV file the crate reads goes through
/// it (snapshot tables here, a run folder's files in `plot`, the variants' `metrics.csv` of a
/// comparison, a `fates` folder). The first non-blank record is the header; blank lines are
/// skipped; fields are trimmed and unquoted (`"…"`, with `""` for a quote, as R's `write.csv`
/// writes them; a quoted field may span lines); a UTF-8 byte-order mark is dropped. Errors are
/// one line naming the file and the line: a header that repeats a column (ignoring ASCII case),
/// a row with another number of fields than the header. Rows are checked as they are read, so a
/// caller that parses each row in turn reports the first bad line of the file.
pub struct CsvReader<'a> {
    file: &'a Path,
    text: &'a str,
    records: csv::StringRecordsIntoIter<&'a [u8]>,
    header: Vec<String>,
    header_line: usize,
    /// `(byte, line)`: the 1-based line at a byte offset of `text` (counted up to there).
    at: (usize, usize),
}

/// One data row of a [`CsvReader`]: its 1-based line in the file and its trimmed fields (as many
/// as the header has).
#[derive(Debug, Clone, PartialEq)]
pub struct CsvRow {
    /// The line the row starts on.
    pub line: usize,
    /// The row's fields, unquoted and trimmed.
    pub fields: Vec<String>,
}

impl<'a> CsvReader<'a> {
    /// Read the header of `text`, the contents of `file` (named in errors); `None` when the text
    /// has no non-blank line.
    pub fn new(file: &'a Path, text: &'a str) -> Result<Option<Self>, DataError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let records = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes())
            .into_records();
        let mut r = Self { file, text, records, header: Vec::new(), header_line: 0, at: (0, 1) };
        let Some(h) = r.record()? else {
            return Ok(None);
        };
        let lower: Vec<String> = h.fields.iter().map(|c| c.to_ascii_lowercase()).collect();
        if let Some(c) = lower.iter().enumerate().find_map(|(k, c)| lower[..k].contains(c).then_some(c)) {
            return Err(r.error(h.line, format!("header repeats column '{c}'")));
        }
        (r.header, r.header_line) = (h.fields, h.line);
        Ok(Some(r))
    }

    /// The header's columns, trimmed (no two equal ignoring ASCII case).
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The header's 1-based line.
    pub fn header_line(&self) -> usize {
        self.header_line
    }

    /// A [`DataError::Parse`] at `line` of this file.
    pub fn error(&self, line: usize, msg: String) -> DataError {
        DataError::Parse { file: self.file.to_path_buf(), line, msg }
    }

    /// The next non-blank record, any length.
    fn record(&mut self) -> Result<Option<CsvRow>, DataError> {
        while let Some(r) = self.records.next() {
            let r = r.map_err(|e| {
                let line = e.position().map_or(self.at.1, |p| self.line_at(p.byte() as usize));
                self.error(line, e.to_string())
            })?;
            if r.len() == 1 && r[0].trim().is_empty() {
                continue;
            }
            let line = r.position().map_or(self.at.1, |p| self.line_at(p.byte() as usize));
            return Ok(Some(CsvRow { line, fields: r.iter().map(|f| f.trim().to_string()).collect() }));
        }
        Ok(None)
    }

    /// The line of the record at byte `b`: the `csv` crate places a record where the previous one
    /// ended, before the line breaks (and blank lines) between them.
    fn line_at(&mut self, b: usize) -> usize {
        let bytes = self.text.as_bytes();
        let start =
            b + bytes.get(b..).unwrap_or_default().iter().take_while(|c| matches!(c, b'\r' | b'\n')).count();
        let (from, line) = self.at;
        let start = start.max(from).min(bytes.len());
        self.at = (start, line + bytes[from..start].iter().filter(|&&c| c == b'\n').count());
        self.at.1
    }
}

impl Iterator for CsvReader<'_> {
    type Item = Result<CsvRow, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let row = match self.record() {
            Ok(row) => row?,
            Err(e) => return Some(Err(e)),
        };
        let n = self.header.len();
        Some(if row.fields.len() == n {
            Ok(row)
        } else {
            Err(self.error(row.line, format!("{} fields, the header has {n}", row.fields.len())))
        })
    }
}

/// Read `path` whole (an unreadable file or one not UTF-8 is a [`DataError::Io`]).
pub fn read_text(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|e| DataError::Io { file: path.to_path_buf(), source: e })
}

/// The role of a column.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Coord(usize),
    Time,
    Weight,
    Id,
    Label,
    Growth,
    Skip,
}

/// The role of every header column under `spec` (module doc); errors name the column and the fix.
fn roles(cols: &[String], spec: &ColumnSpec) -> Result<Vec<Role>, String> {
    let lower = |s: &str| s.to_ascii_lowercase();
    let named = |n: &Option<String>| n.as_deref().map(lower);
    let (label, growth) = (named(&spec.label), named(&spec.growth));
    let ignore: Vec<String> = spec.ignore.iter().map(|s| lower(s)).collect();
    let wanted: Option<Vec<String>> = spec.columns.as_ref().map(|c| c.iter().map(|s| lower(s)).collect());
    let mut requested: Vec<(&str, String)> = Vec::new();
    if let Some(l) = &label {
        requested.push(("label column", l.clone()));
    }
    if let Some(g) = &growth {
        requested.push(("growth column", g.clone()));
    }
    requested.extend(ignore.iter().map(|c| ("ignored column", c.clone())));
    requested.extend(wanted.iter().flatten().map(|c| ("coordinate column", c.clone())));
    if let Some(w) = &wanted {
        if let Some(k) = (1..w.len()).find(|&k| w[..k].contains(&w[k])) {
            return Err(format!("{} names '{}' twice", spec.options.0, w[k]));
        }
    }
    for (what, c) in &requested {
        if !cols.contains(c) {
            return Err(format!("no {what} '{c}' (columns: {})", cols.join(", ")));
        }
    }
    let (mut time_seen, mut out) = (false, Vec::with_capacity(cols.len()));
    for (k, c) in cols.iter().enumerate() {
        let c = c.as_str();
        let role = if let Some(p) = wanted.as_ref().and_then(|w| w.iter().position(|x| x == c)) {
            Role::Coord(p)
        } else if ignore.iter().any(|x| x == c) || (k == 0 && c.is_empty()) {
            Role::Skip
        } else if label.as_deref() == Some(c) {
            Role::Label
        } else if growth.as_deref() == Some(c) {
            Role::Growth
        } else if TIME.contains(&c) && !time_seen {
            time_seen = true;
            Role::Time
        } else if WEIGHT.contains(&c) {
            Role::Weight
        } else if c == ID {
            Role::Id
        } else if BOOKKEEPING.contains(&c) {
            Role::Skip
        } else if let Some(i) = c.strip_prefix('x').and_then(|s| s.parse::<usize>().ok()).filter(|&i| i >= 1)
        {
            if wanted.is_some() {
                return Err(format!(
                    "column '{c}' is not among {} ({}); add it there or pass {} {c}",
                    spec.options.0,
                    wanted.as_deref().unwrap_or_default().join(","),
                    spec.options.1
                ));
            }
            Role::Coord(i - 1)
        } else if c.is_empty() {
            return Err(format!("header column {} is empty", k + 1));
        } else if c.parse::<f64>().is_ok() {
            return Err(format!("no header: first line starts with a number ('{c}')"));
        } else {
            return Err(format!(
                "column '{c}' has no role (coordinates are x1..xd; time, w, id and a named label or \
                 growth column have theirs): pass {} {c} to skip it, or {} to name the coordinates",
                spec.options.1, spec.options.0
            ));
        };
        if role != Role::Skip && out.contains(&role) {
            return Err(format!("two columns have the role of '{c}'"));
        }
        out.push(role);
    }
    let mut dims: Vec<usize> =
        out.iter().filter_map(|r| if let Role::Coord(i) = r { Some(*i) } else { None }).collect();
    dims.sort_unstable();
    if dims.is_empty() {
        return Err("header has no coordinate column (x1..xd, or name them with --columns)".into());
    }
    if let Some(missing) = (0..dims.len()).find(|&i| dims[i] != i) {
        return Err(format!("coordinate column 'x{}' is missing (coordinates are x1..xd)", missing + 1));
    }
    Ok(out)
}

/// Parse a snapshot CSV from text (`file` names it in errors), with the default [`ColumnSpec`].
pub fn parse_snapshot(file: &Path, text: &str) -> Result<SnapshotTable, DataError> {
    parse_snapshot_with(file, text, &ColumnSpec::default())
}

/// Parse a snapshot CSV from text with the column roles of `spec`.
pub fn parse_snapshot_with(file: &Path, text: &str, spec: &ColumnSpec) -> Result<SnapshotTable, DataError> {
    let Some(reader) = CsvReader::new(file, text)? else {
        return Err(DataError::Invalid { file: file.to_path_buf(), msg: "is empty".into() });
    };
    let cols: Vec<String> = reader.header().iter().map(|c| c.to_ascii_lowercase()).collect();
    let roles = roles(&cols, spec).map_err(|e| reader.error(reader.header_line(), e))?;
    let d = roles.iter().filter(|r| matches!(r, Role::Coord(_))).count();
    let has = |r: Role| roles.contains(&r);
    let (mut x, mut time, mut w, mut id, mut labels, mut growth) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut pos = vec![0.0; d];
    let perr = |line: usize, msg: String| DataError::Parse { file: file.to_path_buf(), line, msg };
    for row in reader {
        let CsvRow { line, fields } = row?;
        let num = |k: usize| -> Result<f64, DataError> {
            let f = &fields[k];
            let v: f64 =
                f.parse().map_err(|_| perr(line, format!("column '{}': not a number: '{f}'", cols[k])))?;
            if !v.is_finite() {
                return Err(perr(line, format!("column '{}': not finite: '{f}'", cols[k])));
            }
            Ok(v)
        };
        for (k, role) in roles.iter().enumerate() {
            match *role {
                Role::Coord(i) => pos[i] = num(k)?,
                Role::Time => time.push(num(k)?),
                Role::Weight => {
                    let v = num(k)?;
                    if v < 0.0 {
                        return Err(perr(line, format!("column '{}': negative weight {v}", cols[k])));
                    }
                    w.push(v);
                }
                Role::Growth => growth.push(num(k)?),
                Role::Id => id.push(fields[k].clone()),
                Role::Label => labels.push(fields[k].clone()),
                Role::Skip => {}
            }
        }
        x.extend_from_slice(&pos);
    }
    if x.is_empty() {
        return Err(DataError::Invalid { file: file.to_path_buf(), msg: "has a header but no rows".into() });
    }
    let mut coords = vec![String::new(); d];
    for (k, r) in roles.iter().enumerate() {
        if let Role::Coord(i) = r {
            coords[*i] = cols[k].clone();
        }
    }
    Ok(SnapshotTable {
        file: file.to_path_buf(),
        dim: d,
        coords,
        time: has(Role::Time).then_some(time),
        w: has(Role::Weight).then_some(w),
        x,
        id: has(Role::Id).then_some(id),
        labels: has(Role::Label).then_some(labels),
        growth: has(Role::Growth).then_some(growth),
    })
}

/// Read a snapshot CSV with the default [`ColumnSpec`].
pub fn read_snapshot(path: &Path) -> Result<SnapshotTable, DataError> {
    read_snapshot_with(path, &ColumnSpec::default())
}

/// Read a snapshot CSV with the column roles of `spec`.
pub fn read_snapshot_with(path: &Path, spec: &ColumnSpec) -> Result<SnapshotTable, DataError> {
    parse_snapshot_with(path, &read_text(path)?, spec)
}

/// Write a weighted cloud as `time,x1..xd,w` (shortest round-trip numbers).
pub fn write_cloud(path: &Path, t: f64, c: &Cloud) -> std::io::Result<()> {
    write_cloud_with_ids(path, t, c, &[])
}

/// [`write_cloud`] with leading string columns `(name, one value per point)`, e.g. `id`.
pub fn write_cloud_with_ids(path: &Path, t: f64, c: &Cloud, ids: &[IdColumn]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut head: Vec<String> = ids.iter().map(|(name, _)| name.clone()).collect();
    head.push("time".into());
    head.extend((1..=c.dim).map(|k| format!("x{k}")));
    head.push("w".into());
    writeln!(out, "{}", head.join(","))?;
    for j in 0..c.len() {
        for (_, v) in ids {
            write!(out, "{},", csv_field(&v[j]))?;
        }
        let (t, p, w) = (crate::format::num(t), crate::format::nums(c.point(j)), crate::format::num(c.w[j]));
        writeln!(out, "{t},{p},{w}")?;
    }
    out.flush()
}

/// A string column of an output file: its name and one value per row.
pub type IdColumn = (String, Vec<String>);

/// The header field `name,` of an optional id column (empty without ids).
pub fn id_head(ids: Option<&[String]>, name: &str) -> String {
    if ids.is_some() {
        format!("{name},")
    } else {
        String::new()
    }
}

/// The field `id,` of row `i` of an optional id column (empty without ids).
pub fn id_field(ids: Option<&[String]>, i: usize) -> String {
    ids.map(|v| format!("{},", csv_field(&v[i]))).unwrap_or_default()
}

/// A string as a CSV field: quoted (with `"` doubled) when it holds a comma, quote or space at
/// either end, as it is in the file it was read from.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"']) || s.trim() != s {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<SnapshotTable, DataError> {
        parse_snapshot(Path::new("f.csv"), s)
    }

    #[test]
    fn reads_times_and_weights() {
        let t = parse("time,x1,x2,w\n0,1,2,0.5\n0,3,4,1.5\n1,5,6,1\n").unwrap();
        assert_eq!(t.dim, 2);
        assert_eq!(t.times(), vec![0.0, 1.0]);
        let c = t.select(Some(0.0)).unwrap();
        assert_eq!(c.x, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(c.w, vec![0.5, 1.5]);
        assert!(t.select(None).is_err());
        assert!(t.select(Some(2.0)).unwrap_err().to_string().contains("no rows at time 2"));
    }

    #[test]
    fn bad_rows_name_the_line() {
        let e = parse("time,x1\n0,1\n0,nan\n").unwrap_err().to_string();
        assert_eq!(e, "f.csv: line 3: column 'x1': not finite: 'nan'");
        let e = parse("time,x1\n0,1\n0,1,2\n").unwrap_err().to_string();
        assert_eq!(e, "f.csv: line 3: 3 fields, the header has 2");
        let e = parse("time,x1\n0,abc\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("not a number"));
        assert!(parse("").is_err());
        assert!(parse("1,2\n3,4\n").unwrap_err().to_string().contains("no header"));
    }

    /// A byte-order mark made the first column '\u{feff}time': a coordinate, not the time.
    #[test]
    fn byte_order_mark_is_ignored() {
        let t = parse("\u{feff}time,x1\r\n0,1\r\n1,2\r\n").unwrap();
        assert_eq!((t.dim, t.coords.clone(), t.times()), (1, vec!["x1".to_string()], vec![0.0, 1.0]));
    }

    /// Found with tests/properties.rs: finite weights whose sum overflows gave a cloud of infinite
    /// mass (and `compare` printed NaN).
    #[test]
    fn total_weight_must_be_finite() {
        let t = parse("x1,w\n0,1e308\n1,1e308\n").unwrap();
        let e = t.select(None).unwrap_err().to_string();
        assert_eq!(e, "f.csv: selected rows' total weight overflows (inf)");
        assert_eq!(parse("x1,w\n0,1e308\n1,0\n").unwrap().select(None).unwrap().mass(), 1e308);
    }

    /// Issue 13 point 5: roles, not guesses. Other columns are errors naming the fix.
    #[test]
    fn columns_have_roles() {
        let t = parse("id,time,x2,x1,w,step,parent\na,0,2,1,1,0,0\nb,1,4,3,2,0,0\n").unwrap();
        // infer's prediction.csv reads back.
        assert_eq!(parse("source_id,target_id,time,x1,w\na,b,0.5,1,2\n").unwrap().x, vec![1.0]);
        assert_eq!(
            (t.dim, t.coords.clone(), t.x.clone()),
            (2, vec!["x1".into(), "x2".into()], vec![1.0, 2.0, 3.0, 4.0])
        );
        assert_eq!(t.id, Some(vec!["a".to_string(), "b".to_string()]));
        let e = parse("time,x1,x2,label\n0,1,2,3\n").unwrap_err().to_string();
        assert!(
            e.starts_with("f.csv: line 1: column 'label' has no role")
                && e.contains("--ignore-columns label"),
            "{e}"
        );
        let e = parse("time,x1,x3\n0,1,2\n").unwrap_err().to_string();
        assert_eq!(e, "f.csv: line 1: coordinate column 'x2' is missing (coordinates are x1..xd)");
        let spec = ColumnSpec {
            label: Some("Label".into()),
            growth: Some("g".into()),
            ignore: vec!["batch".into()],
            ..ColumnSpec::default()
        };
        let t =
            parse_snapshot_with(Path::new("f.csv"), "time,x1,label,g,batch\n0,1,stem cell,0.5,b\n", &spec)
                .unwrap();
        assert_eq!(
            (t.dim, t.labels.clone(), t.growth.clone()),
            (1, Some(vec!["stem cell".into()]), Some(vec![0.5]))
        );
        let spec = ColumnSpec { columns: Some(vec!["b".into(), "a".into()]), ..ColumnSpec::default() };
        let t = parse_snapshot_with(Path::new("f.csv"), "a,b\n1,2\n", &spec).unwrap();
        assert_eq!((t.coords.clone(), t.x.clone()), (vec!["b".into(), "a".into()], vec![2.0, 1.0]));
        let e = parse_snapshot_with(Path::new("f.csv"), "a,b,x1\n1,2,3\n", &spec).unwrap_err().to_string();
        assert!(e.contains("column 'x1' is not among --columns (b,a)"), "{e}");
    }

    /// Errors name the line a row starts on, past blank lines, CRLF and multi-line quoted fields.
    #[test]
    fn reader_names_the_right_line() {
        let e = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(
            e("\u{feff}time,x1\r\n\r\n0,1\r\n  \n0,abc\n"),
            "f.csv: line 5: column 'x1': not a number: 'abc'"
        );
        assert_eq!(e("\n\ntime,x1\n0,1,2\n"), "f.csv: line 4: 3 fields, the header has 2");
        assert_eq!(
            e("time,x1\n0,\"1\n\n2\"\n0,zz\n"),
            "f.csv: line 2: column 'x1': not a number: '1\\n\\n2'"
        );
        assert_eq!(e("time,x1\n0,\"1\n\n2\",\n0,zz\n"), "f.csv: line 2: 3 fields, the header has 2");
        assert_eq!(e("id,time,x1\n\"a\nb\",0,1\n0,0,zz\n"), "f.csv: line 4: column 'x1': not a number: 'zz'");
        assert_eq!(e("time,X1,x1\n"), "f.csv: line 1: header repeats column 'x1'");
        assert_eq!(e(" \n\r\n"), "f.csv: is empty");
    }

    /// R's write.csv: quoted header, row names under "", quoted cells with doubled quotes.
    #[test]
    fn quoted_fields_and_row_names() {
        let rows = |text: &str| -> Result<Vec<Vec<String>>, String> {
            let r = CsvReader::new(Path::new("f.csv"), text).map_err(|e| e.to_string())?.unwrap();
            r.map(|row| row.map(|r| r.fields).map_err(|e| e.to_string())).collect()
        };
        assert_eq!(rows("h,i,j\n\"a\",\"b \"\"q\"\", c\",3\n").unwrap(), vec![vec!["a", "b \"q\", c", "3"]]);
        // An unterminated quote runs to the end of the file: a row of too few fields.
        assert_eq!(rows("h,i\n\"a,1\n2,3\n").unwrap_err(), "f.csv: line 2: 1 fields, the header has 2");
        assert_eq!(
            parse("x1\n\"1\"x\n").unwrap_err().to_string(),
            "f.csv: line 2: column 'x1': not a number: '1x'"
        );
        let t = parse("\"\",\"time\",\"x1\",\"id\"\n\"1\",0,\"1.5\",\"c,1\"\n").unwrap();
        assert_eq!((t.x.clone(), t.id.clone()), (vec![1.5], Some(vec!["c,1".to_string()])));
        assert_eq!(csv_field("c,1"), "\"c,1\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
