//! Distributed runs: a small communicator abstraction and the two deterministic patterns every
//! distributed pass of the crate uses.
//!
//! **Model.** Every rank holds the whole O((N + M)·d) state — positions, weights, ids, the target —
//! and does the linear-cost work (advection, reaction, guards, observers' bookkeeping) itself, on
//! identical bits. Only the work quadratic in the problem size is split, by fixed blocks of rows:
//!
//! - [`row_pass`]: a row-wise kernel pass (`out_i = F(x_i)` for every row `i`, e.g. a Gaussian
//!   sum, a field evaluation, a log-sum-exp row of Sinkhorn). Rows are split into blocks of
//!   `block` rows, each rank computes a contiguous range of blocks, and the rows are all-gathered
//!   in rank order. Each row is computed by the same code on the same inputs whatever the
//!   partition, so the gathered vector is bitwise the single-process one; any reduction over rows
//!   done afterwards runs on the full vector, in its usual order.
//! - [`tree_sum`]: a sum over blocks of per-block partial vectors too large to gather per row (the
//!   m×m Gramians of the Sobolev–Fisher critic). The sum is *defined* as the canonical dyadic tree
//!   over block indices: `T(l, k) = T(l−1, 2k) + T(l−1, 2k+1)` over the aligned interval
//!   `[k·2^l, (k+1)·2^l)`, leaves `T(0, b)` the block partials, absent nodes (past the last block)
//!   skipped. A rank owning blocks `[a, b)` computes the maximal aligned subtrees inside its range
//!   (at most 2·log₂B of them); each rank then completes the same tree on its own slice of the
//!   entries (an all-to-all sends it that slice of every subtree) and the completed slices are
//!   all-gathered. Additions are elementwise, so every entry is summed in the same tree whatever
//!   the partition: the bits never depend on the number of ranks (nor threads).
//!
//! **Ambient communicator.** Like rayon's current thread pool, the communicator is installed for
//! the calling thread ([`install`]) and found by the kernels with [`current`]; without one it is
//! [`Single`] (one process, no communication). Collective calls are made only from the thread that
//! installed it (never from rayon workers, which see [`Single`]), so every rank must make the same
//! sequence of collective calls — which it does, since every rank runs the same deterministic
//! program on the same state. Code that runs on one rank only (writing output, plots) runs under
//! [`local`].
//!
//! The MPI implementation is `mpi::MpiComm` (cargo feature `mpi`).

#[cfg(feature = "mpi")]
pub mod mpi;

use rayon::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;

/// A group of processes running the same program (SPMD). All methods except `rank`, `size` and
/// `abort` are collective: every rank calls them in the same order.
pub trait Comm {
    /// This process's index, `0..size`.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// Each rank's `local` (lengths may differ), concatenated in rank order, on every rank.
    fn all_gather_f64(&self, local: &[f64]) -> Vec<f64>;
    /// Like [`Comm::all_gather_f64`] for integers.
    fn all_gather_u64(&self, local: &[u64]) -> Vec<u64>;
    /// Personalised exchange: `send[q]` goes to rank `q`; returns what each rank sent to this one,
    /// indexed by sender. The default goes through [`Comm::all_gather_f64`] (correct, but every
    /// rank receives everything); `mpi::MpiComm` overrides it with `MPI_Alltoallv`.
    fn all_to_all_f64(&self, send: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let size = self.size();
        assert_eq!(send.len(), size, "all_to_all: one buffer per rank");
        let lens = self.all_gather_u64(&send.iter().map(|v| v.len() as u64).collect::<Vec<_>>());
        let data = self.all_gather_f64(&send.concat());
        let me = self.rank();
        let mut out = Vec::with_capacity(size);
        let mut at = 0usize;
        for p in 0..size {
            for q in 0..size {
                let l = lens[p * size + q] as usize;
                if q == me {
                    out.push(data[at..at + l].to_vec());
                }
                at += l;
            }
        }
        out
    }
    /// Replace `buf` on every rank by `buf` of rank `root`.
    fn broadcast_bytes(&self, root: usize, buf: &mut Vec<u8>);
    /// Wait for every rank.
    fn barrier(&self);
    /// Stop every rank now with exit code `code` (no collective: any single rank may call it).
    fn abort(&self, code: i32) -> !;
}

