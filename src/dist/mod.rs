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
//! **Explicit context.** Like faer's `Par`, the parallelism and the communicator are arguments:
//! every pass that may split rows over ranks or threads takes an [`Exec`] (a [`Par`] and an
//! `Rc<dyn Comm>`) by reference, checked once per pass. It is built once where a run starts (the
//! MPI dispatcher builds it over `MPI_COMM_WORLD`; a plain library call uses
//! [`Exec::default`]: one process, the current rayon pool) and flows down through the
//! simulation, the field's `EvalCtx`, the metrics' `MetricCtx` and `SinkhornOptions::exec` to
//! [`row_pass`] and [`tree_sum`]. `Exec` is neither `Send` nor `Sync`, so a split pass cannot be
//! entered from a rayon worker; collectives are made by the thread that owns the context, and
//! every rank makes the same sequence of them, since every rank runs the same deterministic
//! program on the same state. Code that runs on one rank only (writing output, plots, one variant
//! of a sweep per rank) is given [`Exec::local`], a single-process context, so it cannot enter a
//! collective. [`Par::Seq`] runs every block on the calling thread and gives the same bits as
//! [`Par::Rayon`] (each block is computed by the same code whatever runs it).
//!
//! The MPI implementation is `mpi::MpiComm` (cargo feature `mpi`).

#[cfg(feature = "mpi")]
pub mod mpi;

use rayon::iter::plumbing::{Producer, ProducerCallback};
use rayon::prelude::*;
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

/// How a pass runs on this process: on the calling thread alone, or on the current rayon pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Par {
    /// Every block of rows in turn, on the calling thread (no rayon job is spawned).
    Seq,
    /// Blocks of rows in parallel on the current rayon pool (the global pool unless the caller
    /// runs inside `ThreadPool::install`).
    #[default]
    Rayon,
}

impl Par {
    /// Calls `f` on every item of `items`: with [`Par::Rayon`] as rayon jobs on the current pool
    /// (`items.for_each(f)`); with [`Par::Seq`] in order on the calling thread, without touching
    /// any rayon pool (the iterator's producer is drained as a plain iterator). The one switch
    /// between the two for every per-chunk loop of the crate: the caller builds the chunked
    /// iterator once (`par_chunks_mut`, `zip`, `enumerate`, …) and the same closure runs on the
    /// same chunks either way, so the bits do not depend on `self` when the chunks are
    /// independent.
    pub fn for_each<I: IndexedParallelIterator>(self, items: I, f: impl Fn(I::Item) + Sync + Send) {
        match self {
            Par::Rayon => items.for_each(f),
            Par::Seq => items.with_producer(SeqForEach(f)),
        }
    }

    /// The items of `items` in order, computed like [`Par::for_each`]: rayon jobs or the calling
    /// thread alone. For per-chunk partial results that the caller then reduces in a fixed order.
    pub fn collect<I: IndexedParallelIterator>(self, items: I) -> Vec<I::Item> {
        match self {
            Par::Rayon => items.collect(),
            Par::Seq => items.with_producer(SeqCollect),
        }
    }
}

/// [`Par::Seq`]'s [`Par::for_each`]: the producer as a sequential iterator.
struct SeqForEach<F>(F);

impl<T, F: Fn(T)> ProducerCallback<T> for SeqForEach<F> {
    type Output = ();
    fn callback<P: Producer<Item = T>>(self, producer: P) {
        producer.into_iter().for_each(self.0)
    }
}

/// [`Par::Seq`]'s [`Par::collect`].
struct SeqCollect;

impl<T> ProducerCallback<T> for SeqCollect {
    type Output = Vec<T>;
    fn callback<P: Producer<Item = T>>(self, producer: P) -> Vec<T> {
        producer.into_iter().collect()
    }
}

