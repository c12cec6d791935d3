//! How long to wait before each retry: constant or exponential delays, with jitter so that
//! clients that failed together do not retry together.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::ConfigError;
use crate::timeout::check_duration;

/// Randomisation applied to each delay (the names follow the AWS Architecture Blog's
/// "Exponential Backoff and Jitter").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Jitter {
    /// The delay exactly as computed.
    None,
    /// Uniform in `[0, delay]`: spreads retries the most.
    #[default]
    Full,
    /// Uniform in `[delay / 2, delay]`: never retries sooner than half the delay.
    Equal,
    /// Uniform in `[base, 3 × previous delay]`, capped: each delay depends on the last one
    /// rather than on the attempt number.
    Decorrelated,
}

/// The delay schedule between attempts.
///
/// The default is exponential from 100 ms, doubling, capped at 10 s, with full jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay (and the floor for decorrelated jitter).
    pub base: Duration,
    /// Growth per retry; 1 for a constant delay.
    pub multiplier: f64,
    /// No delay exceeds this.
    pub max: Duration,
    /// Randomisation.
    pub jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(10))
    }
}

impl Backoff {
    /// The same delay before every retry, without jitter.
    pub fn constant(delay: Duration) -> Self {
        Backoff {
            base: delay,
            multiplier: 1.0,
            max: delay,
            jitter: Jitter::None,
        }
    }

    /// `base × multiplier^(retry - 1)`, capped at `max`, with full jitter.
    pub fn exponential(base: Duration, multiplier: f64, max: Duration) -> Self {
        Backoff {
            base,
            multiplier,
            max,
            jitter: Jitter::Full,
        }
    }

    /// The same schedule with another jitter.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Checks every field.
    pub fn validate(&self, subject: &str) -> Result<(), ConfigError> {
        check_duration(subject, "backoff", self.base)?;
        check_duration(subject, "max_backoff", self.max)?;
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(ConfigError::new(
                subject,
                "backoff_multiplier",
                self.multiplier,
                "must be a finite number of at least 1",
            ));
        }
        if self.max < self.base {
            return Err(ConfigError::new(
                subject,
                "max_backoff",
                self.max,
                "must be at least the base backoff",
            ));
        }
        Ok(())
    }

    /// The delay without jitter before retry number `retry` (1 for the first retry).
    pub fn nominal(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(i32::MAX as u32) as i32;
        let grown = self.base.as_secs_f64() * self.multiplier.powi(exponent);
        if grown.is_finite() && grown < self.max.as_secs_f64() {
            Duration::from_secs_f64(grown)
        } else {
            self.max
        }
    }

    /// The delay before retry number `retry`, given the delay before the previous one.
    pub fn delay(&self, retry: u32, previous: Duration, random: &mut Random) -> Duration {
        let nominal = self.nominal(retry);
        match self.jitter {
            Jitter::None => nominal,
            Jitter::Full => random.between(Duration::ZERO, nominal),
            Jitter::Equal => random.between(nominal / 2, nominal),
            Jitter::Decorrelated => {
                let upper = previous.max(self.base).saturating_mul(3).min(self.max);
                random.between(self.base.min(upper), upper)
            }
        }
    }
}

/// A small, fast pseudo-random generator (SplitMix64) for jitter: jitter needs spread, not
/// cryptographic quality.
///
/// [`Random::new`] seeds each call's generator from a process seed the operating system
/// provides, mixed with a per-call counter: replicas of one service started together must not
/// retry in lockstep, and two calls of one process must not draw shifted copies of one stream.
#[derive(Debug, Clone)]
pub struct Random(u64);

/// Calls seeded so far in this process.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// The process's seed, drawn once from the operating system's randomness (through the std
/// hasher's random keys, which need no dependency).
fn process_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x5eed);
        hasher.finish()
    })
}

/// SplitMix64's output function: a bijection that scatters nearby inputs across all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl Random {
    /// A generator for one call: seeded from the process's OS-provided seed and a per-call
    /// counter, so every call, in every process, draws from its own stream.
    pub fn new() -> Self {
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        // Mixing (not adding) the counter in: consecutive calls' states would otherwise sit
        // one step apart on the same SplitMix64 sequence, each call's draws the next call's
        // shifted by one.
        Random(mix(process_seed() ^ mix(call.wrapping_mul(GOLDEN_GAMMA))))
    }

    /// A generator with a fixed seed, for reproducible tests.
    pub fn with_seed(seed: u64) -> Self {
        Random(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix(self.0)
    }

    /// A duration uniform in `[low, high]`, at nanosecond resolution.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        if high <= low {
            return low;
        }
        let span = (high - low).as_nanos().min(u128::from(u64::MAX)) as u64;
        let offset = if span == u64::MAX {
            self.next_u64()
        } else {
            self.next_u64() % (span + 1)
        };
        low + Duration::from_nanos(offset)
    }
}

impl Default for Random {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn exponential_grows_to_its_cap() {
        let backoff = Backoff::exponential(100 * MS, 2.0, 1000 * MS).with_jitter(Jitter::None);
        let delays: Vec<_> = (1..=6).map(|n| backoff.nominal(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let mut random = Random::with_seed(7);
        let base = Backoff::exponential(100 * MS, 2.0, 10_000 * MS);
        let mut previous = Duration::ZERO;
        for retry in 1..=8 {
            let nominal = base.nominal(retry);
            let full = base.delay(retry, previous, &mut random);
            assert!(full <= nominal, "full jitter {full:?} > {nominal:?}");
            let equal = base
                .with_jitter(Jitter::Equal)
                .delay(retry, previous, &mut random);
            assert!(equal >= nominal / 2 && equal <= nominal);
            let decorrelated =
                base.with_jitter(Jitter::Decorrelated)
                    .delay(retry, previous, &mut random);
            assert!(decorrelated >= 100 * MS);
            assert!(decorrelated <= (previous.max(100 * MS) * 3).min(10_000 * MS));
            previous = decorrelated;
        }
    }

    #[test]
    fn jitter_actually_spreads() {
        let mut random = Random::with_seed(1);
        let backoff = Backoff::exponential(1000 * MS, 2.0, 1000 * MS);
        let delays: std::collections::HashSet<_> = (0..100)
            .map(|_| backoff.delay(1, Duration::ZERO, &mut random))
            .collect();
        assert!(delays.len() > 90);
    }

    #[test]
    fn a_multiplier_below_one_is_refused() {
        let err = Backoff::exponential(MS, 0.5, MS)
            .validate("retry policy")
            .unwrap_err();
        assert_eq!(err.field(), "backoff_multiplier");
    }
}
