//! Zeek's connection history: one letter per kind of event, uppercase for the originator and
//! lowercase for the responder, in the order first seen.
//!
//! Letters (Zeek's definitions): S SYN, H SYN-ACK, A pure ACK, D payload, F FIN, R RST,
//! C bad checksum, G content gap, T retransmission, W zero window, I FIN+RST, Q other multi-flag
//! packet, ^ the roles were flipped. S, F and R repeat when seen again at a new sequence number;
//! C, G, T and W repeat at 1, 10, 100... occurrences.

/// A fixed-capacity history string (no allocation); letters beyond the capacity are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    letters: [u8; Self::CAPACITY],
    len: u8,
    /// Bits of the letters already seen (originator in the low 16 bits, responder in the high).
    seen: u32,
}

impl Default for History {
    fn default() -> Self {
        History {
            letters: [0; Self::CAPACITY],
            len: 0,
            seen: 0,
        }
    }
}

/// The once-per-direction letter kinds and their bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    Syn = 0x1,
    Fin = 0x2,
    Rst = 0x4,
    FinRst = 0x8,
    Data = 0x10,
    Ack = 0x20,
    MultiFlag = 0x40,
    Corrupt = 0x80,
}

impl History {
    const CAPACITY: usize = 40;

    pub fn as_str(&self) -> &str {
        // Only ASCII letters and '^' are ever pushed.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The letters as bytes (no UTF-8 check: for comparisons on the per-packet path).
    pub fn as_bytes(&self) -> &[u8] {
        self.letters.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a letter, upper case for the originator.
    pub(crate) fn push(&mut self, letter: u8, is_orig: bool) {
        let letter = if is_orig {
            letter.to_ascii_uppercase()
        } else {
            letter.to_ascii_lowercase()
        };
        self.push_raw(letter);
    }

    pub(crate) fn push_raw(&mut self, letter: u8) {
        if let Some(slot) = self.letters.get_mut(usize::from(self.len)) {
            *slot = letter;
            self.len += 1;
        }
    }

    /// Adds the letter the first time its kind is seen in this direction. Returns true when the
    /// kind had been seen before (Zeek's `CheckHistory`).
    pub(crate) fn check(&mut self, mark: Mark, letter: u8, is_orig: bool) -> bool {
        let bit = if is_orig {
            mark as u32
        } else {
            (mark as u32) << 16
        };
        if self.seen & bit != 0 {
            return true;
        }
        self.seen |= bit;
        self.push(letter, is_orig);
        false
    }

    /// The roles were swapped: swap which direction each seen-bit belongs to and record '^'.
    pub(crate) fn flip(&mut self) {
        self.seen = self.seen.rotate_left(16);
        self.push_raw(b'^');
    }

    /// Records '^' for roles swapped after the letters so far, which keep the directions they
    /// were written for (Zeek's `FlipRoles` from a UDP analyser: `D^` for an NTP exchange whose
    /// server reply came first).
    pub(crate) fn note_flip(&mut self) {
        self.push_raw(b'^');
    }

    /// Replaces the whole history (Zeek's flip of a connection that began with a SYN-ACK).
    pub(crate) fn replace(&mut self, letters: &[u8]) {
        self.len = 0;
        for &l in letters {
            self.push_raw(l);
        }
    }
}

/// A letter that repeats at 1, 10, 100... occurrences (Zeek's scaled history entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScaledCounter {
    count: u32,
    threshold: u32,
}

impl Default for ScaledCounter {
    fn default() -> Self {
        ScaledCounter {
            count: 0,
            threshold: 1,
        }
    }
}

impl ScaledCounter {
    /// Counts one occurrence; true when the letter should be recorded.
    pub(crate) fn bump(&mut self) -> bool {
        self.count = self.count.saturating_add(1);
        if self.count == self.threshold {
            self.threshold = self.threshold.saturating_mul(10);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_cased_by_direction_and_recorded_once() {
        let mut h = History::default();
        assert!(!h.check(Mark::Syn, b'S', true));
        assert!(!h.check(Mark::Syn, b'H', false));
        assert!(!h.check(Mark::Ack, b'A', true));
        assert!(h.check(Mark::Ack, b'A', true));
        assert_eq!(h.as_str(), "ShA");
    }

    #[test]
    fn flip_moves_seen_bits_to_the_other_side() {
        let mut h = History::default();
        h.check(Mark::Data, b'D', true);
        h.flip();
        // The data mark now belongs to the responder: the originator may record 'D' again.
        assert!(!h.check(Mark::Data, b'D', true));
        assert!(h.check(Mark::Data, b'd', false));
        assert_eq!(h.as_str(), "D^D");
    }

    #[test]
    fn scaled_letters_repeat_at_powers_of_ten() {
        let mut c = ScaledCounter::default();
        let hits: Vec<u32> = (1..=1000)
            .filter(|_| c.bump())
            .collect::<Vec<_>>()
            .into_iter()
            .collect();
        assert_eq!(hits.len(), 4);
    }

    #[test]
    fn capacity_is_respected() {
        let mut h = History::default();
        for _ in 0..100 {
            h.push_raw(b'T');
        }
        assert_eq!(h.as_str().len(), History::CAPACITY);
    }
}
