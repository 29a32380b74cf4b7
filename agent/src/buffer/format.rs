//! The bytes on disk: segment headers, records and the cursor, framed and
//! checked in memory.
//!
//! Pure: no file IO and no clock, so every rule about what counts as a good
//! record is tested here on byte slices. `segment.rs` moves these bytes to and
//! from files. The layout is described in the parent module's documentation;
//! changing it means a new `VERSION`.

use super::Lane;

pub const VERSION: u8 = 1;

const SEGMENT_MAGIC: [u8; 6] = *b"WLQSEG";
pub const SEGMENT_HEADER_LEN: usize = 28;

const RECORD_MAGIC: [u8; 4] = *b"WLQR";
pub const RECORD_HEADER_LEN: usize = 32;
/// Largest payload a record may carry, whatever the configuration. A header
/// claiming more is treated as corrupt, so a damaged length never makes the
/// reader allocate gigabytes.
pub const MAX_PAYLOAD: usize = 64 << 20;

const CURSOR_MAGIC: [u8; 8] = *b"WLQCUR\x00\x01";
pub const CURSOR_LEN: usize = 28;

/// The first bytes of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub lane: Lane,
    pub first_id: u64,
    pub first_ts: i64,
}

pub fn encode_segment_header(h: &SegmentHeader) -> [u8; SEGMENT_HEADER_LEN] {
    let mut b = [0u8; SEGMENT_HEADER_LEN];
    b[0..6].copy_from_slice(&SEGMENT_MAGIC);
    b[6] = VERSION;
    b[7] = h.lane.code();
    b[8..16].copy_from_slice(&h.first_id.to_le_bytes());
    b[16..24].copy_from_slice(&h.first_ts.to_le_bytes());
    let crc = crc32fast::hash(&b[..24]);
    b[24..28].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The header at the start of `b`, or `None` when it is short or damaged.
pub fn decode_segment_header(b: &[u8]) -> Option<SegmentHeader> {
    let b = b.get(..SEGMENT_HEADER_LEN)?;
    if b[0..6] != SEGMENT_MAGIC || b[6] != VERSION || crc32fast::hash(&b[..24]) != le_u32(&b[24..28]) {
        return None;
    }
    Some(SegmentHeader {
        lane: Lane::from_code(b[7])?,
        first_id: le_u64(&b[8..16]),
        first_ts: le_u64(&b[16..24]) as i64,
    })
}

/// Bytes a record with a payload of `payload_len` takes on disk.
pub const fn record_len(payload_len: usize) -> usize {
    RECORD_HEADER_LEN + payload_len
}

/// Appends the record to `out`. The caller keeps `payload` within
/// [`MAX_PAYLOAD`].
pub fn encode_record(id: u64, ts_ms: i64, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&ts_ms.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let crc = crc32fast::hash(&out[start..start + 28]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A good record, borrowed from the bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub id: u64,
    pub ts_ms: i64,
    pub payload: &'a [u8],
}

/// What the bytes at the start of a buffer are.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    Record(Record<'a>),
    /// Not enough bytes yet to tell.
    NeedMore,
    /// Not the start of a record: wrong magic, or a header checksum that fails.
    BadHeader,
    /// A sound header whose payload checksum fails: the record is `len` bytes
    /// long and can be skipped exactly.
    BadPayload {
        id: u64,
        len: usize,
    },
}

pub fn decode_record(b: &[u8]) -> Decoded<'_> {
    let seen = b.len().min(RECORD_MAGIC.len());
    if b[..seen] != RECORD_MAGIC[..seen] {
        return Decoded::BadHeader;
    }
    if b.len() < RECORD_HEADER_LEN {
        return Decoded::NeedMore;
    }
    if crc32fast::hash(&b[..28]) != le_u32(&b[28..32]) {
        return Decoded::BadHeader;
    }
    let len = le_u32(&b[4..8]) as usize;
    if len > MAX_PAYLOAD {
        return Decoded::BadHeader;
    }
    let id = le_u64(&b[8..16]);
    let Some(payload) = b.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
        return Decoded::NeedMore;
    };
    if crc32fast::hash(payload) != le_u32(&b[24..28]) {
        return Decoded::BadPayload {
            id,
            len: record_len(len),
        };
    }
    Decoded::Record(Record {
        id,
        ts_ms: le_u64(&b[16..24]) as i64,
        payload,
    })
}

