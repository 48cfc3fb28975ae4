//! TCP byte-stream reassembly for one direction of a session.
//!
//! [`StreamReassembler`] takes a direction's segments as the tracker sees them (64-bit relative
//! sequence numbers, wrap-around already unfolded; 1 is the first byte after the SYN) and hands
//! the bytes on in stream order, each byte once, to a `deliver(rel_seq, bytes)` callback.
//!
//! Promises:
//! - **No copy in order.** A segment that starts at the next expected byte is delivered straight
//!   from the packet slice. Only segments ahead of a hole are copied, into per-stream blocks
//!   allocated when the first one arrives and freed as they are delivered.
//! - **Bounded memory.** Bytes kept for later never exceed the stream's limit; bookkeeping is at
//!   most `max(8, limit / 64)` blocks. A segment that does not fit is still *accounted* (its
//!   range is remembered, so gap accounting stays right) but its bytes are dropped: the stream is
//!   then [`StreamStats::truncated`] and delivery skips those bytes (counted in `dropped_bytes`).
//!   When even the block count is exhausted, the range is merged into a neighbouring block, as
//!   the tracker's former 8-block gap tracker did: gap accounting inside it becomes approximate.
//! - **Overlap policy: first seen wins.** Bytes already held keep their value; a later segment
//!   covering them only fills what was missing (Zeek's reassembler and most end hosts, the
//!   "first" policy). A segment whose overlapping bytes differ from those held counts once in
//!   `overlap_conflicts` (an IDS's "retransmission inconsistency"). Bytes already delivered are
//!   not kept (that would copy every in-order byte), so a retransmission of delivered bytes is
//!   ignored and not compared.
//! - **Holes (Zeek semantics).** A hole is given up when the peer acknowledges past it
//!   ([`StreamReassembler::ack`]): its bytes were sent but never seen. The skipped bytes are
//!   returned so that the tracker can count them in conn.log's `missed_bytes` under Zeek's rules,
//!   and the data after the hole is delivered. At the end ([`StreamReassembler::finish`]) what is
//!   still buffered is delivered after its holes, so nothing seen is lost.
//! - No panics, no unbounded loops: every step consumes a segment byte range or a block.

use super::{Endpoint, Uid};
use std::collections::VecDeque;

/// One direction of a TCP session, as a [`StreamSink`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamId {
    /// The session's uid, as in sessions.csv.
    pub uid: Uid,
    /// The sender of these bytes.
    pub src: Endpoint,
    pub dst: Endpoint,
    /// Whether the sender is the session's originator.
    pub from_orig: bool,
}

/// Receives reassembled TCP streams from the session tracker.
pub trait StreamSink {
    /// Bytes of one direction in stream order; `offset` is the position of the first byte in
    /// the stream (0 = the first byte after the SYN). Offsets only grow; a jump is a hole.
    fn data(&mut self, stream: &StreamId, offset: u64, bytes: &[u8]);
    /// The direction ended (its session ended); `stats` says whether it is complete.
    fn end(&mut self, stream: &StreamId, stats: &StreamStats);
}

/// Blocks a stream may always keep, whatever its byte limit (the gap tracker's old capacity).
const MIN_BLOCKS: usize = 8;
/// Byte limit per block of bookkeeping (a block costs about 40 bytes).
const BYTES_PER_BLOCK: usize = 64;

/// What a stream has seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Bytes handed to `deliver` (or, without content, accounted in order).
    pub delivered_bytes: u64,
    /// Bytes in holes given up: sent (the sequence numbers say so) but never seen.
    pub missed_bytes: u64,
    /// Holes given up.
    pub holes: u64,
    /// Bytes seen but not kept for lack of memory; delivery skips them.
    pub dropped_bytes: u64,
    /// Segments whose bytes differed from bytes already held for the same sequence numbers.
    pub overlap_conflicts: u64,
    /// The byte limit was reached: some seen bytes were dropped.
    pub truncated: bool,
}

