//! Tests of the whole queue on real files in temp dirs: order, lanes,
//! acknowledgement, persistence, bounds, damage and crashes.
//!
//! A crash is simulated by dropping the queue without `close` (nothing is
//! flushed or written on drop), and damage by editing segment files. No
//! sleeps: time is the `now_ms` the tests pass.

use super::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Segments of 4 KiB, so that a few dozen entries span several.
fn cfg(fsync: FsyncPolicy) -> QueueConfig {
    QueueConfig {
        max_bytes: 1 << 20,
        max_age: Duration::from_secs(3600),
        segment_bytes: 4096,
        fsync,
    }
}

fn never() -> QueueConfig {
    cfg(FsyncPolicy::Never)
}

fn open(dir: &Path, cfg: QueueConfig) -> DiskQueue {
    DiskQueue::open(dir, cfg).expect("open queue")
}

/// A payload of exactly `PAYLOAD` bytes naming the lane and a number.
const PAYLOAD: usize = 100;
fn payload(lane: Lane, n: u64) -> Vec<u8> {
    let mut p = format!("{lane}-{n}").into_bytes();
    p.resize(PAYLOAD, b'.');
    p
}

/// Pushes `range` into `lane`, entry `n` at time `n * 10`.
fn push_range(q: &mut DiskQueue, lane: Lane, range: std::ops::RangeInclusive<u64>) {
    for n in range {
        q.push(lane, &payload(lane, n), n as i64 * 10).expect("push");
    }
}

/// Everything `next_batch` hands out, 7 at a time, without acknowledging.
fn read_all(q: &mut DiskQueue) -> Vec<Entry> {
    let mut all = Vec::new();
    loop {
        let batch = q.next_batch(7).expect("next_batch");
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

fn ack_all(q: &mut DiskQueue, entries: &[Entry]) {
    for e in entries {
        assert!(
            q.ack(e.lane, e.id).expect("ack"),
            "{} {} was in flight",
            e.lane,
            e.id
        );
    }
}

/// `(lane, id)` of each entry, checking that its payload is the one pushed
/// with that id.
fn ids(entries: &[Entry]) -> Vec<(Lane, u64)> {
    for e in entries {
        assert_eq!(e.payload, payload(e.lane, e.id), "payload of {} {}", e.lane, e.id);
    }
    entries.iter().map(|e| (e.lane, e.id)).collect()
}

fn lane_ids(lane: Lane, range: std::ops::RangeInclusive<u64>) -> Vec<(Lane, u64)> {
    range.map(|n| (lane, n)).collect()
}

fn segment_files(dir: &Path, lane: Lane) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(lane.name()))
        .expect("lane dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    files
}

/// Offset of the `k`-th record (from 0) of a segment of `PAYLOAD`-byte entries.
fn record_offset(k: u64) -> u64 {
    (format::SEGMENT_HEADER_LEN + k as usize * format::record_len(PAYLOAD)) as u64
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read segment");
    bytes[offset as usize] ^= 0x5a;
    std::fs::write(path, bytes).expect("write segment");
}

fn cut_tail(path: &Path, by: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open segment");
    let len = f.metadata().expect("metadata").len();
    f.set_len(len - by).expect("truncate");
}

#[test]
fn round_trip_in_order_across_segments() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut q = open(dir.path(), never());
    for n in 1..=200 {
        assert_eq!(
            q.push(Lane::Telemetry, &payload(Lane::Telemetry, n), 0)
                .expect("push"),
            n
        );
    }
    assert!(segment_files(dir.path(), Lane::Telemetry).len() > 3);
    let all = read_all(&mut q);
    assert_eq!(ids(&all), lane_ids(Lane::Telemetry, 1..=200));
    let s = q.stats();
    assert_eq!(
        (s.depth, s.in_flight, s.corrupt_records, s.evicted),
        (200, 200, 0, 0)
    );
    ack_all(&mut q, &all);
    let s = q.stats();
    assert_eq!((s.depth, s.in_flight), (0, 0));
    // Confirmed segments are deleted, all but the one being written.
    assert_eq!(segment_files(dir.path(), Lane::Telemetry).len(), 1);
    assert_eq!(s.segments, 1);
}

