//! Tests: run folders with small synthetic files (d = 1, 2, 5, with a clone), odd inputs, the
//! heatmap and curves; and a realistic example generator for looking at the figures.

use super::*;
use std::fmt::Write as _;
use std::fs;

/// Decode a PNG, check its size and that it is not blank: returns the number of distinct colours.
fn check_png(path: &Path, size: (u32, u32)) -> usize {
    assert!(path.is_file(), "{} missing", path.display());
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    assert_eq!(img.dimensions(), size, "{}", path.display());
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    // background, text, axes and data: many colours
    assert!(colours.len() > 20, "{} looks blank: {} colours", path.display(), colours.len());
    // mostly light background, but not only background
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    let frac = non_white as f64 / (size.0 * size.1) as f64;
    assert!(frac > 0.01 && frac < 0.9, "{}: {frac}", path.display());
    colours.len()
}

/// Write a small run folder in dimension `d`: 3 snapshots of 4 particles, a clone (id 4 from
/// parent 1) at the second snapshot, a particle of zero weight, and a target.
fn synthetic_run(dir: &Path, d: usize) {
    let mut snaps = String::from("step,t,id,parent,w");
    for k in 1..=d {
        write!(snaps, ",x{k}").unwrap();
    }
    snaps.push('\n');
    let pos = |id: u64, s: usize| -> Vec<f64> {
        (0..d).map(|k| id as f64 * 0.3 + s as f64 * (0.5 + 0.1 * k as f64) - 0.2 * k as f64).collect()
    };
    let mut row = |step: usize, t: f64, id: u64, parent: u64, w: f64, x: Vec<f64>| {
        write!(snaps, "{step},{t},{id},{parent},{w}").unwrap();
        for v in x {
            write!(snaps, ",{v}").unwrap();
        }
        snaps.push('\n');
    };
    for (s, step) in [0usize, 10, 20].iter().enumerate() {
        let t = *step as f64 * 0.05;
        for id in 0..4u64 {
            let w = if id == 3 && s == 2 { 0.0 } else { 0.25 };
            row(*step, t, id, id, w, pos(id, s));
        }
        if s >= 1 {
            // a clone of particle 1, born between snapshot 0 and 1
            let mut x = pos(1, s);
            x[0] += 0.2;
            row(*step, t, 4, 1, 0.125, x);
        }
    }
    fs::write(dir.join("snapshots.csv"), snaps).unwrap();

    let mut target = String::from("time");
    for k in 1..=d {
        write!(target, ",x{k}").unwrap();
    }
    target.push_str(",w\n");
    for j in 0..6 {
        write!(target, "1").unwrap();
        for k in 0..d {
            write!(target, ",{}", 1.0 + 0.1 * j as f64 + 0.05 * k as f64).unwrap();
        }
        writeln!(target, ",{}", 1.0 / 6.0).unwrap();
    }
    fs::write(dir.join("target.csv"), target).unwrap();

    let mut metrics = String::from("step,t,mmd,mmd_normalized,mass,n,ess");
    for k in 1..=d {
        write!(metrics, ",mean_{k}").unwrap();
    }
    metrics.push('\n');
    for step in 0..=20 {
        let t = step as f64 * 0.05;
        let mmd = 0.5 * (-3.0 * t).exp();
        // one zero MMD: skipped on the log axis
        let mmd = if step == 20 { 0.0 } else { mmd };
        write!(metrics, "{step},{t},{mmd},{},{},{},{}", mmd * 0.8, 1.0 + 0.1 * t, 4 + step / 10, 3.5)
            .unwrap();
        for k in 0..d {
            write!(metrics, ",{}", t * (k + 1) as f64).unwrap();
        }
        metrics.push('\n');
    }
    fs::write(dir.join("metrics.csv"), metrics).unwrap();
}

#[test]
fn plot_run_in_dimensions_1_2_5() {
    for d in [1, 2, 5] {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(format!("run_d{d}"));
        fs::create_dir(&dir).unwrap();
        synthetic_run(&dir, d);
        let out = plot_run(&dir).unwrap_or_else(|e| panic!("d = {d}: {e}"));
        assert_eq!(out, vec![dir.join("trajectories.png"), dir.join("metrics.png")]);
        for p in &out {
            check_png(p, FIGURE_SIZE);
        }
    }
}