/// Holes given up by one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    pub bytes: u64,
    pub holes: u64,
}

impl Skipped {
    fn add(&mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.holes = self.holes.saturating_add(1);
    }
}

/// Bytes `[start, end)` seen ahead of a hole. `data` holds a prefix of them (all of them unless
/// memory ran out); the rest were seen but not kept.
#[derive(Debug, Clone)]
struct Block {
    start: u64,
    end: u64,
    data: Vec<u8>,
}

impl Block {
    fn fully_kept(&self) -> bool {
        self.data.len() as u64 == self.end - self.start
    }

    /// The kept bytes of `[from, to)`, if any (`from` inside the block).
    fn kept(&self, from: u64, to: u64) -> &[u8] {
        let kept_end = self.start + self.data.len() as u64;
        let to = to.min(kept_end);
        if from >= to {
            return &[];
        }
        let (a, b) = ((from - self.start) as usize, (to - self.start) as usize);
        self.data.get(a..b).unwrap_or(&[])
    }
}

/// Reassembles one direction of a TCP session. See the module documentation.
#[derive(Debug, Clone)]
pub struct StreamReassembler {
    /// The next byte to deliver; everything below it is delivered or given up.
    next: u64,
    /// Sorted, non-overlapping, every block starts above `next`.
    blocks: VecDeque<Block>,
    /// Bytes kept in `blocks`.
    kept: usize,
    limit: usize,
    max_blocks: usize,
    keep_content: bool,
    stats: StreamStats,
}

impl StreamReassembler {
    /// A reassembler that keeps at most `limit_bytes` out-of-order bytes and delivers content.
    pub fn new(limit_bytes: usize) -> Self {
        StreamReassembler {
            next: 1,
            blocks: VecDeque::new(),
            kept: 0,
            limit: limit_bytes,
            max_blocks: (limit_bytes / BYTES_PER_BLOCK).max(MIN_BLOCKS),
            keep_content: true,
            stats: StreamStats::default(),
        }
    }

    /// A reassembler that only accounts sequence ranges (holes, missed bytes): it keeps no bytes
    /// and never calls `deliver`. `limit_bytes` bounds its bookkeeping as in [`Self::new`].
    pub fn accounting_only(limit_bytes: usize) -> Self {
        StreamReassembler {
            keep_content: false,
            ..Self::new(limit_bytes)
        }
    }

    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// The next relative sequence number to be delivered.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Out-of-order bytes held now.
    pub fn buffered_bytes(&self) -> usize {
        self.kept
    }

    /// Whether bytes are held ahead of a hole.
    pub fn has_pending(&self) -> bool {
        !self.blocks.is_empty()
    }

    /// A segment's payload `data` whose first byte has relative sequence number `rel_seq`.
    pub fn segment(&mut self, rel_seq: u64, data: &[u8], deliver: &mut impl FnMut(u64, &[u8])) {
        // Never let `rel_seq + len` overflow (nonsense sequence numbers): cut the tail.
        let room = u64::MAX - rel_seq;
        let data = match usize::try_from(room) {
            Ok(room) if room < data.len() => data.get(..room).unwrap_or(&[]),
            _ => data,
        };
        let end = rel_seq + data.len() as u64;
        if data.is_empty() || end <= self.next {
            // Nothing new (a retransmission of delivered bytes).
            return;
        }
        let (start, data) = if rel_seq < self.next {
            let old = (self.next - rel_seq) as usize;
            (self.next, data.get(old..).unwrap_or(&[]))
        } else {
            (rel_seq, data)
        };
        let conflict = if start == self.next {
            self.in_order(data, deliver)
        } else {
            self.out_of_order(start, data)
        };
        if conflict {
            self.stats.overlap_conflicts += 1;
        }
    }