#[test]
fn alerts_come_before_telemetry_and_each_lane_keeps_its_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut q = open(dir.path(), never());
    push_range(&mut q, Lane::Telemetry, 1..=3);
    push_range(&mut q, Lane::Alerts, 1..=2);
    push_range(&mut q, Lane::Telemetry, 4..=5);
    push_range(&mut q, Lane::Alerts, 3..=3);
    let first = q.next_batch(4).expect("next_batch");
    assert_eq!(
        ids(&first),
        [lane_ids(Lane::Alerts, 1..=3), lane_ids(Lane::Telemetry, 1..=1)].concat()
    );
    // An alert pushed while telemetry is replaying goes to the front.
    push_range(&mut q, Lane::Alerts, 4..=4);
    let rest = read_all(&mut q);
    assert_eq!(
        ids(&rest),
        [lane_ids(Lane::Alerts, 4..=4), lane_ids(Lane::Telemetry, 2..=5)].concat()
    );
    assert_eq!(q.stats().alerts_depth, 4);
}

#[test]
fn acks_in_any_order_move_over_the_confirmed_prefix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut q = open(dir.path(), never());
    push_range(&mut q, Lane::Telemetry, 1..=5);
    let all = read_all(&mut q);
    assert_eq!(all.len(), 5);
    assert!(q.ack(Lane::Telemetry, 3).expect("ack"));
    assert_eq!((q.stats().depth, q.stats().in_flight), (5, 4));
    assert!(q.ack(Lane::Telemetry, 1).expect("ack"));
    assert_eq!(q.stats().depth, 4);
    assert!(q.ack(Lane::Telemetry, 2).expect("ack"));
    assert_eq!(q.stats().depth, 2);
    // Already confirmed, never handed out, or another lane's: not in flight.
    assert!(!q.ack(Lane::Telemetry, 2).expect("ack"));
    assert!(!q.ack(Lane::Telemetry, 99).expect("ack"));
    assert!(!q.ack(Lane::Alerts, 4).expect("ack"));
}

#[test]
fn rewind_hands_out_unconfirmed_entries_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut q = open(dir.path(), never());
    push_range(&mut q, Lane::Alerts, 1..=2);
    push_range(&mut q, Lane::Telemetry, 1..=5);
    let all = read_all(&mut q);
    ack_all(&mut q, &all[..3]);
    q.rewind();
    // Handed out before the rewind: it comes again, so this ack is ignored.
    assert!(!q.ack(Lane::Telemetry, 4).expect("ack"));
    let again = read_all(&mut q);
    assert_eq!(ids(&again), lane_ids(Lane::Telemetry, 2..=5));
    assert!(q.ack(Lane::Telemetry, 4).expect("ack"));
}

#[test]
fn reopening_replays_what_was_not_confirmed_and_nothing_else() {
    let batch = FsyncPolicy::Batch {
        records: 3,
        interval: Duration::from_secs(1),
    };
    // Always writes the cursor on every ack, so even a crash keeps it exact;
    // the other policies are exact after `close`.
    for (fsync, crash) in [
        (FsyncPolicy::Always, true),
        (batch, false),
        (FsyncPolicy::Never, false),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut q = open(dir.path(), cfg(fsync));
        push_range(&mut q, Lane::Telemetry, 1..=60);
        push_range(&mut q, Lane::Alerts, 1..=5);
        let all = read_all(&mut q);
        ack_all(&mut q, &all[..25]);
        if crash {
            drop(q);
        } else {
            q.close().expect("close");
        }
        let mut q = open(dir.path(), cfg(fsync));
        assert_eq!(q.stats().depth, 40, "{fsync:?}");
        let again = read_all(&mut q);
        assert_eq!(ids(&again), lane_ids(Lane::Telemetry, 21..=60), "{fsync:?}");
        // Ids go on where they stopped.
        assert_eq!(q.push(Lane::Telemetry, b"x", 0).expect("push"), 61);
        assert_eq!(q.push(Lane::Alerts, b"x", 0).expect("push"), 6);
    }
}

