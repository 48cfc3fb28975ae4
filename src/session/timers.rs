//! Session expiry timers: a wheel of one-second buckets of capture time.
//!
//! A timer is `(deadline, slot, generation)`, deadlines in nanoseconds of capture time. Timers
//! due within the current second wait in a small min-heap; later ones sit unsorted in the bucket
//! of their second (a bucket also holds timers a whole turn or more ahead, which stay put until
//! their turn). Promise: [`TimerWheel::pop_due`] yields exactly the timers a single min-heap of
//! all timers would, in the same `(deadline, slot, generation)` order, for any sequence of calls.
//! Scheduling is O(1) with no allocation once the buckets have grown; moving the clock costs one
//! comparison until a second boundary is crossed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One tick of the wheel: a second of capture time, in nanoseconds.
const TICK_NANOS: i64 = 1_000_000_000;
/// Buckets in one turn: more than the longest default timeout (5 minutes), so timers seldom wait
/// a whole turn.
const BUCKETS: usize = 512;

/// A pending expiry check of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Timer {
    pub deadline: i64,
    pub slot: u32,
    pub generation: u32,
}

pub(super) struct TimerWheel {
    /// Timers of later ticks, by tick modulo the number of buckets.
    buckets: Vec<Vec<Timer>>,
    /// Timers of the current tick and earlier, earliest first.
    due: BinaryHeap<Reverse<Timer>>,
    /// The current tick (the last one whose bucket moved to `due`).
    cursor: i64,
    /// Where the next tick starts: timers before it belong in `due`.
    next_tick_at: i64,
}

fn tick_of(nanos: i64) -> i64 {
    nanos.div_euclid(TICK_NANOS)
}

fn bucket_of(tick: i64) -> usize {
    // BUCKETS fits in i64 and rem_euclid is never negative.
    tick.rem_euclid(BUCKETS as i64) as usize
}

impl TimerWheel {
    pub fn new() -> Self {
        TimerWheel {
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            due: BinaryHeap::new(),
            cursor: i64::MIN,
            next_tick_at: i64::MIN,
        }
    }

    pub fn schedule(&mut self, timer: Timer) {
        if timer.deadline < self.next_tick_at {
            self.due.push(Reverse(timer));
        } else if let Some(bucket) = self.buckets.get_mut(bucket_of(tick_of(timer.deadline))) {
            bucket.push(timer);
        }
    }

    /// Moves the clock to `now` (never back): timers of the ticks passed join the due heap,
    /// except those `keep` rejects (timers known to be stale), which are dropped.
    pub fn advance(&mut self, now: i64, keep: impl Fn(&Timer) -> bool) {
        if now < self.next_tick_at {
            return;
        }
        let target = tick_of(now);
        let next_tick_at = target.saturating_add(1).saturating_mul(TICK_NANOS);
        let passed = target.checked_sub(self.cursor).unwrap_or(i64::MAX);
        if passed >= BUCKETS as i64 {
            // A whole turn or more: every bucket may hold timers now due.
            for bucket in &mut self.buckets {
                move_due(bucket, next_tick_at, &mut self.due, &keep);
            }
        } else {
            for tick in self.cursor.saturating_add(1)..=target {
                if let Some(bucket) = self.buckets.get_mut(bucket_of(tick)) {
                    move_due(bucket, next_tick_at, &mut self.due, &keep);
                }
            }
        }
        self.cursor = target;
        self.next_tick_at = next_tick_at;
    }

