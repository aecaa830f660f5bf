//! The one CPU dispatch of the crate: which instruction-set level the kernels run at.
//!
//! The default build is portable (baseline x86-64). The hot loops — Gaussian sums
//! ([`crate::kernel::gaussian`]), the Sinkhorn soft-min passes (`ot::pass`), the Gram micro-kernel
//! ([`crate::kernel::gram`]), the sine–cosine of the random features ([`crate::kernel::rff`]) and
//! the `exp` blocks ([`crate::kernel::exp`]) — are compiled three times, for [`Level::Avx512`]
//! (`avx512f`), [`Level::Avx2Fma`] (`avx2,fma`) and [`Level::Scalar`] (the baseline), through
//! `#[target_feature]` functions (`multiversion!`), and [`level`] picks one at run time.
//!
//! **Same bits on every level.** The kernels use only `+`, `−`, `×`, comparisons and explicit fused
//! multiply-adds (`f64::mul_add` or the FMA intrinsics, both one correctly rounded operation; on a
//! CPU without FMA the scalar level calls the correctly rounded software `fma`), never an implied
//! contraction, and their reductions have fixed lane splits and orders. So the level changes the
//! speed, never a result (tests/simd.rs forces every level this CPU has and compares bits).
//!
//! **Choosing.** The level is the best this CPU has (detected once), unless the environment
//! variable `ADVREACT_SIMD` (`scalar`, `avx2` or `avx512`; `base` is an alias of `scalar`) asks
//! for another: an unknown value, or a level this CPU lacks, is reported once on stderr and the
//! detected level is used. Tests force a level with [`with_level`].

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

/// An instruction-set level of the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Baseline code (SSE2 on x86-64), `f64::mul_add` for the fused multiply-adds.
    Scalar,
    /// AVX2 and FMA (256-bit vectors).
    Avx2Fma,
    /// AVX-512F (512-bit vectors).
    Avx512,
}

impl Level {
    /// Every level, slowest first.
    pub const ALL: [Level; 3] = [Level::Scalar, Level::Avx2Fma, Level::Avx512];

    /// The name used by `ADVREACT_SIMD`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2Fma => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// Parse an `ADVREACT_SIMD` value.
    pub fn parse(s: &str) -> Result<Level, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" | "base" => Ok(Level::Scalar),
            "avx2" => Ok(Level::Avx2Fma),
            "avx512" => Ok(Level::Avx512),
            other => Err(format!("unknown SIMD level `{other}` (expected scalar, avx2 or avx512)")),
        }
    }

    /// Whether this CPU can run the level.
    pub fn supported(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2Fma => std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// The best level of this CPU, detected once.
pub fn detected() -> Level {
    static D: OnceLock<Level> = OnceLock::new();
    *D.get_or_init(|| Level::ALL.into_iter().rev().find(|l| l.supported()).unwrap_or(Level::Scalar))
}

/// The level asked for by `value` (the content of `ADVREACT_SIMD`, if set) on a CPU whose best
/// level is `best`, and a one-line warning when the request cannot be honoured.
fn choose(value: Option<&str>, best: Level, supported: impl Fn(Level) -> bool) -> (Level, Option<String>) {
    let Some(v) = value.filter(|v| !v.trim().is_empty()) else { return (best, None) };
    match Level::parse(v) {
        Ok(l) if supported(l) => (l, None),
        Ok(l) => (
            best,
            Some(format!("ADVREACT_SIMD={v}: this CPU cannot run {}; using {}", l.name(), best.name())),
        ),
        Err(e) => (best, Some(format!("ADVREACT_SIMD={v}: {e}; using {}", best.name()))),
    }
}

/// `Level as u8 + 1`, or 0 before the first [`level`].
static CURRENT: AtomicU8 = AtomicU8::new(0);

fn encode(l: Level) -> u8 {
    l as u8 + 1
}

fn decode(v: u8) -> Level {
    Level::ALL[(v - 1) as usize]
}

/// The level the kernels run at: [`detected`], or `ADVREACT_SIMD`'s (read once), or the one
/// forced by [`with_level`].
#[inline]
pub fn level() -> Level {
    match CURRENT.load(Ordering::Relaxed) {
        0 => {
            static INIT: OnceLock<Level> = OnceLock::new();
            let l = *INIT.get_or_init(|| {
                let env = std::env::var("ADVREACT_SIMD").ok();
                let (l, warning) = choose(env.as_deref(), detected(), Level::supported);
                if let Some(w) = warning {
                    eprintln!("advreact: warning: {w}");
                }
                l
            });
            let _ = CURRENT.compare_exchange(0, encode(l), Ordering::Relaxed, Ordering::Relaxed);
            decode(CURRENT.load(Ordering::Relaxed))
        }
        v => decode(v),
    }
}

/// Run `f` with the kernels forced to `lvl` (then restore the previous level), or `None` when
/// this CPU cannot run `lvl`. Calls are serialised, so concurrent tests each see their own level;
/// code running at the same time outside `with_level` may run at `lvl` too (same bits).
pub fn with_level<R>(lvl: Level, f: impl FnOnce() -> R) -> Option<R> {
    static LOCK: Mutex<()> = Mutex::new(());
    if !lvl.supported() {
        return None;
    }
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let before = level();
    CURRENT.store(encode(lvl), Ordering::Relaxed);
    struct Restore(Level);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.store(encode(self.0), Ordering::Relaxed);
        }
    }
    let _restore = Restore(before);
    Some(f())
}

