//! Exact (balanced) optimal transport: the network simplex.
//!
//! ```text
//! OT_c(a, b) = min_{T ≥ 0, T 1 = a, Tᵀ 1 = b}  Σ_ij T_ij c(x_i, y_j),   c = cost(|x − y|²)
//! ```
//!
//! **Network simplex** (exact): the primal network simplex method on the complete bipartite
//! network `i → j` with uncapacitated arcs, started from the artificial-root star (big-M arcs of
//! cost `3·max c`, which no optimal flow uses since `2·3·max c > max c`), *block search*
//! pricing (blocks of `√(nm)` arcs, most negative reduced cost within the block) and the
//! *strongly feasible tree* leaving-arc rule (the last blocking arc met when going round the
//! cycle from its apex in the direction of flow), which prevents cycling on degenerate
//! problems. The spanning tree is stored as parent / predecessor-arc / preorder-thread /
//! subtree-size / last-successor arrays (the augmented threaded index of Glover, Klingman &
//! Stutz), so a pivot costs O(size of the re-hung subtree + depth). Costs are never stored:
//! each reduced cost `c_ij + π_i − π_j` is recomputed from the coordinates in f64, so memory is
//! O(n + m) plus one bit per arc (the tree membership), i.e. 3 MB at 5000 × 5000.
//! References: Ahuja, Magnanti & Orlin, *Network Flows* (1993), ch. 11; Kelly & O'Neill, *The
//! minimum cost flow problem and the network simplex solution method* (1991); Bonneel, van de
//! Panne, Paris & Heidrich, *Displacement interpolation using Lagrangian mass transport*
//! (SIGGRAPH Asia 2011) — the LEMON-derived solver behind POT's `ot.emd`, whose algorithmic
//! choices (artificial root, block search, strongly feasible pivots) this one follows; the code
//! is written from the textbook description, not copied. The basic flows are recomputed from
//! the final tree (leaves first), so the returned plan has at most `n + m − 1` entries and its
//! marginals equal `a` and `b` to rounding.
//!
//! Used by [`crate::metrics::wasserstein`] (W1 and W2 below its exact limit).

use crate::error::SimError;
use crate::kernel::TILE;

/// Squared distances `out[j] = |x − y_j|²` for the `out.len()` points `y` (particle-contiguous).
#[inline]
fn sqdist_row(x: &[f64], y: &[f64], out: &mut [f64]) {
    let d = x.len();
    match d {
        1 => {
            for (o, yj) in out.iter_mut().zip(y) {
                let t = x[0] - yj;
                *o = t * t;
            }
        }
        2 => {
            for (o, yj) in out.iter_mut().zip(y.chunks_exact(2)) {
                let a = x[0] - yj[0];
                let b = x[1] - yj[1];
                *o = a * a + b * b;
            }
        }
        3 => {
            for (o, yj) in out.iter_mut().zip(y.chunks_exact(3)) {
                let a = x[0] - yj[0];
                let b = x[1] - yj[1];
                let c = x[2] - yj[2];
                *o = a * a + b * b + c * c;
            }
        }
        _ => {
            for (o, yj) in out.iter_mut().zip(y.chunks_exact(d)) {
                let mut s = 0.0;
                for (a, b) in x.iter().zip(yj) {
                    let t = a - b;
                    s += t * t;
                }
                *o = s;
            }
        }
    }
}

/// Neumaier-compensated sum.
#[derive(Default)]
pub(crate) struct Sum {
    s: f64,
    c: f64,
}

impl Sum {
    #[inline]
    pub(crate) fn add(&mut self, v: f64) {
        let t = self.s + v;
        if self.s.abs() >= v.abs() {
            self.c += (self.s - t) + v;
        } else {
            self.c += (v - t) + self.s;
        }
        self.s = t;
    }
    pub(crate) fn value(&self) -> f64 {
        self.s + self.c
    }
}

/// `|x − y|²` computed exactly as [`sqdist_row`] does (so pricing and final costs agree bitwise).
#[inline]
pub(crate) fn sqdist(x: &[f64], y: &[f64]) -> f64 {
    let mut o = [0.0];
    sqdist_row(x, y, &mut o);
    o[0]
}