#[test]
fn pca_projection_orders_components() {
    // points spread mostly along x3, a little along x1
    let text = "step,t,id,parent,w,x1,x2,x3\n\
                0,0,0,0,1,0.1,0,-2\n0,0,1,1,1,-0.1,0,2\n\
                1,1,0,0,1,0.2,0,-3\n1,1,1,1,1,-0.2,0,3\n";
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("snapshots.csv");
    fs::write(&p, text).unwrap();
    let s = read::read_snapshots(&p).unwrap();
    let proj = trajectories::pca_for_test(&s);
    let (pc1, explained) = proj;
    assert!(pc1[2].abs() > 0.99, "{pc1:?}");
    assert!(explained > 95.0, "{explained}");
}

#[test]
fn pca_in_high_dimension() {
    // d = 300 (subspace iteration): spread along x151, less along x7, noise elsewhere
    let d = 300;
    let mut text = String::from("step,t,id,parent,w");
    for k in 1..=d {
        write!(text, ",x{k}").unwrap();
    }
    text.push('\n');
    for step in 0..2 {
        for i in 0..40u64 {
            write!(text, "{step},{step},{i},{i},1").unwrap();
            let a = (i as f64 - 19.5) / 10.0;
            for k in 0..d {
                let v = match k {
                    150 => 3.0 * a,
                    6 => (i % 2) as f64,
                    _ => 1e-3 * ((i as usize * 31 + k * 17) % 7) as f64,
                };
                write!(text, ",{v}").unwrap();
            }
            text.push('\n');
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("snapshots.csv");
    fs::write(&p, text).unwrap();
    let s = read::read_snapshots(&p).unwrap();
    let (pc1, explained) = trajectories::pca_for_test(&s);
    assert!(pc1[150].abs() > 0.999, "{}", pc1[150]);
    assert!(explained > 90.0, "{explained}");
    // identical points: no NaN, a figure all the same
    let same = "step,t,id,parent,w,".to_string()
        + &(1..=d).map(|k| format!("x{k}")).collect::<Vec<_>>().join(",")
        + "\n0,0,0,0,1,"
        + &vec!["2"; d].join(",")
        + "\n";
    fs::write(&p, same).unwrap();
    let s = read::read_snapshots(&p).unwrap();
    let (pc1, explained) = trajectories::pca_for_test(&s);
    assert!(pc1.iter().all(|v| v.is_finite()));
    assert_eq!(explained, 0.0);
    fs::write(dir.path().join("metrics.csv"), "step,t,n\n0,0,1\n").unwrap();
    plot_run(dir.path()).unwrap();
}

#[test]
fn odd_inputs_do_not_panic() {
    let root = tempfile::tempdir().unwrap();

    // empty files: figures saying there is nothing to show
    let dir = root.path().join("empty");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("metrics.csv"), "").unwrap();
    fs::write(dir.join("snapshots.csv"), "step,t,id,parent,w,x1,x2\n").unwrap();
    fs::write(dir.join("target.csv"), "").unwrap();
    // header-only snapshots is readable; a completely empty one is an error naming the file
    let out = plot_run(&dir).unwrap();
    assert_eq!(out.len(), 2);
    for p in &out {
        assert!(p.is_file());
    }
    fs::write(dir.join("snapshots.csv"), "").unwrap();
    let e = plot_run(&dir).unwrap_err().to_string();
    assert!(e.contains("snapshots.csv") && e.contains("empty"), "{e}");

    // a single snapshot, all points identical, all weights zero, metrics with one row
    let dir = root.path().join("degenerate");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("snapshots.csv"), "step,t,id,parent,w,x1,x2\n0,0,0,0,0,1,1\n0,0,1,1,0,1,1\n").unwrap();
    fs::write(dir.join("metrics.csv"), "step,t,mmd,mass,n\n0,0,0,0,2\n").unwrap();
    let out = plot_run(&dir).unwrap();
    for p in &out {
        check_png(p, FIGURE_SIZE);
    }

    // the same in d = 1 and d = 4 (PCA of identical points)
    for d in [1, 4] {
        let dir = root.path().join(format!("degenerate{d}"));
        fs::create_dir(&dir).unwrap();
        let xs: Vec<String> = (1..=d).map(|k| format!("x{k}")).collect();
        let ones = vec!["1"; d].join(",");
        fs::write(
            dir.join("snapshots.csv"),
            format!("step,t,id,parent,w,{}\n0,0,0,0,1,{ones}\n0,0,1,1,1,{ones}\n", xs.join(",")),
        )
        .unwrap();
        let out = plot_run(&dir).unwrap();
        assert_eq!(out, vec![dir.join("trajectories.png")]);
        check_png(&out[0], FIGURE_SIZE);
    }

    // target of another dimension: noted, not drawn
    let dir = root.path().join("mismatch");
    fs::create_dir(&dir).unwrap();
    synthetic_run(&dir, 2);
    fs::write(dir.join("target.csv"), "time,x1,x2,x3,w\n1,0,0,0,1\n").unwrap();
    plot_run(&dir).unwrap();

    // malformed files: errors naming the file and line
    let dir = root.path().join("bad");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("metrics.csv"), "step,t,mmd\n0,0,0.1\n1,0.1\n").unwrap();
    let e = plot_run(&dir).unwrap_err();
    assert!(matches!(e, PlotError::Parse { line: 3, .. }), "{e}");
    assert!(e.to_string().contains("metrics.csv"));

    // no files, not a folder
    let dir = root.path().join("nothing");
    fs::create_dir(&dir).unwrap();
    assert!(plot_run(&dir).unwrap_err().to_string().contains("neither"));
    assert!(plot_run(&root.path().join("missing")).is_err());
}

