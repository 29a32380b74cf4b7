//! `DiskQueue`: the two lanes, their segment files, the cursor, and the
//! bookkeeping that ties them together (what was handed out, confirmed,
//! evicted or found damaged).
//!
//! It must not decide the format of bytes (that is `format`) nor the eviction
//! order (that is `evict`), and it never reads the clock: every call that
//! needs the time takes `now_ms`.

use super::Lane;
use super::config::{FsyncPolicy, QueueConfig};
use super::error::{QueueError, io};
use super::evict::{self, LaneView, SegmentView};
use super::format::{self, Cursor, SEGMENT_HEADER_LEN, SegmentHeader};
use super::segment::{self, Event, SegmentReader, SegmentWriter};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const LOCK_FILE: &str = "lock";
const CURSOR_FILE: &str = "cursor";
const CURSOR_TMP: &str = "cursor.tmp";

/// An entry handed out by [`DiskQueue::next_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub lane: Lane,
    /// Increases by one per push within a lane, also across restarts.
    pub id: u64,
    /// The `now_ms` of its push (never earlier than the entry before it).
    pub ts_ms: i64,
    pub payload: Vec<u8>,
}

/// A snapshot of the queue, for health reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Entries accepted and neither confirmed nor evicted, both lanes.
    pub depth: u64,
    /// The part of `depth` that is alerts.
    pub alerts_depth: u64,
    /// Handed out and not yet confirmed.
    pub in_flight: u64,
    /// Bytes of segment files on disk.
    pub bytes: u64,
    pub segments: u64,
    /// Push time of the oldest entry not yet confirmed: exact while entries
    /// are in flight, otherwise a bound that may be older, never newer.
    pub oldest_ms: Option<i64>,
    /// Unconfirmed entries dropped by the byte or age bound since open.
    pub evicted: u64,
    /// Damaged records (or torn tails, or runs of garbage) skipped since open.
    pub corrupt_records: u64,
    pub corrupt_bytes: u64,
}

/// The crash-safe store-and-forward queue. See the module documentation of
/// [`crate::buffer`] for the model, the format and the guarantees.
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    cfg: QueueConfig,
    /// Holds the directory's lock while open.
    _lock: File,
    lanes: [LaneState; 2],
    /// The cursor as last written.
    persisted: Cursor,
    /// Entries pushed since the last fsync (batch policy).
    unsynced: u64,
    /// `now_ms` of the last fsync, or of the first push after open.
    last_sync_ms: Option<i64>,
    /// Entries pushed before this time are expired (unknown until the
    /// caller first gives the time).
    cutoff: Option<i64>,
    counters: Counters,
    scratch: Vec<u8>,
}

#[derive(Debug, Default)]
struct Counters {
    evicted: u64,
    corrupt_records: u64,
    corrupt_bytes: u64,
}

#[derive(Debug)]
struct LaneState {
    lane: Lane,
    dir: PathBuf,
    /// Oldest first. The last one is being written when `writer` is set.
    segments: VecDeque<Segment>,
    writer: Option<SegmentWriter>,
    /// A segment was created since the directory was last synced.
    dir_dirty: bool,
    next_id: u64,
    /// Time of the newest entry pushed.
    last_ts: i64,
    /// Every id up to here is confirmed, evicted, or lost to damage.
    done: u64,
    /// Every id up to here was handed out or passed over by the reader.
    read_through: u64,
    /// Time of the newest entry the reader handed out or passed over.
    read_ts: i64,
    reader: Option<LaneReader>,
    /// Handed out or passed over, after `done`, in id order.
    in_flight: VecDeque<InFlight>,
}

#[derive(Debug)]
struct Segment {
    first_id: u64,
    first_ts: i64,
    path: PathBuf,
    bytes: u64,
    /// Damage before this offset has already been counted.
    counted_through: u64,
}

#[derive(Debug)]
struct LaneReader {
    segment: u64,
    inner: SegmentReader,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    id: u64,
    ts: i64,
    /// Confirmed, or passed over by the reader (expired or damaged).
    acked: bool,
}

