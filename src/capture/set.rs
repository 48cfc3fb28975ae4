//! Capture sets: which files make one capture, and in which order they are read.
//!
//! Owns turning the command line's inputs (files, directories, glob patterns) into one ordered
//! list of capture files. A directory (or a glob match) contributes the regular files directly
//! in it whose first four bytes are a pcap or pcapng magic number, whatever their names
//! (`trace.pcap0`, `x.pcap.1`, `dump-2026...`); other files are skipped and counted. A file
//! named on the command line is always kept, so that a file that is not a capture is reported
//! as such by the reader. Promises: files are ordered by their first packet's time (read from
//! each file's first record only), ties by name, never by name alone; files without a readable
//! first packet (pipes are never peeked at) come last, in the order given; the same file
//! reached twice is read once; glob patterns are expanded here, so a quoted pattern works
//! without a shell, with no recursion and no backtracking blow-up.

use super::{CaptureReader, Timestamp};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// One file of a capture set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetFile {
    pub path: PathBuf,
    /// The time of the file's first packet record; `None` when the set has one file only, for
    /// anything but a regular file (standard input, a pipe), an empty file or one whose first
    /// packet cannot be read (the reader reports why).
    pub first_ts: Option<Timestamp>,
}

/// The files of a capture set, in the order they are read, and what was left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureSet {
    pub files: Vec<SetFile>,
    /// Regular files found in directories or by globs that are not captures (by magic number).
    pub skipped_files: u64,
    /// Directories and glob patterns among the inputs.
    pub directories: u64,
    pub patterns: u64,
}

impl CaptureSet {
    /// The paths, in reading order.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }
}

/// Why the inputs do not make a capture set.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("{dir}: cannot list the directory: {source}")]
    ListDirectory {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{dir}: no capture files in this directory (files that are not pcap or pcapng: {skipped})"
    )]
    NoCaptureInDirectory { dir: String, skipped: u64 },
    #[error(
        "{pattern}: no capture file matches this pattern (files that are not pcap or pcapng: {skipped})"
    )]
    NoMatch { pattern: String, skipped: u64 },
    #[error("{pattern}: bad pattern: {detail}")]
    BadPattern {
        pattern: String,
        detail: &'static str,
    },
}