#[test]
fn ids_are_never_reused_once_everything_is_confirmed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut q = open(dir.path(), never());
    push_range(&mut q, Lane::Telemetry, 1..=10);
    let all = read_all(&mut q);
    ack_all(&mut q, &all);
    q.close().expect("close");
    let mut q = open(dir.path(), never());
    assert_eq!(
        q.stats().segments,
        0,
        "fully confirmed segments are removed at open"
    );
    assert_eq!(
        q.push(Lane::Telemetry, &payload(Lane::Telemetry, 11), 0)
            .expect("push"),
        11
    );
    assert_eq!(ids(&read_all(&mut q)), lane_ids(Lane::Telemetry, 11..=11));
}

#[test]
fn a_crash_loses_nothing_accepted_and_may_replay_confirmed_entries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut q = open(dir.path(), never());
    push_range(&mut q, Lane::Telemetry, 1..=100);
    let all = read_all(&mut q);
    // Fewer confirmations than the cursor is written for under `Never`.
    ack_all(&mut q, &all[..10]);
    drop(q);
    let mut q = open(dir.path(), never());
    let again = ids(&read_all(&mut q));
    assert!(again.ends_with(&lane_ids(Lane::Telemetry, 11..=100)), "{again:?}");
    assert_eq!(
        again.first(),
        Some(&(Lane::Telemetry, 1)),
        "confirmed entries come again"
    );
}

#[test]
fn a_partly_written_record_after_a_crash_is_skipped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut q = open(dir.path(), never());
    push_range(&mut q, Lane::Telemetry, 1..=20);
    drop(q);
    // The crash hit while entry 21 was being written.
    let files = segment_files(dir.path(), Lane::Telemetry);
    let last = files.last().expect("a segment");
    let mut torn = Vec::new();
    format::encode_record(21, 210, &payload(Lane::Telemetry, 21), &mut torn);
    torn.truncate(torn.len() / 2);
    let mut bytes = std::fs::read(last).expect("read");
    bytes.extend_from_slice(&torn);
    std::fs::write(last, bytes).expect("write");

    let mut q = open(dir.path(), never());
    assert_eq!(q.stats().corrupt_records, 1);
    assert_eq!(
        q.push(Lane::Telemetry, &payload(Lane::Telemetry, 21), 210)
            .expect("push"),
        21
    );
    drop(q);
    let mut q = open(dir.path(), never());
    assert_eq!(ids(&read_all(&mut q)), lane_ids(Lane::Telemetry, 1..=21));
    let s = q.stats();
    assert_eq!((s.corrupt_records, s.corrupt_bytes), (1, torn.len() as u64));
}

#[test]
fn a_truncated_last_segment_is_detected_and_the_rest_replays() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut q = open(dir.path(), never());
    push_range(&mut q, Lane::Telemetry, 1..=10);
    q.close().expect("close");
    let files = segment_files(dir.path(), Lane::Telemetry);
    assert_eq!(files.len(), 1);
    cut_tail(&files[0], 5);
    let mut q = open(dir.path(), never());
    assert_eq!(q.stats().corrupt_records, 1);
    assert_eq!(ids(&read_all(&mut q)), lane_ids(Lane::Telemetry, 1..=9));
    // Counted once: reading the torn tail again does not count it again.
    q.rewind();
    assert_eq!(read_all(&mut q).len(), 9);
    assert_eq!(q.stats().corrupt_records, 1);
    // The torn entry's id was never handed out; the next push takes it.
    assert_eq!(
        q.push(Lane::Telemetry, &payload(Lane::Telemetry, 10), 0)
            .expect("push"),
        10
    );
}

