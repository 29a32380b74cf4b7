//! Which segments to delete to stay within the queue's bounds.
//!
//! Pure: the queue describes its segments, and this module answers how many
//! to drop from the head of each lane and how many unconfirmed entries that
//! evicts. It never touches files and never reads the clock (the age cutoff is
//! an argument).
//!
//! Rules, oldest first within a lane:
//! 1. age: a segment whose newest entry is older than the cutoff goes;
//! 2. bytes: while the queue plus the bytes about to be written exceed the
//!    bound, drop a head segment whose entries are all confirmed (free),
//!    else the oldest telemetry segment, else the oldest alerts segment.

use super::Lane;

/// One segment, as eviction sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentView {
    pub first_id: u64,
    pub last_id: u64,
    pub bytes: u64,
    /// No entry in the segment is newer than this.
    pub newest_ts: i64,
}

/// One lane: its segments oldest first, and the id up to which every entry
/// is confirmed or evicted.
#[derive(Debug, Clone, Copy)]
pub struct LaneView<'a> {
    pub done: u64,
    pub segments: &'a [SegmentView],
}

/// The decision, indexed by lane (alerts, telemetry).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Segments to delete from the head of each lane.
    pub drop: [usize; 2],
    /// Unconfirmed entries those segments hold.
    pub evicted: [u64; 2],
    /// Bytes they take.
    pub freed: u64,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.drop == [0, 0]
    }
}

/// Plans eviction for queue of `total` bytes about to grow by `incoming`.
pub fn plan(
    lanes: [LaneView<'_>; 2],
    total: u64,
    incoming: u64,
    max_bytes: u64,
    cutoff: Option<i64>,
) -> Plan {
    let mut plan = Plan::default();
    let mut done = [lanes[0].done, lanes[1].done];
    let head = |plan: &Plan, l: usize| lanes[l].segments.get(plan.drop[l]).copied();
    let take = |plan: &mut Plan, done: &mut [u64; 2], l: usize, s: SegmentView| {
        let unconfirmed_from = done[l].max(s.first_id.saturating_sub(1));
        plan.evicted[l] += s.last_id.saturating_sub(unconfirmed_from);
        done[l] = done[l].max(s.last_id);
        plan.drop[l] += 1;
        plan.freed += s.bytes;
    };
    if let Some(cutoff) = cutoff {
        for l in 0..2 {
            while let Some(s) = head(&plan, l).filter(|s| s.newest_ts < cutoff) {
                take(&mut plan, &mut done, l, s);
            }
        }
    }
    let (alerts, telemetry) = (Lane::Alerts.index(), Lane::Telemetry.index());
    while total.saturating_sub(plan.freed) + incoming > max_bytes {
        let free = [alerts, telemetry]
            .into_iter()
            .find(|&l| head(&plan, l).is_some_and(|s| s.last_id <= done[l]));
        let victim = free
            .or_else(|| head(&plan, telemetry).map(|_| telemetry))
            .or_else(|| head(&plan, alerts).map(|_| alerts));
        let Some(l) = victim else { break };
        let Some(s) = head(&plan, l) else { break };
        take(&mut plan, &mut done, l, s);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segments of `n` entries each from id 1, `bytes` long, the k-th holding
    /// entries up to time `(k + 1) * 100`.
    fn segs(n: u64, count: u64, bytes: u64) -> Vec<SegmentView> {
        (0..count)
            .map(|k| SegmentView {
                first_id: k * n + 1,
                last_id: (k + 1) * n,
                bytes,
                newest_ts: (k as i64 + 1) * 100,
            })
            .collect()
    }

    #[track_caller]
    fn check(
        alerts: (u64, &[SegmentView]),
        telemetry: (u64, &[SegmentView]),
        incoming: u64,
        max_bytes: u64,
        cutoff: Option<i64>,
        expected: Plan,
    ) {
        let total: u64 = alerts.1.iter().chain(telemetry.1).map(|s| s.bytes).sum();
        let lanes = [
            LaneView {
                done: alerts.0,
                segments: alerts.1,
            },
            LaneView {
                done: telemetry.0,
                segments: telemetry.1,
            },
        ];
        assert_eq!(plan(lanes, total, incoming, max_bytes, cutoff), expected);
    }

    fn p(drop: [usize; 2], evicted: [u64; 2], freed: u64) -> Plan {
        Plan { drop, evicted, freed }
    }

    #[test]
    fn nothing_to_do_within_bounds() {
        let t = segs(10, 3, 100);
        check((0, &[]), (0, &t), 100, 400, Some(0), Plan::default());
    }

    #[test]
    fn bytes_evict_oldest_telemetry_first() {
        let a = segs(5, 2, 100);
        let t = segs(10, 3, 100);
        // 500 on disk + 50 incoming within 500: one telemetry segment goes.
        check((0, &a), (0, &t), 50, 500, None, p([0, 1], [0, 10], 100));
        // Partly confirmed: only the unconfirmed entries count as evicted.
        check((0, &a), (4, &t), 50, 500, None, p([0, 1], [0, 6], 100));
        // Needing more than telemetry holds reaches the alerts, oldest first.
        check((0, &a), (0, &t), 50, 150, None, p([1, 3], [5, 30], 400));
    }

    #[test]
    fn confirmed_segments_go_before_unconfirmed_ones() {
        let a = segs(5, 2, 100);
        let t = segs(10, 2, 100);
        // The first alerts segment is fully confirmed: dropping it is free.
        check((5, &a), (0, &t), 10, 400, None, p([1, 0], [0, 0], 100));
    }

    #[test]
    fn age_drops_segments_whose_newest_entry_is_too_old() {
        let a = segs(5, 2, 100);
        let t = segs(10, 3, 100);
        // Newest times 100, 200, 300: cutoff 201 drops two of each lane's.
        check((0, &a), (3, &t), 0, 10_000, Some(201), p([2, 2], [10, 17], 400));
        // A segment whose newest entry is exactly at the cutoff stays.
        check((0, &a), (0, &t), 0, 10_000, Some(100), Plan::default());
    }

    #[test]
    fn stops_when_nothing_is_left() {
        let t = segs(10, 1, 100);
        check((0, &[]), (0, &t), 500, 400, None, p([0, 1], [0, 10], 100));
    }
}