impl DiskQueue {
    /// Opens the queue in `dir` (created if missing), checking the last segment
    /// of each lane and removing segments that are fully confirmed. The age
    /// bound applies from the first `push` or `tick`, which give it the time.
    pub fn open(dir: &Path, cfg: QueueConfig) -> Result<DiskQueue, QueueError> {
        cfg.validate()?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(QueueError::Locked {
                    dir: dir.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let cursor = read_cursor(dir)?;
        let mut counters = Counters::default();
        let lanes = [
            LaneState::open(dir, Lane::Alerts, cursor.done[0], &mut counters)?,
            LaneState::open(dir, Lane::Telemetry, cursor.done[1], &mut counters)?,
        ];
        let q = DiskQueue {
            dir: dir.to_path_buf(),
            cfg,
            _lock: lock,
            lanes,
            persisted: cursor,
            unsynced: 0,
            last_sync_ms: None,
            cutoff: None,
            counters,
            scratch: Vec::new(),
        };
        let s = q.stats();
        tracing::info!(
            dir = %dir.display(),
            depth = s.depth,
            alerts = s.alerts_depth,
            bytes = s.bytes,
            corrupt_records = s.corrupt_records,
            "disk queue opened"
        );
        Ok(q)
    }

    /// Appends `payload` to `lane` and returns its id. The record is in the
    /// operating system when this returns, and on disk if the fsync policy
    /// says so. Evicts first when the bounds require it. On an error the
    /// entry may or may not have been stored.
    pub fn push(&mut self, lane: Lane, payload: &[u8], now_ms: i64) -> Result<u64, QueueError> {
        let max = self.cfg.max_payload();
        if payload.len() > max {
            return Err(QueueError::TooLarge {
                lane,
                len: payload.len(),
                max,
            });
        }
        let framed = format::record_len(payload.len()) as u64;
        self.observe(now_ms);
        self.enforce_bounds(framed + SEGMENT_HEADER_LEN as u64)?;
        let segment_bytes = self.cfg.segment_bytes;
        let syncs = self.cfg.syncs();
        let l = &mut self.lanes[lane.index()];
        let id = l.next_id;
        let ts = now_ms.max(l.last_ts);
        if let Some(w) = l.writer.as_mut()
            && w.len() + framed > segment_bytes
        {
            if syncs {
                let path = l.segments.back().map(|s| s.path.clone()).unwrap_or_default();
                w.sync().map_err(io(path))?;
            }
            l.writer = None;
        }
        if l.writer.is_none() {
            l.start_segment(id, ts)?;
        }
        self.scratch.clear();
        format::encode_record(id, ts, payload, &mut self.scratch);
        let (Some(w), Some(seg)) = (l.writer.as_mut(), l.segments.back_mut()) else {
            return Err(QueueError::Io {
                path: l.dir.clone(),
                source: std::io::Error::other("no segment open for writing"),
            });
        };
        if let Err(e) = w.append(&self.scratch) {
            // Seal it: whatever the failed write left is a torn tail to skip.
            seg.bytes = std::fs::metadata(&seg.path).map_or(w.len(), |m| m.len());
            let path = seg.path.clone();
            l.writer = None;
            l.drop_if_empty();
            return Err(io(path)(e));
        }
        seg.bytes = w.len();
        l.next_id += 1;
        l.last_ts = ts;
        match self.cfg.fsync {
            FsyncPolicy::Always => {
                w.sync().map_err(io(&seg.path))?;
                l.sync_dir()?;
            }
            FsyncPolicy::Batch { records, interval } => {
                self.unsynced += 1;
                let since = self.last_sync_ms.get_or_insert(now_ms);
                let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
                if self.unsynced >= u64::from(records) || now_ms.saturating_sub(*since) >= interval_ms {
                    self.sync_writers(now_ms)?;
                }
            }
            FsyncPolicy::Never => {}
        }
        Ok(id)
    }

    /// Hands out up to `max` entries: alerts first, then telemetry, each lane
    /// in order. Entries stay in the queue until acknowledged; a later call
    /// continues after the last entry handed out.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<Entry>, QueueError> {
        let mut out = Vec::with_capacity(max.min(1024));
        for l in &mut self.lanes {
            while out.len() < max {
                match l.read_next(self.cutoff, &mut self.counters)? {
                    Some(e) => out.push(e),
                    None => break,
                }
            }
        }
        self.progressed()?;
        Ok(out)
    }

    /// Confirms one entry handed out by `next_batch`, in any order. Returns
    /// false when the entry is not in flight: already confirmed, evicted, or
    /// handed out before a [`DiskQueue::rewind`] (it will come again).
    pub fn ack(&mut self, lane: Lane, id: u64) -> Result<bool, QueueError> {
        let l = &mut self.lanes[lane.index()];
        if id <= l.done {
            return Ok(false);
        }
        let Ok(i) = l.in_flight.binary_search_by_key(&id, |e| e.id) else {
            return Ok(false);
        };
        if l.in_flight[i].acked {
            return Ok(false);
        }
        l.in_flight[i].acked = true;
        l.advance();
        self.progressed()?;
        Ok(true)
    }

    /// Forgets what was handed out and not confirmed: the next
    /// `next_batch` starts again after the last confirmed entry of each lane.
    pub fn rewind(&mut self) {
        for l in &mut self.lanes {
            l.in_flight.clear();
            l.read_through = l.done;
            l.reader = None;
        }
    }

    /// Time-driven work; call it every second or so. Drops what the age bound
    /// expires, fsyncs when the batch interval has passed, and writes the
    /// cursor if it moved.
    pub fn tick(&mut self, now_ms: i64) -> Result<(), QueueError> {
        self.observe(now_ms);
        self.enforce_bounds(0)?;
        if let FsyncPolicy::Batch { interval, .. } = self.cfg.fsync
            && self.unsynced > 0
        {
            let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
            if self
                .last_sync_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= interval_ms)
            {
                self.sync_writers(now_ms)?;
            }
        }
        if self.cursor() != self.persisted {
            self.write_cursor(self.cfg.fsync == FsyncPolicy::Always)?;
        }
        Ok(())
    }

