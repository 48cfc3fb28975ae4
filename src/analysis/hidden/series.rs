//! One group's series of session starts in fixed memory, however many sessions the group has.
//!
//! Sessions are observed when they end, so their starts arrive nearly, not exactly, in order.
//! A [`Series`] keeps the latest [`RECENT_STARTS`] starts sorted: while the whole series fits
//! there, its periodicity is computed exactly from every start (as [`periodicity::analyse`]
//! does). Past that, the earliest kept start is committed to two [`RangeSketch`]es (the interval
//! to the previously committed start, and the session's size) each time a new one comes in, so
//! the periodicity covers the whole capture from sketches of fixed size. A start older than the
//! last committed one (a session that started more than [`RECENT_STARTS`] starts before it
//! ended) adds its size but no interval. The kept starts are also what the report plots.
//!
//! Promises: at most [`RECENT_STARTS`] starts and two sketches of at most [`INTERVAL_RANGES`] and
//! [`SIZE_RANGES`] ranges per series; no allocation once those are full; no panic on any input.

use super::periodicity::{self, Distribution, Periodicity, Sample};
use std::collections::VecDeque;

/// Starts kept exactly per series (the latest ones): series up to this long are analysed
/// exactly; the report plots the intervals between them (it shows at most 200).
pub const RECENT_STARTS: usize = 201;
/// Ranges of the interval sketch.
pub const INTERVAL_RANGES: usize = 64;
/// Ranges of the session-size sketch.
pub const SIZE_RANGES: usize = 32;

/// Bytes one series holds at most (its starts and its sketches, not counting allocator slack).
pub const MAX_SERIES_BYTES: usize = RECENT_STARTS * std::mem::size_of::<Sample>()
    + (INTERVAL_RANGES + 1 + SIZE_RANGES + 1) * std::mem::size_of::<Range>()
    + std::mem::size_of::<Committed>();

/// How much the analysis lets all series hold together.
#[derive(Debug)]
pub struct Budget {
    /// Starts kept over all series, and the most allowed.
    pub starts: usize,
    pub max_starts: usize,
    /// Series with sketches, and the most allowed.
    pub sketched: usize,
    pub max_sketched: usize,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Series {
    /// The latest starts, sorted by start.
    recent: VecDeque<Sample>,
    committed: Option<Box<Committed>>,
}

#[derive(Debug)]
struct Committed {
    last_start: Option<i64>,
    intervals: RangeSketch,
    sizes: RangeSketch,
}

impl Committed {
    fn add(&mut self, s: Sample) {
        if let Some(last) = self.last_start {
            self.intervals
                .insert(s.start_nanos.saturating_sub(last) as f64 / 1e9);
        }
        self.last_start = Some(s.start_nanos);
        self.sizes.insert(s.bytes as f64);
    }
}

impl Series {
    /// Gives back what this series took from the budget (its group left the table).
    pub fn release(self, budget: &mut Budget) {
        budget.starts = budget.starts.saturating_sub(self.recent.len());
        if self.committed.is_some() {
            budget.sketched = budget.sketched.saturating_sub(1);
        }
    }

    /// Takes one session's start and size.
    pub fn push(&mut self, sample: Sample, budget: &mut Budget) {
        if let Some(c) = self.committed.as_deref_mut()
            && c.last_start.is_some_and(|last| sample.start_nanos < last)
        {
            c.sizes.insert(sample.bytes as f64);
            return;
        }
        let full = self.recent.len() >= RECENT_STARTS || budget.starts >= budget.max_starts;
        if full && self.committed.is_none() {
            if budget.sketched >= budget.max_sketched {
                // No room left: the series keeps the starts it has (the earliest ones).
                return;
            }
            budget.sketched += 1;
            self.committed = Some(Box::new(Committed {
                last_start: None,
                intervals: RangeSketch::new(INTERVAL_RANGES),
                sizes: RangeSketch::new(SIZE_RANGES),
            }));
        }
        let Series { recent, committed } = self;
        if full {
            let Some(c) = committed.as_deref_mut() else {
                return;
            };
            // The oldest kept start (or this one, when older) goes to the sketches.
            match recent.front() {
                Some(front) if front.start_nanos < sample.start_nanos => {
                    if let Some(oldest) = recent.pop_front() {
                        c.add(oldest);
                    }
                }
                _ => {
                    c.add(sample);
                    return;
                }
            }
        } else {
            budget.starts += 1;
            if recent.len() == recent.capacity() {
                // Grow by doubling, but never past the fixed size.
                let want = (recent.len().max(2) * 2).min(RECENT_STARTS);
                recent.reserve_exact(want.saturating_sub(recent.len()));
            }
        }
        let at = recent.partition_point(|r| r.start_nanos <= sample.start_nanos);
        recent.insert(at, sample);
    }

