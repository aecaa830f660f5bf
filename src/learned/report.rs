//! `results/learned_dynamics.md`: the protocols of [`super::protocol`] rendered as tables, with
//! the noise floor and the copy baseline beside every score, the settings each fold chose by
//! leave-one-out, the path action with its formula, fit times, the published rows with their
//! protocol, and the rows that lose to the baseline.

use super::protocol::{mean_sd, FoldResult, ProtocolResult};
use serde_json::Value;
use std::fmt::Write as _;

/// One data set's results for every method.
#[derive(Debug, Clone)]
pub struct DataResults {
    /// Data set name.
    pub name: String,
    /// Its snapshot times.
    pub times: Vec<f64>,
    /// Cells per time (after any subsampling).
    pub cells: Vec<usize>,
    /// One per method.
    pub methods: Vec<ProtocolResult>,
    /// The data set's JSON (published tables), if any.
    pub json: Option<Value>,
}

fn f(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.4}")
    }
}

fn pm(v: &[f64]) -> String {
    let (m, sd) = mean_sd(v);
    if v.len() > 1 && !m.is_nan() {
        format!("{} ± {}", f(m), f(sd))
    } else {
        f(m)
    }
}

fn row(md: &mut String, cells: &[String]) {
    let _ = writeln!(md, "| {} |", cells.join(" | "));
}

fn head(md: &mut String, cells: &[String]) {
    row(md, cells);
    row(md, &vec!["---".to_string(); cells.len()]);
}

/// Published rows `(method, values)` of table `key` in the data set's JSON.
fn published(json: &Option<Value>, key: &str) -> Vec<(String, Vec<f64>)> {
    let Some(t) = json.as_ref().and_then(|j| j.get(key)).and_then(|t| t.as_object()) else {
        return Vec::new();
    };
    t.iter()
        .filter_map(|(k, v)| v.as_array().map(|a| (k.clone(), a.iter().filter_map(|x| x.as_f64()).collect())))
        .collect()
}

/// `with` when there are published rows; otherwise a sentence saying there are none.
fn published_note(rows: &[(String, Vec<f64>)], with: &str) -> String {
    if rows.is_empty() {
        "No published rows: the data set's fixture JSON carries none for this protocol.".into()
    } else {
        with.into()
    }
}

/// W1 per seed at scored index `i` of a fold.
fn seeds_at(fold: &FoldResult, i: usize) -> Vec<f64> {
    let pos = fold.scored.iter().position(|&s| s == i).expect("scored index");
    fold.w1.iter().map(|r| r[pos]).collect()
}