    /// Forces everything to stable storage, whatever the policy: appended
    /// records and the cursor.
    pub fn sync(&mut self) -> Result<(), QueueError> {
        let now = self.last_sync_ms.unwrap_or(0);
        self.sync_writers(now)?;
        self.write_cursor(true)
    }

    /// Syncs and closes. Dropping the queue instead is a crash: safe, but
    /// confirmed entries since the last cursor write are handed out again.
    pub fn close(mut self) -> Result<(), QueueError> {
        self.sync()
    }

    pub fn stats(&self) -> QueueStats {
        let mut s = QueueStats {
            evicted: self.counters.evicted,
            corrupt_records: self.counters.corrupt_records,
            corrupt_bytes: self.counters.corrupt_bytes,
            ..QueueStats::default()
        };
        for l in &self.lanes {
            let depth = (l.next_id - 1).saturating_sub(l.done);
            s.depth += depth;
            if l.lane == Lane::Alerts {
                s.alerts_depth = depth;
            }
            s.in_flight += l.in_flight.iter().filter(|e| !e.acked).count() as u64;
            s.bytes += l.segments.iter().map(|g| g.bytes).sum::<u64>();
            s.segments += l.segments.len() as u64;
            if depth > 0
                && let Some(ts) = l.oldest_ts()
            {
                s.oldest_ms = Some(s.oldest_ms.map_or(ts, |o: i64| o.min(ts)));
            }
        }
        s
    }

    /// The directory the queue lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the caller's time as the age bound's reference. The latest
    /// time wins, not the largest: a clock that jumped ahead and came back
    /// must not expire everything pushed since.
    fn observe(&mut self, now_ms: i64) {
        self.cutoff = Some(now_ms.saturating_sub(self.cfg.max_age_ms()));
    }

    fn cursor(&self) -> Cursor {
        Cursor {
            done: [self.lanes[0].done, self.lanes[1].done],
        }
    }

