//! Session expiry timers: a wheel of one-second buckets of capture time.
//!
//! Each session slot has at most one timer, its earliest pending deadline (nanoseconds of capture
//! time). A timer due within the current second waits in a small min-heap; a later one sits in
//! its second's bucket, a doubly linked list through the per-slot array (a bucket also holds
//! timers a whole turn or more ahead, which stay put until their turn). Promise:
//! [`TimerWheel::pop_due_timer`] yields the slots' timers in `(deadline, slot)` order, each when
//! the clock reaches it, exactly as a min-heap of all timers would. Memory is one small record
//! per slot; scheduling is O(1) without allocation, and moving the clock costs one comparison
//! until a second boundary passes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One tick of the wheel: a second of capture time, in nanoseconds.
const TICK_NANOS: i64 = 1_000_000_000;
/// Buckets in one turn: more than the longest default timeout (5 minutes), so timers seldom wait
/// a whole turn.
const BUCKETS: usize = 512;
const NIL: u32 = u32::MAX;

/// A slot's timer.
#[derive(Debug, Clone, Copy)]
struct SlotTimer {
    /// The deadline, `i64::MAX` for none.
    deadline: i64,
    /// Bumped when the timer is cancelled, so that its copy in the due heap goes stale.
    generation: u32,
    /// The bucket list holding the timer (NIL when it is not in one), and its neighbours there.
    bucket: u32,
    prev: u32,
    next: u32,
}

const UNSET: SlotTimer = SlotTimer {
    deadline: i64::MAX,
    generation: 0,
    bucket: NIL,
    prev: NIL,
    next: NIL,
};

/// A timer taken from the due heap: its slot, deadline and generation.
#[derive(Debug, Clone, Copy)]
pub(super) struct DueTimer {
    pub deadline: i64,
    pub slot: u32,
    generation: u32,
}

pub(super) struct TimerWheel {
    slots: Vec<SlotTimer>,
    /// First slot of each bucket's list; a bucket holds the timers of its ticks modulo `BUCKETS`.
    heads: Vec<u32>,
    /// Timers of the current tick and earlier, earliest first: (deadline, slot, generation).
    /// Entries of timers changed or cancelled since are stale and skipped.
    due: BinaryHeap<Reverse<(i64, u32, u32)>>,
    /// The current tick (the last one whose bucket moved to `due`).
    cursor: i64,
    /// Where the next tick starts: timers before it belong in `due`.
    next_tick_at: i64,
}

fn tick_of(nanos: i64) -> i64 {
    nanos.div_euclid(TICK_NANOS)
}

fn bucket_of(tick: i64) -> u32 {
    // rem_euclid by BUCKETS is never negative and fits in u32.
    tick.rem_euclid(BUCKETS as i64) as u32
}

impl TimerWheel {
    pub fn new() -> Self {
        TimerWheel {
            slots: Vec::new(),
            heads: vec![NIL; BUCKETS],
            due: BinaryHeap::new(),
            cursor: i64::MIN,
            next_tick_at: i64::MIN,
        }
    }

    /// The slot's pending deadline (`i64::MAX` for none).
    pub fn deadline(&self, slot: u32) -> i64 {
        self.slots
            .get(slot as usize)
            .map_or(i64::MAX, |t| t.deadline)
    }

    /// Sets the slot's timer to `deadline` if that is earlier than its pending one.
    pub fn set_earlier(&mut self, slot: u32, deadline: i64) {
        if deadline < self.deadline(slot) {
            self.set(slot, deadline);
        }
    }

    /// Sets the slot's timer to `deadline`, replacing any pending one.
    pub fn set(&mut self, slot: u32, deadline: i64) {
        let index = slot as usize;
        if index >= self.slots.len() {
            self.slots.resize(index + 1, UNSET);
        }
        self.unlink(slot);
        let Some(timer) = self.slots.get_mut(index) else {
            return;
        };
        timer.deadline = deadline;
        if deadline == i64::MAX {
            return;
        }
        if deadline < self.next_tick_at {
            self.due.push(Reverse((deadline, slot, timer.generation)));
        } else {
            self.link(slot, bucket_of(tick_of(deadline)));
        }
    }

    /// Removes the slot's timer.
    pub fn cancel(&mut self, slot: u32) {
        self.unlink(slot);
        if let Some(timer) = self.slots.get_mut(slot as usize) {
            timer.deadline = i64::MAX;
            timer.generation = timer.generation.wrapping_add(1);
        }
    }

    /// Moves the clock to `now` (never back): timers of the ticks passed join the due heap.
    pub fn advance(&mut self, now: i64) {
        if now < self.next_tick_at {
            return;
        }
        let target = tick_of(now);
        let limit = target.saturating_add(1).saturating_mul(TICK_NANOS);
        let passed = target.checked_sub(self.cursor).unwrap_or(i64::MAX);
        if passed >= BUCKETS as i64 {
            // A whole turn or more: every bucket may hold timers now due.
            for bucket in 0..BUCKETS as u32 {
                self.move_due(bucket, limit);
            }
        } else {
            for tick in self.cursor.saturating_add(1)..=target {
                self.move_due(bucket_of(tick), limit);
            }
        }
        self.cursor = target;
        self.next_tick_at = limit;
    }