    /// Whether every start of the series is kept (its periodicity is exact).
    pub fn is_exact(&self) -> bool {
        self.committed.is_none()
    }

    /// The starts kept, sorted (all of them when [`Series::is_exact`]; else the latest).
    pub fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        self.recent.iter().copied()
    }

    /// The periodicity of the whole series of `sessions` sessions. Commits the kept starts to
    /// the sketches, so it is called once, after the plotted starts were taken.
    pub fn periodicity(&mut self, sessions: u64) -> Option<Periodicity> {
        match self.committed.as_deref_mut() {
            None => periodicity::analyse(self.recent.make_contiguous()),
            Some(c) => {
                for s in self.recent.iter() {
                    c.add(*s);
                }
                self.recent.clear();
                periodicity::analyse_distributions(
                    &c.intervals,
                    &c.sizes,
                    usize::try_from(sessions).unwrap_or(usize::MAX),
                )
            }
        }
    }
}

/// Values lo..=hi, `count` of them summing to `sum`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    lo: f64,
    hi: f64,
    count: u64,
    sum: f64,
}

impl Range {
    /// The values within `a..=b` (count, sum), taking the values as spread evenly over the range.
    fn within(&self, a: f64, b: f64) -> (f64, f64) {
        if self.hi < a || self.lo > b {
            return (0.0, 0.0);
        }
        if self.lo >= a && self.hi <= b {
            return (self.count as f64, self.sum);
        }
        let (from, to) = (self.lo.max(a), self.hi.min(b));
        let share = (to - from) / (self.hi - self.lo);
        let count = self.count as f64 * share;
        (count, count * (from + to) / 2.0)
    }
}

/// A summary of a stream of non-negative values in at most `cap` disjoint ranges, each with its
/// count and sum: exact while there are at most `cap` distinct values; past that the two
/// neighbouring ranges whose union is relatively narrowest are merged, so the ranges stay narrow
/// (in relative terms) where values crowd, as around a timer's period. Within a range, values are
/// taken as spread evenly from its lowest to its highest.
#[derive(Debug, Clone)]
pub struct RangeSketch {
    /// Sorted, disjoint; at most `cap` (plus one while inserting).
    ranges: Vec<Range>,
    cap: usize,
    total: u64,
}

impl RangeSketch {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(2);
        RangeSketch {
            ranges: Vec::with_capacity(cap + 1),
            cap,
            total: 0,
        }
    }

    pub fn insert(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.total = self.total.saturating_add(1);
        let at = self.ranges.partition_point(|r| r.lo <= value);
        if let Some(r) = at.checked_sub(1).and_then(|i| self.ranges.get_mut(i))
            && r.hi >= value
        {
            r.count = r.count.saturating_add(1);
            r.sum += value;
            return;
        }
        self.ranges.insert(
            at,
            Range {
                lo: value,
                hi: value,
                count: 1,
                sum: value,
            },
        );
        if self.ranges.len() > self.cap {
            self.merge_narrowest();
        }
    }

    fn merge_narrowest(&mut self) {
        let relative_span = |a: &Range, b: &Range| {
            if b.hi > 0.0 {
                (b.hi - a.lo) / b.hi
            } else {
                0.0
            }
        };
        let Some((i, _)) = self
            .ranges
            .windows(2)
            .enumerate()
            .filter_map(|(i, w)| match w {
                [a, b] => Some((i, relative_span(a, b))),
                _ => None,
            })
            .min_by(|x, y| x.1.total_cmp(&y.1))
        else {
            return;
        };
        let Some(next) = self.ranges.get(i + 1).copied() else {
            return;
        };
        if let Some(r) = self.ranges.get_mut(i) {
            r.hi = next.hi;
            r.count = r.count.saturating_add(next.count);
            r.sum += next.sum;
            self.ranges.remove(i + 1);
        }
    }

    /// The estimated `rank`-th smallest value (0-based).
    fn at_rank(&self, rank: u64) -> f64 {
        let mut below = 0u64;
        for r in &self.ranges {
            if rank < below.saturating_add(r.count) {
                let k = rank - below;
                return if r.count <= 1 {
                    r.lo
                } else {
                    r.lo + (r.hi - r.lo) * k as f64 / (r.count - 1) as f64
                };
            }
            below = below.saturating_add(r.count);
        }
        self.ranges.last().map_or(0.0, |r| r.hi)
    }
}

impl Distribution for RangeSketch {
    fn len(&self) -> usize {
        usize::try_from(self.total).unwrap_or(usize::MAX)
    }

    fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let pos = q.clamp(0.0, 1.0) * (self.total - 1) as f64;
        let (lo, hi) = (pos.floor(), pos.ceil());
        let (a, b) = (self.at_rank(lo as u64), self.at_rank(hi as u64));
        a + (b - a) * (pos - lo)
    }

    fn near(&self, center: f64, radius: f64) -> (f64, f64) {
        self.ranges
            .iter()
            .map(|r| r.within(center - radius, center + radius))
            .fold((0.0, 0.0), |(c, s), (rc, rs)| (c + rc, s + rs))
    }

    fn mad(&self, center: f64) -> f64 {
        // The median absolute deviation is the radius around `center` holding half the values.
        let (Some(first), Some(last)) = (self.ranges.first(), self.ranges.last()) else {
            return 0.0;
        };
        let half = self.total as f64 / 2.0;
        let (mut lo, mut hi) = (0.0, (center - first.lo).abs().max((last.hi - center).abs()));
        for _ in 0..64 {
            let mid = (lo + hi) / 2.0;
            if self.near(center, mid).0 >= half {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget {
            starts: 0,
            max_starts: usize::MAX,
            sketched: 0,
            max_sketched: usize::MAX,
        }
    }

    fn sample(start_s: f64, bytes: u64) -> Sample {
        Sample {
            start_nanos: (start_s * 1e9) as i64,
            bytes,
        }
    }

    #[test]
    fn sketch_is_exact_below_its_cap() {
        let mut s = RangeSketch::new(8);
        for v in [5.0, 1.0, 3.0, 3.0, 2.0, 4.0] {
            s.insert(v);
        }
        // Sorted values 1 2 3 3 4 5: median 3, quartiles 2.25 and 3.75 (linear interpolation).
        assert_eq!(s.len(), 6);
        assert_eq!(s.quantile(0.5), 3.0);
        assert_eq!(s.quantile(0.25), 2.25);
        assert_eq!(s.quantile(0.75), 3.75);
        assert_eq!(s.near(3.0, 1.0), (4.0, 12.0));
        // Deviations from 3: 2 1 0 0 1 2: half of them within 1.
        assert!((s.mad(3.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn sketch_stays_bounded_and_keeps_quantiles_of_a_uniform_stream() {
        let mut s = RangeSketch::new(INTERVAL_RANGES);
        // 0.800, 0.801, ... 1.200 s, 250 times over: uniform on [0.8, 1.2], mean 1.
        for i in 0..401 * 250u32 {
            s.insert(0.8 + f64::from(i % 401) * 0.001);
        }
        assert!(s.ranges.len() <= INTERVAL_RANGES);
        assert!((s.quantile(0.5) - 1.0).abs() < 0.005, "{}", s.quantile(0.5));
        assert!((s.quantile(0.25) - 0.9).abs() < 0.005);
        assert!((s.quantile(0.75) - 1.1).abs() < 0.005);
        // Uniform +-20 %: the MAD is 10 % of the centre.
        assert!((s.mad(1.0) - 0.1).abs() < 0.005, "{}", s.mad(1.0));
        let (count, sum) = s.near(1.0, 0.25);
        assert_eq!(count, 100_250.0);
        assert!((sum / count - 1.0).abs() < 1e-9);
    }

    #[test]
    fn short_series_are_exact_and_long_ones_are_bounded() {
        let mut b = budget();
        let mut series = Series::default();
        // Arrive slightly out of order, as sessions ending at different times do.
        for i in 0..150u32 {
            let j = if i % 2 == 0 { i + 1 } else { i - 1 };
            series.push(sample(f64::from(j) * 30.0, 500), &mut b);
        }
        assert!(series.is_exact());
        let starts: Vec<i64> = series.samples().map(|s| s.start_nanos).collect();
        assert!(starts.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(b.starts, 150);

        let mut long = Series::default();
        for i in 0..20_000u32 {
            let j = if i % 2 == 0 { i + 1 } else { i - 1 };
            long.push(sample(f64::from(j) * 30.0, 500), &mut b);
        }
        assert!(!long.is_exact());
        assert_eq!(long.samples().count(), RECENT_STARTS);
        let p = long.periodicity(20_000).unwrap();
        assert_eq!(p.sessions, 20_000);
        assert!((p.period_s - 30.0).abs() < 1e-6, "{p:?}");
        assert!(p.jitter < 1e-6 && p.is_periodic(), "{p:?}");
    }

    #[test]
    fn budget_limits_the_starts_kept_and_the_sketches() {
        let mut b = Budget {
            starts: 0,
            max_starts: 10,
            sketched: 0,
            max_sketched: 1,
        };
        let mut a = Series::default();
        let mut c = Series::default();
        for i in 0..100u32 {
            a.push(sample(f64::from(i), 1), &mut b);
            c.push(sample(f64::from(i), 1), &mut b);
        }
        assert!(b.starts <= 10 && b.sketched == 1);
        assert!(a.samples().count() + c.samples().count() <= 10);
    }
}
