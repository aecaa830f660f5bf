//! Memory stays O(n + m): a Sinkhorn solve (one full iteration plus the final evaluation of
//! every report term), the row/column masses and the barycentric map at n = m = 10^5 in d = 2,
//! under a counting global allocator that records the peak of live heap bytes. A dense plan
//! would be 10^10 entries (80 GB); the assertion is peak − baseline < 100 MB (the O(n + m) working
//! set here is about 20 MB: coordinates, weights, potentials and a few length-n work vectors).
//!
//! It does 2·10^10 pair evaluations per iteration, so it takes a while (tens of seconds on two
//! cores): it is `#[ignore]`d; run it with `cargo test --release --test uot_memory -- --ignored`.
//!
//! What runs in CI (`cargo test --release`, a few seconds): the same solve, plan marginals and
//! barycentric map, and the entropic `W1` and `W2` (solve and certificate), each at two sizes
//! `n` and `2n`: the peak heap must grow like `n + m` (at most 2.5× when the sizes double; an
//! n·m term, even n·m/64 bytes, would grow 4×) and stay far below a dense plan.

use advreact::metrics::wasserstein::{wasserstein, Order, Solver, WassersteinOpts};
use advreact::ot::{uot_clouds, Cost, SinkhornOptions};
use advreact::Cloud;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
#[ignore = "10^5 × 10^5 pairs: tens of seconds; run with --ignored"]
fn solve_at_1e5_points_allocates_o_n_plus_m() {
    let n = 100_000;
    let d = 2;
    let mut s = 7u64;
    let mut next = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let x: Vec<f64> = (0..n * d).map(|_| next()).collect();
    let y: Vec<f64> = (0..n * d).map(|_| next() + 0.2).collect();
    let a = vec![1.0 / n as f64; n];
    let b = vec![2.0 / n as f64; n];
    let baseline = LIVE.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    let t = std::time::Instant::now();
    let opts = SinkhornOptions { max_iter: 1, ..SinkhornOptions::kl(0.01, 1.0, 1.0, Cost::SqEuclidean) };
    let (am, bm) = (Cloud::new(d, x, a).unwrap(), Cloud::new(d, y, b).unwrap());
    let sol = uot_clouds(&am, &bm, &opts).unwrap();
    let c = sol.coupling(&am, &bm).unwrap();
    let t_map = c.barycentric_map().unwrap();
    let peak = PEAK.load(Ordering::SeqCst) - baseline;
    eprintln!(
        "n = m = {n}: solve (1 iteration + evaluation) and barycentric map in {:.1} s, \
         peak heap above baseline {:.1} MB, transported mass {}",
        t.elapsed().as_secs_f64(),
        peak as f64 / 1e6,
        sol.report.transported_mass
    );
    assert_eq!(sol.report.iterations, 1);
    assert!(sol.report.transported_mass.is_finite());
    assert!(t_map.iter().all(|v| v.is_finite()));
    assert!(peak < 100_000_000, "peak {peak} bytes");
    // A dense plan is refused instead of allocated.
    assert!(c.dense(1 << 27).is_err());
}

/// Seeded points in `[0, 1)^d` shifted by `shift`.
fn points(n: usize, d: usize, seed: u64, shift: f64) -> Vec<f64> {
    let mut s = seed;
    (0..n * d)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64) / ((1u64 << 53) as f64) + shift
        })
        .collect()
}

/// The peak of live heap bytes above the level at the start while `f` runs (one measurement at a
/// time: the counters are global).
fn peak_of(f: impl FnOnce()) -> usize {
    static ONE: Mutex<()> = Mutex::new(());
    let _guard = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let baseline = LIVE.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst).saturating_sub(baseline)
}

/// Peak heap of `run(n)` and `run(2n)`: grows at most 2.5× (O(n + m), with a 0.5 MB allowance for
/// fixed costs) and stays below a twentieth of a dense `2n × 2n` plan of f64.
fn check_linear(what: &str, n: usize, run: impl Fn(usize)) {
    let p1 = peak_of(|| run(n));
    let p2 = peak_of(|| run(2 * n));
    eprintln!(
        "{what}: peak heap {:.2} MB at n = {n}, {:.2} MB at n = {}",
        p1 as f64 / 1e6,
        p2 as f64 / 1e6,
        2 * n
    );
    assert!(p2 as f64 <= 2.5 * p1 as f64 + 5e5, "{what}: peak {p1} B at n = {n}, {p2} B at 2n");
    let dense = (2 * n) * (2 * n) * 8;
    assert!(p2 < dense / 20, "{what}: peak {p2} B, a dense plan is {dense} B");
}

#[test]
fn uot_solve_plan_marginals_and_map_allocate_o_n_plus_m() {
    check_linear("uot solve + marginals + barycentric map", 4000, |n| {
        let d = 2;
        let (x, y) = (points(n, d, 7, 0.0), points(n, d, 8, 0.2));
        let (a, b) = (vec![1.0 / n as f64; n], vec![2.0 / n as f64; n]);
        let opts = SinkhornOptions { max_iter: 3, ..SinkhornOptions::kl(0.01, 1.0, 1.0, Cost::SqEuclidean) };
        let (am, bm) = (Cloud::new(d, x, a).unwrap(), Cloud::new(d, y, b).unwrap());
        let sol = uot_clouds(&am, &bm, &opts).unwrap();
        assert_eq!(sol.report.iterations, 3);
        let c = sol.coupling(&am, &bm).unwrap();
        assert!(c.row_masses().unwrap().iter().all(|v| v.is_finite()));
        assert!(c.barycentric_map().unwrap().iter().all(|v| v.is_finite()));
    });
}

#[test]
fn entropic_wasserstein_allocates_o_n_plus_m() {
    for order in [Order::W1, Order::W2] {
        check_linear(&format!("entropic {order:?}"), 1000, |n| {
            let d = 2;
            let a = Cloud::uniform(d, points(n, d, 3, 0.0), 1.0).unwrap();
            let b = Cloud::uniform(d, points(n, d, 4, 0.3), 1.0).unwrap();
            let o = WassersteinOpts { solver: Solver::Sinkhorn, ..Default::default() };
            let r = wasserstein(&a, &b, order, &o).unwrap();
            assert!(r.value.is_finite() && r.value > 0.0, "{order:?}: {}", r.value);
        });
    }
}
