//! TCP session state as Zeek models it: two endpoints, each with a state, sequence-space
//! bookkeeping (relative sequence numbers, 32-bit wrap-around), the history letters a segment
//! adds, and each direction's [`StreamReassembler`], which finds gaps (bytes acknowledged but
//! never seen) and, when the tracker asks for content, hands on the reassembled bytes.
//!
//! The rules follow Zeek's TCP analyzer so that conn_state, history, sizes and missed_bytes
//! agree with conn.log; where sessionscope deliberately differs, docs/zeek-differences.md says so.
//! Everything here is plain arithmetic on fixed-size state, no panics; the only allocation is
//! the reassembler's bounded buffer for bytes that arrive ahead of a hole.

use super::history::{History, Mark, ScaledCounter};
use super::reassembly::{StreamReassembler, StreamStats};
use super::{Anomalies, ConnState};
use crate::decode::TcpFlags;

/// Zeek's endpoint states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndpointState {
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

use EndpointState as St;

/// Signed distance from `b` to `a` in 32-bit sequence space.
fn seq_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Sequence jumps larger than this on SYN or RST are not trusted (Zeek's TOO_LARGE_SEQ_DELTA).
const TOO_LARGE_SEQ_DELTA: i32 = 1_048_576;

/// Bookkeeping limit of a direction's gap accounting when its content is not wanted.
const ACCOUNTING_LIMIT_BYTES: usize = 512;

/// One side of a TCP session.
#[derive(Debug, Clone)]
pub(crate) struct TcpEndpoint {
    pub(crate) state: EndpointState,
    pub(crate) prev_state: EndpointState,
    start_seq: u32,
    last_seq: u32,
    ack_seq: u32,
    seq_wraps: u32,
    ack_wraps: u32,
    fin_cnt: u32,
    fin_seq: u64,
    pub(crate) did_close: bool,
    hist_last_syn: u64,
    hist_last_fin: u64,
    hist_last_rst: u64,
    retransmits: ScaledCounter,
    zero_windows: ScaledCounter,
    gaps: ScaledCounter,
    checksum_errors: ScaledCounter,
    /// Highest acknowledgement already examined for gaps.
    trim_seq: u64,
    /// This direction's content: what was seen contiguously, what waits beyond a hole.
    stream: StreamReassembler,
    /// Bytes acknowledged by the peer that were never seen (Zeek's content gaps).
    pub(crate) missed_bytes: u64,
    /// The receive window this endpoint last advertised (unscaled: options are not read).
    window: Option<u32>,
}

impl Default for TcpEndpoint {
    fn default() -> Self {
        TcpEndpoint {
            state: St::Inactive,
            prev_state: St::Inactive,
            start_seq: 0,
            last_seq: 0,
            ack_seq: 0,
            seq_wraps: 0,
            ack_wraps: 0,
            fin_cnt: 0,
            fin_seq: 0,
            did_close: false,
            hist_last_syn: 0,
            hist_last_fin: 0,
            hist_last_rst: 0,
            retransmits: ScaledCounter::default(),
            zero_windows: ScaledCounter::default(),
            gaps: ScaledCounter::default(),
            checksum_errors: ScaledCounter::default(),
            trim_seq: 0,
            stream: StreamReassembler::accounting_only(ACCOUNTING_LIMIT_BYTES),
            missed_bytes: 0,
            window: None,
        }
    }
}

impl TcpEndpoint {
    fn init_seqs(&mut self, start: u32, last: u32) {
        self.start_seq = start;
        self.ack_seq = start;
        self.last_seq = last;
    }

    fn full(seq: u32, wraps: u32) -> u64 {
        (u64::from(wraps) << 32) | u64::from(seq)
    }

    fn relative(&self, seq: u32, wraps: u32) -> u64 {
        Self::full(seq, wraps).wrapping_sub(u64::from(self.start_seq))
    }

    /// Zeek's get_relative_seq: (relative sequence number, underflow).
    fn relative_seq(&self, cur: u32, last: u32, mut wraps: u32) -> (u64, bool) {
        let delta = seq_delta(cur, last);
        if delta < 0 {
            if wraps > 0 && cur > last {
                wraps -= 1;
            }
        } else if delta > 0 && cur < last {
            wraps = wraps.saturating_add(1);
        }
        if wraps == 0 {
            let d = seq_delta(cur, self.start_seq);
            return (d as i64 as u64, d < 0);
        }
        (self.relative(cur, wraps), false)
    }

    fn update_last_seq_value(&mut self, seq: u32) {
        if seq < self.last_seq && seq_delta(seq, self.last_seq) > 0 {
            self.seq_wraps = self.seq_wraps.saturating_add(1);
        }
        self.last_seq = seq;
    }

    fn update_ack_seq_value(&mut self, seq: u32) {
        if seq < self.ack_seq && seq_delta(seq, self.ack_seq) > 0 {
            self.ack_wraps = self.ack_wraps.saturating_add(1);
        }
        self.ack_seq = seq;
    }

    fn no_data_acked(&self) -> bool {
        self.ack_wraps == 0
            && (self.ack_seq == self.start_seq || self.ack_seq == self.start_seq.wrapping_add(1))
    }

    /// Payload bytes this endpoint sent, from sequence numbers (Zeek's `Size()`).
    pub(crate) fn size(&self, peer_state: EndpointState) -> u64 {
        if self.prev_state == St::SynSent
            && self.state == St::Reset
            && peer_state == St::Inactive
            && !self.no_data_acked()
        {
            return 0;
        }
        let last = Self::full(self.last_seq, self.seq_wraps);
        let ack = Self::full(self.ack_seq, self.ack_wraps);
        let mut size = last.max(ack).wrapping_sub(u64::from(self.start_seq));
        // Neither the SYN nor the FIN occupies a byte of data.
        size = size.saturating_sub(1);
        if self.fin_cnt > 0 {
            size = size.saturating_sub(1);
        }
        // A wrapped-around subtraction means nonsense sequence numbers: report nothing.
        if size > (1u64 << 48) { 0 } else { size }
    }

    fn set_state(&mut self, new_state: EndpointState) {
        if new_state != self.state {
            self.prev_state = self.state;
            self.state = new_state;
        }
    }
}

/// Whether the two endpoints are established or closing cleanly (Zeek reports gaps only then).
fn cleanly(a: &TcpEndpoint) -> bool {
    a.state == St::Established || (a.state == St::Closed && a.prev_state == St::Established)
}

/// What the caller must do after a segment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SegmentOutcome {
    /// The session's roles were swapped by this segment.
    pub(crate) flipped: bool,
    /// Update the session's last-activity time (Zeek stops once both sides closed).
    pub(crate) touch: bool,
}

