//! Readers for a run folder's CSV files: `metrics.csv`, `snapshots.csv` (with ids and parents,
//! which [`crate::data::parse_snapshot`] ignores) and the optional `target.csv`. The CSV itself
//! is read by [`crate::data::CsvReader`], the crate's one CSV reader; this module gives the
//! columns their meaning.

use super::PlotError;
use crate::data::{parse_snapshot, CsvReader};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A run folder's CSV, read by the crate's one reader ([`CsvReader`]): the lower-cased header
/// and the non-blank rows with their 1-based line numbers.
struct Csv {
    file: PathBuf,
    header: Vec<String>,
    rows: Vec<(usize, Vec<String>)>,
}

fn read_text(path: &Path) -> Result<String, PlotError> {
    Ok(crate::data::read_text(path)?)
}

/// `text` (the contents of `path`) as a [`Csv`]; an empty header when it has no line. Every
/// header column needs a name.
fn parse_csv(path: &Path, text: &str) -> Result<Csv, PlotError> {
    let Some(reader) = CsvReader::new(path, text)? else {
        return Ok(Csv { file: path.to_path_buf(), header: vec![], rows: vec![] });
    };
    let header: Vec<String> = reader.header().iter().map(|c| c.to_ascii_lowercase()).collect();
    if let Some(k) = header.iter().position(|c| c.is_empty()) {
        return Err(reader.error(reader.header_line(), format!("header column {} is empty", k + 1)).into());
    }
    let rows = reader.map(|r| r.map(|r| (r.line, r.fields))).collect::<Result<_, _>>()?;
    Ok(Csv { file: path.to_path_buf(), header, rows })
}

impl Csv {
    fn col(&self, names: &[&str]) -> Option<usize> {
        names.iter().find_map(|n| self.header.iter().position(|c| c == n))
    }

    /// A number; an empty field is NaN (a missing value).
    fn num(&self, line: usize, col: usize, f: &str) -> Result<f64, PlotError> {
        if f.is_empty() {
            return Ok(f64::NAN);
        }
        f.parse::<f64>().map_err(|_| PlotError::Parse {
            file: self.file.clone(),
            line,
            msg: format!("column '{}': not a number: '{f}'", self.header[col]),
        })
    }

    /// A particle id: a non-negative integer.
    fn id(&self, line: usize, col: usize, f: &str) -> Result<u64, PlotError> {
        if let Ok(v) = f.parse::<u64>() {
            return Ok(v);
        }
        match f.parse::<f64>() {
            Ok(v) if v >= 0.0 && v.fract() == 0.0 && v < 1.8e19 => Ok(v as u64),
            _ => Err(PlotError::Parse {
                file: self.file.clone(),
                line,
                msg: format!("column '{}': not a particle id: '{f}'", self.header[col]),
            }),
        }
    }
}

/// `metrics.csv`: the time axis and one series per metric column.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    /// The time of each row (`t`, else `step`, else the row number).
    pub t: Vec<f64>,
    /// What `t` is: "t", "step" or "row".
    pub t_name: String,
    /// Metric columns in file order (without `step` and `t`), with their values (NaN = missing).
    pub columns: Vec<(String, Vec<f64>)>,
}

pub(crate) fn read_metrics(path: &Path) -> Result<Metrics, PlotError> {
    let csv = parse_csv(path, &read_text(path)?)?;
    let ti = csv.col(&["t", "time"]);
    let si = csv.col(&["step"]);
    let mut t = Vec::with_capacity(csv.rows.len());
    let names: Vec<usize> = (0..csv.header.len()).filter(|&k| Some(k) != ti && Some(k) != si).collect();
    let mut columns: Vec<(String, Vec<f64>)> =
        names.iter().map(|&k| (csv.header[k].clone(), Vec::with_capacity(csv.rows.len()))).collect();
    for (r, (line, fields)) in csv.rows.iter().enumerate() {
        let tv = match (ti, si) {
            (Some(k), _) | (None, Some(k)) => csv.num(*line, k, &fields[k])?,
            (None, None) => r as f64,
        };
        t.push(tv);
        for (j, &k) in names.iter().enumerate() {
            columns[j].1.push(csv.num(*line, k, &fields[k])?);
        }
    }
    let t_name = match (ti, si) {
        (Some(_), _) => "t",
        (None, Some(_)) => "step",
        _ => "row",
    };
    Ok(Metrics { t, t_name: t_name.into(), columns })
}