    /// The slot and deadline of the earliest timer due at `now` (after [`Self::advance`] to
    /// `now`). The timer stays set, no longer scheduled, until the caller sets or cancels it.
    /// [`Self::still_due`] tells later whether the timer was changed since it was taken.
    pub fn pop_due_timer(&mut self, now: i64) -> Option<DueTimer> {
        while let Some(&Reverse((deadline, slot, generation))) = self.due.peek() {
            if deadline > now {
                return None;
            }
            self.due.pop();
            let timer = DueTimer {
                deadline,
                slot,
                generation,
            };
            if self.still_due(timer) {
                return Some(timer);
            }
        }
        None
    }

    /// True while a timer taken by [`Self::pop_due_timer`] is neither set again nor cancelled.
    pub fn still_due(&self, timer: DueTimer) -> bool {
        self.slots.get(timer.slot as usize).is_some_and(|t| {
            t.generation == timer.generation && t.deadline == timer.deadline && t.bucket == NIL
        })
    }

    /// Drops every timer (the clock stays where it is).
    pub fn clear(&mut self) {
        self.due.clear();
        self.heads.fill(NIL);
        for timer in &mut self.slots {
            *timer = SlotTimer {
                generation: timer.generation.wrapping_add(1),
                ..UNSET
            };
        }
    }

    /// Moves the timers of `bucket` that fall before `limit` into the due heap; the others wait
    /// for a later turn.
    fn move_due(&mut self, bucket: u32, limit: i64) {
        let mut slot = self.heads.get(bucket as usize).copied().unwrap_or(NIL);
        while slot != NIL {
            let Some(&timer) = self.slots.get(slot as usize) else {
                return;
            };
            if timer.deadline < limit {
                self.unlink(slot);
                self.due
                    .push(Reverse((timer.deadline, slot, timer.generation)));
            }
            slot = timer.next;
        }
    }

    fn link(&mut self, slot: u32, bucket: u32) {
        let Some(head) = self.heads.get_mut(bucket as usize) else {
            return;
        };
        let old_head = std::mem::replace(head, slot);
        if let Some(t) = self.slots.get_mut(old_head as usize) {
            t.prev = slot;
        }
        if let Some(t) = self.slots.get_mut(slot as usize) {
            t.bucket = bucket;
            t.prev = NIL;
            t.next = old_head;
        }
    }

