//! The checkpoint decoder against corrupt input (issue 14 §5): a deterministic fuzz test that
//! runs in `cargo test` (cargo-fuzz needs nightly; `fuzz/fuzz_targets/checkpoint.rs` is the
//! libFuzzer version). Valid checkpoints of three kinds (no field state, a Sobolev–Fisher critic,
//! a sum holding WFR potentials) get thousands of seeded random mutations; every decode must
//! return without panicking, either a one-line error naming the file or a checkpoint that passes
//! validation and re-encodes to itself. Fixed cases pin the messages: old formats, newer
//! versions, truncation, huge length prefixes, sums nested too deeply.

use advreact::field::state::{SobolevFisherState, SumState, WfrState};
use advreact::field::FieldState;
use advreact::observe::checkpoint::FORMAT_VERSION;
use advreact::observe::Checkpoint;
use advreact::particles::Particles;
use advreact::stepper::GuardCounts;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// The system allocator, recording the largest single request of each thread.
struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LARGEST.set(LARGEST.get().max(l.size()));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LARGEST.set(LARGEST.get().max(new));
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

const FILE: &str = "run/checkpoint.bin";

/// A checkpoint of `n` particles in `dim` dimensions holding `field_state`.
fn checkpoint(n: usize, dim: usize, field_state: FieldState) -> Checkpoint {
    let mut r = ChaCha8Rng::seed_from_u64(n as u64);
    let x = (0..n * dim).map(|_| r.random_range(-3.0..3.0)).collect();
    let logw = (0..n).map(|i| if i == 1 { f64::NEG_INFINITY } else { r.random_range(-2.0..0.5) }).collect();
    let id: Vec<u64> = (0..n as u64).map(|i| if i % 3 == 0 { i + n as u64 } else { i }).collect();
    let parent = id.iter().map(|&i| i % n as u64).collect();
    Checkpoint {
        step: 37,
        t: 3.7000000000000006,
        seed: 0xdead_beef,
        particles: Particles { dim, x, logw, id, parent, next_id: 2 * n as u64 + 5 },
        guards: GuardCounts {
            growth_clipped: 3,
            growth_log_mass_removed: -0.25,
            displacement_capped: 1,
            displacement_removed: 0.5,
            resamplings: 2,
            births: 7,
            deaths: 4,
        },
        last_metrics: vec![("mmd".into(), 1e-3), ("mass".into(), 1.25)],
        field_state,
        files: vec![("metrics.csv".into(), 1234), ("snapshots.csv".into(), 98765), ("lineage.csv".into(), 0)],
    }
}

/// The three kinds of valid checkpoints mutated.
fn valid() -> Vec<Checkpoint> {
    let v = |k: usize, s: f64| (0..k).map(|i| s * i as f64 - 1.0).collect::<Vec<f64>>();
    vec![
        checkpoint(40, 2, FieldState::None),
        checkpoint(
            30,
            3,
            FieldState::SobolevFisher(SobolevFisherState { solved_at: 35, rhs_norm: 2.5, beta: v(64, 0.01) }),
        ),
        checkpoint(
            25,
            2,
            FieldState::Sum(SumState(vec![
                FieldState::Wfr(WfrState { ab: Some((v(25, 0.1), v(20, 0.2))), f_aa: Some(v(25, 0.3)) }),
                FieldState::None,
            ])),
        ),
    ]
}

fn decode(b: &[u8]) -> Result<Checkpoint, String> {
    Checkpoint::decode(Path::new(FILE), b).map_err(|e| e.to_string())
}

/// Decode without unwinding out of the test; check the result's contract. Returns whether the
/// decode succeeded.
fn check(b: &[u8], what: &str) -> bool {
    let r = catch_unwind(AssertUnwindSafe(|| decode(b)))
        .unwrap_or_else(|_| panic!("decode panicked on {what}: {b:02x?}"));
    match r {
        Ok(ck) => {
            assert_eq!(ck.validate(), Ok(()), "{what}");
            assert_eq!(decode(&ck.encode()).as_ref(), Ok(&ck), "{what}: does not re-encode to itself");
            true
        }
        Err(m) => {
            assert!(m.starts_with(&format!("{FILE}: ")), "{what}: file not named: {m:?}");
            assert!(!m.chars().any(char::is_control), "{what}: not one line: {m:?}");
            false
        }
    }
}