    /// Evicts what the bounds require before `incoming` bytes are written.
    fn enforce_bounds(&mut self, incoming: u64) -> Result<(), QueueError> {
        let total: u64 = self.lanes.iter().flat_map(|l| &l.segments).map(|s| s.bytes).sum();
        let expired = self.cutoff.is_some_and(|c| {
            self.lanes
                .iter()
                .any(|l| !l.segments.is_empty() && l.newest_ts(0) < c)
        });
        if !expired && total + incoming <= self.cfg.max_bytes {
            return Ok(());
        }
        let views = [self.lanes[0].views(), self.lanes[1].views()];
        let plan = evict::plan(
            [
                LaneView {
                    done: self.lanes[0].done,
                    segments: &views[0],
                },
                LaneView {
                    done: self.lanes[1].done,
                    segments: &views[1],
                },
            ],
            total,
            incoming,
            self.cfg.max_bytes,
            self.cutoff,
        );
        if plan.is_empty() {
            return Ok(());
        }
        let mut doomed = Vec::new();
        for (i, l) in self.lanes.iter_mut().enumerate() {
            let n = plan.drop[i];
            if n == 0 {
                continue;
            }
            let last = views[i][n - 1].last_id;
            l.done = l.done.max(last);
            l.read_through = l.read_through.max(l.done);
            while l.in_flight.front().is_some_and(|e| e.id <= l.done) {
                l.in_flight.pop_front();
            }
            l.advance();
            doomed.extend(l.take_head(n));
        }
        let evicted = plan.evicted[0] + plan.evicted[1];
        self.counters.evicted += evicted;
        if evicted > 0 {
            tracing::warn!(
                alerts = plan.evicted[0],
                telemetry = plan.evicted[1],
                freed_bytes = plan.freed,
                "disk queue full or expired: evicted the oldest entries"
            );
        }
        self.write_cursor(self.cfg.fsync == FsyncPolicy::Always)?;
        remove_files(&doomed);
        Ok(())
    }

    /// After the cursor moved: writes it when due, and deletes the segments
    /// it has passed. The cursor goes first, so that ids are not reused after
    /// a restart that finds every segment gone.
    fn progressed(&mut self) -> Result<(), QueueError> {
        let cursor = self.cursor();
        let moved: u64 = (0..2)
            .map(|i| cursor.done[i].saturating_sub(self.persisted.done[i]))
            .sum();
        if moved == 0 {
            return Ok(());
        }
        let deletable = self.lanes.each_ref().map(LaneState::confirmed_head);
        let delete = deletable.iter().any(|&n| n > 0);
        if delete || moved >= self.cfg.cursor_every() {
            self.write_cursor(self.cfg.fsync == FsyncPolicy::Always)?;
        }
        if delete {
            let mut doomed = Vec::new();
            for (l, n) in self.lanes.iter_mut().zip(deletable) {
                doomed.extend(l.take_head(n));
            }
            remove_files(&doomed);
        }
        Ok(())
    }

    fn sync_writers(&mut self, now_ms: i64) -> Result<(), QueueError> {
        for l in &mut self.lanes {
            if let (Some(w), Some(seg)) = (l.writer.as_mut(), l.segments.back()) {
                w.sync().map_err(io(&seg.path))?;
            }
            l.sync_dir()?;
        }
        self.unsynced = 0;
        self.last_sync_ms = Some(now_ms);
        Ok(())
    }

    /// Replaces the cursor file atomically: temp file, (fsync), rename,
    /// (fsync of the directory).
    fn write_cursor(&mut self, sync: bool) -> Result<(), QueueError> {
        let cursor = self.cursor();
        let tmp = self.dir.join(CURSOR_TMP);
        let path = self.dir.join(CURSOR_FILE);
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&format::encode_cursor(&cursor)).map_err(io(&tmp))?;
        if sync {
            f.sync_all().map_err(io(&tmp))?;
        }
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        if sync {
            segment::sync_dir(&self.dir).map_err(io(&self.dir))?;
        }
        self.persisted = cursor;
        Ok(())
    }
}