/// The execution context of a pass: the parallelism on this process and the communicator whose
/// ranks split the rows. Passed by reference to every function that may split rows over ranks or
/// choose its parallelism. It holds an `Rc`, so it is neither `Send` nor `Sync`: a split pass
/// cannot be started from a rayon worker (a compile error), only from the thread that owns it.
///
/// ```
/// use advreact::dist::{row_pass, Exec};
/// let mut out = vec![0.0; 100];
/// row_pass(&Exec::seq(), 100, 64, &mut [(&mut out, 1)], |i0, o| {
///     o[0].iter_mut().enumerate().for_each(|(k, v)| *v = (i0 + k) as f64)
/// });
/// assert_eq!(out[99], 99.0);
/// ```
///
/// A pass started on another thread with this thread's context does not compile:
///
/// ```compile_fail
/// let exec = advreact::dist::Exec::default();
/// std::thread::scope(|s| {
///     s.spawn(|| advreact::dist::row_pass(&exec, 0, 64, &mut [], |_, _| {}));
/// });
/// ```
#[derive(Clone)]
pub struct Exec {
    /// Parallelism on this process.
    pub par: Par,
    /// The ranks that share the rows of every pass ([`Single`]: this process alone).
    pub comm: Rc<dyn Comm>,
}

impl Default for Exec {
    /// One process, the current rayon pool (the behaviour of a plain library call).
    fn default() -> Self {
        Self { par: Par::Rayon, comm: Rc::new(Single) }
    }
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("par", &self.par)
            .field("rank", &self.comm.rank())
            .field("size", &self.comm.size())
            .finish()
    }
}

impl PartialEq for Exec {
    /// Same parallelism, same rank of a group of the same size.
    fn eq(&self, other: &Self) -> bool {
        self.par == other.par
            && self.comm.rank() == other.comm.rank()
            && self.comm.size() == other.comm.size()
    }
}

impl Exec {
    /// Rows split over the ranks of `comm`, blocks of rows run with `par` on each rank.
    pub fn new(par: Par, comm: Rc<dyn Comm>) -> Self {
        Self { par, comm }
    }

    /// One process, on the calling thread alone.
    pub fn seq() -> Self {
        Self { par: Par::Seq, comm: Rc::new(Single) }
    }

    /// The same parallelism on this process alone: for work that runs on one rank only (output
    /// written by rank 0, one variant of a sweep per rank), which must not enter a collective.
    pub fn local(&self) -> Self {
        Self { par: self.par, comm: Rc::new(Single) }
    }
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

/// A row-wise pass, split over the ranks of `exec.comm` and run with `exec.par` on each rank:
/// the rows `0..n` are cut into blocks of `block` rows, this rank's contiguous range of blocks
/// ([`my_rows`]) is computed block by block — `f(i0, views)` writes the rows starting at row `i0`
/// into `views` (one slice per output in `outs`, `width` values per row, as many rows as
/// `views[0].len() / width`) — and every output is all-gathered in rank order. The result of row
/// `i` must not depend on which other rows are computed with it; then on return every output holds
/// all rows, bitwise as if computed by one process on one thread. This is the only place where
/// rows are split over ranks or threads.
pub fn row_pass(
    exec: &Exec,
    n: usize,
    block: usize,
    outs: &mut [(&mut [f64], usize)],
    f: impl Fn(usize, &mut [&mut [f64]]) + Sync,
) {
    let block = block.max(1);
    for (o, w) in outs.iter() {
        assert_eq!(o.len(), n * w, "row_pass: output of {} values for {n} rows × {w}", o.len());
    }
    let widths: Vec<usize> = outs.iter().map(|(_, w)| *w).collect();
    let comm = &*exec.comm;
    if comm.size() == 1 {
        let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|(o, _)| &mut **o).collect();
        for_each_block(exec.par, 0, block, &mut views, &widths, &f);
        return;
    }
    let rows = my_rows(comm, n, block);
    let mut locals: Vec<Vec<f64>> = widths.iter().map(|w| vec![0.0; rows.len() * w]).collect();
    {
        let mut views: Vec<&mut [f64]> = locals.iter_mut().map(|v| v.as_mut_slice()).collect();
        for_each_block(exec.par, rows.start, block, &mut views, &widths, &f);
    }
    for ((o, _), l) in outs.iter_mut().zip(&locals) {
        let all = comm.all_gather_f64(l);
        assert_eq!(all.len(), o.len(), "row_pass: ranks disagree on the number of rows");
        o.copy_from_slice(&all);
    }
}