/// One move of a reader through a segment's records.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// A good record, [`record_len`] of its payload long.
    Record(Record<'a>),
    /// `len` bytes that are not a good record. `id` is known when only the
    /// payload was damaged.
    Skip { len: usize, id: Option<u64> },
    /// Read more bytes and try again (never returned at `eof` unless `b` is
    /// empty).
    NeedMore,
}

/// Reads the next step from `b`, the unread bytes of a segment; `eof` says no
/// more bytes follow them (for now).
pub fn step(b: &[u8], eof: bool) -> Step<'_> {
    if b.is_empty() {
        return Step::NeedMore;
    }
    match decode_record(b) {
        Decoded::Record(r) => Step::Record(r),
        Decoded::BadPayload { id, len } => Step::Skip { len, id: Some(id) },
        // A record cut short: at the end of the file it is a torn tail.
        Decoded::NeedMore if eof => Step::Skip {
            len: b.len(),
            id: None,
        },
        Decoded::NeedMore => Step::NeedMore,
        Decoded::BadHeader => {
            // Resynchronise on the next magic; its header checksum decides.
            if let Some(at) = find_magic(&b[1..]) {
                return Step::Skip {
                    len: at + 1,
                    id: None,
                };
            }
            let len = if eof {
                b.len()
            } else {
                // Keep a tail that could be the start of a magic.
                b.len().saturating_sub(RECORD_MAGIC.len() - 1).max(1)
            };
            Step::Skip { len, id: None }
        }
    }
}

fn find_magic(b: &[u8]) -> Option<usize> {
    b.windows(RECORD_MAGIC.len()).position(|w| w == RECORD_MAGIC)
}

/// The persisted read position: in each lane, every entry with an id up to
/// `done` is confirmed or evicted. Indexed by lane (alerts, telemetry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub done: [u64; 2],
}