/// The particles of one snapshot.
#[derive(Debug, Clone, Default)]
pub(crate) struct Frame {
    pub t: f64,
    pub id: Vec<u64>,
    pub w: Vec<f64>,
    /// Positions, particle-contiguous.
    pub x: Vec<f64>,
}

impl Frame {
    pub fn len(&self) -> usize {
        self.id.len()
    }
}

/// `snapshots.csv`, grouped by step.
#[derive(Debug, Clone)]
pub(crate) struct Snapshots {
    pub dim: usize,
    pub coords: Vec<String>,
    /// Ascending in step (or time).
    pub frames: Vec<Frame>,
    /// id → parent, over all rows.
    pub parent: HashMap<u64, u64>,
    /// Whether the file identifies particles (an `id` column).
    pub has_ids: bool,
    /// Rows left out because a position or weight was not finite.
    pub skipped: usize,
}

pub(crate) fn read_snapshots(path: &Path) -> Result<Snapshots, PlotError> {
    let csv = parse_csv(path, &read_text(path)?)?;
    if csv.header.is_empty() {
        return Err(PlotError::Invalid { file: path.to_path_buf(), msg: "is empty".into() });
    }
    let ti = csv.col(&["t", "time"]);
    let si = csv.col(&["step"]);
    let ii = csv.col(&["id"]);
    let pi = csv.col(&["parent"]);
    let wi = csv.col(&["w", "weight"]);
    let coord_idx: Vec<usize> =
        (0..csv.header.len()).filter(|k| ![ti, si, ii, pi, wi].contains(&Some(*k))).collect();
    if coord_idx.is_empty() {
        return Err(PlotError::Parse {
            file: path.to_path_buf(),
            line: 1,
            msg: "header has no coordinate column".into(),
        });
    }
    let d = coord_idx.len();
    // (group key, t, id, parent, w, x)
    struct Row {
        key: f64,
        t: f64,
        id: u64,
        parent: u64,
        w: f64,
        x: Vec<f64>,
    }
    let mut rows = Vec::with_capacity(csv.rows.len());
    let mut skipped = 0;
    for (r, (line, f)) in csv.rows.iter().enumerate() {
        let line = *line;
        let t = match ti {
            Some(k) => csv.num(line, k, &f[k])?,
            None => match si {
                Some(k) => csv.num(line, k, &f[k])?,
                None => 0.0,
            },
        };
        let key = match si {
            Some(k) => csv.num(line, k, &f[k])?,
            None => t,
        };
        let id = match ii {
            Some(k) => csv.id(line, k, &f[k])?,
            None => r as u64,
        };
        let parent = match pi {
            Some(k) => csv.id(line, k, &f[k])?,
            None => id,
        };
        let w = match wi {
            Some(k) => csv.num(line, k, &f[k])?,
            None => 1.0,
        };
        if w < 0.0 {
            return Err(PlotError::Parse {
                file: path.to_path_buf(),
                line,
                msg: format!("negative weight {w}"),
            });
        }
        let mut x = Vec::with_capacity(d);
        for &k in &coord_idx {
            x.push(csv.num(line, k, &f[k])?);
        }
        if !(key.is_finite() && t.is_finite() && w.is_finite() && x.iter().all(|v| v.is_finite())) {
            skipped += 1;
            continue;
        }
        rows.push(Row { key, t, id, parent, w, x });
    }
    rows.sort_by(|a, b| a.key.total_cmp(&b.key));
    let mut frames: Vec<Frame> = Vec::new();
    let mut parent = HashMap::new();
    let mut last_key = None;
    for row in rows {
        if last_key != Some(row.key) {
            frames.push(Frame { t: row.t, ..Frame::default() });
            last_key = Some(row.key);
        }
        let fr = frames.last_mut().expect("a frame was just pushed");
        fr.id.push(row.id);
        fr.w.push(row.w);
        fr.x.extend_from_slice(&row.x);
        parent.insert(row.id, row.parent);
    }
    Ok(Snapshots {
        dim: d,
        coords: coord_idx.iter().map(|&k| csv.header[k].clone()).collect(),
        frames,
        parent,
        has_ids: ii.is_some(),
        skipped,
    })
}