/// Calls `f(i0 + k·block, views of block k)` for every block of `block` rows of `views` (output
/// `q` has `widths[q]` values per row): in turn on this thread ([`Par::Seq`]) or as rayon jobs.
fn for_each_block(
    par: Par,
    i0: usize,
    block: usize,
    views: &mut [&mut [f64]],
    widths: &[usize],
    f: &(impl Fn(usize, &mut [&mut [f64]]) + Sync),
) {
    let rows = match (views.first(), widths.first()) {
        (Some(v), Some(&w)) if w > 0 => v.len() / w,
        _ => return,
    };
    let mut blocks: Vec<Vec<&mut [f64]>> =
        (0..rows.div_ceil(block)).map(|_| Vec::with_capacity(views.len())).collect();
    for (v, &w) in views.iter_mut().zip(widths) {
        for (b, c) in v.chunks_mut(block * w.max(1)).enumerate() {
            blocks[b].push(c);
        }
    }
    par.for_each(blocks.into_par_iter().enumerate(), |(k, mut v)| f(i0 + k * block, &mut v));
}

/// A node of the canonical dyadic tree over block indices: the sum of the leaves
/// `[index·2^level, (index+1)·2^level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Node {
    level: u32,
    index: usize,
}

/// `a += b`, elementwise (with `par`: elementwise, so the bits do not depend on threads).
fn add_into(par: Par, a: &mut [f64], b: &[f64]) {
    let add = |(x, y): (&mut [f64], &[f64])| {
        for (p, q) in x.iter_mut().zip(y) {
            *p += q;
        }
    };
    par.for_each(a.par_chunks_mut(4096).zip(b.par_chunks(4096)), add);
}

/// Deterministic sum over blocks `0..nblocks` of the partial vectors `leaf(b)` (each of length
/// `len`), split over the ranks of `exec.comm`, combined in the canonical dyadic
/// tree (see the module doc): the result is bitwise the same for any number of ranks and threads.
/// `leaf` is called for this rank's blocks only, in increasing order; memory is
/// O(len · log₂ nblocks). Returns zeros when `nblocks == 0`.
pub fn tree_sum(
    exec: &Exec,
    nblocks: usize,
    len: usize,
    mut leaf: impl FnMut(usize) -> Vec<f64>,
) -> Vec<f64> {
    let (comm, par) = (&*exec.comm, exec.par);
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
                add_into(par, &mut left, &node.1);
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
        return combine(par, top, nblocks, &mut nodes).unwrap_or_else(|| vec![0.0; len]);
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
    let part = combine(par, top, nblocks, &mut nodes).unwrap_or_else(|| vec![0.0; mine.len()]);
    let total = comm.all_gather_f64(&part);
    assert_eq!(total.len(), len, "tree_sum: ranks disagree on the vector length");
    total
}

/// The value of `node` in the canonical tree over `nblocks` leaves, from the computed subtrees.
fn combine(par: Par, node: Node, nblocks: usize, nodes: &mut HashMap<Node, Vec<f64>>) -> Option<Vec<f64>> {
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
    let mut left = combine(par, l, nblocks, nodes)?;
    if let Some(right) = combine(par, r, nblocks, nodes) {
        add_into(par, &mut left, &right);
    }
    Some(left)
}