/// The TCP part of a session: both endpoints plus the flags Zeek keeps per connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct TcpSession {
    pub(crate) orig: TcpEndpoint,
    pub(crate) resp: TcpEndpoint,
    is_partial: bool,
    first_packet_seen_orig: bool,
    first_packet_seen_resp: bool,
    /// The close became complete (both closed, or a RST): the session lingers, then ends.
    pub(crate) close_complete: bool,
    /// One side closed while the other is still open (Zeek's expire timer applies).
    pub(crate) half_closed: bool,
    /// Evasion-relevant oddities seen so far (the reassemblers count overlap conflicts).
    anomalies: Anomalies,
}

/// Bytes of one direction, reassembled, as [`TcpSession::process`] hands them on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivery<'a> {
    /// The sender is the originator (roles as they are after this segment).
    pub(crate) from_orig: bool,
    /// This segment swapped the session's roles before the bytes were delivered.
    pub(crate) flipped: bool,
    /// Relative sequence number of the first byte (1 = the first byte after the SYN).
    pub(crate) rel_seq: u64,
    pub(crate) bytes: &'a [u8],
}

/// One TCP segment as the state machine needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment<'a> {
    pub(crate) flags: TcpFlags,
    pub(crate) seq: u32,
    pub(crate) ack: u32,
    pub(crate) window: u16,
    /// Payload length from the IP header.
    pub(crate) len: u32,
    /// The captured payload (shorter than `len` when the snaplen cut it).
    pub(crate) payload: &'a [u8],
}

impl TcpSession {
    fn endpoints(&mut self, is_orig: bool) -> (&mut TcpEndpoint, &mut TcpEndpoint) {
        if is_orig {
            (&mut self.orig, &mut self.resp)
        } else {
            (&mut self.resp, &mut self.orig)
        }
    }

    fn flip_roles(&mut self, history: &mut History) {
        std::mem::swap(&mut self.orig, &mut self.resp);
        std::mem::swap(
            &mut self.first_packet_seen_orig,
            &mut self.first_packet_seen_resp,
        );
        self.is_partial = false;
        history.flip();
    }