/// One process: no communication.
#[derive(Debug, Clone, Copy, Default)]
pub struct Single;

impl Comm for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather_f64(&self, local: &[f64]) -> Vec<f64> {
        local.to_vec()
    }
    fn all_gather_u64(&self, local: &[u64]) -> Vec<u64> {
        local.to_vec()
    }
    fn broadcast_bytes(&self, _root: usize, _buf: &mut Vec<u8>) {}
    fn barrier(&self) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<dyn Comm>>> = const { RefCell::new(None) };
}

/// The communicator installed on this thread ([`Single`] if none).
pub fn current() -> Rc<dyn Comm> {
    CURRENT.with(|c| c.borrow().clone()).unwrap_or_else(|| Rc::new(Single))
}

/// Run `f` with `comm` as this thread's communicator (restored afterwards, also on panic).
pub fn install<R>(comm: Rc<dyn Comm>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Rc<dyn Comm>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
    let prev = CURRENT.with(|c| c.borrow_mut().replace(comm));
    let _restore = Restore(prev);
    f()
}

/// Run `f` on this process alone (no collective calls inside): output written by one rank, one
/// variant of a sweep per rank.
pub fn local<R>(f: impl FnOnce() -> R) -> R {
    install(Rc::new(Single), f)
}

/// The blocks `[a, b)` of `0..nblocks` owned by `rank` of `size`: contiguous, balanced to within
/// one block, in rank order.
pub fn block_range(nblocks: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    (nblocks * rank / size)..(nblocks * (rank + 1) / size)
}

/// The rows owned by this rank when `n` rows are split into blocks of `block` rows.
pub fn my_rows(comm: &dyn Comm, n: usize, block: usize) -> Range<usize> {
    let block = block.max(1);
    let b = block_range(n.div_ceil(block), comm.rank(), comm.size());
    (b.start * block).min(n)..(b.end * block).min(n)
}

/// A row-wise pass, split over the ranks of the current communicator: `f(rows, local)` must write
/// the outputs of rows `rows` into `local` (`rows.len() · width` values each, one slice per output
/// in `outs`, rows contiguous), and the result of row `i` must not depend on which other rows are
/// computed with it. On return every output holds all rows, bitwise as if computed by one process.
/// Rows are split into blocks of `block` rows (use [`crate::rng::CHUNK`] unless the pass has its
/// own blocking).
pub fn row_pass(
    n: usize,
    block: usize,
    outs: &mut [(&mut [f64], usize)],
    f: impl FnOnce(Range<usize>, &mut [&mut [f64]]),
) {
    for (o, w) in outs.iter() {
        assert_eq!(o.len(), n * w, "row_pass: output of {} values for {n} rows × {w}", o.len());
    }
    let comm = current();
    if comm.size() == 1 {
        let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|(o, _)| &mut **o).collect();
        f(0..n, &mut views);
        return;
    }
    let rows = my_rows(&*comm, n, block);
    let mut locals: Vec<Vec<f64>> = outs.iter().map(|(_, w)| vec![0.0; rows.len() * w]).collect();
    {
        let mut views: Vec<&mut [f64]> = locals.iter_mut().map(|v| v.as_mut_slice()).collect();
        f(rows, &mut views);
    }
    for ((o, _), l) in outs.iter_mut().zip(&locals) {
        let all = comm.all_gather_f64(l);
        assert_eq!(all.len(), o.len(), "row_pass: ranks disagree on the number of rows");
        o.copy_from_slice(&all);
    }
}

/// A node of the canonical dyadic tree over block indices: the sum of the leaves
/// `[index·2^level, (index+1)·2^level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Node {
    level: u32,
    index: usize,
}

/// `a += b`, elementwise (in parallel: elementwise, so the bits do not depend on threads).
fn add_into(a: &mut [f64], b: &[f64]) {
    a.par_chunks_mut(4096).zip(b.par_chunks(4096)).for_each(|(x, y)| {
        for (p, q) in x.iter_mut().zip(y) {
            *p += q;
        }
    });
}

