//! Periodicity: does a series of session starts (with their sizes) tick like a timer?
//!
//! Scored in the spirit of RITA's beacon analysis, with robust statistics throughout so that one
//! missed beat or one odd session does not hide a beacon: the period is the mean of the intervals
//! near the median interval, the jitter is the median absolute deviation (MAD) of the intervals
//! from that period over the period, the skew is
//! Bowley's quartile skewness, and sizes are judged the same way. Promises: pure functions over
//! the samples given, O(n log n), no panic on any input (empty, equal, unsorted, huge values).
//! The same steps score a long series from its fixed-size sketches ([`analyse_distributions`]).
//! The thresholds and weights are in data/hidden-rules.tsv (shared with the Spark job); the
//! steps are written again in spark/hidden_sessions.py and must stay the same.

use super::rules::rules;

/// One session of a series: when it started (ns since the epoch) and its bytes both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sample {
    pub start_nanos: i64,
    pub bytes: u64,
}

/// What the series looks like; `score` in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Periodicity {
    pub sessions: usize,
    /// Interval between session starts, seconds: the mean of the intervals within 25 % of the
    /// median interval.
    pub period_s: f64,
    /// MAD of the intervals over their median (0.03 = 3 %).
    pub jitter: f64,
    /// Bowley skewness of the intervals, -1..=1 (0: symmetric around the period).
    pub skew: f64,
    /// Share of intervals within 25 % of the period (a gap or a burst lowers it).
    pub on_beat: f64,
    /// MAD of session sizes over their median (0 when every session has the same size).
    pub size_jitter: f64,
    pub score: f64,
}

impl Periodicity {
    pub fn is_periodic(&self) -> bool {
        self.score >= rules().periodic_score
    }
}

/// What the scoring needs of a set of values: exact for a sorted slice ([`Sorted`]), estimated
/// for a [`super::series::RangeSketch`].
pub trait Distribution {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Linear-interpolated quantile (0 for no values).
    fn quantile(&self, q: f64) -> f64;
    /// How many values lie within `radius` of `center`, and their sum.
    fn near(&self, center: f64, radius: f64) -> (f64, f64);
    /// Median absolute deviation from `center`.
    fn mad(&self, center: f64) -> f64;
}

/// Sorted values, all of them.
pub struct Sorted<'a>(pub &'a [f64]);

impl Distribution for Sorted<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn quantile(&self, q: f64) -> f64 {
        quantile(self.0, q)
    }
    fn near(&self, center: f64, radius: f64) -> (f64, f64) {
        let beat = self.0.iter().filter(|v| (*v - center).abs() <= radius);
        let count = beat.clone().count();
        (count as f64, beat.sum::<f64>())
    }
    fn mad(&self, center: f64) -> f64 {
        mad(self.0, center)
    }
}

/// Scores `samples` (any order; sorted here). `None` when there are too few sessions or the
/// median interval is shorter than the rules' `min_period_s`.
pub fn analyse(samples: &mut [Sample]) -> Option<Periodicity> {
    let rules = rules();
    if samples.len() < rules.min_sessions {
        return None;
    }
    samples.sort_unstable();
    let mut intervals: Vec<f64> = samples
        .windows(2)
        .filter_map(|w| match w {
            [a, b] => Some(b.start_nanos.saturating_sub(a.start_nanos) as f64 / 1e9),
            _ => None,
        })
        .collect();
    intervals.sort_unstable_by(f64::total_cmp);
    let mut sizes: Vec<f64> = samples.iter().map(|s| s.bytes as f64).collect();
    sizes.sort_unstable_by(f64::total_cmp);
    analyse_distributions(&Sorted(&intervals), &Sorted(&sizes), samples.len())
}

/// Scores a series of `sessions` sessions from its intervals (seconds) and sizes (bytes), the
/// same steps as [`analyse`].
pub fn analyse_distributions(
    intervals: &impl Distribution,
    sizes: &impl Distribution,
    sessions: usize,
) -> Option<Periodicity> {
    let rules = rules();
    if sessions < rules.min_sessions || intervals.is_empty() {
        return None;
    }
    let median = intervals.quantile(0.5);
    if median.is_nan() || median < rules.min_period_s {
        return None;
    }
    // The period: the mean of the intervals on the beat (within 25 % of the median), so that a
    // timer whose ticks wobble around a grid is measured at its grid, and gaps do not count.
    let (beat_count, beat_sum) = intervals.near(median, rules.on_beat * median);
    let on_beat = beat_count / intervals.len() as f64;
    let period = if beat_count <= 0.0 {
        median
    } else {
        beat_sum / beat_count
    };
    let jitter = intervals.mad(period) / period;
    let skew = bowley(intervals);

    let size_median = sizes.quantile(0.5);
    let size_mad = sizes.mad(size_median);
    let size_jitter = if size_median > 0.0 {
        size_mad / size_median
    } else if size_mad > 0.0 {
        1.0
    } else {
        0.0
    };

    let regularity = (1.0 - jitter / rules.jitter_scale).clamp(0.0, 1.0);
    let interval_score = (2.0 * regularity + (1.0 - skew.abs())) / 3.0;
    let size_score = (1.0 - size_jitter / rules.jitter_scale).clamp(0.0, 1.0);
    let count_score = (intervals.len() as f64 / rules.full_count_intervals).min(1.0);
    let score = rules.weight_interval * interval_score
        + rules.weight_on_beat * on_beat
        + rules.weight_count * count_score
        + rules.weight_size * size_score;
    Some(Periodicity {
        sessions,
        period_s: period,
        jitter,
        skew,
        on_beat,
        size_jitter,
        score: score.clamp(0.0, 1.0),
    })
}