#[test]
fn a_flipped_byte_skips_one_record_and_the_rest_replays() {
    // In a payload (skipped exactly), in a header's id (resynchronised on the
    // next record), in a header's length (same), and in a segment's header.
    let all_but_5: Vec<u64> = (1..=10).filter(|&n| n != 5).collect();
    let cases = [
        (record_offset(4) + 32 + 50, all_but_5.clone()),
        (record_offset(4) + 9, all_but_5.clone()),
        (record_offset(4) + 5, all_but_5),
        (3, (1..=10).collect()),
    ];
    for (offset, expected) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut q = open(dir.path(), never());
        push_range(&mut q, Lane::Telemetry, 1..=10);
        q.close().expect("close");
        let files = segment_files(dir.path(), Lane::Telemetry);
        flip_byte(&files[0], offset);
        let mut q = open(dir.path(), never());
        assert_eq!(q.stats().corrupt_records, 1, "byte {offset}");
        let all = read_all(&mut q);
        let expected: Vec<(Lane, u64)> = expected.into_iter().map(|n| (Lane::Telemetry, n)).collect();
        assert_eq!(ids(&all), expected, "byte {offset}");
        assert_eq!(q.stats().corrupt_records, 1, "byte {offset}: counted once");
        // The lost entry does not hold the cursor back.
        ack_all(&mut q, &all);
        assert_eq!(q.stats().depth, 0, "byte {offset}");
    }
}

#[test]
fn damage_in_an_older_segment_is_found_on_replay() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut q = open(dir.path(), never());
    push_range(&mut q, Lane::Telemetry, 1..=100);
    q.close().expect("close");
    let files = segment_files(dir.path(), Lane::Telemetry);
    assert!(files.len() > 2);
    // The third record of the first segment.
    flip_byte(&files[0], record_offset(2) + 40);
    let mut q = open(dir.path(), never());
    assert_eq!(
        q.stats().corrupt_records,
        0,
        "only the last segment is read at open"
    );
    let all = read_all(&mut q);
    let expected = [
        lane_ids(Lane::Telemetry, 1..=2),
        lane_ids(Lane::Telemetry, 4..=100),
    ]
    .concat();
    assert_eq!(ids(&all), expected);
    assert_eq!(q.stats().corrupt_records, 1);
    q.rewind();
    assert_eq!(read_all(&mut q).len(), 99);
    assert_eq!(q.stats().corrupt_records, 1);
}

#[test]
fn the_byte_bound_evicts_oldest_first_and_counts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let small = QueueConfig {
        max_bytes: 4 * 4096,
        ..never()
    };
    let mut q = open(dir.path(), small);
    push_range(&mut q, Lane::Telemetry, 1..=1000);
    let s = q.stats();
    assert!(s.bytes <= small.max_bytes, "{s:?}");
    assert!(s.evicted > 0);
    assert_eq!(s.evicted + s.depth, 1000);
    let all = read_all(&mut q);
    // What is left is the newest entries, in order, with no hole.
    assert_eq!(ids(&all), lane_ids(Lane::Telemetry, s.evicted + 1..=1000));
    // Survives a restart: evicted entries do not come back.
    drop(q);
    let mut q = open(dir.path(), small);
    assert_eq!(read_all(&mut q).first().map(|e| e.id), Some(s.evicted + 1));
}

#[test]
fn the_byte_bound_spares_alerts_while_there_is_telemetry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let small = QueueConfig {
        max_bytes: 4 * 4096,
        ..never()
    };
    let mut q = open(dir.path(), small);
    push_range(&mut q, Lane::Alerts, 1..=5);
    push_range(&mut q, Lane::Telemetry, 1..=1000);
    let s = q.stats();
    assert!(s.evicted > 0);
    assert_eq!(s.alerts_depth, 5);
    let all = read_all(&mut q);
    assert_eq!(ids(&all[..5]), lane_ids(Lane::Alerts, 1..=5));
    // Entries handed out when their segment is evicted are dropped too.
    push_range(&mut q, Lane::Telemetry, 1001..=2000);
    assert_eq!(q.stats().in_flight, 5);
    assert!(!q.ack(Lane::Telemetry, 1000).expect("ack"));
}

