//! One full step (field evaluation + advection + reaction + guards) of each scenario field as
//! shipped in `scenarios/`: `ou` (ou_relaxation, 4000 particles), `sobolev_fisher`
//! (gaussian_to_ring, USD with weights, 4000 particles, 512 features), `wfr` with `energy = "mmd"`
//! (wfr_mmd_ring) and with `energy = "sinkhorn"` (wfr_sinkhorn_ring: three warm-started unbalanced
//! Sinkhorn solves per step). The simulation is advanced 5 steps before timing, so the numbers are
//! for a typical mid-run step, not the cold first one.

use advreact::scenario::{load_str, Overrides};
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::Path;

fn field_steps(c: &mut Criterion) {
    let mut g = c.benchmark_group("field_step");
    g.sample_size(10);
    for (name, variant) in [
        ("ou_relaxation", None),
        ("gaussian_to_ring", Some("usd_weights")),
        ("wfr_mmd_ring", None),
        ("wfr_sinkhorn_ring", None),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).expect("scenario file");
        let scs = load_str(&text, &path, &Overrides::default()).expect("scenario");
        let sc = match variant {
            Some(v) => scs.into_iter().find(|s| s.label.as_deref() == Some(v)).expect("variant"),
            None => scs.into_iter().next().expect("one scenario"),
        };
        let mut built = sc.build().expect("build");
        for _ in 0..5 {
            built.sim.step().expect("warm-up step");
        }
        let id = match variant {
            Some(v) => format!("{name}/{v}"),
            None => name.to_string(),
        };
        g.bench_function(id, |b| b.iter(|| built.sim.step().expect("step")));
    }
    g.finish();
}

criterion_group!(benches, field_steps);
criterion_main!(benches);