    fn unlink(&mut self, slot: u32) {
        let Some(timer) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if timer.bucket == NIL {
            return;
        }
        let (bucket, prev, next) = (timer.bucket, timer.prev, timer.next);
        timer.bucket = NIL;
        timer.prev = NIL;
        timer.next = NIL;
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => {
                if let Some(head) = self.heads.get_mut(bucket as usize) {
                    *head = next;
                }
            }
        }
        if let Some(n) = self.slots.get_mut(next as usize) {
            n.prev = prev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const SEC: i64 = TICK_NANOS;

    /// Drives the wheel and a sorted set of (deadline, slot) with the same calls; they must agree.
    struct Twin {
        wheel: TimerWheel,
        pending: BTreeSet<(i64, u32)>,
        now: i64,
    }

    impl Twin {
        fn new(now: i64) -> Self {
            let mut wheel = TimerWheel::new();
            wheel.advance(now);
            Twin {
                wheel,
                pending: BTreeSet::new(),
                now,
            }
        }

        fn set(&mut self, slot: u32, deadline: i64) {
            let old = self.wheel.deadline(slot);
            self.pending.remove(&(old, slot));
            self.wheel.set(slot, deadline);
            self.pending.insert((deadline, slot));
        }

        fn set_earlier(&mut self, slot: u32, deadline: i64) {
            if deadline < self.wheel.deadline(slot) {
                self.set(slot, deadline);
            } else {
                self.wheel.set_earlier(slot, deadline);
            }
        }

        fn cancel(&mut self, slot: u32) {
            let old = self.wheel.deadline(slot);
            self.pending.remove(&(old, slot));
            self.wheel.cancel(slot);
        }

        /// Advances to `now`, returning what fired; `then` says what to do with each fired slot.
        fn advance(&mut self, now: i64, mut then: impl FnMut(&mut Twin, u32)) -> Vec<(i64, u32)> {
            self.now = now;
            self.wheel.advance(now);
            let mut fired = Vec::new();
            while let Some(DueTimer { deadline, slot, .. }) = self.wheel.pop_due_timer(now) {
                let expected = self.pending.pop_first();
                assert_eq!(expected, Some((deadline, slot)), "at {now}");
                fired.push((deadline, slot));
                then(self, slot);
            }
            assert!(
                self.pending.first().is_none_or(|&(d, _)| d > now),
                "a timer due at {now} did not fire: {:?}",
                self.pending.first()
            );
            fired
        }
    }

    fn cancel(twin: &mut Twin, slot: u32) {
        twin.cancel(slot);
    }

    #[test]
    fn fires_at_the_deadline_in_deadline_then_slot_order() {
        let mut twin = Twin::new(100 * SEC);
        twin.set(3, 105 * SEC + 7);
        twin.set(1, 105 * SEC + 7);
        twin.set(9, 103 * SEC);
        assert!(twin.advance(103 * SEC - 1, cancel).is_empty());
        assert_eq!(twin.advance(103 * SEC, cancel), vec![(103 * SEC, 9)]);
        assert!(twin.advance(105 * SEC + 6, cancel).is_empty());
        assert_eq!(
            twin.advance(200 * SEC, cancel),
            vec![(105 * SEC + 7, 1), (105 * SEC + 7, 3)]
        );
    }

    #[test]
    fn only_an_earlier_deadline_replaces_the_pending_one() {
        let mut twin = Twin::new(0);
        twin.set_earlier(1, 10 * SEC);
        twin.set_earlier(1, 20 * SEC);
        twin.set_earlier(1, 5 * SEC);
        assert!(twin.advance(4 * SEC, cancel).is_empty());
        assert_eq!(twin.advance(30 * SEC, cancel), vec![(5 * SEC, 1)]);
    }

    #[test]
    fn timers_a_turn_or_more_ahead_wait_for_their_turn() {
        let mut twin = Twin::new(0);
        let far = (BUCKETS as i64 + 2) * SEC;
        twin.set(1, far);
        twin.set(2, 2 * SEC);
        assert_eq!(twin.advance(2 * SEC, cancel), vec![(2 * SEC, 2)]);
        assert!(twin.advance(far - 1, cancel).is_empty());
        assert_eq!(twin.advance(far, cancel), vec![(far, 1)]);
    }

    #[test]
    fn past_and_current_second_deadlines_fire_on_the_next_check() {
        let mut twin = Twin::new(50 * SEC + 10);
        twin.set(1, 40 * SEC);
        twin.set(2, 50 * SEC + 20);
        assert_eq!(twin.advance(50 * SEC + 10, cancel), vec![(40 * SEC, 1)]);
        assert_eq!(
            twin.advance(50 * SEC + 20, cancel),
            vec![(50 * SEC + 20, 2)]
        );
    }

    #[test]
    fn cancelled_timers_never_fire() {
        let mut twin = Twin::new(0);
        twin.set(1, 5 * SEC);
        twin.set(2, 5 * SEC);
        twin.advance(5 * SEC - 1, cancel);
        twin.cancel(1);
        assert_eq!(twin.advance(6 * SEC, cancel), vec![(5 * SEC, 2)]);
    }

    #[test]
    fn a_taken_timer_set_again_or_cancelled_is_no_longer_due() {
        let mut wheel = TimerWheel::new();
        wheel.advance(0);
        for slot in 0..3 {
            wheel.set(slot, 5 * SEC);
        }
        wheel.advance(6 * SEC);
        let taken: Vec<DueTimer> = std::iter::from_fn(|| wheel.pop_due_timer(6 * SEC)).collect();
        assert_eq!(
            taken.iter().map(|t| t.slot).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(taken.iter().all(|&t| wheel.still_due(t)));
        // What handling one timer of a batch may do to another: set it later, or cancel it.
        wheel.set(1, 20 * SEC);
        wheel.cancel(2);
        let still: Vec<bool> = taken.iter().map(|&t| wheel.still_due(t)).collect();
        assert_eq!(still, vec![true, false, false]);
        // Cancelled and set again to the same deadline: a new timer, not the one taken.
        wheel.cancel(0);
        wheel.set(0, 5 * SEC);
        assert!(!wheel.still_due(taken[0]));
    }

    #[test]
    fn random_use_matches_a_sorted_set() {
        // A fixed pseudo-random walk (xorshift): deadlines past and over several turns ahead,
        // small and big clock steps, fired timers cancelled or set later again.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut twin = Twin::new(-3 * SEC);
        let mut fired = 0;
        for _ in 0..20_000 {
            let r = next();
            let slot = u32::try_from(r % 64).unwrap();
            let ahead = i64::try_from(next() % (3 * BUCKETS as u64 * 1_000)).unwrap() * SEC / 1_000;
            let deadline = twin.now + ahead - SEC;
            match r % 11 {
                0..=4 => twin.set_earlier(slot, deadline),
                5..=6 => twin.set(slot, deadline),
                7 => twin.cancel(slot),
                _ => {
                    let step = i64::try_from(next() % (2 * BUCKETS as u64)).unwrap() * SEC / 5;
                    let later = next() % 2 == 0;
                    let now = twin.now + step;
                    fired += twin
                        .advance(now, |twin, slot| {
                            if later {
                                twin.set(slot, now + SEC / 2 + i64::from(slot));
                            } else {
                                twin.cancel(slot);
                            }
                        })
                        .len();
                }
            }
        }
        twin.advance(i64::MAX, cancel);
        assert!(fired > 1_000);
    }
}