    /// The peer acknowledged everything below `rel_ack`: holes below it will never fill. They are
    /// skipped (returned, and counted in the stats) and the bytes after them delivered.
    pub fn ack(&mut self, rel_ack: u64, deliver: &mut impl FnMut(u64, &[u8])) -> Skipped {
        let mut skipped = Skipped::default();
        if rel_ack <= self.next {
            return skipped;
        }
        while let Some(block) = self.blocks.front() {
            if block.start >= rel_ack {
                break;
            }
            if block.start > self.next {
                skipped.add(block.start - self.next);
            }
            self.deliver_front(deliver);
        }
        if rel_ack > self.next {
            skipped.add(rel_ack - self.next);
            self.next = rel_ack;
        }
        self.absorb(deliver);
        self.count_skipped(skipped);
        skipped
    }

    /// The session ended: delivers every held block after the holes before it (returned and
    /// counted). A hole after the last block is unknown and not counted.
    pub fn finish(&mut self, deliver: &mut impl FnMut(u64, &[u8])) -> Skipped {
        let mut skipped = Skipped::default();
        while let Some(block) = self.blocks.front() {
            if block.start > self.next {
                skipped.add(block.start - self.next);
            }
            self.deliver_front(deliver);
        }
        self.count_skipped(skipped);
        self.blocks = VecDeque::new();
        skipped
    }

    fn count_skipped(&mut self, skipped: Skipped) {
        self.stats.missed_bytes = self.stats.missed_bytes.saturating_add(skipped.bytes);
        self.stats.holes = self.stats.holes.saturating_add(skipped.holes);
    }

    /// `data` starts at `self.next`. Held blocks inside its range win; returns whether any of
    /// their bytes differed from `data`'s.
    fn in_order(&mut self, data: &[u8], deliver: &mut impl FnMut(u64, &[u8])) -> bool {
        let start = self.next;
        let end = start + data.len() as u64;
        let mut conflict = false;
        while self.next < end {
            let pos = self.next;
            let rest = data.get((pos - start) as usize..).unwrap_or(&[]);
            match self.blocks.front() {
                Some(block) if block.start < end => {
                    // Our bytes up to the block, then the block's (first seen wins).
                    let block_start = block.start;
                    let held = block.kept(block_start, block.end.min(end));
                    let ours_from = (block_start - start) as usize;
                    let ours = data.get(ours_from..ours_from + held.len()).unwrap_or(&[]);
                    conflict |= held != ours;
                    let before = rest.get(..(block_start - pos) as usize).unwrap_or(&[]);
                    self.emit(pos, before, deliver);
                    self.next = block_start;
                    self.deliver_front(deliver);
                }
                _ => {
                    self.emit(pos, rest, deliver);
                    self.next = end;
                }
            }
        }
        self.absorb(deliver);
        conflict
    }

    /// `data` starts above `self.next`: keep what no held block covers yet. Returns whether held
    /// bytes differed from `data`'s.
    fn out_of_order(&mut self, start: u64, data: &[u8]) -> bool {
        let end = start + data.len() as u64;
        let mut conflict = false;
        let mut index = self.blocks.partition_point(|b| b.end <= start);
        let mut pos = start;
        while pos < end {
            let ours = |from: u64, to: u64| {
                data.get((from - start) as usize..(to - start) as usize)
                    .unwrap_or(&[])
            };
            match self.blocks.get(index) {
                Some(block) if block.start <= pos => {
                    let overlap_end = block.end.min(end);
                    let held = block.kept(pos, overlap_end);
                    conflict |= held != ours(pos, pos + held.len() as u64);
                    pos = overlap_end;
                    index += 1;
                }
                next_block => {
                    let piece_end = next_block.map_or(end, |b| b.start.min(end));
                    index = self.insert_piece(index, pos, ours(pos, piece_end));
                    pos = piece_end;
                }
            }
        }
        conflict
    }