#[test]
fn heatmap_checks_shape_and_draws() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fate.png");
    let rows = ["source 0", "source 1", "source 2"];
    let cols = vec!["ring 0".to_string(), "ring 1".into()];
    let v = [0.5, 0.1, 0.0, 0.3, f64::NAN, 0.05];
    plot_heatmap(&p, &rows, &cols, &v, "Fate matrix", "target cluster j", "source cluster i").unwrap();
    check_png(&p, FIGURE_SIZE);
    let e = plot_heatmap(&p, &rows, &cols, &v[..5], "t", "x", "y").unwrap_err();
    assert!(e.to_string().contains("fate.png"), "{e}");
    // empty, constant, and large matrices
    let none: [&str; 0] = [];
    plot_heatmap(&p, &none, &none, &[], "empty", "x", "y").unwrap();
    plot_heatmap(&p, &["a"], &["b"], &[0.0], "zero", "x", "y").unwrap();
    let labels: Vec<String> = (0..40).map(|i| format!("cluster number {i}")).collect();
    let big: Vec<f64> = (0..1600).map(|k| (k % 37) as f64).collect();
    plot_heatmap(&p, &labels, &labels, &big, "big", "x", "y").unwrap();
    check_png(&p, FIGURE_SIZE);
}

#[test]
fn curves_linear_log_and_degenerate() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("curves.png");
    let series: Vec<(String, Vec<(f64, f64)>)> = ["USD", "WFR", "birth-death"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let pts = (0..200).map(|s| (s as f64, (1.0 + i as f64) * (-(s as f64) / 50.0).exp())).collect();
            (n.to_string(), pts)
        })
        .collect();
    plot_curves(&p, "MMD against step", "step", "MMD", true, &series).unwrap();
    check_png(&p, FIGURE_SIZE);
    plot_curves(&p, "linear", "step", "MMD", false, &series).unwrap();
    check_png(&p, FIGURE_SIZE);
    // nothing drawable: empty list, non-positive on a log axis, a single point
    plot_curves(&p, "empty", "x", "y", true, &[]).unwrap();
    plot_curves(&p, "zeros", "x", "y", true, &[("z".into(), vec![(0.0, 0.0)])]).unwrap();
    plot_curves(&p, "one", "x", "y", false, &[("a".into(), vec![(1.0, 1.0)])]).unwrap();
    let e = plot_curves(&dir.path().join("no/such/dir.png"), "t", "x", "y", false, &series).unwrap_err();
    assert!(matches!(e, PlotError::Write { .. }), "{e}");
}

