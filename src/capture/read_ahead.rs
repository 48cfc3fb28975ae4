//! Reading a capture file ahead of its parser, with direct I/O where the file system allows it.
//!
//! Owns the blocks a file is read into and the thread that fills them. With `O_DIRECT` the
//! disk's DMA writes the file straight into aligned blocks that the parser reads in place, so
//! no CPU copies the file out of the page cache (that copy was a fifth of one analysis
//! thread's time on the benchmark capture). The thread only waits for the disk: it parses
//! nothing and spends next to no CPU. Where direct I/O is refused (a file system without it,
//! a read the kernel will not align) the same thread goes on with ordinary reads from the
//! offset it reached. Promises: at most [`BLOCKS`] blocks exist per file, a read error arrives
//! in order after the bytes before it, and dropping the [`ReadAhead`] stops the thread.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes read into one block (one read call, or a few at the file's end). Every block is
/// memory a run faults in, and on the benchmark machine fresh memory costs more than the
/// reads: 2 MiB blocks take max RSS 12 MB below 4 MiB ones and are no slower, 1 MiB ones no
/// faster (docs/performance.md, "thirteenth session"). Unit tests use small blocks so that a
/// test file has hundreds of boundaries for records to straddle.
pub(crate) const BLOCK_BYTES: usize = if cfg!(test) { 64 << 10 } else { 2 << 20 };

/// Room before a block's data for the unconsumed tail of the block before it, so that a
/// record cut by a block boundary is made whole by copying the tail (a packet or two), never
/// the block.
pub(crate) const HEADROOM: usize = if cfg!(test) { 8 << 10 } else { 256 << 10 };

/// Direct I/O wants buffers, offsets and lengths aligned to the device's logical block size;
/// 4096 is a multiple of every common one.
const ALIGN: usize = 4096;

/// Blocks per file in all: the one being parsed and those read ahead of it.
pub(crate) const BLOCKS: usize = 4;

/// Files smaller than this are read the ordinary way: a thread and 9 MiB of blocks would
/// cost more than the copy they save.
pub(crate) const MIN_FILE_BYTES: u64 = if cfg!(test) { 64 << 10 } else { 8 << 20 };

/// A parser that waits this long for one block (it takes a few milliseconds to parse one) is
/// held up by the disk. The next blocks are then read through the page cache, which copies a
/// file it holds from memory (and reads one it does not hold at the disk's speed, as direct
/// reads do): [`FIRST_SPELL_BLOCKS`] of them the first time, twice as many each time after,
/// up to [`MAX_SPELL_BLOCKS`]; then direct reads are tried again. On the benchmark machine's
/// disk the waits stay below 5 ms but for the first block.
const SLOW_DISK_WAIT: Duration = Duration::from_millis(10);

/// See [`SLOW_DISK_WAIT`].
const FIRST_SPELL_BLOCKS: u32 = 16;
const MAX_SPELL_BLOCKS: u32 = 1024;

/// Reads interrupted by signals retried in a row before giving up.
const MAX_INTERRUPTED_READS: u32 = 64;

/// Block buffers that files read to their end no longer need, for the next file's read-ahead:
/// a set of files then allocates two files' blocks in all, not four fresh ones per file (each
/// thread has its own allocator arena, so the blocks one file's thread freed were not reused by
/// the next, and every file's blocks were faulted in and zeroed anew). At most
/// [`SPARE_BUFFERS_KEPT`] are kept.
static SPARE_BUFFERS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Two files' blocks: the one being parsed and the next one read ahead.
const SPARE_BUFFERS_KEPT: usize = 2 * BLOCKS;

/// A block buffer left by an earlier file, if any.
fn spare_buffer() -> Option<Vec<u8>> {
    SPARE_BUFFERS.lock().ok()?.pop()
}

/// Keeps a block buffer for a later file (other buffers, and those beyond the cap, are dropped).
pub(crate) fn keep_spare(buf: Vec<u8>) {
    if buf.len() != Block::BUFFER_BYTES {
        return;
    }
    if let Ok(mut spare) = SPARE_BUFFERS.lock()
        && spare.len() < SPARE_BUFFERS_KEPT
    {
        spare.push(buf);
    }
}

/// One block: a buffer with [`HEADROOM`] bytes before its aligned data.
pub(crate) struct Block {
    pub(crate) buf: Vec<u8>,
    /// Where the data starts in `buf` (aligned, with the headroom before it).
    pub(crate) data_at: usize,
    /// Bytes of data read.
    pub(crate) len: usize,
}

impl Block {
    /// The size of every block's buffer: a buffer of this size is a block (see [`Block::reuse`]).
    pub(crate) const BUFFER_BYTES: usize = HEADROOM + BLOCK_BYTES + ALIGN;