/// Linear-interpolated quantile of sorted values (0 for none).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (a, b) = match (sorted.get(lo), sorted.get(hi)) {
        (Some(a), Some(b)) => (*a, *b),
        _ => return 0.0,
    };
    a + (b - a) * (pos - lo as f64)
}

/// Median absolute deviation from `median`.
fn mad(values: &[f64], median: f64) -> f64 {
    let mut dev: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
    dev.sort_unstable_by(f64::total_cmp);
    quantile(&dev, 0.5)
}

/// Bowley's quartile skewness; 0 when the quartiles coincide.
fn bowley(values: &impl Distribution) -> f64 {
    let (q1, q2, q3) = (
        values.quantile(0.25),
        values.quantile(0.5),
        values.quantile(0.75),
    );
    let spread = q3 - q1;
    if spread <= f64::EPSILON * q2.abs().max(1.0) {
        return 0.0;
    }
    ((q3 + q1 - 2.0 * q2) / spread).clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: a seeded generator so the tests need no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next_f64(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        }
        fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.next_f64()
        }
        fn exponential(&mut self, mean: f64) -> f64 {
            -mean * (1.0 - self.next_f64()).ln()
        }
    }

    fn series(gaps: impl IntoIterator<Item = f64>, bytes: impl Fn(usize) -> u64) -> Vec<Sample> {
        let mut t = 1_700_000_000.0;
        let mut out = vec![Sample {
            start_nanos: (t * 1e9) as i64,
            bytes: bytes(0),
        }];
        for (i, gap) in gaps.into_iter().enumerate() {
            t += gap;
            out.push(Sample {
                start_nanos: (t * 1e9) as i64,
                bytes: bytes(i + 1),
            });
        }
        out
    }

    #[test]
    fn exact_timer_is_periodic_with_its_period() {
        let mut s = series(std::iter::repeat_n(30.0, 40), |_| 500);
        let p = analyse(&mut s).unwrap();
        assert_eq!(p.sessions, 41);
        assert!((p.period_s - 30.0).abs() < 1e-6);
        assert!(p.jitter < 1e-6);
        assert!(p.score > 0.99, "{p:?}");
        assert!(p.is_periodic());
    }

    #[test]
    fn jittered_beacon_keeps_its_period_within_5_percent() {
        // A beacon every 5 s with +-20 % uniform jitter (as the scenario's beacon does).
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut s = series((0..36).map(|_| rng.uniform(4.0, 6.0)), |_| 280);
        let p = analyse(&mut s).unwrap();
        assert!((p.period_s - 5.0).abs() / 5.0 < 0.05, "{p:?}");
        // Uniform +-20 %: the MAD is a quarter of the range, 10 % of the period.
        assert!((p.jitter - 0.10).abs() < 0.04, "{p:?}");
        assert!(p.is_periodic(), "{p:?}");
    }

    #[test]
    fn one_gap_does_not_hide_a_beacon() {
        let gaps = (0..30).map(|i| if i == 12 { 600.0 } else { 60.0 });
        let mut s = series(gaps, |_| 1000);
        let p = analyse(&mut s).unwrap();
        assert!((p.period_s - 60.0).abs() < 1e-6);
        assert!(p.is_periodic(), "{p:?}");
    }

    #[test]
    fn human_think_times_are_not_periodic() {
        let mut rng = Rng(42);
        let mut s = series((0..40).map(|_| rng.exponential(20.0)), |i| {
            300 + (i as u64 * 7919) % 2000
        });
        let p = analyse(&mut s).unwrap();
        assert!(!p.is_periodic(), "{p:?}");
        assert!(p.jitter > 0.3, "{p:?}");
    }

    #[test]
    fn bursts_are_not_timers() {
        // A page and its assets a few ms apart, then think-times: median interval under 1 s.
        let gaps = (0..30).map(|i| if i % 6 == 5 { 25.0 } else { 0.003 });
        let mut s = series(gaps, |_| 2000);
        assert_eq!(analyse(&mut s), None);
    }

    #[test]
    fn too_few_and_degenerate_series() {
        let mut s = series([10.0, 10.0], |_| 1);
        assert_eq!(analyse(&mut s), None);
        let mut same = vec![
            Sample {
                start_nanos: 5,
                bytes: 0
            };
            10
        ];
        assert_eq!(analyse(&mut same), None);
        let mut extreme = vec![
            Sample {
                start_nanos: i64::MIN,
                bytes: u64::MAX,
            },
            Sample {
                start_nanos: i64::MAX,
                bytes: 0,
            },
            Sample {
                start_nanos: 0,
                bytes: 1,
            },
            Sample {
                start_nanos: 1,
                bytes: 1,
            },
        ];
        let _ = analyse(&mut extreme);
    }

    #[test]
    fn varying_sizes_lower_the_score() {
        let mut same = series(std::iter::repeat_n(10.0, 20), |_| 400);
        let mut varied = series(std::iter::repeat_n(10.0, 20), |i| {
            100 + (i as u64 * 997) % 5000
        });
        let a = analyse(&mut same).unwrap();
        let b = analyse(&mut varied).unwrap();
        assert!(b.size_jitter > 0.3 && a.size_jitter == 0.0);
        assert!(b.score < a.score);
    }
}
