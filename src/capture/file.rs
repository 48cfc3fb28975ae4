//! pcap and pcapng files read in a streaming pass with pcap-parser.
// STUB: the capture helper replaces this file.

use super::RawPacket;
use std::io::Read;
use std::path::Path;

/// Why reading a capture stopped. Every variant names the file; the Display text is what the
/// user sees.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{file}: cannot open: {source}")]
    Open {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// Streams packets out of one pcap or pcapng file (or a pipe).
pub struct CaptureReader {
    name: String,
}

impl CaptureReader {
    /// Opens a capture by path; `-` reads standard input.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        Ok(CaptureReader {
            name: path.display().to_string(),
        })
    }

    /// Reads a capture from any byte stream; `name` is used in errors.
    pub fn from_reader(name: String, _reader: Box<dyn Read + Send>) -> Result<Self, CaptureError> {
        Ok(CaptureReader { name })
    }

    /// The file name used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes consumed from the file so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        0
    }

    /// The file's size when it is a regular file.
    pub fn total_bytes(&self) -> Option<u64> {
        None
    }

    /// The next packet, `Ok(None)` at a clean end of file. The packet borrows the reader's
    /// buffer until the next call.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        Ok(None)
    }
}