    /// Records `piece` (starting at `pos`, covered by no block) before block `index`. Returns the
    /// index of the first block after the piece.
    fn insert_piece(&mut self, index: usize, pos: u64, piece: &[u8]) -> usize {
        let piece_end = pos + piece.len() as u64;
        let fits = !self.keep_content || self.kept.saturating_add(piece.len()) <= self.limit;
        if self.keep_content && !fits {
            self.stats.truncated = true;
        }
        let keep: &[u8] = if self.keep_content && fits {
            piece
        } else {
            &[]
        };
        // Growing the block just before us keeps in-order runs after a hole in one block.
        if let Some(prev) = index.checked_sub(1).and_then(|i| self.blocks.get_mut(i))
            && prev.end == pos
            && (prev.fully_kept() || keep.is_empty())
        {
            prev.data.extend_from_slice(keep);
            prev.end = piece_end;
            self.kept += keep.len();
            return index;
        }
        if self.blocks.len() < self.max_blocks {
            self.blocks.insert(
                index,
                Block {
                    start: pos,
                    end: piece_end,
                    data: keep.to_vec(),
                },
            );
            self.kept += keep.len();
            return index + 1;
        }
        // Out of blocks: merge the range into a neighbour (the gap between becomes "seen").
        self.stats.truncated |= self.keep_content;
        if let Some(prev) = index.checked_sub(1).and_then(|i| self.blocks.get_mut(i)) {
            prev.end = piece_end;
            return index;
        }
        if let Some(next) = self.blocks.get_mut(index) {
            // Its kept bytes would no longer be a prefix: drop them.
            self.kept = self.kept.saturating_sub(next.data.len());
            next.data = Vec::new();
            next.start = pos;
        }
        index
    }

    /// Delivers the first block (its kept bytes; the rest counts as dropped) and moves past it.
    fn deliver_front(&mut self, deliver: &mut impl FnMut(u64, &[u8])) {
        let Some(block) = self.blocks.pop_front() else {
            return;
        };
        self.kept = self.kept.saturating_sub(block.data.len());
        let from = self.next.max(block.start);
        if block.end > from {
            let kept = block.kept(from, block.end);
            self.emit(from, kept, deliver);
            if self.keep_content {
                let unkept = block.end - from - kept.len() as u64;
                self.stats.dropped_bytes = self.stats.dropped_bytes.saturating_add(unkept);
            } else {
                self.stats.delivered_bytes += block.end - from;
            }
            self.next = block.end;
        }
        if self.blocks.is_empty() {
            // Free the ring when nothing is held.
            self.blocks = VecDeque::new();
        }
    }

    /// Delivers the blocks that now continue the stream.
    fn absorb(&mut self, deliver: &mut impl FnMut(u64, &[u8])) {
        while self.blocks.front().is_some_and(|b| b.start <= self.next) {
            self.deliver_front(deliver);
        }
    }