impl LaneState {
    /// Loads a lane's segments. Only the last one is read through, to find
    /// where the lane ends and to catch a torn tail; the others are checked
    /// as they are read.
    fn open(dir: &Path, lane: Lane, done: u64, counters: &mut Counters) -> Result<LaneState, QueueError> {
        let dir = dir.join(lane.name());
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name();
            match name.to_str().and_then(format::parse_segment_name) {
                Some(first_id) => found.push((first_id, entry.path())),
                None => tracing::warn!(file = %entry.path().display(), "disk queue: ignoring a stray file"),
            }
        }
        found.sort();
        let mut segments = VecDeque::with_capacity(found.len());
        for (first_id, path) in found {
            let bytes = std::fs::metadata(&path).map_err(io(&path))?.len();
            let header = read_header(&path)?;
            match header.filter(|h| h.lane == lane && h.first_id == first_id) {
                Some(h) => segments.push_back(Segment {
                    first_id,
                    first_ts: h.first_ts,
                    path,
                    bytes,
                    counted_through: 0,
                }),
                None => {
                    // No trustworthy header: the first good record tells the time.
                    let s = segment::scan(&path).map_err(io(&path))?;
                    count(
                        counters,
                        &path,
                        1 + s.bad_regions,
                        SEGMENT_HEADER_LEN as u64 + s.bad_bytes,
                    );
                    match s.first {
                        Some((_, ts)) => segments.push_back(Segment {
                            first_id,
                            first_ts: ts,
                            path,
                            bytes,
                            counted_through: bytes,
                        }),
                        None => remove_files(&[path]),
                    }
                }
            }
        }
        let mut next_id = done + 1;
        let mut last_ts = i64::MIN;
        // The last segment may end in a torn write: read it all.
        while let Some(seg) = segments.back_mut() {
            let s = segment::scan(&seg.path).map_err(io(&seg.path))?;
            if seg.counted_through == 0 && s.bad_regions > 0 {
                count(counters, &seg.path, s.bad_regions, s.bad_bytes);
            }
            seg.counted_through = seg.bytes;
            if let Some((id, ts)) = s.last {
                next_id = next_id.max(id + 1);
                last_ts = ts.max(seg.first_ts);
                break;
            }
            let path = seg.path.clone();
            segments.pop_back();
            remove_files(&[path]);
        }
        if let Some(seg) = segments.back() {
            next_id = next_id.max(seg.first_id);
        }
        let mut l = LaneState {
            lane,
            dir,
            segments,
            writer: None,
            dir_dirty: false,
            next_id,
            last_ts,
            done,
            read_through: done,
            read_ts: i64::MIN,
            reader: None,
            in_flight: VecDeque::new(),
        };
        // Left by a crash between a cursor write and the deletions it allowed.
        // The last segment goes too: it is never written to again.
        let confirmed = (0..l.segments.len())
            .take_while(|&i| l.last_id(i) <= l.done)
            .count();
        let stale = l.take_head(confirmed);
        remove_files(&stale);
        Ok(l)
    }

    /// The last id in segment `i` (for the last one, the last id pushed).
    fn last_id(&self, i: usize) -> u64 {
        match self.segments.get(i + 1) {
            Some(next) => next.first_id - 1,
            None => self.next_id - 1,
        }
    }

    /// No entry in segment `i` is newer than this (times never decrease).
    fn newest_ts(&self, i: usize) -> i64 {
        match self.segments.get(i + 1) {
            Some(next) => next.first_ts,
            None => self.last_ts,
        }
    }

    fn views(&self) -> Vec<SegmentView> {
        (0..self.segments.len())
            .map(|i| SegmentView {
                first_id: self.segments[i].first_id,
                last_id: self.last_id(i),
                bytes: self.segments[i].bytes,
                newest_ts: self.newest_ts(i),
            })
            .collect()
    }

    /// Head segments whose entries are all done, the last segment excepted
    /// (it is still being written, or will be replaced by the next push).
    fn confirmed_head(&self) -> usize {
        let sealed = self.segments.len().saturating_sub(1);
        (0..sealed).take_while(|&i| self.last_id(i) <= self.done).count()
    }

    /// Removes the first `n` segments from the lane and returns their paths.
    fn take_head(&mut self, n: usize) -> Vec<PathBuf> {
        let n = n.min(self.segments.len());
        if n == self.segments.len() {
            self.writer = None;
        }
        let gone: Vec<Segment> = self.segments.drain(..n).collect();
        if self
            .reader
            .as_ref()
            .is_some_and(|r| gone.iter().any(|s| s.first_id == r.segment))
        {
            self.reader = None;
        }
        gone.into_iter().map(|s| s.path).collect()
    }

    /// Makes the creation of new segments durable.
    fn sync_dir(&mut self) -> Result<(), QueueError> {
        if self.dir_dirty {
            segment::sync_dir(&self.dir).map_err(io(&self.dir))?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Creates the segment that entry `id` starts. Its directory entry is
    /// synced with the next fsync of its records.
    fn start_segment(&mut self, id: u64, ts: i64) -> Result<(), QueueError> {
        let path = self.dir.join(format::segment_name(id));
        let header = SegmentHeader {
            lane: self.lane,
            first_id: id,
            first_ts: ts,
        };
        let w = match SegmentWriter::create(&path, &header) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Every segment with entries not done is in `segments`: a file
                // of that name is one whose deletion failed earlier.
                tracing::warn!(file = %path.display(), "disk queue: replacing a stale segment");
                std::fs::remove_file(&path).map_err(io(&path))?;
                SegmentWriter::create(&path, &header)
            }
            created => created,
        }
        .map_err(io(&path))?;
        self.dir_dirty = true;
        self.segments.push_back(Segment {
            first_id: id,
            first_ts: ts,
            path,
            bytes: w.len(),
            counted_through: 0,
        });
        self.writer = Some(w);
        Ok(())
    }

    /// After a failed first append: a segment without records is removed, so
    /// the next push can create it again.
    fn drop_if_empty(&mut self) {
        if let Some(seg) = self.segments.back()
            && seg.first_id == self.next_id
        {
            let path = seg.path.clone();
            self.segments.pop_back();
            self.reader = None;
            remove_files(&[path]);
        }
    }

    /// Moves `done` over the confirmed prefix of what is in flight.
    fn advance(&mut self) {
        while let Some(e) = self.in_flight.front()
            && e.acked
        {
            self.done = self.done.max(e.id);
            self.in_flight.pop_front();
        }
    }

    /// Records that the reader went past `id` without handing it out.
    fn pass(&mut self, id: u64, ts: i64) {
        if id <= self.read_through {
            return;
        }
        self.read_through = id;
        self.read_ts = self.read_ts.max(ts);
        if self.in_flight.is_empty() {
            self.done = self.done.max(id);
        } else {
            self.in_flight.push_back(InFlight { id, ts, acked: true });
        }
    }

    /// The reader met an expired entry: it and everything before it (times
    /// never decrease) is evicted, including what is in flight. Returns the
    /// unconfirmed entries dropped.
    fn expire_through(&mut self, id: u64, ts: i64) -> u64 {
        let dropped = 1 + self.in_flight.iter().filter(|e| !e.acked).count() as u64;
        self.in_flight.clear();
        self.done = self.done.max(id);
        self.read_through = self.read_through.max(id);
        self.read_ts = self.read_ts.max(ts);
        dropped
    }

    fn oldest_ts(&self) -> Option<i64> {
        if let Some(e) = self.in_flight.iter().find(|e| !e.acked) {
            return Some(e.ts);
        }
        let target = self.done + 1;
        let i = self.segments.partition_point(|s| s.first_id <= target);
        let seg_ts = self.segments.get(i.saturating_sub(1)).map(|s| s.first_ts)?;
        Some(seg_ts.max(self.read_ts))
    }

    /// The next entry to hand out, if any, skipping damage and expired entries.
    fn read_next(
        &mut self,
        cutoff: Option<i64>,
        counters: &mut Counters,
    ) -> Result<Option<Entry>, QueueError> {
        loop {
            if self.reader.is_none() {
                let target = self.read_through + 1;
                if self.segments.is_empty() || target >= self.next_id {
                    return Ok(None);
                }
                let i = self
                    .segments
                    .partition_point(|s| s.first_id <= target)
                    .saturating_sub(1);
                let seg = &self.segments[i];
                let inner = SegmentReader::open(&seg.path).map_err(io(&seg.path))?;
                self.reader = Some(LaneReader {
                    segment: seg.first_id,
                    inner,
                });
            }
            let Some(reader) = self.reader.as_mut() else {
                return Ok(None);
            };
            let segment_id = reader.segment;
            let seg_index = self.segments.partition_point(|s| s.first_id < segment_id);
            let event = reader.inner.next();
            let seg_path = || {
                self.segments
                    .get(seg_index)
                    .map(|s| s.path.clone())
                    .unwrap_or_default()
            };
            match event.map_err(|e| io(seg_path())(e))? {
                Event::Record(r) => {
                    if r.id <= self.read_through {
                        continue;
                    }
                    let (id, ts) = (r.id, r.ts_ms);
                    if cutoff.is_some_and(|c| ts < c) {
                        counters.evicted += self.expire_through(id, ts);
                        continue;
                    }
                    let payload = r.payload.to_vec();
                    self.read_through = id;
                    self.read_ts = self.read_ts.max(ts);
                    self.in_flight.push_back(InFlight { id, ts, acked: false });
                    return Ok(Some(Entry {
                        lane: self.lane,
                        id,
                        ts_ms: ts,
                        payload,
                    }));
                }
                Event::Skip {
                    offset,
                    len,
                    id,
                    new_region,
                } => {
                    if let Some(seg) = self.segments.get_mut(seg_index)
                        && offset >= seg.counted_through
                    {
                        seg.counted_through = offset + len;
                        count(counters, &seg.path, u64::from(new_region), len);
                    }
                    if let Some(id) = id {
                        let ts = self.read_ts;
                        self.pass(id, ts);
                    }
                }
                Event::End => {
                    let Some(next) = self.segments.get(seg_index + 1) else {
                        return Ok(None);
                    };
                    let through = next.first_id - 1;
                    self.reader = None;
                    let ts = self.read_ts;
                    self.pass(through, ts);
                }
            }
        }
    }
}