/// Issue 13: the legend showed the mass of the drawn subset ("mass 0.661") unless `n` was among
/// the metrics. It shows the whole population's mass, from metrics.csv, summary.json or source.csv.
#[test]
fn legend_shows_the_true_total_mass() {
    use super::trajectories::{population_at, population_label};
    let dir = std::env::temp_dir().join(format!("advreact_legend_{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    // metrics.csv reports only mmd; 4 of 5553 particles drawn, carrying mass 0.661.
    fs::write(dir.join("metrics.csv"), "step,t,mmd\n0,0,0.5\n75,7.5,0.1\n").unwrap();
    fs::write(dir.join("source.csv"), "time,x1,w\n0,0.1,0.25\n0,0.2,0.25\n0,0.3,0.5\n").unwrap();
    fs::write(dir.join("summary.json"), r#"{"steps": 75, "t": 7.5, "n": 5553, "mass": 55.53}"#).unwrap();
    let fin = population_at(&dir, 7.5);
    assert_eq!(fin, Some((Some(5553.0), 55.53)));
    assert_eq!(
        population_label("final", 4, 0.661, fin),
        ["final: 5553 particles, mass 55.5", "    (4 drawn)"]
    );
    assert_eq!(population_at(&dir, 0.0), Some((Some(3.0), 1.0)));
    assert_eq!(population_label("initial", 3, 1.0, Some((Some(3.0), 1.0))), ["initial: 3 particles, mass 1"]);
    // metrics.csv with a mass column wins, at the matching time only.
    fs::write(dir.join("metrics.csv"), "step,t,mass\n0,0,1\n50,5,20\n75,7.5,55.53\n").unwrap();
    assert_eq!(population_at(&dir, 7.5), Some((None, 55.53)));
    assert_eq!(population_at(&dir, 5.0), Some((None, 20.0)));
    assert_eq!(
        population_label("final", 4, 0.661, Some((None, 55.53))),
        ["final: mass 55.5", "    (4 drawn)"]
    );
    // Nothing known (a foreign folder at another time): the label says it is only the drawn rows.
    assert_eq!(population_at(&dir, 3.0), None);
    let l = population_label("final", 4, 0.661, None);
    assert_eq!(l, ["final: 4 drawn (whole population unknown), their mass 0.661"]);
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// A realistic example to look at: a Gaussian blob moving to a ring of 8 Gaussians, with
// branching (clones and deaths) and growing/shrinking weights.

mod example {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    pub fn write_example(dir: &Path, d: usize) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut z = || -> f64 { StandardNormal.sample(&mut rng) };
        let n0 = 300;
        let k_ring = 8;
        let radius = 3.0;
        let centre = |k: usize| {
            let a = 2.0 * std::f64::consts::PI * k as f64 / k_ring as f64;
            (radius * a.cos(), radius * a.sin())
        };
        // random orthonormal-ish embedding for d > 2: a rotation of the plane into R^d
        let embed = |p: (f64, f64), extra: &[f64]| -> Vec<f64> {
            if d == 1 {
                return vec![p.0];
            }
            let mut v = vec![p.0, p.1];
            v.extend_from_slice(extra);
            if d > 2 {
                // mix coordinates so that the ring does not sit in x1, x2
                let (a, b) = (v[0], v[2]);
                v[0] = 0.8 * a + 0.6 * b;
                v[2] = -0.6 * a + 0.8 * b;
            }
            v
        };
        struct P {
            id: u64,
            parent: u64,
            x0: (f64, f64),
            goal: (f64, f64),
            extra: Vec<f64>,
            logw: f64,
            growth: f64,
        }
        let mut next_id = 0u64;
        let mut ps: Vec<P> = (0..n0)
            .map(|_| {
                let x0 = (0.5 * z(), 0.5 * z());
                let k = (((x0.1.atan2(x0.0) / (2.0 * std::f64::consts::PI)) * k_ring as f64).round() as i64)
                    .rem_euclid(k_ring as i64) as usize;
                let c = centre(k);
                let goal = (c.0 + 0.25 * z(), c.1 + 0.25 * z());
                let id = next_id;
                next_id += 1;
                P {
                    id,
                    parent: id,
                    x0,
                    goal,
                    extra: (2..d.max(2)).map(|_| 0.3 * z()).collect(),
                    logw: 0.0,
                    growth: if k.is_multiple_of(2) { 0.8 } else { -0.8 },
                }
            })
            .collect();
        let mass0 = 1.0;
        let w0 = mass0 / n0 as f64;
        let steps = 20;
        let dt = 0.05;
        let mut snaps = String::from("step,t,id,parent,w");
        for k in 1..=d {
            write!(snaps, ",x{k}").unwrap();
        }
        snaps.push('\n');
        let mut metrics = String::from("step,t,mmd,mmd_normalized,mass,n,ess");
        for k in 1..=d {
            write!(metrics, ",mean_{k}").unwrap();
        }
        metrics.push('\n');
        let mut rng2 = ChaCha8Rng::seed_from_u64(11);
        for s in 0..=steps {
            let t = s as f64 * dt;
            let u = t / (steps as f64 * dt);
            let ease = u * u * (3.0 - 2.0 * u);
            // branching: split heavy particles, kill light ones
            if s > 0 && s % 4 == 0 {
                let mut born = Vec::new();
                for p in ps.iter_mut() {
                    if p.logw > 0.3 && rng2.random::<f64>() < 0.5 {
                        p.logw -= std::f64::consts::LN_2;
                        born.push(P {
                            id: next_id,
                            parent: p.id,
                            x0: p.x0,
                            goal: (
                                p.goal.0 + 0.2 * rng2.random::<f64>(),
                                p.goal.1 + 0.2 * rng2.random::<f64>(),
                            ),
                            extra: p.extra.clone(),
                            logw: p.logw,
                            growth: p.growth,
                        });
                        next_id += 1;
                    }
                }
                ps.retain(|p| !(p.logw < -0.5 && rng2.random::<f64>() < 0.3));
                ps.extend(born);
            }
            let mut mass = 0.0;
            let mut m2 = 0.0;
            let mut mean = vec![0.0; d];
            for p in ps.iter_mut() {
                let pos = (
                    p.x0.0 + (p.goal.0 - p.x0.0) * ease + 0.05 * z(),
                    p.x0.1 + (p.goal.1 - p.x0.1) * ease + 0.05 * z(),
                );
                let x = embed(pos, &p.extra);
                let w = w0 * p.logw.exp();
                mass += w;
                m2 += w * w;
                for k in 0..d {
                    mean[k] += w * x[k];
                }
                write!(snaps, "{s},{t},{},{},{w}", p.id, p.parent).unwrap();
                for v in &x {
                    write!(snaps, ",{v}").unwrap();
                }
                snaps.push('\n');
                p.logw += p.growth * dt * 2.0;
            }
            let mmd = 0.6 * (-4.0 * u).exp() + 0.004 * (1.0 + 0.3 * z());
            write!(metrics, "{s},{t},{mmd},{},{mass},{},{}", mmd * 0.7, ps.len(), mass * mass / m2).unwrap();
            for m in &mean {
                write!(metrics, ",{}", m / mass).unwrap();
            }
            metrics.push('\n');
        }
        fs::write(dir.join("snapshots.csv"), snaps).unwrap();
        fs::write(dir.join("metrics.csv"), metrics).unwrap();

        let mut target = String::from("time");
        for k in 1..=d {
            write!(target, ",x{k}").unwrap();
        }
        target.push_str(",w\n");
        let nt = 800;
        for j in 0..nt {
            let c = centre(j % k_ring);
            let p = (c.0 + 0.25 * z(), c.1 + 0.25 * z());
            let extra: Vec<f64> = (2..d.max(2)).map(|_| 0.3 * z()).collect();
            write!(target, "{}", steps as f64 * dt).unwrap();
            for v in embed(p, &extra) {
                write!(target, ",{v}").unwrap();
            }
            writeln!(target, ",{}", 1.0 / nt as f64).unwrap();
        }
        fs::write(dir.join("target.csv"), target).unwrap();
    }

    /// The example figures, written into `ADVREACT_PLOT_EXAMPLE_DIR` (default: a temp folder).
    /// `cargo test --release example_figures -- --ignored` and look at the PNGs.
    #[test]
    #[ignore = "writes example figures to look at"]
    fn example_figures() {
        let base = std::env::var_os("ADVREACT_PLOT_EXAMPLE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("advreact_plot_example"));
        for d in [2, 5, 1] {
            let dir = base.join(format!("blob_to_ring_d{d}"));
            fs::create_dir_all(&dir).unwrap();
            write_example(&dir, d);
            let out = plot_run(&dir).unwrap();
            for p in &out {
                check_png(p, FIGURE_SIZE);
                println!("{}", p.display());
            }
        }
        // the small synthetic runs of the tests, and a degenerate one
        for d in [1, 2, 5] {
            let dir = base.join(format!("small_d{d}"));
            fs::create_dir_all(&dir).unwrap();
            synthetic_run(&dir, d);
            plot_run(&dir).unwrap();
        }
        let dir = base.join("degenerate");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("snapshots.csv"), "step,t,id,parent,w,x1,x2\n0,0,0,0,0,1,1\n0,0,1,1,0,1,1\n")
            .unwrap();
        fs::write(dir.join("metrics.csv"), "step,t,mmd,mass,n\n0,0,0,0,2\n").unwrap();
        plot_run(&dir).unwrap();
        let rows: Vec<String> = (0..3).map(|i| format!("blob {i}")).collect();
        let cols: Vec<String> = (0..8).map(|j| format!("ring {j}")).collect();
        let v: Vec<f64> =
            (0..24).map(|k| if (k % 8) % 2 == 0 { 0.12 + 0.01 * (k % 5) as f64 } else { 0.0312 }).collect();
        plot_heatmap(
            &base.join("heatmap.png"),
            &rows,
            &cols,
            &v,
            "Fate matrix: mass from source cluster i to target cluster j",
            "target cluster j",
            "source cluster i",
        )
        .unwrap();
        let labels: Vec<String> = (0..25).map(|i| format!("cluster number {i}")).collect();
        let big: Vec<f64> = (0..625).map(|k| ((k * 7) % 37) as f64 / 10.0).collect();
        plot_heatmap(
            &base.join("heatmap_big.png"),
            &labels,
            &labels,
            &big,
            "A 25 × 25 matrix",
            "target cluster j",
            "source cluster i",
        )
        .unwrap();
        let series: Vec<(String, Vec<(f64, f64)>)> = ["USD", "WFR", "birth-death"]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let pts = (0..=400)
                    .map(|s| {
                        let s = s as f64;
                        (s, 0.5 * (-(s) / (60.0 + 40.0 * i as f64)).exp() + 1e-3 * (1.0 + i as f64))
                    })
                    .collect();
                (n.to_string(), pts)
            })
            .collect();
        plot_curves(&base.join("curves.png"), "MMD against step", "step", "MMD", true, &series).unwrap();
        println!("{}", base.display());
    }
}

/// A figure is written atomically: drawn again over itself it gives the same bytes and leaves no
/// hidden `.<name>.partial` behind; into a missing folder it fails naming the file, leaving nothing.
#[test]
fn figures_are_replaced_atomically() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_run(dir.path(), 2);
    let first = plot_run(dir.path()).unwrap();
    let bytes: Vec<Vec<u8>> = first.iter().map(|p| fs::read(p).unwrap()).collect();
    assert_eq!(plot_run(dir.path()).unwrap(), first);
    for (p, b) in first.iter().zip(&bytes) {
        assert_eq!(&fs::read(p).unwrap(), b, "{} changed when redrawn", p.display());
    }
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");
    let missing = dir.path().join("no/such/folder/curves.png");
    let e = plot_curves(&missing, "t", "x", "y", false, &[("a".into(), vec![(0.0, 1.0), (1.0, 2.0)])])
        .unwrap_err();
    assert!(e.to_string().contains("curves.png"), "{e}");
    assert!(!dir.path().join("no").exists());
}