#[test]
fn the_age_bound_evicts_expired_entries_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let aged = QueueConfig {
        max_age: Duration::from_millis(500),
        ..never()
    };
    let mut q = open(dir.path(), aged);
    // Entry n is pushed at n * 10 ms: 1..=100 from 10 to 1000 ms.
    // Pushing goes on at the times given, so by 1000 ms the entries older than
    // 500 ms (pushed before 500 ms) have expired: the first segment (entries 1
    // to 30, up to 300 ms) is deleted, and the rest are skipped when read.
    push_range(&mut q, Lane::Telemetry, 1..=100);
    q.tick(1000).expect("tick");
    let first = segment_files(dir.path(), Lane::Telemetry)[0].clone();
    assert!(first.ends_with(format::segment_name(31)), "{first:?}");
    assert_eq!(ids(&read_all(&mut q)), lane_ids(Lane::Telemetry, 50..=100));
    assert_eq!(q.stats().evicted, 49);
    // Expiry also reaches entries in flight.
    q.tick(1305).expect("tick");
    q.rewind();
    assert_eq!(ids(&read_all(&mut q)), lane_ids(Lane::Telemetry, 81..=100));
    assert_eq!(q.stats().evicted, 80);
}

#[test]
fn stats_report_depth_and_the_oldest_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut q = open(dir.path(), never());
    assert_eq!(q.stats().oldest_ms, None);
    push_range(&mut q, Lane::Telemetry, 1..=3);
    push_range(&mut q, Lane::Alerts, 1..=1);
    let s = q.stats();
    assert_eq!((s.depth, s.alerts_depth, s.oldest_ms), (4, 1, Some(10)));
    let first = q.next_batch(2).expect("next_batch");
    assert_eq!(q.stats().oldest_ms, Some(10));
    ack_all(&mut q, &first);
    let next = q.next_batch(1).expect("next_batch");
    assert_eq!(ids(&next), lane_ids(Lane::Telemetry, 2..=2));
    assert_eq!(q.stats().oldest_ms, Some(20));
    // Times never go back within a lane.
    q.push(Lane::Telemetry, b"late", 5).expect("push");
    let late = read_all(&mut q);
    assert_eq!(late.last().map(|e| e.ts_ms), Some(30));
}

#[test]
fn a_second_open_of_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let q = open(dir.path(), never());
    assert!(matches!(
        DiskQueue::open(dir.path(), never()),
        Err(QueueError::Locked { .. })
    ));
    drop(q);
    assert!(DiskQueue::open(dir.path(), never()).is_ok());
}

#[test]
fn an_entry_larger_than_a_segment_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut q = open(dir.path(), never());
    let max = never().max_payload();
    assert!(q.push(Lane::Alerts, &vec![0; max], 0).is_ok());
    assert!(matches!(
        q.push(Lane::Alerts, &vec![0; max + 1], 0),
        Err(QueueError::TooLarge { .. })
    ));
    assert!(matches!(
        DiskQueue::open(
            dir.path().join("other").as_path(),
            QueueConfig {
                segment_bytes: 10,
                ..never()
            }
        ),
        Err(QueueError::Config { .. })
    ));
}

#[test]
fn every_policy_round_trips() {
    let policies = [
        FsyncPolicy::Always,
        FsyncPolicy::Batch {
            records: 4,
            interval: Duration::from_millis(100),
        },
        FsyncPolicy::Never,
    ];
    for fsync in policies {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut q = open(dir.path(), cfg(fsync));
        push_range(&mut q, Lane::Telemetry, 1..=50);
        q.tick(10_000).expect("tick");
        let all = read_all(&mut q);
        ack_all(&mut q, &all[..20]);
        q.tick(10_001).expect("tick");
        drop(q);
        let mut q = open(dir.path(), cfg(fsync));
        assert_eq!(
            ids(&read_all(&mut q)),
            lane_ids(Lane::Telemetry, 21..=50),
            "{fsync:?}"
        );
    }
}

#[test]
fn a_damaged_cursor_replays_everything_rather_than_losing_anything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut q = open(dir.path(), never());
    push_range(&mut q, Lane::Telemetry, 1..=10);
    let all = read_all(&mut q);
    ack_all(&mut q, &all[..5]);
    q.close().expect("close");
    std::fs::write(dir.path().join("cursor"), b"garbage").expect("write cursor");
    let mut q = open(dir.path(), never());
    assert_eq!(ids(&read_all(&mut q)), lane_ids(Lane::Telemetry, 1..=10));
}