    /// The earliest timer with a deadline at or before `now`, after [`Self::advance`] to `now`.
    pub fn pop_due(&mut self, now: i64) -> Option<Timer> {
        match self.due.peek() {
            Some(Reverse(timer)) if timer.deadline <= now => self.due.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }

    /// Drops every timer (the clock stays where it is).
    pub fn clear(&mut self) {
        self.due.clear();
        for bucket in &mut self.buckets {
            bucket.clear();
        }
    }
}

/// Moves the timers of `bucket` that fall before `limit` into `due` (dropping those `keep`
/// rejects); the others wait for a later turn.
fn move_due(
    bucket: &mut Vec<Timer>,
    limit: i64,
    due: &mut BinaryHeap<Reverse<Timer>>,
    keep: &impl Fn(&Timer) -> bool,
) {
    bucket.retain(|timer| {
        if timer.deadline < limit {
            if keep(timer) {
                due.push(Reverse(*timer));
            }
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = TICK_NANOS;

    fn timer(deadline: i64, slot: u32) -> Timer {
        Timer {
            deadline,
            slot,
            generation: 0,
        }
    }

    /// Drives the wheel and a plain min-heap with the same calls and checks they agree.
    struct Twin {
        wheel: TimerWheel,
        heap: BinaryHeap<Reverse<Timer>>,
    }

    impl Twin {
        fn new() -> Self {
            Twin {
                wheel: TimerWheel::new(),
                heap: BinaryHeap::new(),
            }
        }

        fn schedule(&mut self, t: Timer) {
            self.wheel.schedule(t);
            self.heap.push(Reverse(t));
        }

        fn advance(&mut self, now: i64) -> Vec<Timer> {
            self.wheel.advance(now, |_| true);
            let mut from_wheel = Vec::new();
            while let Some(t) = self.wheel.pop_due(now) {
                from_wheel.push(t);
            }
            let mut from_heap = Vec::new();
            while self.heap.peek().is_some_and(|Reverse(t)| t.deadline <= now) {
                from_heap.extend(self.heap.pop().map(|Reverse(t)| t));
            }
            assert_eq!(from_wheel, from_heap, "at {now}");
            from_wheel
        }
    }

    #[test]
    fn fires_at_the_deadline_in_deadline_then_slot_order() {
        let mut twin = Twin::new();
        twin.advance(100 * SEC);
        twin.schedule(timer(105 * SEC + 7, 3));
        twin.schedule(timer(105 * SEC + 7, 1));
        twin.schedule(timer(103 * SEC, 9));
        assert!(twin.advance(103 * SEC - 1).is_empty());
        assert_eq!(twin.advance(103 * SEC), vec![timer(103 * SEC, 9)]);
        assert!(twin.advance(105 * SEC + 6).is_empty());
        assert_eq!(
            twin.advance(200 * SEC),
            vec![timer(105 * SEC + 7, 1), timer(105 * SEC + 7, 3)]
        );
    }

    #[test]
    fn timers_a_turn_or_more_ahead_wait_for_their_turn() {
        let mut twin = Twin::new();
        twin.advance(0);
        let far = (BUCKETS as i64 + 2) * SEC;
        twin.schedule(timer(far, 1));
        twin.schedule(timer(2 * SEC, 2));
        assert_eq!(twin.advance(2 * SEC), vec![timer(2 * SEC, 2)]);
        assert!(twin.advance(far - 1).is_empty());
        assert_eq!(twin.advance(far), vec![timer(far, 1)]);
    }

    #[test]
    fn past_and_current_second_deadlines_fire_on_the_next_check() {
        let mut twin = Twin::new();
        twin.advance(50 * SEC + 10);
        twin.schedule(timer(40 * SEC, 1));
        twin.schedule(timer(50 * SEC + 20, 2));
        assert_eq!(twin.advance(50 * SEC + 10), vec![timer(40 * SEC, 1)]);
        assert_eq!(twin.advance(50 * SEC + 20), vec![timer(50 * SEC + 20, 2)]);
    }

    #[test]
    fn big_jumps_and_negative_times_match_a_heap() {
        // A fixed pseudo-random walk (xorshift) over deadlines spread across several turns.
        let mut twin = Twin::new();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut now = -3 * SEC;
        twin.advance(now);
        for round in 0..2000_u32 {
            let r = next();
            let ahead = i64::try_from(r % (3 * BUCKETS as u64 * 1_000)).unwrap() * SEC / 1_000;
            twin.schedule(timer(now + ahead - SEC, round % 17));
            if r % 7 == 0 {
                let step = i64::try_from(next() % (2 * BUCKETS as u64)).unwrap() * SEC / 3;
                now += step;
                twin.advance(now);
            }
        }
        twin.advance(i64::MAX);
        assert!(twin.wheel.pop_due(i64::MAX).is_none());
    }

    #[test]
    fn rejected_timers_are_dropped_when_their_tick_comes() {
        let mut wheel = TimerWheel::new();
        wheel.advance(0, |_| true);
        wheel.schedule(timer(5 * SEC, 1));
        wheel.schedule(timer(5 * SEC, 2));
        wheel.advance(6 * SEC, |t| t.slot != 1);
        assert_eq!(wheel.pop_due(6 * SEC), Some(timer(5 * SEC, 2)));
        assert_eq!(wheel.pop_due(6 * SEC), None);
    }
}