/// A large varint (2⁶³ − 1): a length prefix far beyond any input.
const HUGE: [u8; 9] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];

/// One random mutation of `b`; its name.
fn mutate(r: &mut ChaCha8Rng, b: &mut Vec<u8>) -> &'static str {
    let at = r.random_range(0..b.len());
    match r.random_range(0..7) {
        0 => {
            b[at] ^= 1 << r.random_range(0..8);
            "bit flip"
        }
        1 => {
            b[at] = r.random();
            "byte change"
        }
        2 => {
            b.truncate(at);
            "truncation"
        }
        3 => {
            let k = r.random_range(1..16);
            let ins: Vec<u8> = (0..k).map(|_| r.random()).collect();
            b.splice(at..at, ins);
            "insertion"
        }
        4 => {
            let end = (at + r.random_range(1..16)).min(b.len());
            b.drain(at..end);
            "deletion"
        }
        5 => {
            // A length-like field: a small or huge varint written over the bytes at `at`.
            let v: &[u8] = if r.random() { &HUGE } else { &[0x80, 0x80, 0x04] };
            let end = (at + v.len()).min(b.len());
            b.splice(at..end, v.iter().copied());
            "length corruption"
        }
        _ => {
            b.splice(at..at, HUGE);
            "huge length inserted"
        }
    }
}

#[test]
fn valid_checkpoints_round_trip() {
    for ck in valid() {
        let b = ck.encode();
        assert_eq!(&b[..8], b"ADVRCKPT");
        assert_eq!(b[8..12], FORMAT_VERSION.to_le_bytes());
        assert_eq!(decode(&b), Ok(ck));
    }
}

#[test]
fn mutated_checkpoints_decode_or_fail_in_one_line() {
    let mut r = ChaCha8Rng::seed_from_u64(14);
    let (mut ok, mut err) = (0, 0);
    for (k, ck) in valid().iter().enumerate() {
        let good = ck.encode();
        for i in 0..10_000 {
            let mut b = good.clone();
            let mut names = Vec::new();
            for _ in 0..r.random_range(1..=3) {
                if !b.is_empty() {
                    names.push(mutate(&mut r, &mut b));
                }
            }
            if check(&b, &format!("kind {k}, case {i} ({})", names.join(", "))) {
                ok += 1;
            } else {
                err += 1;
            }
        }
    }
    // Most mutations break a checkpoint; some (a flipped bit in a coordinate) leave a valid one.
    eprintln!("{ok} decoded, {err} refused");
    assert!(err > 3 * (ok + err) / 4 && ok > (ok + err) / 20, "{ok} decoded, {err} refused");
}