/// A lane as the queue should see it.
#[derive(Debug, Default)]
struct ModelLane {
    next_id: u64,
    done: u64,
    read_through: u64,
    in_flight: std::collections::BTreeSet<u64>,
    /// Confirmed out of order, beyond `done`.
    acked: std::collections::BTreeSet<u64>,
}

impl ModelLane {
    fn advance(&mut self) {
        while self.acked.remove(&(self.done + 1)) {
            self.done += 1;
        }
    }

    fn restart(&mut self, done: u64) {
        assert!(done <= self.done, "the queue confirmed more than it was told");
        self.done = done;
        self.read_through = done;
        self.in_flight.clear();
        self.acked.clear();
    }
}

/// Random pushes, reads, acks (in any order), rewinds, reopens and crashes,
/// checked against a model of what must come out. No bound is reached.
#[test]
fn random_operations_match_the_model() {
    for seed in 1..=4u64 {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut q = Some(open(dir.path(), never()));
        let mut model = [ModelLane::default(), ModelLane::default()];
        for m in &mut model {
            m.next_id = 1;
        }
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for step in 0..2000 {
            let mut queue = q.take().expect("queue");
            let lane = if next(5) == 0 {
                Lane::Alerts
            } else {
                Lane::Telemetry
            };
            let m = &mut model[lane.index()];
            match next(100) {
                0..50 => {
                    let id = queue.push(lane, &payload(lane, m.next_id), step).expect("push");
                    assert_eq!(id, m.next_id, "step {step}");
                    m.next_id += 1;
                }
                50..70 => {
                    let max = next(20) as usize + 1;
                    let got = ids(&queue.next_batch(max).expect("next_batch"));
                    let mut expected = Vec::new();
                    for l in Lane::ALL {
                        let m = &mut model[l.index()];
                        while expected.len() < max && m.read_through + 1 < m.next_id {
                            m.read_through += 1;
                            m.in_flight.insert(m.read_through);
                            expected.push((l, m.read_through));
                        }
                    }
                    assert_eq!(got, expected, "step {step}");
                }
                70..95 => {
                    let id = if m.in_flight.is_empty() || next(10) == 0 {
                        next(m.next_id + 2)
                    } else {
                        let k = next(m.in_flight.len() as u64) as usize;
                        m.in_flight.iter().nth(k).copied().expect("k in range")
                    };
                    let expected = m.in_flight.remove(&id);
                    if expected {
                        m.acked.insert(id);
                        m.advance();
                    }
                    assert_eq!(
                        queue.ack(lane, id).expect("ack"),
                        expected,
                        "step {step}: ack {lane} {id}"
                    );
                }
                95..97 => {
                    queue.rewind();
                    for m in &mut model {
                        let done = m.done;
                        m.restart(done);
                    }
                }
                97..99 => {
                    queue.close().expect("close");
                    queue = open(dir.path(), never());
                    for m in &mut model {
                        let done = m.done;
                        m.restart(done);
                    }
                }
                _ => {
                    // A crash: the cursor may be behind, never ahead.
                    drop(queue);
                    queue = open(dir.path(), never());
                    let s = queue.stats();
                    let depths = [s.alerts_depth, s.depth - s.alerts_depth];
                    for (m, depth) in model.iter_mut().zip(depths) {
                        let done = m.next_id - 1 - depth;
                        m.restart(done);
                    }
                }
            }
            let s = queue.stats();
            let depth = |m: &ModelLane| m.next_id - 1 - m.done;
            assert_eq!(s.alerts_depth, depth(&model[0]), "step {step}");
            assert_eq!(s.depth, depth(&model[0]) + depth(&model[1]), "step {step}");
            let in_flight: usize = model.iter().map(|m| m.in_flight.len()).sum();
            assert_eq!(s.in_flight, in_flight as u64, "step {step}");
            assert_eq!((s.corrupt_records, s.evicted), (0, 0), "step {step}");
            q = Some(queue);
        }
    }
}
