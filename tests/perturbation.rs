//! The synthetic perturbation (src/synthetic): shapes, the true support, the shift where it says
//! and nowhere else, the correlated blocks, same seed → same bits, the scenario type
//! `perturbation` giving the same clouds; and `advreact results sparse-maps` on a tiny size
//! (every row written, a map restricted to one dimension with `--maps name@d`, the shrinkage
//! columns, a foreign file refused and untouched; one seed: the smoothed-ℓ0 fit takes ~25 s even
//! at d = 10, n = 200).

mod common;
use advreact::scenario::{load_str, Overrides};
use advreact::synthetic::{perturbation, PerturbationSpec};
use common::bin;
use std::path::Path;
use std::process::Command;

/// Per-coordinate means of a row-major `n × d` matrix.
fn means(x: &[f64], d: usize) -> Vec<f64> {
    let n = (x.len() / d) as f64;
    let mut m = vec![0.0; d];
    x.chunks_exact(d).for_each(|p| m.iter_mut().zip(p).for_each(|(m, v)| *m += v / n));
    m
}

#[test]
fn shapes_support_and_the_shift_where_it_says() {
    let spec = PerturbationSpec::new(4000, 20, 5);
    let p = perturbation(&spec, 3).unwrap();
    assert_eq!((p.control.dim, p.control.len()), (20, 4000));
    assert_eq!((p.perturbed.dim, p.perturbed.len()), (20, 4000));
    assert!((p.control.mass() - 1.0).abs() < 1e-12 && (p.perturbed.mass() - 1.0).abs() < 1e-12);
    let s = &p.support;
    assert_eq!(s.dims.len(), 5);
    assert!(s.dims.windows(2).all(|w| w[0] < w[1]) && s.dims.iter().all(|&k| k < 20));
    for k in 0..20 {
        let want = if s.dims.contains(&k) { 1.5 } else { 0.0 };
        assert_eq!(s.shift[k].abs(), want, "coordinate {k}");
    }
    // Difference of means: N(s_k, 2/n) per coordinate; 5 sd = 5·√(2/4000) ≈ 0.112.
    let (mc, mp) = (means(&p.control.x, 20), means(&p.perturbed.x, 20));
    let tol = 5.0 * (2.0f64 / 4000.0).sqrt();
    for k in 0..20 {
        let diff = mp[k] - mc[k];
        assert!(
            (diff - s.shift[k]).abs() < tol,
            "coordinate {k}: mean moved by {diff}, shift {}",
            s.shift[k]
        );
    }
    // The support is the seed's, the same for both populations and any n.
    assert_eq!(PerturbationSpec::new(10, 20, 5).support(3), p.support);
    assert_ne!(spec.support(4).dims, p.support.dims);
}

#[test]
fn unit_variances_and_correlated_blocks() {
    let spec = PerturbationSpec { blocks: 2, block_size: 3, rho: 0.6, ..PerturbationSpec::new(6000, 8, 0) };
    let p = perturbation(&spec, 1).unwrap();
    let (d, n) = (8, 6000.0);
    let m = means(&p.control.x, d);
    let cov = |a: usize, b: usize| {
        p.control.x.chunks_exact(d).map(|x| (x[a] - m[a]) * (x[b] - m[b])).sum::<f64>() / n
    };
    // sd of a sample variance / correlation at n = 6000 is ≈ 0.02; 0.08 is 4 sd.
    for k in 0..d {
        assert!((cov(k, k) - 1.0).abs() < 0.08, "variance of {k}: {}", cov(k, k));
    }
    for (a, b, want) in [(0, 1, 0.6), (1, 2, 0.6), (3, 5, 0.6), (2, 3, 0.0), (0, 7, 0.0), (6, 7, 0.0)] {
        let c = cov(a, b) / (cov(a, a) * cov(b, b)).sqrt();
        assert!((c - want).abs() < 0.08, "corr({a}, {b}) = {c}, want {want}");
    }
    // k = 0: the two populations have the same law, no shift anywhere.
    assert!(p.support.dims.is_empty() && p.support.shift.iter().all(|&v| v == 0.0));
}

#[test]
fn same_seed_same_bits_and_bad_settings_named() {
    let spec = PerturbationSpec::new(50, 7, 2);
    let (a, b) = (perturbation(&spec, 9).unwrap(), perturbation(&spec, 9).unwrap());
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.control.x), bits(&b.control.x));
    assert_eq!(bits(&a.perturbed.x), bits(&b.perturbed.x));
    assert_eq!(a.support, b.support);
    assert_ne!(bits(&perturbation(&spec, 10).unwrap().control.x), bits(&a.control.x));
    let bad = [
        (PerturbationSpec::new(50, 7, 8), "perturbation.k"),
        (PerturbationSpec::new(0, 7, 2), "perturbation.n"),
        (PerturbationSpec { rho: 1.0, ..spec.clone() }, "perturbation.rho"),
        (PerturbationSpec { shift: f64::NAN, ..spec.clone() }, "perturbation.shift"),
        (PerturbationSpec { blocks: 3, block_size: 3, ..spec.clone() }, "perturbation.blocks"),
    ];
    for (s, key) in bad {
        let e = perturbation(&s, 0).unwrap_err().to_string();
        assert!(e.contains(key) && e.lines().count() == 1, "{e}");
    }
}

