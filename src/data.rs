//! Snapshot files: CSV with a header, one row per point. Recognised columns: `time` (or `t`),
//! `w` (or `weight`), and bookkeeping columns `step`, `id`, `parent` (ignored); every other column
//! is a coordinate, in file order. This reads the data sets in `shared/data`
//! (`time,x1..xd`) and the engine's own `snapshots.csv` (`step,t,id,parent,w,x1..xd`).
//!
//! Every problem is a one-line error naming the file and line: ragged rows, non-numbers, NaN or
//! infinities, negative weights, a missing or empty time selection.

use crate::error::DataError;
use crate::particles::Cloud;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A parsed snapshot table.
#[derive(Debug, Clone)]
pub struct SnapshotTable {
    pub file: PathBuf,
    pub dim: usize,
    /// Coordinate column names.
    pub coords: Vec<String>,
    /// Time of each row (if the file has a time column).
    pub time: Option<Vec<f64>>,
    /// Weight of each row (if the file has a weight column).
    pub w: Option<Vec<f64>>,
    /// Positions, row-contiguous.
    pub x: Vec<f64>,
}

const TIME: [&str; 2] = ["time", "t"];
const WEIGHT: [&str; 2] = ["w", "weight"];
const IGNORED: [&str; 3] = ["step", "id", "parent"];

impl SnapshotTable {
    pub fn len(&self) -> usize {
        self.x.len() / self.dim
    }
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

    /// The rows at time `t` (all rows when `t` is `None` and the file has at most one time).
    /// Weights default to 1 per row.
    pub fn select(&self, t: Option<f64>) -> Result<Cloud, DataError> {
        let invalid = |msg: String| DataError::Invalid { file: self.file.clone(), msg };
        let rows: Vec<usize> = match (t, &self.time) {
            (None, Some(_)) if self.times().len() > 1 => {
                return Err(invalid(format!(
                    "has {} time points ({}); choose one",
                    self.times().len(),
                    fmt_list(&self.times())
                )))
            }
            (None, _) => (0..self.len()).collect(),
            (Some(t), Some(times)) => {
                let r: Vec<usize> = (0..self.len()).filter(|&i| times[i] == t).collect();
                if r.is_empty() {
                    return Err(invalid(format!(
                        "no rows at time {t}; times in the file: {}",
                        fmt_list(&self.times())
                    )));
                }
                r
            }
            (Some(_), None) => return Err(invalid("has no time column to select from".into())),
        };
        let d = self.dim;
        let mut x = Vec::with_capacity(rows.len() * d);
        let mut w = Vec::with_capacity(rows.len());
        for &i in &rows {
            x.extend_from_slice(&self.x[i * d..(i + 1) * d]);
            w.push(self.w.as_ref().map_or(1.0, |w| w[i]));
        }
        let total = w.iter().sum::<f64>();
        if total <= 0.0 {
            return Err(invalid("selected rows have zero total weight".into()));
        }
        if !total.is_finite() {
            return Err(invalid(format!("selected rows' total weight overflows ({total})")));
        }
        Ok(Cloud::new(d, x, w))
    }
}

fn fmt_list(v: &[f64]) -> String {
    let s: Vec<String> = v.iter().take(12).map(|t| t.to_string()).collect();
    if v.len() > 12 {
        format!("{}, …", s.join(", "))
    } else {
        s.join(", ")
    }
}

/// Parse a snapshot CSV from text (`file` names it in errors).
pub fn parse_snapshot(file: &Path, text: &str) -> Result<SnapshotTable, DataError> {
    let perr = |line: usize, msg: String| DataError::Parse { file: file.to_path_buf(), line, msg };
    // A UTF-8 byte-order mark (spreadsheet exports) is not part of the first column's name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((h0, header)) = lines.next() else {
        return Err(DataError::Invalid { file: file.to_path_buf(), msg: "is empty".into() });
    };
    let cols: Vec<String> = header.split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
    let (mut ti, mut wi, mut coord_idx) = (None, None, Vec::new());
    for (k, c) in cols.iter().enumerate() {
        if c.is_empty() {
            return Err(perr(h0 + 1, format!("header column {} is empty", k + 1)));
        }
        if cols[..k].contains(c) {
            return Err(perr(h0 + 1, format!("header repeats column '{c}'")));
        }
        if c.parse::<f64>().is_ok() {
            return Err(perr(h0 + 1, format!("no header: first line starts with a number ('{c}')")));
        }
        if TIME.contains(&c.as_str()) && ti.is_none() {
            ti = Some(k);
        } else if WEIGHT.contains(&c.as_str()) {
            wi = Some(k);
        } else if !IGNORED.contains(&c.as_str()) {
            coord_idx.push(k);
        }
    }
    if coord_idx.is_empty() {
        return Err(perr(h0 + 1, "header has no coordinate column".into()));
    }
    let d = coord_idx.len();
    let (mut x, mut time, mut w) = (Vec::new(), Vec::new(), Vec::new());
    let mut vals = vec![0.0; cols.len()];
    for (ln, l) in lines {
        let fields: Vec<&str> = l.split(',').collect();
        if fields.len() != cols.len() {
            return Err(perr(ln + 1, format!("{} fields, the header has {}", fields.len(), cols.len())));
        }
        for (k, f) in fields.iter().enumerate() {
            let v: f64 = f
                .trim()
                .parse()
                .map_err(|_| perr(ln + 1, format!("column '{}': not a number: '{}'", cols[k], f.trim())))?;
            if !v.is_finite() {
                return Err(perr(ln + 1, format!("column '{}': not finite: '{}'", cols[k], f.trim())));
            }
            vals[k] = v;
        }
        if let Some(k) = wi {
            if vals[k] < 0.0 {
                return Err(perr(ln + 1, format!("column '{}': negative weight {}", cols[k], vals[k])));
            }
            w.push(vals[k]);
        }
        if let Some(k) = ti {
            time.push(vals[k]);
        }
        x.extend(coord_idx.iter().map(|&k| vals[k]));
    }
    if x.is_empty() {
        return Err(DataError::Invalid { file: file.to_path_buf(), msg: "has a header but no rows".into() });
    }
    Ok(SnapshotTable {
        file: file.to_path_buf(),
        dim: d,
        coords: coord_idx.iter().map(|&k| cols[k].clone()).collect(),
        time: ti.map(|_| time),
        w: wi.map(|_| w),
        x,
    })
}

/// Read a snapshot CSV.
pub fn read_snapshot(path: &Path) -> Result<SnapshotTable, DataError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| DataError::Io { file: path.to_path_buf(), source: e })?;
    parse_snapshot(path, &text)
}

/// Write a weighted cloud as `time,x1..xd,w` (shortest round-trip numbers).
pub fn write_cloud(path: &Path, t: f64, c: &Cloud) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let xs: Vec<String> = (1..=c.dim).map(|k| format!("x{k}")).collect();
    writeln!(out, "time,{},w", xs.join(","))?;
    for j in 0..c.len() {
        let (t, p, w) = (crate::format::num(t), crate::format::nums(c.point(j)), crate::format::num(c.w[j]));
        writeln!(out, "{t},{p},{w}")?;
    }
    out.flush()
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
}
