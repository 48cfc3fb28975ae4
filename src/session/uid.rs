//! Stable session uids. STUB.

/// A session's uid: Zeek's shape ('C' and base62), derived from the session's first packet so
/// that the same capture always gives the same uids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Uid {
    text: [u8; 18],
    len: u8,
}

impl Uid {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.text.get(..usize::from(self.len)).unwrap_or(&[])).unwrap_or("")
    }
}