    fn emit(&mut self, at: u64, bytes: &[u8], deliver: &mut impl FnMut(u64, &[u8])) {
        if bytes.is_empty() {
            return;
        }
        if self.keep_content {
            deliver(at, bytes);
        }
        // Without content the in-order bytes are counted here, held ranges in deliver_front.
        self.stats.delivered_bytes += bytes.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds segments and acks; returns the delivered stream with every delivery checked to be
    /// contiguous with the previous one or after a skip.
    struct Run {
        r: StreamReassembler,
        out: Vec<u8>,
        next: u64,
        chunks: Vec<(u64, usize)>,
    }

    impl Run {
        fn new(limit: usize) -> Run {
            Run {
                r: StreamReassembler::new(limit),
                out: Vec::new(),
                next: 1,
                chunks: Vec::new(),
            }
        }
        fn sink<'a>(
            out: &'a mut Vec<u8>,
            next: &'a mut u64,
            chunks: &'a mut Vec<(u64, usize)>,
        ) -> impl FnMut(u64, &[u8]) + 'a {
            move |at, bytes| {
                assert!(at >= *next, "delivered backwards: {at} < {next}");
                out.extend_from_slice(bytes);
                *next = at + bytes.len() as u64;
                chunks.push((at, bytes.len()));
            }
        }
        fn seg(&mut self, seq: u64, data: &[u8]) -> &mut Self {
            {
                let mut d = Self::sink(&mut self.out, &mut self.next, &mut self.chunks);
                self.r.segment(seq, data, &mut d);
            }
            self
        }
        fn ack(&mut self, ack: u64) -> Skipped {
            let mut d = Self::sink(&mut self.out, &mut self.next, &mut self.chunks);
            self.r.ack(ack, &mut d)
        }
        fn finish(&mut self) -> Skipped {
            let mut d = Self::sink(&mut self.out, &mut self.next, &mut self.chunks);
            self.r.finish(&mut d)
        }
    }

    #[test]
    fn in_order_is_delivered_at_once_without_buffering() {
        let mut run = Run::new(100);
        run.seg(1, b"hello ").seg(7, b"world");
        assert_eq!(run.out, b"hello world");
        assert_eq!(run.chunks, vec![(1, 6), (7, 5)]);
        assert_eq!(run.r.buffered_bytes(), 0);
        assert!(!run.r.has_pending());
        assert_eq!(run.r.stats().delivered_bytes, 11);
    }

    #[test]
    fn out_of_order_waits_for_the_hole() {
        let mut run = Run::new(100);
        run.seg(7, b"world").seg(12, b"!");
        assert!(run.out.is_empty());
        assert_eq!(run.r.buffered_bytes(), 6);
        run.seg(1, b"hello ");
        assert_eq!(run.out, b"hello world!");
        assert_eq!(run.r.buffered_bytes(), 0);
        assert_eq!(run.r.stats().overlap_conflicts, 0);
    }

    #[test]
    fn retransmissions_are_delivered_once() {
        let mut run = Run::new(100);
        run.seg(1, b"abc")
            .seg(1, b"abc")
            .seg(2, b"bcd")
            .seg(5, b"e");
        assert_eq!(run.out, b"abcde");
        assert_eq!(run.r.stats().overlap_conflicts, 0);
    }

    #[test]
    fn first_seen_bytes_win_and_conflicts_count_per_segment() {
        // Held "XYZ" at 4..7, then an in-order segment covering it with other bytes.
        let mut run = Run::new(100);
        run.seg(4, b"XYZ").seg(1, b"abcdefgh");
        assert_eq!(run.out, b"abcXYZgh");
        assert_eq!(run.r.stats().overlap_conflicts, 1);
        // Two held blocks, then one out-of-order segment overlapping both with other bytes.
        let mut run = Run::new(100);
        run.seg(5, b"EF").seg(9, b"IJ").seg(4, b"defghijk");
        assert_eq!(run.r.stats().overlap_conflicts, 1);
        run.seg(1, b"abc");
        assert_eq!(run.out, b"abcdEFghIJk");
        // Same bytes overlapping: no conflict.
        let mut run = Run::new(100);
        run.seg(5, b"ef").seg(3, b"cdefg").seg(1, b"ab");
        assert_eq!(run.out, b"abcdefg");
        assert_eq!(run.r.stats().overlap_conflicts, 0);
    }

    #[test]
    fn ack_past_a_hole_skips_it() {
        let mut run = Run::new(100);
        run.seg(1, b"ab").seg(6, b"fg");
        let skipped = run.ack(8);
        assert_eq!(skipped, Skipped { bytes: 3, holes: 1 });
        assert_eq!(run.out, b"abfg");
        assert_eq!(run.chunks, vec![(1, 2), (6, 2)]);
        // Acked but never seen at all: a hole up to the ack.
        let skipped = run.ack(20);
        assert_eq!(skipped.bytes, 12);
        assert_eq!(run.r.stats().missed_bytes, 15);
        assert_eq!(run.r.stats().holes, 2);
        // A late copy of the given-up bytes is ignored.
        run.seg(8, b"zzz");
        assert_eq!(run.out, b"abfg");
        run.seg(20, b"t");
        assert_eq!(run.out, b"abfgt");
    }

    #[test]
    fn ack_within_delivered_bytes_changes_nothing() {
        let mut run = Run::new(100);
        run.seg(1, b"abcd");
        assert_eq!(run.ack(3), Skipped::default());
        assert_eq!(run.ack(5), Skipped::default());
        assert_eq!(run.r.stats().missed_bytes, 0);
    }

    #[test]
    fn finish_delivers_what_is_held_after_holes() {
        let mut run = Run::new(100);
        run.seg(3, b"cd").seg(10, b"jk");
        let skipped = run.finish();
        assert_eq!(
            skipped,
            Skipped {
                bytes: 2 + 5,
                holes: 2
            }
        );
        assert_eq!(run.out, b"cdjk");
        assert_eq!(run.chunks, vec![(3, 2), (10, 2)]);
        assert!(!run.r.has_pending());
    }

    #[test]
    fn memory_limit_drops_bytes_but_keeps_accounting() {
        let mut run = Run::new(4);
        run.seg(11, b"klm").seg(14, b"nopq").seg(30, b"xy");
        assert!(run.r.stats().truncated);
        assert!(run.r.buffered_bytes() <= 4);
        run.seg(1, b"abcdefghij");
        // "klm" was kept; "nopq" and "xy" were seen but dropped: skipped, not missed.
        assert_eq!(run.out, b"abcdefghijklm");
        assert_eq!(run.r.stats().dropped_bytes, 4);
        assert_eq!(run.r.next_seq(), 18);
        // 18..30 was never seen: a hole when acked; 30..32 dropped.
        assert_eq!(run.ack(32).bytes, 12);
        assert_eq!(run.r.stats().dropped_bytes, 6);
        assert_eq!(run.r.stats().missed_bytes, 12);
    }

    #[test]
    fn block_count_is_bounded() {
        let mut run = Run::new(0);
        // Every other byte: 100 holes, but at most MIN_BLOCKS blocks.
        for i in 0..100u64 {
            run.seg(10 + 2 * i, b"x");
        }
        assert!(run.r.blocks.len() <= MIN_BLOCKS);
        assert_eq!(run.r.buffered_bytes(), 0);
        // The first 8 bytes got blocks (10, 12, ..., 24); later ones merged into the last, so
        // 24..209 counts as seen. Missed: 1..10 and the 7 one-byte holes between the blocks.
        assert_eq!(run.ack(209).bytes, 9 + 7);
    }

    #[test]
    fn accounting_only_matches_content_mode_counts() {
        let segments: &[(u64, &[u8])] = &[(5, b"efgh"), (12, b"lm"), (1, b"ab"), (9, b"i")];
        let mut content = StreamReassembler::new(1000);
        let mut ranges = StreamReassembler::accounting_only(1000);
        let mut called = false;
        for &(seq, data) in segments {
            content.segment(seq, data, &mut |_, _| {});
            ranges.segment(seq, data, &mut |_, _| called = true);
        }
        let a = content.ack(20, &mut |_, _| {});
        let b = ranges.ack(20, &mut |_, _| called = true);
        assert!(!called);
        assert_eq!(a, b);
        // Holes: 3..5, 10..12, 14..20.
        assert_eq!(a.bytes, 2 + 2 + 6);
        assert_eq!(
            content.stats().delivered_bytes,
            ranges.stats().delivered_bytes
        );
        assert_eq!(ranges.buffered_bytes(), 0);
    }

    #[test]
    fn sequence_numbers_near_the_top_do_not_overflow() {
        let mut run = Run::new(100);
        run.seg(u64::MAX - 2, b"abcdef");
        assert!(run.out.is_empty());
        assert_eq!(run.r.buffered_bytes(), 2);
        run.ack(u64::MAX);
        assert_eq!(run.out, b"ab");
    }
}