    /// Zeek's CheckHistory wrapper on an endpoint: flips a session that began with a lone
    /// SYN-ACK once productive traffic (ACK or data) shows up. Returns (seen_before, flipped).
    fn check_history(
        &mut self,
        history: &mut History,
        is_orig: bool,
        mark: Mark,
        letter: u8,
    ) -> (bool, bool) {
        let mut is_orig = is_orig;
        let mut flipped = false;
        if (letter == b'A' || letter == b'D') && history.as_bytes() == b"H" {
            std::mem::swap(&mut self.orig, &mut self.resp);
            std::mem::swap(
                &mut self.first_packet_seen_orig,
                &mut self.first_packet_seen_resp,
            );
            self.is_partial = false;
            history.flip();
            history.replace(b"^h");
            self.first_packet_seen_orig = true;
            is_orig = !is_orig;
            flipped = true;
        }
        (history.check(mark, letter, is_orig), flipped)
    }

    /// Keeps each direction's content, up to `limit_bytes` ahead of a hole per direction, and
    /// hands it to `process`'s and `finish_streams`' `deliver`. Call before the first segment.
    pub(crate) fn keep_content(&mut self, limit_bytes: usize) {
        self.orig.stream = StreamReassembler::new(limit_bytes);
        self.resp.stream = StreamReassembler::new(limit_bytes);
    }