    fn new() -> Block {
        Block::reuse(vec![0; Block::BUFFER_BYTES])
    }

    /// Makes `buf` (of [`Block::BUFFER_BYTES`]) a block again.
    pub(crate) fn reuse(buf: Vec<u8>) -> Block {
        // The first aligned byte; an allocator that gave no alignment at all would only make
        // the direct read fail, and the ordinary reads take over.
        let align = buf.as_ptr().align_offset(ALIGN);
        let align = if align < ALIGN { align } else { 0 };
        Block {
            buf,
            data_at: align + HEADROOM,
            len: 0,
        }
    }
}

/// What the reading thread hands over: a block of data, or the error that stopped it.
enum Filled {
    Data(Block),
    Failed { offset: u64, error: io::Error },
}

/// A file being read ahead on its own thread.
pub(crate) struct ReadAhead {
    filled: Receiver<Filled>,
    spare: SyncSender<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
    /// The end of the file or an error was handed over: nothing more will come.
    ended: bool,
    /// Tells the thread the parser waited long (see [`SLOW_DISK_WAIT`]).
    parser_waited: Arc<AtomicBool>,
    /// The thread has read the whole file (or failed): what is left is in the queue.
    done: Arc<AtomicBool>,
    /// Bytes handed over so far.
    bytes_taken: u64,
}

/// Why the next bytes could not be had.
pub(crate) struct ReadFailure {
    pub(crate) offset: u64,
    pub(crate) error: io::Error,
}

impl ReadAhead {
    /// Starts reading `path` (already opened as `file`, ordinary I/O) on a thread of its own,
    /// with direct I/O when the system offers it. `None` when the thread cannot be started.
    pub(crate) fn start(path: &Path, file: File) -> Option<ReadAhead> {
        let direct = open_direct(path);
        let (filled_tx, filled_rx) = mpsc::sync_channel(BLOCKS);
        let (spare_tx, spare_rx) = mpsc::sync_channel(BLOCKS);
        let parser_waited = Arc::new(AtomicBool::new(false));
        let waited = Arc::clone(&parser_waited);
        let done = Arc::new(AtomicBool::new(false));
        let done_here = Arc::clone(&done);
        let thread = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || {
                let reader = Reader {
                    buffered: file,
                    direct,
                    offset: 0,
                    made: 0,
                    parser_waited: waited,
                    done: done_here,
                    buffered_spell: 0,
                    next_spell: FIRST_SPELL_BLOCKS,
                };
                reader.run(&filled_tx, &spare_rx);
                while let Ok(buf) = spare_rx.try_recv() {
                    keep_spare(buf);
                }
            })
            .ok()?;
        Some(ReadAhead {
            filled: filled_rx,
            spare: spare_tx,
            thread: Some(thread),
            ended: false,
            parser_waited,
            done,
            bytes_taken: 0,
        })
    }

    /// The next block, `Ok(None)` at the end of the file.
    pub(crate) fn next_block(&mut self) -> Result<Option<Block>, ReadFailure> {
        if self.ended {
            return Ok(None);
        }
        let next = match self.filled.try_recv() {
            Ok(filled) => Ok(filled),
            Err(_) => {
                let began = Instant::now();
                let next = self.filled.recv();
                // The wait for the first block says nothing about the disk.
                if self.bytes_taken > 0 && began.elapsed() > SLOW_DISK_WAIT {
                    self.parser_waited.store(true, Ordering::Relaxed);
                }
                next
            }
        };
        match next {
            Ok(Filled::Data(block)) => {
                self.bytes_taken += block.len as u64;
                // A block short of full is the file's last.
                self.ended = block.len < BLOCK_BYTES;
                Ok(Some(block).filter(|block| block.len > 0))
            }
            Ok(Filled::Failed { offset, error }) => {
                self.ended = true;
                Err(ReadFailure { offset, error })
            }
            // The thread ends after the last block or an error; gone before either, it failed.
            Err(_) => {
                self.ended = true;
                Err(ReadFailure {
                    offset: self.bytes_taken,
                    error: io::Error::other("the read-ahead thread stopped"),
                })
            }
        }
    }

    /// The whole file has been read (or reading failed): its last blocks wait in the queue,
    /// and the disk is free for the next file.
    pub(crate) fn reading_done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    /// Gives a block's buffer back to be filled again (other buffers are dropped).
    pub(crate) fn give_back(&mut self, buf: Vec<u8>) {
        if buf.len() == Block::BUFFER_BYTES {
            // Refused only once the thread has ended: the buffer waits for the next file.
            if let Err(TrySendError::Full(buf) | TrySendError::Disconnected(buf)) =
                self.spare.try_send(buf)
            {
                keep_spare(buf);
            }
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Emptying the channel unblocks a thread waiting to hand over a block; dropping the
        // receiver makes its next hand-over fail, after which it returns.
        while let Ok(filled) = self.filled.try_recv() {
            if let Filled::Data(block) = filled {
                keep_spare(block.buf);
            }
        }
        let (_, dead) = mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.filled, dead));
        let (dead, _) = mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.spare, dead));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