pub fn encode_cursor(c: &Cursor) -> [u8; CURSOR_LEN] {
    let mut b = [0u8; CURSOR_LEN];
    b[0..8].copy_from_slice(&CURSOR_MAGIC);
    b[8..16].copy_from_slice(&c.done[0].to_le_bytes());
    b[16..24].copy_from_slice(&c.done[1].to_le_bytes());
    let crc = crc32fast::hash(&b[..24]);
    b[24..28].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The cursor in `b`, or `None` when it is not exactly a sound cursor.
pub fn decode_cursor(b: &[u8]) -> Option<Cursor> {
    if b.len() != CURSOR_LEN || b[0..8] != CURSOR_MAGIC || crc32fast::hash(&b[..24]) != le_u32(&b[24..28]) {
        return None;
    }
    Some(Cursor {
        done: [le_u64(&b[8..16]), le_u64(&b[16..24])],
    })
}

/// The file name of the segment whose first id is `first_id`.
pub fn segment_name(first_id: u64) -> String {
    format!("{first_id:020}.seg")
}

/// The first id in a segment's file name, or `None` for any other file.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(id, id as i64 * 10, payload, &mut out);
        out
    }

    /// What a reader makes of a whole segment body: good ids and skipped runs.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Good(u64),
        Bad(usize),
    }

    /// Steps through `b` as a reader does, `chunk` bytes becoming visible at a
    /// time, merging adjacent skips as the reader counts them.
    fn scan(b: &[u8], chunk: usize) -> Vec<Seen> {
        let mut seen = Vec::new();
        let (mut at, mut visible) = (0, chunk.min(b.len()));
        loop {
            let eof = visible == b.len();
            match step(&b[at..visible], eof) {
                Step::Record(r) => {
                    assert_eq!(r.ts_ms, r.id as i64 * 10);
                    seen.push(Seen::Good(r.id));
                    at += record_len(r.payload.len());
                }
                Step::Skip { len, .. } => {
                    match seen.last_mut() {
                        Some(Seen::Bad(n)) => *n += len,
                        _ => seen.push(Seen::Bad(len)),
                    }
                    at += len;
                }
                Step::NeedMore if eof => return seen,
                Step::NeedMore => visible = (visible + chunk).min(b.len()),
            }
        }
    }

    #[track_caller]
    fn check_scan(b: &[u8], expected: &[Seen]) {
        for chunk in [1, 7, 64, b.len().max(1)] {
            assert_eq!(scan(b, chunk), expected, "read {chunk} bytes at a time");
        }
    }

    fn three() -> (Vec<u8>, [usize; 3]) {
        let (a, b, c) = (record(1, b"alpha"), record(2, b"bravo!"), record(3, &[7u8; 100]));
        let lens = [a.len(), b.len(), c.len()];
        ([a, b, c].concat(), lens)
    }

    #[test]
    fn records_round_trip() {
        let bytes = record(42, b"payload");
        assert_eq!(bytes.len(), record_len(7));
        assert_eq!(
            decode_record(&bytes),
            Decoded::Record(Record {
                id: 42,
                ts_ms: 420,
                payload: b"payload",
            })
        );
        let empty = record(1, b"");
        assert!(matches!(decode_record(&empty), Decoded::Record(r) if r.payload.is_empty()));
        check_scan(&three().0, &[Seen::Good(1), Seen::Good(2), Seen::Good(3)]);
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let good = record(9, b"the payload of a record");
        for i in 0..good.len() {
            for bit in [0x01, 0x80] {
                let mut bad = good.clone();
                bad[i] ^= bit;
                match decode_record(&bad) {
                    Decoded::Record(r) => panic!("byte {i} flipped, still read {r:?}"),
                    Decoded::BadPayload { id, len } => {
                        assert!(
                            i >= RECORD_HEADER_LEN,
                            "byte {i}: header damage read as payload damage"
                        );
                        assert_eq!((id, len), (9, good.len()));
                    }
                    Decoded::BadHeader | Decoded::NeedMore => {}
                }
            }
        }
    }

    #[test]
    fn truncation_is_need_more_then_a_torn_tail() {
        let good = record(5, b"0123456789");
        for cut in 1..good.len() {
            assert_eq!(decode_record(&good[..cut]), Decoded::NeedMore, "cut at {cut}");
            assert_eq!(step(&good[..cut], true), Step::Skip { len: cut, id: None });
        }
        assert_eq!(step(&[], true), Step::NeedMore);
    }

    #[test]
    fn damage_is_skipped_and_the_rest_read() {
        let (all, [a, b, _]) = three();
        // Payload byte of record 2: skipped exactly.
        let mut bad = all.clone();
        bad[a + RECORD_HEADER_LEN + 1] ^= 0xff;
        check_scan(&bad, &[Seen::Good(1), Seen::Bad(b), Seen::Good(3)]);
        // Length byte of record 2: resynchronised on record 3.
        let mut bad = all.clone();
        bad[a + 5] ^= 0x10;
        check_scan(&bad, &[Seen::Good(1), Seen::Bad(b), Seen::Good(3)]);
        // Magic of record 1 gone.
        let mut bad = all.clone();
        bad[0] = b'x';
        check_scan(&bad, &[Seen::Bad(a), Seen::Good(2), Seen::Good(3)]);
        // Torn tail.
        let torn = &all[..all.len() - 3];
        check_scan(
            torn,
            &[Seen::Good(1), Seen::Good(2), Seen::Bad(torn.len() - a - b)],
        );
        // Garbage appended, and garbage only.
        let mut tail = all.clone();
        tail.extend_from_slice(b"WLQ garbage WLQR");
        check_scan(
            &tail,
            &[Seen::Good(1), Seen::Good(2), Seen::Good(3), Seen::Bad(16)],
        );
        check_scan(b"no records here at all", &[Seen::Bad(22)]);
    }

    #[test]
    fn huge_claimed_length_is_a_bad_header() {
        let mut b = record(1, b"x");
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let crc = crc32fast::hash(&b[..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_record(&b), Decoded::BadHeader);
    }

    #[test]
    fn segment_headers_round_trip_and_catch_damage() {
        let h = SegmentHeader {
            lane: Lane::Alerts,
            first_id: 77,
            first_ts: -5,
        };
        let b = encode_segment_header(&h);
        assert_eq!(decode_segment_header(&b), Some(h));
        assert_eq!(decode_segment_header(&b[..27]), None);
        for i in 0..b.len() {
            let mut bad = b;
            bad[i] ^= 0x04;
            assert_eq!(decode_segment_header(&bad), None, "byte {i}");
        }
    }

    #[test]
    fn cursors_round_trip_and_catch_damage() {
        let c = Cursor { done: [3, u64::MAX] };
        let b = encode_cursor(&c);
        assert_eq!(decode_cursor(&b), Some(c));
        assert_eq!(decode_cursor(&b[..27]), None);
        assert_eq!(decode_cursor(&[b.as_slice(), &[0]].concat()), None);
        for i in 0..b.len() {
            let mut bad = b;
            bad[i] ^= 0x20;
            assert_eq!(decode_cursor(&bad), None, "byte {i}");
        }
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_name(12), "00000000000000000012.seg");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        for other in [
            "12.seg",
            "00000000000000000012.tmp",
            "0000000000000000001x.seg",
            "lock",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }
}
