//! The latency objective ("p99 under 300 ms") and why it can be judged from slow-call counts.

use std::time::Duration;

/// A latency objective, "the `quantile` latency stays under `limit`": the breaker opens once
/// the `quantile` latency of the calls in its sliding window reaches `limit`.
///
/// The quantile is the nearest-rank one: over `n` calls sorted by latency, the `⌈q·n⌉`-th.
/// It reaches `limit` exactly when more than `(1 − q)·n` of the calls took at least `limit`
/// (with `s` such calls, the `⌈q·n⌉`-th is at least `limit` iff `s ≥ n − ⌈q·n⌉ + 1`, that is
/// `s > n − ⌈q·n⌉ = ⌊(1 − q)·n⌋`, that is `s > (1 − q)·n` since `s` is a whole number). So the
/// breaker judges it as it judges slow calls, with calls of at least `limit` counted as slow,
/// and needs no latencies kept. A call of exactly `limit` counts against the objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySlo {
    /// The quantile, in (0, 1): 0.99 for p99.
    pub quantile: f64,
    /// The latency the quantile must stay under.
    pub limit: Duration,
}

impl LatencySlo {
    /// Whether `calls` calls of which `slow` took at least the limit put the quantile at or
    /// above it (see the type's documentation). Exact in whole numbers: the quantile is taken
    /// in millionths, so 0.99 and 0.999 are what they say, not their nearest binary fractions.
    pub fn is_breached(&self, calls: u64, slow: u64) -> bool {
        if calls == 0 {
            return false;
        }
        let millionths = u128::from(self.millionths());
        // ⌈q·n⌉, the rank of the quantile.
        let rank = (millionths * u128::from(calls)).div_ceil(1_000_000);
        u128::from(slow) + rank > u128::from(calls)
    }

    fn millionths(&self) -> u64 {
        (self.quantile * 1e6).round().clamp(1.0, 999_999.0) as u64
    }

    /// The quantile as operators write it: `p99`, `p99.9`.
    pub fn label(&self) -> String {
        let percent = self.millionths() as f64 / 1e4;
        format!("p{percent}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded xorshift: the same windows on every run.
    struct Random(u64);

    impl Random {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % bound
        }
    }

    /// The equivalence the objective is judged by, on random windows: the nearest-rank
    /// quantile (the smallest latency at or below which at least `q` of the calls fall) is at
    /// or above the limit exactly when more than `1 − q` of the calls took at least the limit.
    #[test]
    fn the_quantile_reaches_the_limit_iff_more_than_the_tail_is_slow() {
        let mut random = Random(0x9E37_79B9_7F4A_7C15);
        let quantiles = [0.5, 0.9, 0.95, 0.99, 0.999, 0.25, 0.333333, 0.75];
        for round in 0..20_000 {
            let calls = 1 + random.below(300);
            let mut latencies: Vec<u64> = (0..calls).map(|_| random.below(1_000)).collect();
            // Often put the limit on a latency that occurs, to test the boundary.
            let limit = if round % 2 == 0 {
                latencies[random.below(calls) as usize]
            } else {
                random.below(1_000)
            };
            let quantile = quantiles[random.below(quantiles.len() as u64) as usize];
            let slo = LatencySlo {
                quantile,
                limit: Duration::from_millis(limit),
            };
            latencies.sort_unstable();
            // In millionths, so the rank is exact: the smallest rank r with r / n ≥ q.
            let millionths = (quantile * 1e6).round() as u64;
            let rank = (1..=calls)
                .find(|r| r * 1_000_000 >= millionths * calls)
                .unwrap();
            let reaches = latencies[rank as usize - 1] >= limit;
            let slow = latencies.iter().filter(|&&l| l >= limit).count() as u64;
            let tail_exceeded = slow * 1_000_000 > calls * (1_000_000 - millionths);
            assert_eq!(
                reaches, tail_exceeded,
                "{latencies:?} q={quantile} L={limit}"
            );
            assert_eq!(
                slo.is_breached(calls, slow),
                reaches,
                "{latencies:?} q={quantile} L={limit}"
            );
        }
        assert!(
            !LatencySlo {
                quantile: 0.99,
                limit: Duration::from_millis(1)
            }
            .is_breached(0, 0)
        );
    }

    #[test]
    fn an_objective_reads_as_a_percentile() {
        let slo = |quantile| LatencySlo {
            quantile,
            limit: Duration::from_millis(300),
        };
        assert_eq!(slo(0.99).label(), "p99");
        assert_eq!(slo(0.999).label(), "p99.9");
        assert_eq!(slo(0.5).label(), "p50");
    }
}