/// The reading thread's state.
struct Reader {
    /// The file opened for ordinary reads.
    buffered: File,
    /// The file opened with `O_DIRECT`, while direct reads work.
    direct: Option<File>,
    /// File offset of the next byte to read.
    offset: u64,
    /// Blocks this file has had so far, new or left by an earlier file (at most [`BLOCKS`]).
    made: usize,
    /// Set by the parser when it waited long for a block (see [`SLOW_DISK_WAIT`]).
    parser_waited: Arc<AtomicBool>,
    /// Set here once the whole file is read (or reading failed).
    done: Arc<AtomicBool>,
    /// Blocks still to read through the page cache.
    buffered_spell: u32,
    /// Length of the next spell: each is twice the last, so a slow disk is probed less and
    /// less often.
    next_spell: u32,
}

impl Reader {
    fn run(mut self, filled: &SyncSender<Filled>, spare: &Receiver<Vec<u8>>) {
        loop {
            let mut block = match spare.try_recv() {
                Ok(buf) => Block::reuse(buf),
                Err(TryRecvError::Empty) if self.made < BLOCKS => {
                    self.made += 1;
                    spare_buffer().map_or_else(Block::new, Block::reuse)
                }
                Err(TryRecvError::Empty) => match spare.recv() {
                    Ok(buf) => Block::reuse(buf),
                    Err(_) => return,
                },
                Err(TryRecvError::Disconnected) => return,
            };
            if self.parser_waited.swap(false, Ordering::Relaxed) {
                self.buffered_spell = self.next_spell;
                self.next_spell = self.next_spell.saturating_mul(2).min(MAX_SPELL_BLOCKS);
            }
            let direct = self.buffered_spell == 0 && self.direct.is_some();
            self.buffered_spell = self.buffered_spell.saturating_sub(1);
            let filled_now = self.fill(&mut block, direct);
            match filled_now {
                Ok(()) => {
                    let at_end = block.len < BLOCK_BYTES;
                    if at_end {
                        self.done.store(true, Ordering::Relaxed);
                    }
                    if filled.send(Filled::Data(block)).is_err() || at_end {
                        return;
                    }
                }
                Err(error) => {
                    self.done.store(true, Ordering::Relaxed);
                    let offset = self.offset;
                    let _ = filled.send(Filled::Failed { offset, error });
                    return;
                }
            }
        }
    }

    /// Fills `block` with the next bytes of the file (with direct I/O if `direct` and it still
    /// works): all [`BLOCK_BYTES`] of them unless the file ends first. On an error,
    /// `self.offset` is where the failed read started.
    fn fill(&mut self, block: &mut Block, direct: bool) -> io::Result<()> {
        let Some(space) = block
            .buf
            .get_mut(block.data_at..block.data_at + BLOCK_BYTES)
        else {
            return Err(io::Error::other("read-ahead block too small"));
        };
        let mut len = 0;
        let mut interrupted = 0;
        while len < BLOCK_BYTES {
            let Some(rest) = space.get_mut(len..) else {
                break;
            };
            let direct_file = self.direct.as_ref().filter(|_| direct);
            let result = match direct_file {
                Some(file) => read_at(file, rest, self.offset),
                None => read_at(&self.buffered, rest, self.offset),
            };
            match result {
                // Direct reads may stop short of an unaligned end: make sure with an ordinary
                // read.
                Ok(0) if direct_file.is_some() => self.direct = None,
                Ok(0) => break,
                Ok(read) => {
                    let read = read.min(rest.len());
                    len += read;
                    self.offset += read as u64;
                    if read % ALIGN != 0 {
                        // A direct read from here would start unaligned.
                        self.direct = None;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {
                    interrupted += 1;
                    if interrupted > MAX_INTERRUPTED_READS {
                        return Err(err);
                    }
                }
                // EINVAL from a file system or device that takes the flag but not the read;
                // any other error shows again on the ordinary read.
                Err(_) if direct_file.is_some() => self.direct = None,
                Err(err) => return Err(err),
            }
        }
        block.len = len;
        Ok(())
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead").finish_non_exhaustive()
    }
}