#[test]
fn every_prefix_is_truncated() {
    for ck in valid() {
        let b = ck.encode();
        for len in 12..b.len() {
            assert_eq!(decode(&b[..len]).unwrap_err(), format!("{FILE}: truncated"), "prefix of {len} bytes");
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(decode(&long).unwrap_err(), format!("{FILE}: corrupt (1 bytes after the end)"));
    }
}

#[test]
fn headers_name_the_problem() {
    let body = valid()[0].encode()[12..].to_vec();
    let with = |head: &[u8]| [head, &body].concat();
    assert_eq!(
        decode(&with(b"ADVRCKP2\x00\x00\x00\x00")).unwrap_err(),
        format!("{FILE}: written by an older version of advreact (format ADVRCKP2); re-run the scenario")
    );
    assert_eq!(
        decode(&with(&[b"ADVRCKPT".as_slice(), &7u32.to_le_bytes()].concat())).unwrap_err(),
        format!("{FILE}: format version 7 is newer than this build (1)")
    );
    assert_eq!(
        decode(&with(&[b"ADVRCKPT".as_slice(), &0u32.to_le_bytes()].concat())).unwrap_err(),
        format!("{FILE}: format version 0 is older than this build (1)")
    );
    assert_eq!(decode(b"").unwrap_err(), format!("{FILE}: not a checkpoint (no ADVRCKPT header)"));
    assert_eq!(
        decode(b"step,t\n0,0\n").unwrap_err(),
        format!("{FILE}: not a checkpoint (no ADVRCKPT header)")
    );
    assert_eq!(decode(b"ADVRCKPT\x01").unwrap_err(), format!("{FILE}: truncated (no format version)"));
}

/// A length prefix of 2⁶³ − 1 coordinates in a small file is refused at once, without reserving
/// memory for it: what the decode allocates at once is bounded by the input's size (postcard
/// preallocates nothing from a length prefix; serde would cap it at 1 MiB anyway).
#[test]
fn huge_lengths_allocate_nothing() {
    let ck = checkpoint(3, 1, FieldState::None);
    let b = ck.encode();
    // The body starts step (37), t (8 bytes), seed (varint), dim (1): then the length of x (3).
    let seed_len = postcard::to_allocvec(&ck.seed).unwrap().len();
    let at = 12 + 1 + 8 + seed_len + 1;
    assert_eq!(b[at], 3, "the length of x is where expected");
    let bad = [&b[..at], &HUGE, &b[at + 1..]].concat();
    LARGEST.set(0);
    assert_eq!(decode(&bad).unwrap_err(), format!("{FILE}: truncated"));
    let largest = LARGEST.get();
    eprintln!("largest allocation while decoding: {largest} bytes");
    assert!(largest <= 64 * bad.len(), "decode allocated {largest} bytes at once for {} of input", bad.len());
}

/// Sums nested past [`SumState::MAX_DEPTH`] are refused instead of recursing off the stack: the
/// field state `Sum([Sum([… None …])])` 100 000 deep, written by hand (encoding it would recurse).
#[test]
fn deeply_nested_sums_are_refused() {
    let ck = Checkpoint { files: vec![], ..checkpoint(4, 1, FieldState::None) };
    let b = ck.encode();
    // The body ends with the field state (variant 0: None) and the files' length (0).
    assert_eq!(b[b.len() - 2..], [0, 0]);
    let nest = move |depth: usize| {
        let sums = std::iter::repeat_n([3u8, 1], depth).flatten();
        [&b[..b.len() - 2], &sums.collect::<Vec<u8>>(), &[0, 0]].concat()
    };
    let ok = decode(&nest(SumState::MAX_DEPTH as usize)).unwrap();
    assert_eq!(ok.field_state.kind(), "sum");
    let e = std::thread::spawn(move || decode(&nest(100_000))).join().expect("no stack overflow");
    assert!(e.unwrap_err().starts_with(&format!("{FILE}: corrupt (")));
}

/// Validation refuses what decodes but cannot be a run's state.
#[test]
fn inconsistent_checkpoints_are_refused() {
    let bad = |f: &dyn Fn(&mut Checkpoint)| {
        let mut ck = checkpoint(5, 2, FieldState::None);
        f(&mut ck);
        decode(&ck.encode()).unwrap_err()
    };
    let msg = |m: &str| format!("{FILE}: corrupt ({m})");
    assert_eq!(
        bad(&|c| c.particles.x.pop().map_or((), drop)),
        msg("particle arrays disagree: dimension 2, 9 coordinates, 5 log-weights, 5 ids, 5 parents")
    );
    assert_eq!(bad(&|c| c.particles.x[3] = f64::NAN), msg("particle 1 has a non-finite coordinate NaN"));
    assert_eq!(bad(&|c| c.particles.logw[4] = f64::INFINITY), msg("particle 4 has log-weight inf"));
    assert_eq!(bad(&|c| c.particles.next_id = 3), msg("particle 0 has an id or parent ≥ next id 3"));
    assert_eq!(bad(&|c| c.last_metrics[1].1 = f64::NAN), msg("mass is NaN"));
    assert_eq!(bad(&|c| c.t = f64::INFINITY), msg("time is inf"));
    assert_eq!(
        bad(&|c| c.field_state = FieldState::Wfr(WfrState { ab: None, f_aa: Some(vec![0.0, f64::NAN]) })),
        msg("field state: wfr f_aa[1] is NaN")
    );
}