/// Counts damage found in `path` and says so.
fn count(counters: &mut Counters, path: &Path, regions: u64, bytes: u64) {
    counters.corrupt_records += regions;
    counters.corrupt_bytes += bytes;
    if regions > 0 {
        tracing::warn!(
            file = %path.display(),
            bytes,
            "disk queue: skipped a damaged or torn record"
        );
    }
}

fn read_header(path: &Path) -> Result<Option<SegmentHeader>, QueueError> {
    let mut b = Vec::with_capacity(SEGMENT_HEADER_LEN);
    File::open(path)
        .and_then(|f| f.take(SEGMENT_HEADER_LEN as u64).read_to_end(&mut b))
        .map_err(io(path))?;
    Ok(format::decode_segment_header(&b))
}

/// The cursor on disk; a missing or damaged one replays everything.
fn read_cursor(dir: &Path) -> Result<Cursor, QueueError> {
    let path = dir.join(CURSOR_FILE);
    match std::fs::read(&path) {
        Ok(b) => Ok(format::decode_cursor(&b).unwrap_or_else(|| {
            tracing::warn!(file = %path.display(), "disk queue: damaged cursor, replaying from the start");
            Cursor::default()
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cursor::default()),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Deletes segment files whose entries are done. A failure is only logged:
/// the cursor already covers them, so the next open deletes them.
fn remove_files(paths: &[PathBuf]) {
    for p in paths {
        if let Err(e) = std::fs::remove_file(p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %p.display(), error = %e, "disk queue: cannot delete a segment");
        }
    }
}