/// Simulated ranks inside one process, for tests of distributed passes.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Runs `f` as every rank of `size` simulated ranks (threads sharing the gathers through a
    /// barrier-synchronised board), each given its rank's context, and returns each rank's result.
    pub(crate) fn simulate<R: Send>(size: usize, f: impl Fn(&Exec) -> R + Sync) -> Vec<R> {
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
                    s.spawn(move || f(&Exec::new(Par::Rayon, Rc::new(ThreadComm { rank, board }))))
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
            let one = tree_sum(&Exec::default(), nblocks, 5, leaf);
            assert_eq!(tree_sum(&Exec::seq(), nblocks, 5, leaf), one, "Seq, nblocks {nblocks}");
            for size in [2, 3, 4] {
                for r in simulate(size, |e| tree_sum(e, nblocks, 5, leaf)) {
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
        let run = |e: &Exec| {
            let mut a = vec![0.0; n];
            let mut b = vec![0.0; 2 * n];
            row_pass(e, n, 1024, &mut [(&mut a, 1), (&mut b, 2)], |i0, out| {
                assert!(out[0].len() <= 1024 && 2 * out[0].len() == out[1].len(), "one block of rows");
                for k in 0..out[0].len() {
                    let i = i0 + k;
                    out[0][k] = (i as f64).sqrt();
                    out[1][2 * k] = i as f64;
                    out[1][2 * k + 1] = -(i as f64);
                }
            });
            (a, b)
        };
        let one = run(&Exec::default());
        assert_eq!(one.0[2499], 2499f64.sqrt());
        assert_eq!(one.1[2 * 1500 + 1], -1500.0);
        assert!(run(&Exec::seq()) == one);
        for size in [2, 3, 4] {
            for r in simulate(size, run) {
                assert!(r == one);
            }
        }
    }

    /// `Par::for_each` / `Par::collect` with `Par::Seq` run every item on the calling thread,
    /// outside any rayon worker (`current_thread_index` is `None` off-pool, and inside a pool it
    /// is the installing worker's), in order; with `Par::Rayon` on a pool of two the items run on
    /// its workers. Both give the same items.
    #[test]
    fn seq_spawns_no_rayon_job() {
        let me = std::thread::current().id();
        let data: Vec<f64> = (0..5000).map(|k| (k as f64).sqrt()).collect();
        let run = |par: Par| {
            let seen = std::sync::Mutex::new(Vec::new());
            let mut out = vec![0.0; data.len()];
            par.for_each(out.par_chunks_mut(100).zip(data.par_chunks(100)).enumerate(), |(k, (o, x))| {
                seen.lock().unwrap().push((k, std::thread::current().id(), rayon::current_thread_index()));
                o.iter_mut().zip(x).for_each(|(o, x)| *o = 2.0 * x);
            });
            let sums = par.collect(data.par_chunks(100).map(|c| {
                seen.lock().unwrap().push((
                    usize::MAX,
                    std::thread::current().id(),
                    rayon::current_thread_index(),
                ));
                c.iter().sum::<f64>()
            }));
            (out, sums, seen.into_inner().unwrap())
        };
        let (out, sums, seen) = run(Par::Seq);
        assert_eq!(seen.len(), 100);
        assert!(seen.iter().all(|&(_, t, idx)| t == me && idx.is_none()), "Seq left the calling thread");
        let order: Vec<usize> = seen.iter().take(50).map(|s| s.0).collect();
        assert_eq!(order, (0..50).collect::<Vec<_>>(), "Seq runs the chunks in order");
        assert_eq!(out[4999], 2.0 * 4999f64.sqrt());
        assert_eq!(sums[3], (300..400).map(|k| (k as f64).sqrt()).sum::<f64>());
        // Inside a pool, Seq stays on the installing worker.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let inside = pool.install(|| {
            let here = (std::thread::current().id(), rayon::current_thread_index());
            (here, run(Par::Seq).2)
        });
        assert!(inside.1.iter().all(|&(_, t, idx)| (t, idx) == inside.0));
        // Rayon: on the pool's workers (never this thread), same results.
        let (pout, psums, pseen) = pool.install(|| run(Par::Rayon));
        assert!(pseen.iter().all(|&(_, t, idx)| t != me && idx.is_some()));
        assert_eq!(pout, out);
        assert_eq!(psums, sums);
    }

    /// `Par::Seq` runs every block on the calling thread (no rayon job); `Par::Rayon` may not.
    #[test]
    fn seq_runs_on_the_calling_thread() {
        let me = std::thread::current().id();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let threads = |e: &Exec| {
            let seen = std::sync::Mutex::new(Vec::new());
            let mut o = vec![0.0; 64 * 40];
            row_pass(e, o.len(), 64, &mut [(&mut o, 1)], |_, _| {
                seen.lock().unwrap().push(std::thread::current().id());
            });
            seen.into_inner().unwrap()
        };
        let seq = threads(&Exec::seq());
        assert_eq!(seq.len(), 40);
        assert!(seq.iter().all(|t| *t == me));
        // Under a pool's `install` the rayon blocks run on its workers, never on this thread.
        let par = pool.install(|| threads(&Exec::default()));
        assert_eq!(par.len(), 40);
        assert!(par.iter().all(|t| *t != me));
    }
}