const SCENARIO: &str = r#"
[meta]
name = "p"
seed = 5

[source]
type = "perturbation"
n = 40
dim = 6
k = 2
blocks = 1
block_size = 2

[target]
type = "perturbation"
perturbed = true
n = 40
dim = 6
k = 2
blocks = 1
block_size = 2

[field]
type = "zero"

[time]
dt = 0.1
steps = 1
"#;

#[test]
fn scenario_type_perturbation_gives_the_library_clouds() {
    let file = Path::new("p.toml");
    let sc = load_str(SCENARIO, file, &Overrides::default()).unwrap().remove(0);
    let built = sc.build().unwrap();
    let spec = PerturbationSpec { blocks: 1, block_size: 2, ..PerturbationSpec::new(40, 6, 2) };
    let p = perturbation(&spec, 5).unwrap();
    assert_eq!(built.source.x, p.control.x);
    assert_eq!(built.target.as_ref().unwrap().x, p.perturbed.x);
    // A target of another dimension, and k > dim, are one-line errors naming the key.
    let text = SCENARIO.replacen(
        "dim = 6\nk = 2\nblocks = 1\nblock_size = 2\n\n[field]",
        "dim = 5\nk = 2\nblocks = 1\nblock_size = 2\n\n[field]",
        1,
    );
    let e =
        load_str(&text, file, &Overrides::default()).unwrap().remove(0).build().err().unwrap().to_string();
    assert!(e.contains("target.dim") && e.lines().count() == 1, "{e}");
    let text = SCENARIO.replacen("k = 2", "k = 7", 1);
    let e =
        load_str(&text, file, &Overrides::default()).unwrap().remove(0).build().err().unwrap().to_string();
    assert!(e.contains("source.k") && e.lines().count() == 1, "{e}");
}

#[test]
fn results_sparse_maps_tiny_writes_every_row_and_refuses_a_foreign_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sparse_maps.md");
    let args = [
        "results",
        "sparse-maps",
        "--dims",
        "10,12",
        "--cells",
        "200",
        "--shifted",
        "2",
        "--seeds",
        "0",
        "--maps",
        "entropic,sparse-l1,sparse-l0@10",
    ];
    let run = |out: &Path| Command::new(bin()).args(args).arg("--out").arg(out).output().unwrap();
    let o = run(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(md.starts_with("# Sparse transport maps on a synthetic perturbation\n"), "{md}");
    assert!(md.contains(
        "results sparse-maps --dims 10,12 --cells 200 --shifted 2 --seeds 0 --maps entropic,sparse-l1,sparse-l0@10`"
    ));
    // `sparse-l0@10`: the ℓ0 row runs at d = 10 only; d = 12 marks it "not run".
    let d10 = &md[md.find("## d = 10, n = 200, k = 2").expect("d = 10 table")..];
    let d12 = &md[md.find("## d = 12, n = 200, k = 2").expect("d = 12 table")..];
    for row in [
        "| entropic |",
        "| sparse-l1 |",
        "| sparse-l0 |",
        "| identity (no map) |",
        "| sampling floor (ν vs ν′) |",
    ] {
        let line = d10.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| panic!("no row {row}: {md}"));
        assert_eq!(line.matches(" | ").count(), 9, "{line}");
        assert!(!line.contains("NaN"), "{line}");
    }
    assert!(d12.lines().any(|l| l.starts_with("| sparse-l0 | not run |")), "{d12}");
    assert!(d12.lines().any(|l| l.starts_with("| sparse-l1 |") && !l.contains("not run")), "{d12}");
    // The identity keeps none of the shift and moves nothing; the shrinkage is measured for every map
    // run, and the comparison across dimensions is written.
    let identity = d10.lines().find(|l| l.starts_with("| identity (no map) |")).unwrap();
    assert!(identity.contains("| 0.00 ± 0.00 | 0.000 ± 0.000 |"), "{identity}");
    assert!(d10.contains("**Shrinkage of the true shift**") && d10.contains("sparse-l0 "), "{d10}");
    assert!(
        md.contains("## From d = 10 to d = 12") && md.contains("- **sparse-l0**: not run at both"),
        "{md}"
    );
    // The entropic map moves (nearly) every coordinate: its mean dimensionality is above the
    // 2 shifted ones (it averages target cells, so no coordinate stays within δ).
    let entropic = md.lines().find(|l| l.starts_with("| entropic |")).unwrap();
    let dims: f64 = entropic.split(" | ").nth(2).unwrap().split(" ± ").next().unwrap().parse().unwrap();
    assert!(dims > 5.0, "{entropic}");
    // A foreign file is refused (before any computation) and untouched.
    let foreign = dir.path().join("notes.md");
    std::fs::write(&foreign, "my notes\n").unwrap();
    let o = run(&foreign);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--out"));
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "my notes\n");
    // A map restricted to a dimension that is not run is a one-line error naming --maps.
    let bad = dir.path().join("bad.md");
    let o = Command::new(bin())
        .args(["results", "sparse-maps", "--dims", "10", "--cells", "20", "--shifted", "2", "--seeds", "0"])
        .args(["--maps", "sparse-l0@7", "--out"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--maps") && err.contains("sparse-l0@7") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(!bad.exists());
}
