//! [`Comm`] over MPI (cargo feature `mpi`; the `mpi` crate over the system's Open MPI).
//!
//! MPI is initialised with `MPI_THREAD_FUNNELED`: only the thread that owns the execution context
//! ([`crate::dist::Exec`], not `Send`) makes MPI calls; rayon workers never can. Gathers of variable length are
//! one `MPI_Allgather` of the counts followed by one `MPI_Allgatherv`, so the data arrive in rank
//! order on every rank; personalised exchanges are one `MPI_Alltoall` of the counts and one
//! `MPI_Alltoallv`. Nothing is reduced by MPI itself (its reduction order is unspecified).
//!
//! Test hook: with `ADVREACT_TEST_FAIL_RANK=R` in the environment, rank `R` panics at its
//! `ADVREACT_TEST_FAIL_CALL`-th collective call (default 5) — a rank failing in the middle of a
//! run, to check that every rank stops (the binary's panic hook calls `MPI_Abort`).

use super::Comm;
use mpi::datatype::{Partition, PartitionMut};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;
use std::cell::Cell;

/// `MPI_COMM_WORLD` as a [`Comm`].
pub struct MpiComm {
    world: SimpleCommunicator,
    calls: Cell<u64>,
    fail_at: Option<u64>,
}

impl MpiComm {
    /// The world communicator of an initialised MPI universe.
    pub fn new(world: SimpleCommunicator) -> Self {
        let rank = world.rank();
        let fail_rank = std::env::var("ADVREACT_TEST_FAIL_RANK").ok().and_then(|v| v.parse::<i32>().ok());
        let fail_call =
            std::env::var("ADVREACT_TEST_FAIL_CALL").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
        let fail_at = (fail_rank == Some(rank)).then_some(fail_call);
        Self { world, calls: Cell::new(0), fail_at }
    }

    fn tick(&self) {
        let k = self.calls.get() + 1;
        self.calls.set(k);
        if self.fail_at == Some(k) {
            panic!("injected failure at collective call {k} (ADVREACT_TEST_FAIL_RANK)");
        }
    }

    fn gather<T: Equivalence + Copy + Default>(&self, local: &[T]) -> Vec<T> {
        self.tick();
        let size = self.world.size() as usize;
        let n = Count::try_from(local.len()).expect("all_gather: more than 2^31 values from one rank");
        let mut counts = vec![0 as Count; size];
        self.world.all_gather_into(&n, &mut counts[..]);
        let mut displs = Vec::with_capacity(size);
        let mut total: usize = 0;
        for c in &counts {
            displs.push(Count::try_from(total).expect("all_gather: more than 2^31 values in total"));
            total += *c as usize;
        }
        let mut out = vec![T::default(); total];
        {
            let mut part = PartitionMut::new(&mut out[..], &counts[..], &displs[..]);
            self.world.all_gather_varcount_into(local, &mut part);
        }
        out
    }
}

impl Comm for MpiComm {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn all_gather_f64(&self, local: &[f64]) -> Vec<f64> {
        self.gather(local)
    }
    fn all_gather_u64(&self, local: &[u64]) -> Vec<u64> {
        self.gather(local)
    }
    fn all_to_all_f64(&self, send: &[Vec<f64>]) -> Vec<Vec<f64>> {
        self.tick();
        let size = self.world.size() as usize;
        assert_eq!(send.len(), size, "all_to_all: one buffer per rank");
        let cnt = |v: &Vec<f64>| Count::try_from(v.len()).expect("all_to_all: more than 2^31 values");
        let scounts: Vec<Count> = send.iter().map(cnt).collect();
        let mut rcounts = vec![0 as Count; size];
        self.world.all_to_all_into(&scounts[..], &mut rcounts[..]);
        let displs = |c: &[Count]| -> Vec<Count> {
            c.iter()
                .scan(0usize, |at, &x| {
                    let d = *at;
                    *at += x as usize;
                    Some(Count::try_from(d).expect("all_to_all: more than 2^31 values in total"))
                })
                .collect()
        };
        let (sdispls, rdispls) = (displs(&scounts), displs(&rcounts));
        let sbuf = send.concat();
        let total: usize = rcounts.iter().map(|&c| c as usize).sum();
        let mut rbuf = vec![0.0f64; total];
        {
            let sp = Partition::new(&sbuf[..], &scounts[..], &sdispls[..]);
            let mut rp = PartitionMut::new(&mut rbuf[..], &rcounts[..], &rdispls[..]);
            self.world.all_to_all_varcount_into(&sp, &mut rp);
        }
        rcounts
            .iter()
            .zip(&rdispls)
            .map(|(&c, &d)| rbuf[d as usize..d as usize + c as usize].to_vec())
            .collect()
    }
    fn broadcast_bytes(&self, root: usize, buf: &mut Vec<u8>) {
        self.tick();
        let p = self.world.process_at_rank(root as i32);
        let mut len = buf.len() as u64;
        p.broadcast_into(&mut len);
        buf.resize(len as usize, 0);
        p.broadcast_into(&mut buf[..]);
    }
    fn barrier(&self) {
        self.tick();
        self.world.barrier();
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