    /// The session ended: delivers what each direction still holds beyond its holes. Returns
    /// the (originator, responder) stream counters.
    pub(crate) fn finish_streams(
        &mut self,
        deliver: &mut impl FnMut(Delivery<'_>),
    ) -> (StreamStats, StreamStats) {
        for from_orig in [true, false] {
            let (ep, _) = self.endpoints(from_orig);
            ep.stream.finish(&mut |rel_seq, bytes| {
                deliver(Delivery {
                    from_orig,
                    flipped: false,
                    rel_seq,
                    bytes,
                })
            });
        }
        (self.orig.stream.stats(), self.resp.stream.stats())
    }

    /// Processes one segment sent by the originator (`is_orig`) or the responder; reassembled
    /// bytes (only when [`Self::keep_content`] was called) go to `deliver`.
    pub(crate) fn process(
        &mut self,
        history: &mut History,
        mut is_orig: bool,
        seg: Segment<'_>,
        deliver: &mut impl FnMut(Delivery<'_>),
    ) -> SegmentOutcome {
        let flags = seg.flags;
        let len = seg.len;
        let mut outcome = SegmentOutcome::default();

        self.set_partial_status(flags, is_orig);
        self.note_anomalies(is_orig, &seg);

        let mut seg_len = len;
        if flags.syn() {
            seg_len = seg_len.wrapping_add(1);
        }
        if flags.fin() {
            seg_len = seg_len.wrapping_add(1);
        }
        if flags.rst() {
            seg_len = seg_len.wrapping_sub(len);
        }
        let seq_one_past = seg.seq.wrapping_add(seg_len);

        {
            let (ep, _) = self.endpoints(is_orig);
            init_endpoint(ep, flags, seg.seq, seq_one_past);
        }
        let (rel_seq, seq_underflow) = {
            let (ep, _) = self.endpoints(is_orig);
            ep.relative_seq(seg.seq, ep.last_seq, ep.seq_wraps)
        };

        // History letters for flags and data.
        if self.update_history(history, is_orig, flags, rel_seq, u64::from(len)) {
            is_orig = !is_orig;
            outcome.flipped = true;
        }

        // Zero window (W): only while the exchange is still live.
        {
            let (ep, peer) = self.endpoints(is_orig);
            if seg.window == 0
                && !flags.rst()
                && peer.state != St::Closed
                && ep.state != St::Reset
                && ep.zero_windows.bump()
            {
                history.push(b'W', is_orig);
            }
        }

        outcome.touch = !(self.orig.did_close && self.resp.did_close);

        {
            let (ep, _) = self.endpoints(is_orig);
            if flags.fin() {
                ep.fin_cnt = ep.fin_cnt.saturating_add(1);
                ep.fin_seq = rel_seq.wrapping_add(u64::from(seg_len));
            }
        }

        let mut rel_ack = 0u64;
        if flags.ack() {
            let (_, peer) = self.endpoints(is_orig);
            if peer.state == St::Inactive {
                rel_ack = 1;
                let base = seg.ack.wrapping_sub(1);
                peer.start_seq = base;
                peer.ack_seq = base;
                peer.last_seq = base;
            } else {
                let (r, underflow) = peer.relative_seq(seg.ack, peer.ack_seq, peer.ack_wraps);
                if underflow {
                    rel_ack = 0;
                } else {
                    rel_ack = r;
                    if !flags.rst() {
                        let delta = seq_delta(seg.ack, peer.ack_seq);
                        if !(seg.ack == 0 && delta > TOO_LARGE_SEQ_DELTA) && delta > 0 {
                            peer.update_ack_seq_value(seg.ack);
                        }
                    }
                }
            }
        }

        let delta_last = {
            let (ep, _) = self.endpoints(is_orig);
            let delta_last = seq_delta(seq_one_past, ep.last_seq);
            if (flags.syn() || flags.rst())
                && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta_last)
            {
                // Untrusted jump.
            } else if flags.fin() && ep.last_seq == ep.start_seq.wrapping_add(1) {
                ep.update_last_seq_value(seq_one_past);
            } else if ep.state == St::Reset {
                // Sequence numbers after a RST are not trusted.
            } else if delta_last > 0 {
                ep.update_last_seq_value(seq_one_past);
            } else if len > 0 && ep.retransmits.bump() {
                history.push(b'T', is_orig);
            }
            delta_last
        };

        let (do_close, flipped) = self.update_state_machine(history, is_orig, seg, delta_last);
        if flipped {
            is_orig = !is_orig;
            outcome.flipped = !outcome.flipped;
        }

        let flipped = outcome.flipped;
        if flags.ack() {
            let from_orig = !is_orig;
            self.ack_received(history, from_orig, rel_ack, &mut |rel_seq, bytes| {
                deliver(Delivery {
                    from_orig,
                    flipped,
                    rel_seq,
                    bytes,
                })
            });
        }

        let rel_data_seq = if flags.syn() {
            rel_seq.wrapping_add(1)
        } else {
            rel_seq
        };
        let payload = seg.payload.get(..len as usize);
        if let Some(payload) = payload.filter(|_| len > 0 && !flags.rst() && !seq_underflow) {
            let (ep, _) = self.endpoints(is_orig);
            let from_orig = is_orig;
            ep.stream
                .segment(rel_data_seq, payload, &mut |rel_seq, bytes| {
                    deliver(Delivery {
                        from_orig,
                        flipped,
                        rel_seq,
                        bytes,
                    })
                });
        }

        if do_close {
            self.connection_closed(is_orig);
        }
        outcome
    }

    /// Counts what `seg` shows an evader doing, before it changes any state.
    fn note_anomalies(&mut self, is_orig: bool, seg: &Segment<'_>) {
        let flags = seg.flags;
        let (ep, peer) = self.endpoints(is_orig);
        let mut found = Anomalies::default();
        if flags.syn() && seg.len > 0 {
            found.syn_with_data = 1;
        }
        if ep.state == St::Reset && seg.len > 0 && !flags.rst() {
            found.data_after_reset = 1;
        }
        // RFC 5961: a RST is acceptable from the receiver's next expected byte (what it last
        // acknowledged) to the end of the window it advertised.
        if flags.rst()
            && ep.state != St::Inactive
            && let Some(window) = peer.window
        {
            let delta = seq_delta(seg.seq, ep.ack_seq);
            let in_window = delta == 0 || (delta > 0 && delta.unsigned_abs() < window);
            if !in_window {
                found.rst_out_of_window = 1;
            }
        }
        if flags.ack() && !flags.rst() {
            ep.window = Some(u32::from(seg.window));
        }
        self.anomalies.add(&found);
    }

    /// What the session showed so far, the reassemblers' overlap conflicts included.
    pub(crate) fn anomalies(&self) -> Anomalies {
        let mut all = self.anomalies;
        let conflicts =
            self.orig.stream.stats().overlap_conflicts + self.resp.stream.stats().overlap_conflicts;
        all.rexmit_inconsistency = u32::try_from(conflicts).unwrap_or(u32::MAX);
        all
    }

    fn set_partial_status(&mut self, flags: TcpFlags, is_orig: bool) {
        if is_orig {
            if !self.first_packet_seen_orig {
                self.is_partial = !flags.syn() || flags.ack();
            }
        } else if !self.first_packet_seen_resp && !self.is_partial {
            self.is_partial = !flags.syn();
        }
    }

    /// Returns true when the session flipped (a lone SYN-ACK followed by traffic).
    fn update_history(
        &mut self,
        history: &mut History,
        is_orig: bool,
        flags: TcpFlags,
        rel_seq: u64,
        len: u64,
    ) -> bool {
        let bits = u8::from(flags.syn()) + u8::from(flags.fin()) + u8::from(flags.rst());
        if bits > 1 {
            if flags.fin() && flags.rst() {
                history.check(Mark::FinRst, b'I', is_orig);
            } else {
                history.check(Mark::MultiFlag, b'Q', is_orig);
            }
            return false;
        }
        if bits == 1 {
            let (ep, _) = self.endpoints(is_orig);
            if flags.syn() {
                let letter = if flags.ack() { b'H' } else { b'S' };
                let last = ep.hist_last_syn;
                ep.hist_last_syn = rel_seq;
                if history.check(Mark::Syn, letter, is_orig) && rel_seq != last {
                    history.push(letter, is_orig);
                }
            }
            if flags.fin() {
                let end = rel_seq.wrapping_add(len);
                let last = ep.hist_last_fin;
                ep.hist_last_fin = end;
                if history.check(Mark::Fin, b'F', is_orig) && end != last {
                    history.push(b'F', is_orig);
                }
            }
            if flags.rst() {
                let last = ep.hist_last_rst;
                ep.hist_last_rst = rel_seq;
                if history.check(Mark::Rst, b'R', is_orig) && rel_seq != last {
                    history.push(b'R', is_orig);
                }
            }
            return false;
        }
        if len > 0 {
            self.check_history(history, is_orig, Mark::Data, b'D').1
        } else if flags.ack() {
            self.check_history(history, is_orig, Mark::Ack, b'A').1
        } else {
            false
        }
    }

    /// Zeek's per-state transitions. Returns (do_close, flipped).
    fn update_state_machine(
        &mut self,
        history: &mut History,
        is_orig: bool,
        seg: Segment,
        delta_last: i32,
    ) -> (bool, bool) {
        let flags = seg.flags;
        let (ep_state, _) = {
            let (ep, peer) = self.endpoints(is_orig);
            (ep.state, peer.state)
        };
        match ep_state {
            St::Inactive => self.update_inactive(history, is_orig, seg),
            St::SynSent | St::SynAckSent => {
                let (ep, _) = self.endpoints(is_orig);
                let mut do_close = false;
                if flags.fin() {
                    ep.set_state(St::Closed);
                    do_close = true;
                }
                if flags.rst() {
                    ep.set_state(St::Reset);
                    do_close = true;
                }
                (do_close, false)
            }
            St::Established | St::Partial => {
                let (ep, peer) = self.endpoints(is_orig);
                let mut do_close = false;
                if flags.syn()
                    && ep.state == St::Partial
                    && peer.state == St::Inactive
                    && !flags.ack()
                {
                    ep.set_state(St::SynSent);
                }
                if flags.fin() && !flags.rst() {
                    ep.set_state(St::Closed);
                    if peer.state == St::Reset && peer.prev_state == St::Closed {
                        peer.set_state(St::Closed);
                    }
                    do_close = true;
                }
                if flags.rst() {
                    ep.set_state(St::Reset);
                    do_close = true;
                }
                (do_close, false)
            }
            St::Closed => {
                let _ = delta_last;
                let (ep, peer) = self.endpoints(is_orig);
                let mut do_close = false;
                if flags.rst() && peer.state != St::Closed {
                    ep.set_state(St::Reset);
                    if !ep.did_close {
                        do_close = true;
                    }
                }
                (do_close, false)
            }
            St::Reset => (false, false),
        }
    }

    fn update_inactive(
        &mut self,
        history: &mut History,
        is_orig: bool,
        seg: Segment,
    ) -> (bool, bool) {
        let flags = seg.flags;
        let mut do_close = false;
        let mut flipped = false;
        let mut is_orig = is_orig;
        if flags.syn() {
            if is_orig {
                let (ep, _) = self.endpoints(is_orig);
                ep.set_state(if flags.ack() {
                    St::SynAckSent
                } else {
                    St::SynSent
                });
            } else {
                let reversal = {
                    let (ep, peer) = self.endpoints(is_orig);
                    !flags.ack() && peer.state == St::SynAckSent && seg.seq == ep.start_seq
                };
                if !flags.ack() && !reversal {
                    // Zeek's simultaneous_open: the responder's SYN carries no ACK.
                    self.anomalies.simultaneous_open += 1;
                }
                if reversal {
                    // SYN and SYN-ACK seen in reverse order: the SYN's sender is the originator.
                    self.is_partial = false;
                    self.flip_roles(history);
                    is_orig = !is_orig;
                    flipped = true;
                    let (_, peer) = self.endpoints(is_orig);
                    peer.set_state(St::Established);
                    self.first_packet_seen_orig = true;
                }
                let (ep, peer) = self.endpoints(is_orig);
                if peer.state == St::SynSent {
                    peer.set_state(St::Established);
                }
                ep.set_state(St::Established);
            }
        }
        if flags.fin() {
            let (ep, _) = self.endpoints(is_orig);
            ep.set_state(St::Closed);
            do_close = true;
        }
        if flags.rst() {
            let (ep, _) = self.endpoints(is_orig);
            ep.set_state(St::Reset);
            do_close = true;
        }
        let orig_state = self.orig.state;
        let (ep, peer) = self.endpoints(is_orig);
        if ep.state == St::Inactive {
            if !is_orig && seg.len == 0 && orig_state == St::SynSent {
                // An ACK of the SYN before the SYN-ACK: not a partial connection.
            } else if flags.ack() && peer.state == St::Established {
                ep.set_state(St::Established);
                self.is_partial = false;
                if is_orig {
                    self.first_packet_seen_orig = true;
                } else {
                    self.first_packet_seen_resp = true;
                }
            } else {
                ep.set_state(St::Partial);
            }
        }
        (do_close, flipped)
    }

    /// The peer acknowledged `rel_ack` of the sender's data: bytes never seen below it are a gap.
    fn ack_received(
        &mut self,
        history: &mut History,
        sender_is_orig: bool,
        rel_ack: u64,
        deliver: &mut impl FnMut(u64, &[u8]),
    ) {
        let is_partial = self.is_partial;
        let (ep, peer) = self.endpoints(sender_is_orig);
        let mut seq = rel_ack;
        if ep.fin_cnt > 0 && seq >= ep.fin_seq {
            seq = ep.fin_seq.saturating_sub(1);
        }
        if seq <= ep.trim_seq {
            return;
        }
        if seq > ep.stream.next_seq() {
            if seq <= 2 && is_partial {
                // The first ACK of a connection seen mid-stream: nothing was really missed.
            } else {
                let report = cleanly(ep) && cleanly(peer);
                let skipped = ep.stream.ack(seq, deliver);
                if report {
                    ep.missed_bytes = ep.missed_bytes.saturating_add(skipped.bytes);
                    for _ in 0..skipped.holes {
                        if ep.gaps.bump() {
                            history.push(b'G', sender_is_orig);
                        }
                    }
                }
            }
        }
        ep.trim_seq = seq;
    }

    fn connection_closed(&mut self, is_orig: bool) {
        let (ep, peer) = self.endpoints(is_orig);
        if ep.did_close {
            return;
        }
        ep.did_close = true;
        let complete = ep.state == St::Reset || peer.did_close || peer.state == St::Inactive;
        if complete {
            self.close_complete = true;
        } else if ep.prev_state != St::Inactive {
            self.half_closed = true;
        }
    }

    /// A segment with a bad checksum: Zeek records C/c (at 1, 10, 100...) and ignores it.
    pub(crate) fn checksum_error(&mut self, history: &mut History, is_orig: bool) {
        let (ep, _) = self.endpoints(is_orig);
        if ep.checksum_errors.bump() {
            history.push(b'C', is_orig);
        }
    }

    /// Whether a session expire check (Zeek's ExpireTimer) would remove the session now.
    pub(crate) fn expire_check_removes(&self) -> bool {
        (self.orig.did_close || self.resp.did_close)
            && ((self.orig.did_close && self.resp.did_close)
                || self.orig.state == St::Reset
                || self.resp.state == St::Reset
                || self.orig.state == St::Inactive
                || self.resp.state == St::Inactive)
    }

    /// A connection attempt that got no answer (Zeek's attempt timer removes it after 5 s).
    pub(crate) fn is_unanswered_attempt(&self) -> bool {
        matches!(self.orig.state, St::SynSent | St::SynAckSent) && self.resp.state == St::Inactive
    }

    /// Whether a SYN without ACK from the responder (`from_orig` false) meets the originator's
    /// unanswered SYN: both sides opening at once. Zeek then starts a new session (its
    /// SYN_seq_jump); the old one records the simultaneous open.
    pub(crate) fn is_simultaneous_open(&self, flags: TcpFlags, from_orig: bool) -> bool {
        flags.syn() && !flags.ack() && !from_orig && self.orig.state == St::SynSent
    }

    /// Counts a simultaneous open seen by the tracker (see [`Self::is_simultaneous_open`]).
    pub(crate) fn note_simultaneous_open(&mut self) {
        self.anomalies.simultaneous_open = self.anomalies.simultaneous_open.saturating_add(1);
    }

    /// Zeek's rule for a SYN that arrives on an existing session: does it start a new one?
    pub(crate) fn is_reuse(&self, flags: TcpFlags, seq: u32, closed: bool) -> bool {
        if !flags.syn() {
            return false;
        }
        let conn_orig = if flags.ack() {
            if self.orig.state != St::Inactive {
                return false;
            }
            &self.resp
        } else {
            &self.orig
        };
        if !closed {
            if seq == conn_orig.start_seq {
                return false;
            }
            if !flags.ack()
                && conn_orig.state == St::SynAckSent
                && self.resp.state == St::Inactive
                && seq == self.resp.start_seq
            {
                return false;
            }
        }
        true
    }

    pub(crate) fn conn_state(&self, history: &History) -> ConnState {
        let os = self.orig.state;
        let rs = self.resp.state;
        let o_inactive = matches!(os, St::Inactive | St::Partial);
        let r_inactive = matches!(rs, St::Inactive | St::Partial);
        if rs == St::Reset {
            if matches!(os, St::SynSent | St::SynAckSent)
                || (os == St::Reset && self.orig.size(rs) == 0 && self.resp.size(os) == 0)
            {
                ConnState::REJ
            } else if o_inactive {
                ConnState::RSTRH
            } else {
                ConnState::RSTR
            }
        } else if os == St::Reset {
            if r_inactive {
                if rstos0_history(history.as_str()) {
                    ConnState::RSTOS0
                } else {
                    ConnState::OTH
                }
            } else {
                ConnState::RSTO
            }
        } else if rs == St::Closed && os == St::Closed {
            ConnState::SF
        } else if os == St::Closed {
            if r_inactive {
                ConnState::SH
            } else {
                ConnState::S2
            }
        } else if rs == St::Closed {
            if o_inactive {
                ConnState::SHR
            } else {
                ConnState::S3
            }
        } else if os == St::SynSent && rs == St::Inactive {
            ConnState::S0
        } else if os == St::Established && rs == St::Established {
            ConnState::S1
        } else {
            ConnState::OTH
        }
    }
}

/// Zeek's `/\^?S[^HAFGIQ]*R.*/` test for RSTOS0.
fn rstos0_history(history: &str) -> bool {
    let rest = history.strip_prefix('^').unwrap_or(history);
    let Some(rest) = rest.strip_prefix('S') else {
        return false;
    };
    for c in rest.chars() {
        match c {
            'R' => return true,
            'H' | 'A' | 'F' | 'G' | 'I' | 'Q' => return false,
            _ => {}
        }
    }
    false
}

/// Zeek's init_endpoint: sets up sequence numbers on an endpoint's first segment (or a new SYN).
fn init_endpoint(ep: &mut TcpEndpoint, flags: TcpFlags, seq: u32, seq_one_past: u32) {
    match ep.state {
        St::Inactive => {
            if flags.syn() {
                ep.init_seqs(seq, seq_one_past);
            } else {
                // Mid-stream: pretend a SYN came just before, so relative numbers start at 1.
                ep.init_seqs(seq.wrapping_sub(1), seq);
            }
        }
        St::SynSent | St::SynAckSent => {
            if flags.syn() && seq != ep.start_seq {
                ep.init_seqs(seq, seq_one_past);
            }
        }
        St::Established | St::Partial => {
            if flags.syn() {
                ep.init_seqs(seq, seq_one_past);
            }
        }
        St::Reset => {
            if flags.syn() && ep.prev_state == St::Inactive {
                ep.init_seqs(seq, seq_one_past);
            }
        }
        St::Closed => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static PAYLOAD: [u8; 256] = [0; 256];

    fn seg(flags: u8, seq: u32, ack: u32, len: u32) -> Segment<'static> {
        Segment {
            flags: TcpFlags(flags),
            seq,
            ack,
            window: 1000,
            len,
            payload: &PAYLOAD[..len as usize],
        }
    }
    const S: u8 = TcpFlags::SYN;
    const A: u8 = TcpFlags::ACK;
    const F: u8 = TcpFlags::FIN;
    const R: u8 = TcpFlags::RST;
    const P: u8 = TcpFlags::PSH;

    fn run(segments: &[(bool, Segment<'static>)]) -> (TcpSession, History) {
        let mut tcp = TcpSession::default();
        let mut h = History::default();
        let mut orig_is_first = true;
        for &(from_first, s) in segments {
            let out = tcp.process(&mut h, from_first == orig_is_first, s, &mut |_| {});
            if out.flipped {
                orig_is_first = !orig_is_first;
            }
        }
        (tcp, h)
    }

    #[test]
    fn full_exchange_is_sf_with_sizes() {
        let (tcp, h) = run(&[
            (true, seg(S, 100, 0, 0)),
            (false, seg(S | A, 500, 101, 0)),
            (true, seg(A, 101, 501, 0)),
            (true, seg(A | P, 101, 501, 10)),
            (false, seg(A | P, 501, 111, 20)),
            (true, seg(F | A, 111, 521, 0)),
            (false, seg(F | A, 521, 112, 0)),
            (true, seg(A, 112, 522, 0)),
        ]);
        // The responder only ever sent data with its ACKs, so no lone 'a'.
        assert_eq!(h.as_str(), "ShADdFf");
        assert_eq!(tcp.conn_state(&h), ConnState::SF);
        assert_eq!(tcp.orig.size(tcp.resp.state), 10);
        assert_eq!(tcp.resp.size(tcp.orig.state), 20);
        assert!(tcp.close_complete);
    }

    #[test]
    fn refused_is_rej() {
        let (tcp, h) = run(&[(true, seg(S, 100, 0, 0)), (false, seg(R | A, 0, 101, 0))]);
        assert_eq!(h.as_str(), "Sr");
        assert_eq!(tcp.conn_state(&h), ConnState::REJ);
    }

    #[test]
    fn unanswered_syn_is_s0() {
        let (tcp, h) = run(&[(true, seg(S, 100, 0, 0)), (true, seg(S, 100, 0, 0))]);
        assert_eq!(h.as_str(), "S");
        assert_eq!(tcp.conn_state(&h), ConnState::S0);
        assert!(tcp.is_unanswered_attempt());
    }

    #[test]
    fn originator_abort_is_rsto() {
        let (tcp, h) = run(&[
            (true, seg(S, 100, 0, 0)),
            (false, seg(S | A, 500, 101, 0)),
            (true, seg(A, 101, 501, 0)),
            (true, seg(R | A, 101, 501, 0)),
        ]);
        assert_eq!(h.as_str(), "ShAR");
        assert_eq!(tcp.conn_state(&h), ConnState::RSTO);
    }

    #[test]
    fn syn_then_rst_is_rstos0() {
        let (tcp, h) = run(&[(true, seg(S, 100, 0, 0)), (true, seg(R, 101, 0, 0))]);
        assert_eq!(h.as_str(), "SR");
        assert_eq!(tcp.conn_state(&h), ConnState::RSTOS0);
    }

    #[test]
    fn midstream_data_is_oth_then_s1_like() {
        let (tcp, h) = run(&[
            (true, seg(A | P, 1000, 2000, 50)),
            (false, seg(A | P, 2000, 1050, 60)),
        ]);
        assert_eq!(h.as_str(), "Dd");
        assert_eq!(tcp.conn_state(&h), ConnState::OTH);
        assert_eq!(tcp.orig.size(tcp.resp.state), 50);
    }

    #[test]
    fn lone_syn_ack_followed_by_ack_flips() {
        // Capture missed the SYN: first packet is the server's SYN-ACK.
        let (tcp, h) = run(&[
            (true, seg(S | A, 500, 101, 0)),
            (false, seg(A, 101, 501, 0)),
        ]);
        assert_eq!(h.as_str(), "^hA");
        // The SYN-ACK sender never completed a handshake that Zeek saw: OTH.
        assert_eq!(tcp.conn_state(&h), ConnState::OTH);
    }

    #[test]
    fn retransmission_and_gap_letters() {
        let (tcp, h) = run(&[
            (true, seg(S, 100, 0, 0)),
            (false, seg(S | A, 500, 101, 0)),
            (true, seg(A, 101, 501, 0)),
            (true, seg(A, 101, 501, 10)),
            (true, seg(A, 101, 501, 10)),
            // 10 bytes at 111 never seen; the peer acks through 131.
            (true, seg(A, 121, 501, 10)),
            (false, seg(A, 501, 131, 0)),
        ]);
        assert_eq!(h.as_str(), "ShADTaG");
        assert_eq!(tcp.orig.missed_bytes, 10);
    }

    #[test]
    fn sequence_wraparound_sizes() {
        let isn = u32::MAX - 5;
        let (tcp, h) = run(&[
            (true, seg(S, isn, 0, 0)),
            (false, seg(S | A, 7, isn.wrapping_add(1), 0)),
            (true, seg(A, isn.wrapping_add(1), 8, 100)),
            (false, seg(A, 8, isn.wrapping_add(101), 0)),
        ]);
        assert_eq!(h.as_str(), "ShDa");
        assert_eq!(tcp.orig.size(tcp.resp.state), 100);
        assert_eq!(tcp.orig.missed_bytes, 0);
    }

    #[test]
    fn rstos0_pattern() {
        assert!(rstos0_history("SR"));
        assert!(rstos0_history("^STR"));
        assert!(!rstos0_history("SAR"));
        assert!(!rstos0_history("R"));
    }
}
