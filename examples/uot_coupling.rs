//! An unbalanced optimal transport coupling computed from Rust: two small 2-D clouds, the
//! entropic UOT problem
//!
//! `min_π ⟨C, π⟩ + ε KL(π | a⊗b) + τ_a KL(π1 | a) + τ_b KL(πᵀ1 | b)`,  `C(x, y) = |x − y|²`,
//!
//! solved by log-domain Sinkhorn; prints the report, the row masses `π1` (how much of each source
//! point is transported) and the largest plan entries. Exits with status 1 unless the solve
//! converged with both relative marginal errors below the tolerance.
//!
//! Run: `cargo run --release --example uot_coupling`.

use advreact::prelude::*;
use std::process::ExitCode;

/// `n` points on a circle of radius `r` around `c`, total mass `mass`.
fn circle(n: usize, c: [f64; 2], r: f64, mass: f64) -> Result<Cloud, CloudError> {
    let x = (0..n)
        .flat_map(|k| {
            let a = std::f64::consts::TAU * k as f64 / n as f64;
            [c[0] + r * a.cos(), c[1] + r * a.sin()]
        })
        .collect();
    Cloud::uniform(2, x, mass)
}

fn main() -> Result<ExitCode, Error> {
    let a = circle(12, [0.0, 0.0], 1.0, 1.0)?;
    let b = circle(16, [0.5, 0.0], 0.6, 1.5)?;
    let opts = SinkhornOptions { tol: 1e-8, ..SinkhornOptions::kl(0.05, 1.0, 1.0, Cost::SqEuclidean) };
    let sol = uot_clouds(&a, &b, &opts)?;
    let r = &sol.report;
    println!("iterations {} (converged: {}), ε = {}", r.iterations, r.converged, r.eps);
    println!(
        "marginal errors: a {:.2e}, b {:.2e} (tolerance {:.0e})",
        r.marginal_error_a, r.marginal_error_b, r.tol
    );
    println!("masses: a {}, b {}, transported {}", r.mass_a, r.mass_b, r.transported_mass);
    println!(
        "objective {} = transport {} + entropy {} + marginals {} + {}",
        r.primal_objective, r.transport_cost, r.entropy_term, r.marginal_term_a, r.marginal_term_b
    );
    let kept: Vec<String> = sol.row_mass.iter().zip(&a.w).map(|(m, w)| format!("{:.3}", m / w)).collect();
    println!("row mass / input mass per source point: {}", kept.join(" "));
    let mut top = sol.coupling(&a, &b)?.top_k(2)?;
    top.sort_by(|p, q| q.value.total_cmp(&p.value));
    println!("largest plan entries (i, j, π_ij):");
    for e in top.iter().take(5) {
        println!("  {:2} {:2} {:.5}", e.i, e.j, e.value);
    }

    let ok = r.converged && r.marginal_error_a <= opts.tol && r.marginal_error_b <= opts.tol;
    println!("{}", if ok { "check passed" } else { "CHECK FAILED" });
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