/// The Markdown of one data set.
pub fn data_section(d: &DataResults) -> String {
    let mut md = String::new();
    let k = d.times.len();
    let cells: Vec<String> = d.cells.iter().map(|c| c.to_string()).collect();
    let _ = writeln!(md, "\n## {}\n\nTimes {:?}; cells per time {}.\n", d.name, d.times, cells.join(" / "));
    let mut losers = Vec::new();
    // Table 1
    let pubs1 = published(&d.json, "published_W1_Var-RUOT_Table1");
    let _ = writeln!(
        md,
        "### Table 1 protocol: train on every snapshot, simulate from t_0, W1 at t_k\n\n\
         W1 on normalised weights, mean ± sd over the seeds. `copy t_(k−1)` predicts t_k by the previous \
         snapshot (the baseline); the noise floor is the split-half W1 of the true snapshot. {}\n",
        published_note(
            &pubs1,
            "Published rows (Var-RUOT Table 1, same protocol; one run each, as printed) are set beside ours."
        )
    );
    let mut h = vec!["t".to_string(), "noise floor W1".into(), "copy t_(k−1)".into()];
    h.extend(d.methods.iter().map(|m| format!("{} (ours)", m.method)));
    h.extend(pubs1.iter().map(|(p, _)| format!("{p} (published)")));
    head(&mut md, &h);
    for i in 1..k {
        let base = &d.methods.first().map(|m| m.copy_previous[i]).unwrap_or(f64::NAN);
        let mut r = vec![format!("{}", d.times[i]), f(d.methods[0].floors[i]), f(*base)];
        for m in &d.methods {
            let v = seeds_at(&m.table1, i);
            if mean_sd(&v).0 >= *base {
                losers.push(format!(
                    "Table 1, t = {}: {} {} ≥ copy {}",
                    d.times[i],
                    m.method,
                    pm(&v),
                    f(*base)
                ));
            }
            r.push(pm(&v));
        }
        r.extend(pubs1.iter().map(|(_, v)| v.get(i - 1).map_or("–".into(), |x| f(*x))));
        row(&mut md, &r);
    }
    // Table 14
    let pubs14 = published(&d.json, "published_W1_hold_one_out_Var-RUOT_Table14");
    let _ = writeln!(
        md,
        "\n### Hold-one-out (Table 14 protocol): train without t_k, simulate from t_0, W1 at t_k\n\n\
         The last time is extrapolation. `copy t_(k−1)` is the last training snapshot before t_k. {}\n",
        published_note(&pubs14, "Published rows: Var-RUOT Table 14, same protocol.")
    );
    let mut h = vec!["held-out t".to_string(), "noise floor W1".into(), "copy t_(k−1)".into()];
    h.extend(d.methods.iter().map(|m| format!("{} (ours)", m.method)));
    h.extend(pubs14.iter().map(|(p, _)| format!("{p} (published)")));
    head(&mut md, &h);
    for i in 1..k {
        let base = d.methods[0].copy_previous[i];
        let mut r = vec![format!("{}", d.times[i]), f(d.methods[0].floors[i]), f(base)];
        for m in &d.methods {
            let v = seeds_at(&m.table14[i - 1], i);
            if mean_sd(&v).0 >= base {
                losers.push(format!(
                    "hold-one-out, t = {}: {} {} ≥ copy {}",
                    d.times[i],
                    m.method,
                    pm(&v),
                    f(base)
                ));
            }
            r.push(pm(&v));
        }
        r.extend(pubs14.iter().map(|(_, v)| v.get(i - 1).map_or("–".into(), |x| f(*x))));
        row(&mut md, &r);
    }
    // Action, time, settings
    let _ = writeln!(
        md,
        "\n### Path action and fit time (Table 1 fits)\n\n\
         Action `A = Σ_n Σ_i w_i (½|u|² + αψ(g)) dt / M_0` (per unit of initial mass; SPEC §6), mean ± sd over \
         seeds; `–` for UOT-FM, whose growth is not tied to a ψ, so the Var-RUOT action is not defined for it.\n"
    );
    head(
        &mut md,
        &["method".into(), "action".into(), "fit seconds".into(), "setting (chosen by LOO)".into()],
    );
    for m in &d.methods {
        row(
            &mut md,
            &[
                m.method.clone(),
                pm(&m.table1.action),
                pm(&m.table1.seconds),
                format!("`{}`", m.table1.chosen),
            ],
        );
    }
    let _ = writeln!(
        md,
        "\n### Settings chosen by leave-one-out on each fold's training times, and fit times\n\n\
         LOO W1 per candidate in the learner's candidate order. Seconds are wall clock on a shared machine \
         with the folds running concurrently: `fit s` = one final fit (mean ± sd over seeds), `selection s` \
         = all of the fold's leave-one-out fits.\n"
    );
    head(
        &mut md,
        &[
            "method".into(),
            "fold".into(),
            "LOO W1 per candidate".into(),
            "chosen".into(),
            "fit s".into(),
            "selection s".into(),
        ],
    );
    for m in &d.methods {
        for fold in std::iter::once(&m.table1).chain(&m.table14) {
            let name =
                fold.held_out.map_or("Table 1 (all)".to_string(), |h| format!("without t = {}", d.times[h]));
            let loo: Vec<String> = fold.loo.iter().map(|v| f(*v)).collect();
            row(
                &mut md,
                &[
                    m.method.clone(),
                    name,
                    loo.join(", "),
                    format!("`{}`", fold.chosen),
                    pm(&fold.seconds),
                    format!("{:.0}", fold.selection_seconds),
                ],
            );
        }
    }
    let _ = writeln!(md, "\n### Rows that lose to the copy baseline\n");
    if losers.is_empty() {
        let _ = writeln!(md, "None: every mean W1 is below the copy baseline's.");
    } else {
        for l in losers {
            let _ = writeln!(md, "- {l}");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(held_out: Option<usize>, scored: Vec<usize>, w1: Vec<Vec<f64>>) -> FoldResult {
        FoldResult {
            held_out,
            loo: vec![0.25, 0.125],
            chosen: serde_json::json!({"basis": "linear"}),
            scored,
            w1,
            action: vec![1.0, 3.0],
            seconds: vec![10.0, 14.0],
            selection_seconds: 123.4,
        }
    }

    /// Every table row of the rendered section carries its numbers: means ± sd over seeds, the
    /// floor and the copy baseline, each fold's chosen setting, fit seconds and selection seconds,
    /// and the rows at or above the copy baseline are listed.
    #[test]
    fn data_section_renders_scores_settings_times_and_losers() {
        let m = ProtocolResult {
            method: "m".into(),
            floors: vec![f64::NAN, 0.5, 0.25],
            copy_previous: vec![f64::NAN, 1.0, 0.5],
            table1: fold(None, vec![1, 2], vec![vec![0.25, 0.5], vec![0.75, 0.5]]),
            table14: vec![
                fold(Some(1), vec![1], vec![vec![0.5], vec![0.5]]),
                fold(Some(2), vec![2], vec![vec![0.5], vec![1.0]]),
            ],
        };
        let d = DataResults {
            name: "toy".into(),
            times: vec![0.0, 1.0, 2.0],
            cells: vec![3, 3, 3],
            methods: vec![m],
            json: None,
        };
        let md = data_section(&d);
        // Table 1, t = 1: seeds 0.25, 0.75 → 0.5 ± 0.3536; t = 2: 0.5 ± 0 (= copy 0.5: a loser)
        assert!(md.contains("| 1 | 0.5000 | 1.0000 | 0.5000 ± 0.3536 |"), "{md}");
        assert!(md.contains("| 2 | 0.2500 | 0.5000 | 0.5000 ± 0.0000 |"), "{md}");
        // hold-one-out t = 2: 0.5, 1.0 → 0.75 ± 0.3536, above the copy
        assert!(md.contains("| 2 | 0.2500 | 0.5000 | 0.7500 ± 0.3536 |"), "{md}");
        // settings, fit s (10, 14 → 12 ± 2.8284) and selection s, for all three folds
        let settings = "| 0.2500, 0.1250 | `{\"basis\":\"linear\"}` | 12.0000 ± 2.8284 | 123 |";
        assert_eq!(md.matches(settings).count(), 3, "{md}");
        for name in ["Table 1 (all)", "without t = 1", "without t = 2"] {
            assert!(md.contains(&format!("| m | {name} {settings}")), "{name}: {md}");
        }
        assert!(md.contains("- Table 1, t = 2: m 0.5000 ± 0.0000 ≥ copy 0.5000"), "{md}");
        assert!(md.contains("- hold-one-out, t = 2: m 0.7500 ± 0.3536 ≥ copy 0.5000"), "{md}");
        assert!(!md.contains("t = 1: m"), "{md}");
        // action: 1, 3 → 2 ± 1.4142
        assert!(md.contains("| m | 2.0000 ± 1.4142 | 12.0000 ± 2.8284 |"), "{md}");
        // no published rows: said so, for both protocols; with them, their columns
        assert_eq!(md.matches("No published rows").count(), 2, "{md}");
        assert!(!md.contains("are set beside ours"), "{md}");
        let json = serde_json::json!({"published_W1_Var-RUOT_Table1": {"P": [0.125, 0.25]}});
        let md = data_section(&DataResults { json: Some(json), ..d });
        assert!(md.contains("are set beside ours") && md.contains("| P (published) |"), "{md}");
        assert!(md.contains("| 1 | 0.5000 | 1.0000 | 0.5000 ± 0.3536 | 0.1250 |"), "{md}");
        assert_eq!(md.matches("No published rows").count(), 1, "{md}");
    }
}