/// A level as a type, so that a generic kernel body is instantiated once per level and the
/// instance can branch on [`Isa::LEVEL`] at compile time.
pub trait Isa {
    /// The level this type stands for.
    const LEVEL: Level;
}

/// [`Level::Scalar`] as a type.
pub struct IsaScalar;
/// [`Level::Avx2Fma`] as a type.
pub struct IsaAvx2;
/// [`Level::Avx512`] as a type.
pub struct IsaAvx512;

impl Isa for IsaScalar {
    const LEVEL: Level = Level::Scalar;
}
impl Isa for IsaAvx2 {
    const LEVEL: Level = Level::Avx2Fma;
}
impl Isa for IsaAvx512 {
    const LEVEL: Level = Level::Avx512;
}

/// `multiversion!(dispatch => body, v512, v256 (a: A, b: B, ...) [-> R])` defines `v512` and
/// `v256`, copies of the generic `body::<I: Isa>` compiled with `avx512f` and with `avx2,fma`
/// (the body must be `#[inline(always)]`, so that the whole loop is compiled for the wider
/// instruction set), and `dispatch(lvl: Level, a, b, ...)`, which runs the copy of `lvl`.
/// Panics if this CPU cannot run `lvl` (callers pass [`level`], which it always can).
macro_rules! multiversion {
    ($dispatch:ident => $name:ident, $v512:ident, $v256:ident ($($a:ident : $t:ty),* $(,)?) $(-> $r:ty)?) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        #[allow(clippy::too_many_arguments)]
        fn $v512($($a: $t),*) $(-> $r)? {
            $name::<$crate::simd::IsaAvx512>($($a),*)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        fn $v256($($a: $t),*) $(-> $r)? {
            $name::<$crate::simd::IsaAvx2>($($a),*)
        }
        #[allow(clippy::too_many_arguments)]
        fn $dispatch(lvl: $crate::simd::Level, $($a: $t),*) $(-> $r)? {
            assert!(lvl.supported(), "this CPU cannot run the {lvl:?} kernels");
            match lvl {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `lvl.supported()` was asserted above.
                $crate::simd::Level::Avx512 => unsafe { $v512($($a),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                $crate::simd::Level::Avx2Fma => unsafe { $v256($($a),*) },
                _ => $name::<$crate::simd::IsaScalar>($($a),*),
            }
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_values_are_reported() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.name()), Ok(l));
        }
        assert_eq!(Level::parse(" AVX2 "), Ok(Level::Avx2Fma));
        assert_eq!(Level::parse("base"), Ok(Level::Scalar));
        assert!(Level::parse("sse9").unwrap_err().contains("expected scalar, avx2 or avx512"));
        let all = |_: Level| true;
        assert_eq!(choose(None, Level::Avx512, all), (Level::Avx512, None));
        assert_eq!(choose(Some(""), Level::Avx512, all), (Level::Avx512, None));
        assert_eq!(choose(Some("scalar"), Level::Avx512, all), (Level::Scalar, None));
        let (l, w) = choose(Some("fast"), Level::Avx2Fma, all);
        assert_eq!(l, Level::Avx2Fma);
        assert_eq!(
            w.unwrap(),
            "ADVREACT_SIMD=fast: unknown SIMD level `fast` (expected scalar, avx2 or avx512); using avx2"
        );
        let (l, w) = choose(Some("avx512"), Level::Avx2Fma, |l| l != Level::Avx512);
        assert_eq!(l, Level::Avx2Fma);
        assert_eq!(w.unwrap(), "ADVREACT_SIMD=avx512: this CPU cannot run avx512; using avx2");
    }

    #[test]
    fn forcing_a_level_is_scoped() {
        let before = level();
        for l in Level::ALL {
            let seen = with_level(l, level);
            assert_eq!(seen, l.supported().then_some(l), "{l:?}");
        }
        assert_eq!(level(), before);
    }
}