/// Upper bound on `|x_i − y_j|²` from the joint bounding box.
pub(crate) fn max_sqdist_bound(d: usize, x: &[f64], y: &[f64]) -> f64 {
    let mut lo = vec![f64::INFINITY; d];
    let mut hi = vec![f64::NEG_INFINITY; d];
    for p in x.chunks_exact(d).chain(y.chunks_exact(d)) {
        for k in 0..d {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    lo.iter().zip(&hi).map(|(l, h)| (h - l) * (h - l)).sum()
}

const NONE: usize = usize::MAX;

/// Exact solution from [`crate::metrics::wasserstein::network_simplex`].
#[derive(Debug, Clone)]
pub struct SimplexSolution {
    /// `Σ T_ij c_ij`.
    pub cost: f64,
    /// `(i, j, mass)`, mass > 0, at most `n + m − 1` entries.
    pub plan: Vec<(usize, usize, f64)>,
    /// Dual potentials with `c_ij − u_i − v_j ≥ −tol` everywhere and `= 0` on the plan:
    /// `u` (length n), `v` (length m), normalised so that `Σ a u + Σ b v = cost` up to rounding.
    pub u: Vec<f64>,
    /// Target potentials (length m), see `u`.
    pub v: Vec<f64>,
    /// Pivots done.
    pub pivots: usize,
}

struct Simplex<'a, C> {
    n: usize,
    m: usize,
    d: usize,
    x: &'a [f64],
    y: &'a [f64],
    cost: C,
    /// Cost of the artificial arcs.
    art: f64,
    /// An arc enters when its reduced cost is below `−tol`.
    tol: f64,
    /// Node supplies (`a_i`, `−b_j`, root balances).
    supply: Vec<f64>,
    parent: Vec<usize>,
    /// Arc joining a node to its parent: `i·m + j` for real arcs, `nm + node` for artificial.
    pred: Vec<usize>,
    /// The predecessor arc is oriented node → parent.
    up: Vec<bool>,
    /// Flow on the predecessor arc.
    flow: Vec<f64>,
    /// Node potentials: reduced cost of arc s→t is `c + π_s − π_t`.
    pi: Vec<f64>,
    /// Preorder successor (circular through the root) and predecessor.
    thread: Vec<usize>,
    rev_thread: Vec<usize>,
    /// Subtree sizes and last node of each subtree in preorder.
    succ_num: Vec<usize>,
    last_succ: Vec<usize>,
    /// Tree membership of the real arcs, one bit each.
    in_tree: Vec<u64>,
    block: usize,
    next_arc: usize,
    path: Vec<usize>,
    pieces: Vec<(usize, usize)>,
}

/// Exact OT between `Σ a_i δ_{x_i}` and `Σ b_j δ_{y_j}` (probability vectors, equal totals) for
/// the ground cost `cost(|x − y|²)`, by the network simplex method (see the module docs).
/// `max_pivots`: stop with [`SimError::Limit`] after this many pivots (`None`: no limit).
pub(crate) fn network_simplex<C: Fn(f64) -> f64 + Copy>(
    d: usize,
    x: &[f64],
    a: &[f64],
    y: &[f64],
    b: &[f64],
    cost: C,
    max_pivots: Option<usize>,
) -> Result<SimplexSolution, SimError> {
    let (n, m) = (a.len(), b.len());
    let maxc = cost(max_sqdist_bound(d, x, y));
    let art = if maxc > 0.0 { 3.0 * maxc } else { 1.0 };
    let mut s = Simplex::new(d, x, a, y, b, cost, art);
    let recompute_every = (n + m).max(1000);
    let mut pivots = 0usize;
    let mut fresh = false;
    loop {
        match s.find_entering() {
            Some((i, j, rc)) => {
                if let Some(cap) = max_pivots {
                    if pivots >= cap {
                        return Err(SimError::Limit {
                            step: 0,
                            what: format!("network simplex: {cap} pivots without optimality"),
                        });
                    }
                }
                s.pivot(i, j, rc)?;
                #[cfg(test)]
                s.check_tree();
                pivots += 1;
                fresh = false;
                if pivots.is_multiple_of(recompute_every) {
                    s.recompute_potentials();
                }
            }
            None if fresh => break,
            None => {
                // Optimal up to drift in the incrementally updated potentials: recompute them
                // exactly from the tree and price once more.
                s.recompute_potentials();
                fresh = true;
            }
        }
    }
    s.recompute_flows();
    s.finish(pivots)
}

impl<'a, C: Fn(f64) -> f64 + Copy> Simplex<'a, C> {
    fn new(d: usize, x: &'a [f64], a: &[f64], y: &'a [f64], b: &[f64], cost: C, art: f64) -> Self {
        let (n, m) = (a.len(), b.len());
        let nn = n + m + 1;
        let root = n + m;
        let mut s = Simplex {
            n,
            m,
            d,
            x,
            y,
            cost,
            art,
            tol: 1e-12 * art,
            supply: vec![0.0; nn],
            parent: vec![root; nn],
            pred: (0..nn).map(|u| n * m + u).collect(),
            up: vec![true; nn],
            flow: vec![0.0; nn],
            pi: vec![0.0; nn],
            thread: (0..nn).map(|u| if u == root { 0 } else { u + 1 }).collect(),
            rev_thread: (0..nn).map(|u| if u == 0 { root } else { u - 1 }).collect(),
            succ_num: vec![1; nn],
            last_succ: (0..nn).collect(),
            in_tree: vec![0; (n * m).div_ceil(64)],
            block: ((n * m) as f64).sqrt().ceil().max(10.0) as usize,
            next_arc: 0,
            path: Vec::new(),
            pieces: Vec::new(),
        };
        // Artificial star: i → root carries a_i; root → j carries b_j (b_j > 0); a sink with
        // b_j = 0 gets j → root at zero flow. Every zero-flow arc points to the root, so the
        // initial tree is strongly feasible. Potentials make every tree arc's reduced cost 0.
        for (i, &ai) in a.iter().enumerate() {
            s.supply[i] = ai;
            s.flow[i] = ai;
            s.pi[i] = -art;
        }
        for (j, &bj) in b.iter().enumerate() {
            let u = n + j;
            s.supply[u] = -bj;
            if bj > 0.0 {
                s.up[u] = false;
                s.flow[u] = bj;
                s.pi[u] = art;
            } else {
                s.pi[u] = -art;
            }
        }
        let sa: f64 = a.iter().sum();
        let sb: f64 = b.iter().sum();
        s.supply[root] = sb - sa;
        s.parent[root] = NONE;
        s.pred[root] = NONE;
        s.succ_num[root] = nn;
        s.last_succ[root] = if nn > 1 { root - 1 } else { root };
        s
    }

    #[inline]
    fn is_tree(&self, e: usize) -> bool {
        self.in_tree[e >> 6] >> (e & 63) & 1 == 1
    }

    #[inline]
    fn set_tree(&mut self, e: usize, on: bool) {
        if e < self.n * self.m {
            if on {
                self.in_tree[e >> 6] |= 1 << (e & 63);
            } else {
                self.in_tree[e >> 6] &= !(1 << (e & 63));
            }
        }
    }

    /// Cost of arc `e`.
    fn arc_cost(&self, e: usize) -> f64 {
        let (n, m, d) = (self.n, self.m, self.d);
        if e < n * m {
            let (i, j) = (e / m, e % m);
            (self.cost)(sqdist(&self.x[i * d..(i + 1) * d], &self.y[j * d..(j + 1) * d]))
        } else {
            self.art
        }
    }

    /// Block search: scan arcs cyclically from `next_arc` in blocks; return the most negative
    /// reduced cost of the first block that has one below `−tol`, or `None` after a full pass.
    fn find_entering(&mut self) -> Option<(usize, usize, f64)> {
        let (n, m, d) = (self.n, self.m, self.d);
        let total = n * m;
        let mut buf = [0.0f64; TILE];
        let mut best = -self.tol;
        let mut found = None;
        let (mut i, mut j) = (self.next_arc / m, self.next_arc % m);
        let mut in_block = 0;
        let mut scanned = 0;
        let pis = &self.pi[n..n + m];
        while scanned < total {
            let len = (m - j).min(TILE).min(self.block - in_block).min(total - scanned);
            let xi = &self.x[i * d..(i + 1) * d];
            sqdist_row(xi, &self.y[j * d..(j + len) * d], &mut buf[..len]);
            let pii = self.pi[i];
            // Vectorisable minimum first; the arg-min search only when it beats `best`.
            let mut lmin = f64::INFINITY;
            for (d2, pj) in buf[..len].iter().zip(&pis[j..j + len]) {
                let rc = (self.cost)(*d2) + pii - pj;
                lmin = lmin.min(rc);
            }
            if lmin < best {
                for (k, (d2, pj)) in buf[..len].iter().zip(&pis[j..j + len]).enumerate() {
                    let rc = (self.cost)(*d2) + pii - pj;
                    if rc < best && !self.is_tree(i * m + j + k) {
                        best = rc;
                        found = Some((i, j + k));
                    }
                }
            }
            in_block += len;
            scanned += len;
            j += len;
            if j == m {
                j = 0;
                i += 1;
                if i == n {
                    i = 0;
                }
            }
            if in_block == self.block {
                if found.is_some() {
                    break;
                }
                in_block = 0;
            }
        }
        self.next_arc = i * m + j;
        found.map(|(i, j)| (i, j, best))
    }

    /// One pivot on entering arc `i → n+j` with reduced cost `rc < 0`.
    fn pivot(&mut self, i: usize, j: usize, rc: f64) -> Result<(), SimError> {
        let first = i;
        let second = self.n + j;
        // Apex of the cycle: ancestors have strictly larger subtrees.
        let (mut u, mut v) = (first, second);
        while u != v {
            if self.succ_num[u] < self.succ_num[v] {
                u = self.parent[u];
            } else {
                v = self.parent[v];
            }
        }
        let join = u;
        // Flow goes first → second (entering arc), second ↑ join, join ↓ first. Leaving arc:
        // the last blocking arc met from the apex in that direction (strict on the first side,
        // non-strict on the second).
        let mut delta = f64::INFINITY;
        let mut u_out = NONE;
        let mut first_side = false;
        let mut u = first;
        while u != join {
            if self.up[u] && self.flow[u] < delta {
                delta = self.flow[u];
                u_out = u;
                first_side = true;
            }
            u = self.parent[u];
        }
        let mut u = second;
        while u != join {
            if !self.up[u] && self.flow[u] <= delta {
                delta = self.flow[u];
                u_out = u;
                first_side = false;
            }
            u = self.parent[u];
        }
        if u_out == NONE {
            return Err(SimError::Numerical {
                step: 0,
                what: "network simplex: unbounded cycle (internal error)".into(),
            });
        }
        if delta > 0.0 {
            let mut u = first;
            while u != join {
                if self.up[u] {
                    self.flow[u] -= delta;
                } else {
                    self.flow[u] += delta;
                }
                u = self.parent[u];
            }
            let mut u = second;
            while u != join {
                if self.up[u] {
                    self.flow[u] += delta;
                } else {
                    self.flow[u] -= delta;
                }
                u = self.parent[u];
            }
        }
        let (u_in, v_in, sigma) = if first_side { (first, second, -rc) } else { (second, first, rc) };
        let in_arc = i * self.m + j;
        self.update_tree(u_in, v_in, u_out, join, in_arc, first_side, delta, sigma);
        Ok(())
    }

    /// Cut the subtree `S` below the leaving arc (at `u_out`), re-root it at `u_in` and hang it
    /// under `v_in` by the entering arc; update thread, sizes, last successors, potentials.
    #[allow(clippy::too_many_arguments)]
    fn update_tree(
        &mut self,
        u_in: usize,
        v_in: usize,
        u_out: usize,
        join: usize,
        in_arc: usize,
        in_up: bool,
        in_flow: f64,
        sigma: f64,
    ) {
        let s_size = self.succ_num[u_out];
        let s_last_old = self.last_succ[u_out];
        let before = self.rev_thread[u_out];
        let after = self.thread[s_last_old];

        // Path u_in = p0, …, pk = u_out.
        self.path.clear();
        let mut w = u_in;
        loop {
            self.path.push(w);
            if w == u_out {
                break;
            }
            w = self.parent[w];
        }
        // New preorder of S rooted at u_in: block(p0), then block(p_t) \ block(p_{t−1}) for
        // t = 1..k, each the union of at most two contiguous pieces of the old thread.
        self.pieces.clear();
        self.pieces.push((u_in, self.last_succ[u_in]));
        for t in 1..self.path.len() {
            let (pt, pc) = (self.path[t], self.path[t - 1]);
            self.pieces.push((pt, self.rev_thread[pc]));
            let (lc, lt) = (self.last_succ[pc], self.last_succ[pt]);
            if lc != lt {
                self.pieces.push((self.thread[lc], lt));
            }
        }

        // Remove S from the thread and from its old ancestors.
        self.thread[before] = after;
        self.rev_thread[after] = before;
        let mut w = self.parent[u_out];
        while w != NONE && self.last_succ[w] == s_last_old {
            self.last_succ[w] = before;
            w = self.parent[w];
        }
        let mut w = self.parent[u_out];
        while w != join {
            self.succ_num[w] -= s_size;
            w = self.parent[w];
        }

        // Relink S in its new order and insert it right after v_in.
        for k in 1..self.pieces.len() {
            let (e, s) = (self.pieces[k - 1].1, self.pieces[k].0);
            self.thread[e] = s;
            self.rev_thread[s] = e;
        }
        let s_last_new = self.pieces[self.pieces.len() - 1].1;
        let nxt = self.thread[v_in];
        self.thread[v_in] = u_in;
        self.rev_thread[u_in] = v_in;
        self.thread[s_last_new] = nxt;
        self.rev_thread[nxt] = s_last_new;
        let mut w = v_in;
        while w != NONE && self.last_succ[w] == v_in {
            self.last_succ[w] = s_last_new;
            w = self.parent[w];
        }
        let mut w = v_in;
        while w != join {
            self.succ_num[w] += s_size;
            w = self.parent[w];
        }

        // Reverse the path: p_t's parent becomes p_{t−1}, inheriting its old arc and flow.
        let leaving = self.pred[u_out];
        for t in (1..self.path.len()).rev() {
            let (pt, pc) = (self.path[t], self.path[t - 1]);
            self.parent[pt] = pc;
            self.pred[pt] = self.pred[pc];
            self.up[pt] = !self.up[pc];
            self.flow[pt] = self.flow[pc];
            self.succ_num[pt] = s_size - self.succ_num[pc];
            self.last_succ[pt] = s_last_new;
        }
        self.parent[u_in] = v_in;
        self.pred[u_in] = in_arc;
        self.up[u_in] = in_up;
        self.flow[u_in] = in_flow;
        self.succ_num[u_in] = s_size;
        self.last_succ[u_in] = s_last_new;
        self.set_tree(leaving, false);
        self.set_tree(in_arc, true);

        // Shift the potentials of S so that the entering arc has reduced cost 0.
        let mut w = u_in;
        loop {
            self.pi[w] += sigma;
            if w == s_last_new {
                break;
            }
            w = self.thread[w];
        }
    }

    /// Test-only invariant check of the whole tree structure (O(n + m) per call).
    #[cfg(test)]
    fn check_tree(&self) {
        let nn = self.n + self.m + 1;
        let root = nn - 1;
        // Thread is a single cycle through all nodes, rev_thread its inverse.
        let mut seen = vec![false; nn];
        let mut order = Vec::with_capacity(nn);
        let mut w = root;
        for _ in 0..nn {
            assert!(!seen[w], "thread revisits {w}");
            seen[w] = true;
            order.push(w);
            assert_eq!(self.rev_thread[self.thread[w]], w);
            w = self.thread[w];
        }
        assert_eq!(w, root);
        let mut pos = vec![0; nn];
        for (k, &u) in order.iter().enumerate() {
            pos[u] = k;
        }
        // Subtree sizes and preorder blocks from the parent pointers.
        let mut size = vec![1usize; nn];
        for &u in order.iter().rev() {
            if u != root {
                let p = self.parent[u];
                assert!(pos[p] < pos[u], "parent after child in preorder");
                size[p] += size[u];
            }
        }
        for u in 0..nn {
            assert_eq!(self.succ_num[u], size[u], "succ_num of {u}");
            assert_eq!(pos[self.last_succ[u]], pos[u] + size[u] - 1, "last_succ of {u}");
        }
        // Tree arcs join node and parent in the stated direction, with zero reduced cost and
        // non-negative flow; strongly feasible: zero-flow arcs point to the root.
        for u in 0..root {
            let e = self.pred[u];
            let p = self.parent[u];
            if e < self.n * self.m {
                let (i, j) = (e / self.m, self.n + e % self.m);
                assert!(self.is_tree(e));
                assert_eq!(if self.up[u] { (u, p) } else { (p, u) }, (i, j));
            } else {
                assert_eq!(e, self.n * self.m + u);
                assert_eq!(p, root);
            }
            let c = self.arc_cost(e);
            let rc = if self.up[u] { c + self.pi[u] - self.pi[p] } else { c + self.pi[p] - self.pi[u] };
            assert!(rc.abs() <= 1e-9 * self.art, "tree arc reduced cost {rc}");
            assert!(self.flow[u] >= 0.0);
            assert!(self.flow[u] > 0.0 || self.up[u], "zero flow on a downward arc");
        }
        let count = self.in_tree.iter().map(|w| w.count_ones() as usize).sum::<usize>();
        let real = (0..root).filter(|&u| self.pred[u] < self.n * self.m).count();
        assert_eq!(count, real);
    }

    /// Potentials from scratch along the thread (parents come before children).
    fn recompute_potentials(&mut self) {
        let root = self.n + self.m;
        self.pi[root] = 0.0;
        let mut w = self.thread[root];
        while w != root {
            let c = self.arc_cost(self.pred[w]);
            let pp = self.pi[self.parent[w]];
            self.pi[w] = if self.up[w] { pp - c } else { pp + c };
            w = self.thread[w];
        }
    }

    /// Basic flows from scratch: each tree arc carries the net supply of the subtree below it
    /// (children before parents: reverse thread).
    fn recompute_flows(&mut self) {
        let root = self.n + self.m;
        let mut net = self.supply.clone();
        let mut w = self.rev_thread[root];
        while w != root {
            let p = self.parent[w];
            self.flow[w] = if self.up[w] { net[w] } else { -net[w] };
            net[p] += net[w];
            w = self.rev_thread[w];
        }
    }

    fn finish(&self, pivots: usize) -> Result<SimplexSolution, SimError> {
        let (n, m) = (self.n, self.m);
        let mut plan = Vec::with_capacity(n + m);
        let mut cost = Sum::default();
        let mut art_flow = 0.0f64;
        for u in 0..n + m {
            let e = self.pred[u];
            let f = self.flow[u];
            if e < n * m {
                if f > 0.0 {
                    plan.push((e / m, e % m, f));
                    cost.add(f * self.arc_cost(e));
                }
            } else {
                art_flow = art_flow.max(f.abs());
            }
        }
        // Only the rounding mismatch between Σa and Σb may stay on artificial arcs.
        if art_flow > 1e-12 {
            return Err(SimError::Numerical {
                step: 0,
                what: format!("network simplex: artificial flow {art_flow:e} left at optimum"),
            });
        }
        plan.sort_unstable_by_key(|&(i, j, _)| (i, j));
        // Duals of the real problem: u_i = −π_i, v_j = π_j up to a common shift (c + π_i − π_j ≥ 0).
        let u: Vec<f64> = self.pi[..n].iter().map(|p| -p).collect();
        let v: Vec<f64> = self.pi[n..n + m].to_vec();
        Ok(SimplexSolution { cost: cost.value(), plan, u, v, pivots })
    }
}
