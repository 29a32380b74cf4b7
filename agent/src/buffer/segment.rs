//! Segment files: appending framed records to one, and reading one back as a
//! stream of good records and skipped damage.
//!
//! File IO only. What a good record is belongs to `format`; what to keep,
//! count or delete belongs to the queue. Nothing here buffers writes: a record
//! is in the operating system once `append` returns.

use super::format::{self, RECORD_HEADER_LEN, Record, SEGMENT_HEADER_LEN, SegmentHeader, Step};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 64 << 10;

/// The open end of a lane: the one segment being appended to.
#[derive(Debug)]
pub(super) struct SegmentWriter {
    file: File,
    len: u64,
    dirty: bool,
}

impl SegmentWriter {
    /// Creates the segment file (it must not exist) and writes its header.
    pub fn create(path: &Path, header: &SegmentHeader) -> io::Result<SegmentWriter> {
        let mut file = OpenOptions::new().append(true).create_new(true).open(path)?;
        if let Err(e) = file.write_all(&format::encode_segment_header(header)) {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(SegmentWriter {
            file,
            len: SEGMENT_HEADER_LEN as u64,
            dirty: true,
        })
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Writes `bytes` (whole records) at the end. On failure it tries to cut
    /// the file back to where it was, so no partial record stays behind.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Err(e) = self.file.write_all(bytes) {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Forces what was appended to stable storage.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// What a reader found next.
#[derive(Debug)]
pub(super) enum Event<'a> {
    Record(Record<'a>),
    /// `len` damaged bytes at `offset`, skipped. `id` is known when only a
    /// payload was damaged. `new_region` is false when the bytes continue the
    /// damage of the previous event.
    Skip {
        offset: u64,
        len: u64,
        id: Option<u64>,
        new_region: bool,
    },
    /// No more bytes for now (a segment being written may grow later).
    End,
}

/// Reads a segment front to back through a buffer of its own.
pub(super) struct SegmentReader {
    file: File,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    offset: u64,
    /// End offset of the last run of skipped bytes without an id.
    run_end: Option<u64>,
}

impl std::fmt::Debug for SegmentReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentReader")
            .field("offset", &self.offset)
            .field("buffered", &(self.end - self.start))
            .finish_non_exhaustive()
    }
}

enum Next {
    Record { id: u64, ts_ms: i64, payload_len: usize },
    Skip { len: usize, id: Option<u64> },
    More,
}

impl SegmentReader {
    /// Opens `path` for reading from the start of its records.
    pub fn open(path: &Path) -> io::Result<SegmentReader> {
        let mut file = File::open(path)?;
        let offset = SEGMENT_HEADER_LEN as u64;
        file.seek(SeekFrom::Start(offset))?;
        Ok(SegmentReader {
            file,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            offset,
            run_end: None,
        })
    }

    pub fn next(&mut self) -> io::Result<Event<'_>> {
        let mut eof = false;
        loop {
            let next = match format::step(&self.buf[self.start..self.end], eof) {
                Step::Record(r) => Next::Record {
                    id: r.id,
                    ts_ms: r.ts_ms,
                    payload_len: r.payload.len(),
                },
                Step::Skip { len, id } => Next::Skip { len, id },
                Step::NeedMore => Next::More,
            };
            match next {
                Next::Record {
                    id,
                    ts_ms,
                    payload_len,
                } => {
                    let at = self.start + RECORD_HEADER_LEN;
                    let len = format::record_len(payload_len);
                    self.start += len;
                    self.offset += len as u64;
                    self.run_end = None;
                    return Ok(Event::Record(Record {
                        id,
                        ts_ms,
                        payload: &self.buf[at..at + payload_len],
                    }));
                }
                Next::Skip { len, id } => {
                    let (offset, len64) = (self.offset, len as u64);
                    let new_region = id.is_some() || self.run_end != Some(offset);
                    self.run_end = if id.is_none() { Some(offset + len64) } else { None };
                    self.start += len;
                    self.offset += len64;
                    return Ok(Event::Skip {
                        offset,
                        len: len64,
                        id,
                        new_region,
                    });
                }
                Next::More if eof => return Ok(Event::End),
                Next::More => eof = self.fill()? == 0,
            }
        }
    }

    /// Reads more of the file into the buffer; returns the bytes read.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // One record larger than the buffer.
            let grown = self.buf.len() * 2;
            self.buf.resize(grown, 0);
        }
        loop {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// What a whole segment holds, read to its end.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ScanSummary {
    /// Id and time of the first good record.
    pub first: Option<(u64, i64)>,
    /// Id and time of the good record with the highest id.
    pub last: Option<(u64, i64)>,
    pub bad_regions: u64,
    pub bad_bytes: u64,
    /// Where the reading stopped: the file's length.
    pub len: u64,
}

/// Reads the segment at `path` to its end, checking every record.
pub(super) fn scan(path: &Path) -> io::Result<ScanSummary> {
    let mut reader = SegmentReader::open(path)?;
    let mut s = ScanSummary::default();
    loop {
        match reader.next()? {
            Event::Record(r) => {
                s.first.get_or_insert((r.id, r.ts_ms));
                if s.last.is_none_or(|(id, _)| r.id > id) {
                    s.last = Some((r.id, r.ts_ms));
                }
            }
            Event::Skip { len, new_region, .. } => {
                s.bad_regions += u64::from(new_region);
                s.bad_bytes += len;
            }
            Event::End => {
                s.len = reader.offset;
                return Ok(s);
            }
        }
    }
}

/// Forces a directory's entries (files created, renamed) to stable storage.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