/// Deterministic sum over blocks `0..nblocks` of the partial vectors `leaf(b)` (each of length
/// `len`), split over the ranks of the current communicator, combined in the canonical dyadic
/// tree (see the module doc): the result is bitwise the same for any number of ranks and threads.
/// `leaf` is called for this rank's blocks only, in increasing order; memory is
/// O(len · log₂ nblocks). Returns zeros when `nblocks == 0`.
pub fn tree_sum(nblocks: usize, len: usize, mut leaf: impl FnMut(usize) -> Vec<f64>) -> Vec<f64> {
    let comm = current();
    let range = block_range(nblocks, comm.rank(), comm.size());
    // Binary counter over this rank's leaves: merge a right child into its left sibling as soon
    // as both are complete. What is left are the maximal aligned subtrees inside the range.
    let mut stack: Vec<(Node, Vec<f64>)> = Vec::new();
    for b in range {
        let v = leaf(b);
        assert_eq!(v.len(), len, "tree_sum: leaf {b} has {} values, expected {len}", v.len());
        let mut node = (Node { level: 0, index: b }, v);
        while let Some((top, _)) = stack.last() {
            if top.level == node.0.level && node.0.index % 2 == 1 && top.index + 1 == node.0.index {
                let (top, mut left) = stack.pop().expect("non-empty");
                add_into(&mut left, &node.1);
                node = (Node { level: top.level + 1, index: top.index / 2 }, left);
            } else {
                break;
            }
        }
        stack.push(node);
    }
    if nblocks == 0 {
        return vec![0.0; len];
    }
    let top = Node { level: usize::BITS - (nblocks - 1).leading_zeros(), index: 0 };
    if comm.size() == 1 {
        let mut nodes: HashMap<Node, Vec<f64>> = stack.into_iter().collect();
        return combine(top, nblocks, &mut nodes).unwrap_or_else(|| vec![0.0; len]);
    }
    // Sliced completion: the entries are split into `size` contiguous slices; rank q receives
    // slice q of every subtree (one all-to-all), completes the tree on that slice (elementwise, so
    // bitwise the full tree's slice), and the completed slices are all-gathered in rank order.
    // Each rank sends and receives its subtrees' share of O(subtrees · len / size) values per
    // peer, instead of every subtree of every rank.
    let size = comm.size();
    let slice = |q: usize| (len * q / size)..(len * (q + 1) / size);
    let heads: Vec<u64> = stack.iter().flat_map(|(n, _)| [n.level as u64, n.index as u64]).collect();
    let send: Vec<Vec<f64>> =
        (0..size).map(|q| stack.iter().flat_map(|(_, v)| v[slice(q)].iter().copied()).collect()).collect();
    drop(stack);
    // Every rank's subtree heads, with the rank that holds each one.
    let counts = comm.all_gather_u64(&[heads.len() as u64 / 2]);
    let heads = comm.all_gather_u64(&heads);
    let recv = comm.all_to_all_f64(&send);
    drop(send);
    let mine = slice(comm.rank());
    let mut nodes: HashMap<Node, Vec<f64>> = HashMap::new();
    let mut h = heads.chunks_exact(2);
    for (p, &c) in counts.iter().enumerate() {
        let data = &recv[p];
        assert_eq!(data.len(), c as usize * mine.len(), "tree_sum: ranks disagree on the block size");
        for k in 0..c as usize {
            let hk = h.next().expect("tree_sum: heads and counts disagree");
            let node = Node { level: hk[0] as u32, index: hk[1] as usize };
            nodes.insert(node, data[k * mine.len()..(k + 1) * mine.len()].to_vec());
        }
    }
    let part = combine(top, nblocks, &mut nodes).unwrap_or_else(|| vec![0.0; mine.len()]);
    let total = comm.all_gather_f64(&part);
    assert_eq!(total.len(), len, "tree_sum: ranks disagree on the vector length");
    total
}

/// The value of `node` in the canonical tree over `nblocks` leaves, from the computed subtrees.
fn combine(node: Node, nblocks: usize, nodes: &mut HashMap<Node, Vec<f64>>) -> Option<Vec<f64>> {
    let start = node.index << node.level;
    if start >= nblocks {
        return None;
    }
    if let Some(v) = nodes.remove(&node) {
        return Some(v);
    }
    assert!(node.level > 0, "tree_sum: leaf {} missing", node.index);
    let l = Node { level: node.level - 1, index: 2 * node.index };
    let r = Node { level: node.level - 1, index: 2 * node.index + 1 };
    let mut left = combine(l, nblocks, nodes)?;
    if let Some(right) = combine(r, nblocks, nodes) {
        add_into(&mut left, &right);
    }
    Some(left)
}