/// Target (or source) samples: positions, weights and times.
#[derive(Debug, Clone)]
pub(crate) struct Samples {
    pub dim: usize,
    pub x: Vec<f64>,
    pub w: Vec<f64>,
    pub time: Option<Vec<f64>>,
}

impl Samples {
    pub fn len(&self) -> usize {
        self.w.len()
    }
}

/// An optional `time,x1..xd,w` file: `None` when absent, empty or header-only.
pub(crate) fn read_samples(path: &Path) -> Result<Option<Samples>, PlotError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = read_text(path)?;
    if CsvReader::new(path, &text)?.is_none_or(|mut rows| rows.next().is_none()) {
        return Ok(None);
    }
    let t = parse_snapshot(path, &text)?;
    let n = t.len();
    Ok(Some(Samples { dim: t.dim, w: t.w.unwrap_or_else(|| vec![1.0; n]), x: t.x, time: t.time }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_group_and_keep_lineage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(
            &p,
            "step,t,id,parent,w,x1,x2\n0,0,0,0,1,0,0\n0,0,1,1,1,1,1\n5,0.5,0,0,0.5,0.1,0\n5,0.5,2,1,0.5,1,1.2\n",
        )
        .unwrap();
        let s = read_snapshots(&p).unwrap();
        assert_eq!(s.dim, 2);
        assert_eq!(s.frames.len(), 2);
        assert_eq!(s.frames[1].id, vec![0, 2]);
        assert_eq!(s.parent[&2], 1);
        std::fs::write(&p, "step,t,id,parent,w,x1\n0,0,0,0,1,zz\n").unwrap();
        let e = read_snapshots(&p).unwrap_err().to_string();
        assert!(e.contains("s.csv") && e.contains("line 2"), "{e}");
        std::fs::write(&p, "").unwrap();
        assert!(read_snapshots(&p).unwrap_err().to_string().contains("empty"));
    }

    /// `target.csv` is optional: absent, empty or header-only is no target; rows are samples.
    #[test]
    fn samples_are_optional() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("target.csv");
        assert!(read_samples(&p).unwrap().is_none());
        for empty in ["", "\n \n", "time,x1,w\n\n"] {
            std::fs::write(&p, empty).unwrap();
            assert!(read_samples(&p).unwrap().is_none(), "{empty:?}");
        }
        std::fs::write(&p, "\"time\",\"x1\",\"w\"\r\n0,1.5,2\r\n").unwrap();
        let s = read_samples(&p).unwrap().unwrap();
        assert_eq!((s.dim, s.x, s.w, s.time), (1, vec![1.5], vec![2.0], Some(vec![0.0])));
        std::fs::write(&p, "time,x1,w\n0,1\n").unwrap();
        assert_eq!(
            read_samples(&p).unwrap_err().to_string(),
            format!("{}: line 2: 2 fields, the header has 3", p.display())
        );
    }

    #[test]
    fn metrics_allow_missing_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(&p, "step,t,mmd,mass\n0,0,NaN,1\n1,0.1,,1.1\n").unwrap();
        let m = read_metrics(&p).unwrap();
        assert_eq!(m.t, vec![0.0, 0.1]);
        assert_eq!(m.columns.len(), 2);
        assert!(m.columns[0].1.iter().all(|v| v.is_nan()));
    }
}