/// Expands `inputs` (files, directories, glob patterns, `-` for standard input) into one
/// capture set ordered by first packet time; see the module documentation.
pub fn expand(inputs: &[PathBuf]) -> Result<CaptureSet, SetError> {
    let mut set = CaptureSet::default();
    let mut paths: Vec<PathBuf> = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" || input.is_file() {
            paths.push(input.clone());
        } else if input.is_dir() {
            set.directories += 1;
            let found = captures_in_directory(input, &mut set.skipped_files)?;
            if found.is_empty() {
                return Err(SetError::NoCaptureInDirectory {
                    dir: input.display().to_string(),
                    skipped: set.skipped_files,
                });
            }
            paths.extend(found);
        } else if has_wildcard(input) {
            set.patterns += 1;
            let skipped_before = set.skipped_files;
            let mut found = Vec::new();
            for path in glob(input)? {
                if path.is_dir() {
                    found.extend(captures_in_directory(&path, &mut set.skipped_files)?);
                } else if !path.is_file() {
                    // A pipe or device: opening it to look could block or eat its data.
                    continue;
                } else if is_capture_file(&path) {
                    found.push(path);
                } else {
                    set.skipped_files += 1;
                }
            }
            if found.is_empty() {
                return Err(SetError::NoMatch {
                    pattern: input.display().to_string(),
                    skipped: set.skipped_files - skipped_before,
                });
            }
            paths.extend(found);
        } else {
            // Missing or unreadable: the reader names the file and the reason.
            paths.push(input.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    // One file needs no ordering: do not open it twice.
    let several = paths.len() > 1;
    set.files = paths
        .into_iter()
        .map(|path| SetFile {
            first_ts: if several {
                first_packet_time(&path)
            } else {
                None
            },
            path,
        })
        .collect();
    order(&mut set.files);
    Ok(set)
}

/// Orders files by first packet time, ties by path; files without a known time go last, in
/// the order given.
pub fn order(files: &mut [SetFile]) {
    files.sort_by(|a, b| match (a.first_ts, b.first_ts) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.path.cmp(&b.path)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}

/// The time of the first packet record of the capture file at `path`. `None` for anything but
/// a regular file: a pipe (`-`, `<(tcpdump ...)`) cannot be peeked at without losing what was
/// read.
pub fn first_packet_time(path: &Path) -> Option<Timestamp> {
    if path.as_os_str() == "-" || !path.is_file() {
        return None;
    }
    let mut reader = CaptureReader::open(path).ok()?;
    let packet = reader.next_packet().ok()??;
    Some(packet.ts)
}

/// True when the first four bytes are a magic number the reader accepts (pcap in either byte
/// order and timestamp resolution, or a pcapng section header).
pub fn is_capture_magic(magic: [u8; 4]) -> bool {
    matches!(
        u32::from_le_bytes(magic),
        0xa1b2_c3d4 | 0xa1b2_3c4d | 0xa1b2_cd34 | 0xd4c3_b2a1 | 0x4d3c_b2a1 | 0x0a0d_0d0a
    )
}

/// True when `path` is a regular file that starts with a capture magic number.
pub fn is_capture_file(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .is_ok()
        && is_capture_magic(magic)
}

/// The capture files directly in `dir` (not in its subdirectories); non-captures are counted.
fn captures_in_directory(dir: &Path, skipped: &mut u64) -> Result<Vec<PathBuf>, SetError> {
    let list_error = |source| SetError::ListDirectory {
        dir: dir.display().to_string(),
        source,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let path = entry.map_err(list_error)?.path();
        if !path.is_file() {
            continue;
        }
        if is_capture_file(&path) {
            found.push(path);
        } else {
            *skipped += 1;
        }
    }
    Ok(found)
}

/// True when the path holds `*`, `?` or `[` (and is not an existing file: checked by callers).
pub fn has_wildcard(path: &Path) -> bool {
    path.to_string_lossy().contains(['*', '?', '['])
}

/// The existing paths matching `pattern`, sorted. Wildcards may appear in any component;
/// `*` and `?` do not match a leading `.` (as in a shell), and never cross a `/`.
pub fn glob(pattern: &Path) -> Result<Vec<PathBuf>, SetError> {
    let bad = |detail| SetError::BadPattern {
        pattern: pattern.display().to_string(),
        detail,
    };
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    for component in pattern.components() {
        let Component::Normal(part) = component else {
            for path in &mut current {
                path.push(component.as_os_str());
            }
            continue;
        };
        let part = part.to_string_lossy();
        if !part.contains(['*', '?', '[']) {
            for path in &mut current {
                path.push(part.as_ref());
            }
            continue;
        }
        let matcher = Pattern::parse(&part).ok_or_else(|| bad("unclosed `[`"))?;
        let mut next = Vec::new();
        for dir in &current {
            let listing = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = std::fs::read_dir(listing) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name();
                if matcher.matches(&name.to_string_lossy()) {
                    next.push(dir.join(&name));
                }
            }
        }
        current = next;
    }
    current.retain(|p| !p.as_os_str().is_empty() && p.exists());
    current.sort();
    Ok(current)
}

/// One path component's wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
    /// `[...]`: ranges (single characters as `(c, c)`), negated with a leading `!` or `^`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// `None` when a `[` is never closed.
    fn parse(text: &str) -> Option<Pattern> {
        let chars: Vec<char> = text.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            i += 1;
            let token = match c {
                '*' => Token::AnyRun,
                '?' => Token::AnyOne,
                '[' => {
                    let negated = matches!(chars.get(i), Some('!' | '^'));
                    if negated {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let &start = chars.get(i)?;
                        // A `]` right after `[` (or `[!`) is a member, as in a shell.
                        if start == ']' && !first {
                            i += 1;
                            break;
                        }
                        first = false;
                        if chars.get(i + 1) == Some(&'-')
                            && let Some(&end) = chars.get(i + 2)
                            && end != ']'
                        {
                            ranges.push((start, end));
                            i += 3;
                        } else {
                            ranges.push((start, start));
                            i += 1;
                        }
                    }
                    Token::Class { negated, ranges }
                }
                other => Token::Literal(other),
            };
            tokens.push(token);
        }
        Some(Pattern { tokens })
    }

    fn token_matches(token: &Token, c: char) -> bool {
        match token {
            Token::Literal(l) => *l == c,
            Token::AnyOne | Token::AnyRun => true,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }

    /// Whole-name match; the classic single-backtrack algorithm: O(pattern x name) at worst.
    fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        if name.first() == Some(&'.') && self.tokens.first() != Some(&Token::Literal('.')) {
            return false;
        }
        let (mut p, mut n) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match (self.tokens.get(p), name.get(n)) {
                (Some(Token::AnyRun), _) => {
                    star = Some((p, n));
                    p += 1;
                }
                (Some(token), Some(&c)) if Self::token_matches(token, c) => {
                    p += 1;
                    n += 1;
                }
                _ => match star {
                    Some((star_p, star_n)) => {
                        p = star_p + 1;
                        n = star_n + 1;
                        star = Some((star_p, star_n + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens
            .get(p..)
            .is_some_and(|rest| rest.iter().all(|t| *t == Token::AnyRun))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(name)
    }

    #[test]
    fn wildcards_match_as_in_a_shell() {
        assert!(matches("*.pcap", "a.pcap"));
        assert!(!matches("*.pcap", ".pcap"));
        assert!(!matches("*.pcap", "a.pcap.1"));
        assert!(matches("*.pcap*", "a.pcap.1"));
        assert!(matches("trace.pcap?", "trace.pcap0"));
        assert!(!matches("trace.pcap?", "trace.pcap"));
        assert!(matches("dump-[0-9]*", "dump-2026"));
        assert!(!matches("dump-[!0-9]*", "dump-2026"));
        assert!(matches("dump-[^0-9]*", "dump-x"));
        assert!(matches("[]a]", "]"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("*", "anything"));
        assert!(!matches("*", ".hidden"));
        assert!(matches(".*", ".hidden"));
        assert!(matches("é?", "éü"));
        assert!(Pattern::parse("[ab").is_none());
    }

    #[test]
    fn many_stars_stay_fast() {
        let pattern = "*a*a*a*a*a*a*a*a*a*a*b";
        let name = "a".repeat(200);
        assert!(!matches(pattern, &name));
    }

    #[test]
    fn magic_numbers_of_pcap_and_pcapng() {
        assert!(is_capture_magic([0xd4, 0xc3, 0xb2, 0xa1])); // little-endian, microseconds
        assert!(is_capture_magic([0xa1, 0xb2, 0xc3, 0xd4])); // big-endian
        assert!(is_capture_magic([0x4d, 0x3c, 0xb2, 0xa1])); // nanoseconds
        assert!(is_capture_magic([0x0a, 0x0d, 0x0d, 0x0a])); // pcapng section header
        assert!(!is_capture_magic([0x1f, 0x8b, 0x08, 0x00])); // gzip
        assert!(!is_capture_magic(*b"# RE"));
    }

    #[test]
    fn order_is_by_first_packet_then_name() {
        let file = |name: &str, secs: Option<i64>| SetFile {
            path: PathBuf::from(name),
            first_ts: secs.map(|s| Timestamp::from_secs_nanos(s, 0)),
        };
        let mut files = vec![
            file("a", Some(30)),
            file("b", None),
            file("c", Some(10)),
            file("d", Some(20)),
            file("e", Some(10)),
            file("-", None),
        ];
        order(&mut files);
        let names: Vec<_> = files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(names, ["c", "e", "d", "a", "b", "-"]);
    }
}
