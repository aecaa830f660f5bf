//! The Rust side of `python/bench/overhead.py`: the same library calls the Python package makes
//! (`uot_clouds`, `mmd_between`), on the same clouds (snapshot CSVs written by the script),
//! timed in process. Prints one JSON line: medians over `reps` runs after one warm-up.
//!
//! `cargo run --release -p advreact-python --example overhead -- X.csv Y.csv EPS BANDWIDTH REPS`

use advreact::prelude::*;
use std::path::Path;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `reps` runs of `f` after one warm-up, and the last result.
fn time<T>(reps: usize, mut f: impl FnMut() -> Result<T, Error>) -> Result<(f64, T), Error> {
    let mut last = f()?;
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        last = f()?;
        ts.push(t0.elapsed().as_secs_f64());
    }
    Ok((median(ts), last))
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 5 {
        eprintln!("usage: overhead X.csv Y.csv EPS BANDWIDTH REPS");
        std::process::exit(2);
    }
    let num = |k: usize| -> Result<f64, Error> {
        args[k].parse().map_err(|e| ConfigError::new("<cli>", "(args)", format!("{}: {e}", args[k])).into())
    };
    let (eps, s, reps) = (num(2)?, num(3)?, num(4)? as usize);
    let a = read_snapshot(Path::new(&args[0]))?.select(None)?;
    let b = read_snapshot(Path::new(&args[1]))?.select(None)?;
    // The options `advreact.uot(x, y, a, b, eps=EPS, tau_a=1, tau_b=1, tol=1e-6)` builds.
    let mut opts = SinkhornOptions::kl(eps, 1.0, 1.0, Cost::SqEuclidean);
    opts.tol = 1e-6;
    let (t_uot, sol) = time(reps, || Ok(uot_clouds(&a, &b, &opts)?))?;
    let (t_mmd, m) = time(reps, || Ok(mmd_between(&a, &b, s)?))?;
    println!(
        "{{\"uot_s\": {t_uot}, \"uot_iterations\": {}, \"uot_dual\": {:?}, \"mmd_s\": {t_mmd}, \"mmd2\": {:?}}}",
        sol.report.iterations, sol.report.dual_objective, m.mmd2
    );
    Ok(())
}