/// Simulated ranks inside one process, for tests of distributed passes.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Runs `f` as every rank of `size` simulated ranks (threads sharing the gathers through a
    /// barrier-synchronised board) and returns each rank's result.
    pub(crate) fn simulate<R: Send>(size: usize, f: impl Fn() -> R + Sync) -> Vec<R> {
        use std::sync::{Arc, Barrier, Mutex};
        struct Board {
            size: usize,
            barrier: Barrier,
            slots: Mutex<Vec<Vec<f64>>>,
        }
        struct ThreadComm {
            rank: usize,
            board: Arc<Board>,
        }
        impl Comm for ThreadComm {
            fn rank(&self) -> usize {
                self.rank
            }
            fn size(&self) -> usize {
                self.board.size
            }
            fn all_gather_f64(&self, local: &[f64]) -> Vec<f64> {
                self.board.slots.lock().unwrap()[self.rank] = local.to_vec();
                self.board.barrier.wait();
                let out: Vec<f64> = self.board.slots.lock().unwrap().concat();
                self.board.barrier.wait();
                out
            }
            fn all_gather_u64(&self, local: &[u64]) -> Vec<u64> {
                let as_f: Vec<f64> = local.iter().map(|v| f64::from_bits(*v)).collect();
                self.all_gather_f64(&as_f).into_iter().map(f64::to_bits).collect()
            }
            fn broadcast_bytes(&self, _root: usize, _buf: &mut Vec<u8>) {
                unimplemented!()
            }
            fn barrier(&self) {
                self.board.barrier.wait();
            }
            fn abort(&self, code: i32) -> ! {
                panic!("abort({code})")
            }
        }
        let board =
            Arc::new(Board { size, barrier: Barrier::new(size), slots: Mutex::new(vec![Vec::new(); size]) });
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..size)
                .map(|rank| {
                    let board = board.clone();
                    let f = &f;
                    s.spawn(move || install(Rc::new(ThreadComm { rank, board }), f))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::testing::simulate;
    use super::*;

    #[test]
    fn block_ranges_partition() {
        for n in [0, 1, 5, 17] {
            for k in 1..6 {
                let mut next = 0;
                for r in 0..k {
                    let b = block_range(n, r, k);
                    assert_eq!(b.start, next);
                    next = b.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    fn leaf(b: usize) -> Vec<f64> {
        // Values whose sums round differently in different orders.
        (0..5)
            .map(|k| 1.0 / (3.0 + b as f64 * 7.0 + k as f64) * if b.is_multiple_of(3) { 1e8 } else { 1.0 })
            .collect()
    }

    #[test]
    fn tree_sum_is_the_same_for_any_number_of_ranks() {
        for nblocks in [0, 1, 2, 3, 7, 8, 13] {
            let one = tree_sum(nblocks, 5, leaf);
            for size in [2, 3, 4] {
                for r in simulate(size, || tree_sum(nblocks, 5, leaf)) {
                    assert_eq!(r, one, "nblocks {nblocks}, {size} ranks");
                }
            }
            // The definition: for 3 leaves, (l0 + l1) + l2.
            if nblocks == 3 {
                let want: Vec<f64> = (0..5).map(|k| (leaf(0)[k] + leaf(1)[k]) + leaf(2)[k]).collect();
                assert_eq!(one, want);
            }
        }
    }

    #[test]
    fn row_pass_gathers_rows_in_order() {
        let n = 2500;
        let run = || {
            let mut a = vec![0.0; n];
            let mut b = vec![0.0; 2 * n];
            row_pass(n, 1024, &mut [(&mut a, 1), (&mut b, 2)], |rows, out| {
                for (k, i) in rows.clone().enumerate() {
                    out[0][k] = (i as f64).sqrt();
                    out[1][2 * k] = i as f64;
                    out[1][2 * k + 1] = -(i as f64);
                }
            });
            (a, b)
        };
        let one = run();
        for size in [2, 3, 4] {
            for r in simulate(size, run) {
                assert!(r == one);
            }
        }
    }
}
