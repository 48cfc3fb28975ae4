//! Zeek's history string. STUB.

/// Zeek's history letters for one session (uppercase: originator, lowercase: responder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    letters: [u8; 32],
    len: u8,
}

impl History {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.letters.get(..usize::from(self.len)).unwrap_or(&[])).unwrap_or("")
    }
}
