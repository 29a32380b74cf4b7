//! Rollup and retention tests, on both back ends: rollups against a
//! brute-force count of random data with late and duplicate samples, two
//! stores (as two hubs) merging at once, and pruning.

use super::*;
use crate::testing::TestDb;
use std::collections::BTreeMap;
use std::time::Duration;

crate::on_each_backend!(
    rollups_equal_a_brute_force_count_of_late_and_duplicate_samples,
    two_hubs_rolling_up_at_once_count_each_sample_once,
    pruning_keeps_retention_and_what_is_not_rolled_up,
    a_merge_takes_a_sample_stored_in_its_range_and_loses_to_another_merge,
);

const KEEP: Retention = Retention {
    raw: None,
    minute: None,
    hour: None,
};

/// Every distinct sample sent, by device and sequence number.
type Distinct = BTreeMap<(String, u64), Sample>;

/// SplitMix64: reproducible random data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random sample: a time within three hours of `t0`, in no relation to
/// its sequence number (late data), one to three of the metrics, values in
/// eighths so that sums are exact in any order.
fn random_sample(rng: &mut Rng, seq: u64, t0: i64) -> Sample {
    let mut values = BTreeMap::new();
    for m in ["a", "b", "c"] {
        if rng.below(4) > 0 || values.is_empty() && m == "c" {
            values.insert(m.to_string(), (rng.below(1601) as f64 - 800.0) / 8.0);
        }
    }
    Sample {
        seq,
        // Several samples share a millisecond: the last one is then the highest seq.
        ts_ms: t0 + (rng.below(3 * 3600) * 1000) as i64,
        values,
        text: BTreeMap::new(),
        restart: false,
    }
}

fn message(device: &str, samples: Vec<Sample>) -> Telemetry {
    Telemetry {
        v: wearline_models::wire::VERSION,
        gateway: "gw".into(),
        device: device.into(),
        profile: "p".into(),
        samples,
    }
}

/// The rollups every resolution must hold, computed directly from the
/// distinct samples: `(device, row)` by device, metric and bucket.
fn brute_force(samples: &Distinct, width: i64) -> Vec<(String, RollupRow)> {
    let mut aggs: BTreeMap<(String, String, i64), Agg> = BTreeMap::new();
    for ((device, seq), s) in samples {
        for (m, v) in &s.values {
            let a = Agg::of(s.ts_ms, *seq as i64, *v);
            aggs.entry((device.clone(), m.clone(), bucket_start(s.ts_ms, width)))
                .and_modify(|x| x.merge(&a))
                .or_insert(a);
        }
    }
    aggs.into_iter()
        .map(|((device, metric, bucket_ms), a)| {
            let row = RollupRow {
                metric,
                bucket_ms,
                n: a.count,
                sum_v: a.sum,
                min_v: a.min,
                max_v: a.max,
                last_v: a.last,
            };
            (device, row)
        })
        .collect()
}

/// Every rollup row of `devices` at `res`, ordered as [`brute_force`] does.
async fn stored(store: &Store, res: Resolution, devices: &[&str]) -> Vec<(String, RollupRow)> {
    let mut out = Vec::new();
    for d in devices {
        let rows = store
            .rollup_history(res, d, None, i64::MIN / 2, i64::MAX / 2, 1_000_000)
            .await
            .expect("rollups");
        out.extend(rows.into_iter().map(|r| (d.to_string(), r)));
    }
    out.sort_by(|a, b| (&a.0, &a.1.metric, a.1.bucket_ms).cmp(&(&b.0, &b.1.metric, b.1.bucket_ms)));
    out
}

#[track_caller]
fn assert_rollups(got: &[(String, RollupRow)], want: &[(String, RollupRow)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of buckets");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w, "{what}");
    }
}

async fn drain(store: &Store) {
    let mut rounds = 0;
    while store.pending_samples().await.expect("pending") > 0 {
        store.roll_up(0, &KEEP, 0, 0).await.expect("roll up");
        rounds += 1;
        assert!(rounds < 100, "pending samples never drain");
    }
}

/// Random messages of random samples for `devices`, with every sample
/// sent once, and a tenth of them again (in the same batch or later).
fn random_traffic(
    rng: &mut Rng,
    devices: &[&str],
    per_device: u64,
    t0: i64,
) -> (Vec<Vec<Telemetry>>, Distinct) {
    let mut all: Vec<(String, Sample)> = Vec::new();
    let mut distinct = BTreeMap::new();
    for d in devices {
        for seq in 0..per_device {
            let s = random_sample(rng, seq, t0);
            distinct.insert((d.to_string(), seq), s.clone());
            all.push((d.to_string(), s));
        }
    }
    let copies: Vec<(String, Sample)> = (0..all.len() / 10)
        .map(|_| all[rng.below(all.len() as u64) as usize].clone())
        .collect();
    all.extend(copies);
    // Shuffle: sequence numbers arrive in any order.
    for i in (1..all.len()).rev() {
        all.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut batches = Vec::new();
    let mut rest = all.as_slice();
    while !rest.is_empty() {
        let n = (1 + rng.below(60) as usize).min(rest.len());
        let (take, more) = rest.split_at(n);
        rest = more;
        // Messages of a batch: consecutive samples of one device.
        let mut msgs: Vec<Telemetry> = Vec::new();
        for (d, s) in take {
            match msgs.last_mut() {
                Some(m) if m.device == *d && rng.below(3) > 0 => m.samples.push(s.clone()),
                _ => msgs.push(message(d, vec![s.clone()])),
            }
        }
        batches.push(msgs);
    }
    (batches, distinct)
}

async fn rollups_equal_a_brute_force_count_of_late_and_duplicate_samples(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    let mut rng = Rng(7);
    let devices = ["d1", "d2", "d3"];
    let t0 = 1_795_392_000_000 + 17_000; // not on an hour boundary
    let (batches, distinct) = random_traffic(&mut rng, &devices, 400, t0);
    for (i, b) in batches.iter().enumerate() {
        store.insert_batch(b).await.expect("insert");
        // Merges land between batches at random: late samples reach
        // buckets already rolled up.
        if rng.below(4) == 0 {
            store.roll_up(i as i64, &KEEP, 0, 0).await.expect("roll up");
        }
        // A message delivered again after it was rolled up.
        if i % 7 == 3 {
            store.insert_batch(&batches[i / 2]).await.expect("insert again");
        }
    }
    drain(&store).await;
    for (res, width) in [(Resolution::Minute, 60_000), (Resolution::Hour, 3_600_000)] {
        let want = brute_force(&distinct, width);
        assert!(
            want.iter().any(|(_, r)| r.n > 1),
            "some buckets hold several samples"
        );
        assert_rollups(&stored(&store, res, &devices).await, &want, res.as_str());
    }
    // Rolling up again with nothing pending changes nothing.
    assert_eq!(
        store.roll_up(0, &KEEP, 0, 0).await.expect("roll up"),
        Merged::default()
    );
    assert_rollups(
        &stored(&store, Resolution::Hour, &devices).await,
        &brute_force(&distinct, 3_600_000),
        "1h after an empty merge",
    );
}

async fn two_hubs_rolling_up_at_once_count_each_sample_once(db: TestDb) {
    // Two stores on one database: two hubs, each with its own pool.
    let a = Store::open(&db.location).await.expect("open a");
    let b = Store::open(&db.location).await.expect("open b");
    let mut rng = Rng(11);
    let devices: Vec<String> = (0..24).map(|i| format!("dev-{i}")).collect();
    let names: Vec<&str> = devices.iter().map(String::as_str).collect();
    let (batches, distinct) = random_traffic(&mut rng, &names, 120, 1_795_392_000_000);
    // Each hub stores half the messages (a shared subscription) while both
    // merge continually, from the same shard, so they race for rows.
    let (left, right): (Vec<_>, Vec<_>) = batches.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let hub = |store: Store, batches: Vec<(usize, Vec<Telemetry>)>| async move {
        let mut lost = 0;
        for (i, b) in batches {
            store.insert_batch(&b).await.expect("insert");
            if i % 3 == 0 {
                lost += store.roll_up(0, &KEEP, 0, 0).await.expect("roll up").lost;
            }
        }
        for _ in 0..3 {
            lost += store.roll_up(0, &KEEP, 0, 0).await.expect("roll up").lost;
        }
        lost
    };
    let (lost_a, lost_b) = tokio::join!(hub(a.clone(), left), hub(b.clone(), right));
    drain(&a).await;
    for (res, width) in [(Resolution::Minute, 60_000), (Resolution::Hour, 3_600_000)] {
        assert_rollups(
            &stored(&a, res, &names).await,
            &brute_force(&distinct, width),
            &format!(
                "{} (claims lost to the other hub: {})",
                res.as_str(),
                lost_a + lost_b
            ),
        );
    }
}

async fn pruning_keeps_retention_and_what_is_not_rolled_up(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    let day = 86_400_000i64;
    let now = 1_795_392_000_000i64;
    let retention = Retention {
        raw: Some(Duration::from_secs(7 * 86_400)),
        minute: Some(Duration::from_secs(9 * 86_400)),
        hour: None,
    };
    // One sample an hour over the last 10 days, even sequence numbers (a
    // gap before each).
    let samples: Vec<Sample> = (0..240u64)
        .map(|k| Sample {
            seq: 2 * k,
            ts_ms: now - 10 * day + k as i64 * 3_600_000 + 5_000,
            values: BTreeMap::from([("a".to_string(), k as f64)]),
            text: BTreeMap::new(),
            restart: false,
        })
        .collect();
    store
        .insert_samples("gw", "d", "p", samples.clone())
        .await
        .expect("insert");
    let raw_count = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .raw_history("d", None, i64::MIN / 2, i64::MAX / 2, 10_000)
                .await
                .expect("raw")
                .len()
        }
    };
    // Nothing is rolled up yet: no raw sample may go.
    assert_eq!(store.prune(&retention, now, 7).await.expect("prune").raw, 0);
    assert_eq!(raw_count(&store).await, 240);

    drain(&store).await;
    let pruned = store.prune(&retention, now, 7).await.expect("prune");
    // Raw: older than 7 days (72 samples). Minutes: older than 9 days (24 buckets).
    assert_eq!(
        pruned,
        Pruned {
            raw: 72,
            minute: 24,
            hour: 0
        }
    );
    assert_eq!(raw_count(&store).await, 240 - 72);
    let minutes = store
        .rollup_history(Resolution::Minute, "d", None, 0, i64::MAX / 2, 10_000)
        .await
        .expect("1m");
    assert_eq!(minutes.len(), 240 - 24);
    assert!(minutes.iter().all(|r| r.bucket_ms + 60_000 > now - 9 * day));
    let hours = store
        .rollup_history(Resolution::Hour, "d", None, 0, i64::MAX / 2, 10_000)
        .await
        .expect("1h");
    assert_eq!(hours.len(), 240, "1-hour rollups are kept forever");
    assert_eq!(
        store.prune(&retention, now, 7).await.expect("again"),
        Pruned::default()
    );

    // A late sample from 8 days ago (filling the gap just above the pruned
    // numbers; its minute is seq 96's) waits for its rollup before it is pruned.
    let late = Sample {
        seq: 143,
        ts_ms: now - 8 * day + 1_000,
        values: BTreeMap::from([("a".to_string(), 0.5)]),
        text: BTreeMap::new(),
        restart: false,
    };
    let fresh = store
        .insert_samples("gw", "d", "p", vec![late])
        .await
        .expect("late");
    assert_eq!(fresh.len(), 1);
    assert_eq!(store.prune(&retention, now, 7).await.expect("prune").raw, 0);
    assert_eq!(raw_count(&store).await, 240 - 72 + 1);
    store.roll_up(0, &retention, now, 0).await.expect("roll up");
    // Still 8 days old: past raw retention, within the minutes'.
    let late_minute = store
        .rollup_history(
            Resolution::Minute,
            "d",
            None,
            now - 8 * day,
            now - 8 * day + 60_000,
            10,
        )
        .await
        .expect("1m");
    assert_eq!(late_minute.first().map(|r| (r.n, r.sum_v)), Some((2, 48.5)));
    assert_eq!(store.prune(&retention, now, 7).await.expect("prune").raw, 1);

    // A copy of a pruned sample is no longer new: counted nowhere. Nor is
    // a sample past raw retention below the pruned numbers (seq 95): it
    // cannot be told from a copy.
    let gap_filler = Sample {
        seq: 95,
        ..samples[47].clone()
    };
    let fresh = store
        .insert_samples(
            "gw",
            "d",
            "p",
            vec![samples[3].clone(), gap_filler, samples[71].clone()],
        )
        .await
        .expect("copies");
    assert!(fresh.is_empty(), "copies of pruned samples were taken: {fresh:?}");
    assert_eq!(store.pending_samples().await.expect("pending"), 0);
    let hours_after = store
        .rollup_history(Resolution::Hour, "d", None, 0, i64::MAX / 2, 10_000)
        .await
        .expect("1h");
    assert_eq!(hours_after.iter().map(|r| r.n).sum::<i64>(), 241);
    // A sample older than the 1-minute retention goes to the hour only.
    let old = Sample {
        seq: 1001, // past every pruned number
        ts_ms: now - 9 * day - 1_000,
        values: BTreeMap::from([("a".to_string(), 2.0)]),
        text: BTreeMap::new(),
        restart: false,
    };
    store
        .insert_samples("gw", "d", "p", vec![old])
        .await
        .expect("old");
    store.roll_up(0, &retention, now, 0).await.expect("roll up");
    let minutes_after = store
        .rollup_history(Resolution::Minute, "d", None, 0, i64::MAX / 2, 10_000)
        .await
        .expect("1m");
    assert_eq!(minutes_after.len(), 240 - 24, "no partial minute past retention");
    let hours_after = store
        .rollup_history(Resolution::Hour, "d", None, 0, i64::MAX / 2, 10_000)
        .await
        .expect("1h");
    assert_eq!(hours_after.iter().map(|r| r.n).sum::<i64>(), 242);
}

/// Sample `seq` of a one-metric device: value `seq`, one a second.
fn numbered(seq: u64) -> Sample {
    Sample {
        seq,
        ts_ms: 1_795_392_000_000 + seq as i64 * 1000,
        values: BTreeMap::from([("a".to_string(), seq as f64)]),
        text: BTreeMap::new(),
        restart: false,
    }
}

/// The hour's figures of device `d`: count and sum.
async fn hour_of(store: &Store) -> (i64, f64) {
    let rows = store
        .rollup_history(Resolution::Hour, "d", None, 0, i64::MAX / 2, 10)
        .await
        .expect("1h");
    (rows.iter().map(|r| r.n).sum(), rows.iter().map(|r| r.sum_v).sum())
}

async fn a_merge_takes_a_sample_stored_in_its_range_and_loses_to_another_merge(db: TestDb) {
    let store = Store::open(&db.location).await.expect("open");
    let shard = shard_of("d");
    let read = |store: &Store| {
        let store = store.clone();
        async move {
            let behind = store.devices_behind(shard).await.expect("behind");
            store
                .read_merge(shard, &behind, &KEEP, 0)
                .await
                .expect("read")
                .expect("something to merge")
        }
    };
    // Sequence numbers 0, 1 and 3: 2 is still on its way.
    let first: Vec<Sample> = [0, 1, 3].into_iter().map(numbered).collect();
    store.insert_samples("gw", "d", "p", first).await.expect("insert");
    assert_eq!(store.rollup_backlog_points().await.expect("backlog"), 3);

    // 2 is stored between a merge's read of (-1, 3] and its write: the
    // merge must not move the watermark past it without adding it (nor
    // give up, which would starve a device whose samples arrive out of
    // order).
    let stale = read(&store).await;
    let fresh = store
        .insert_samples("gw", "d", "p", vec![numbered(2)])
        .await
        .expect("2");
    assert_eq!(fresh.len(), 1);
    let merged = store.commit_merge(stale, 0).await.expect("commit");
    assert_eq!((merged.samples, merged.lost), (4, 0));
    assert_eq!(hour_of(&store).await, (4, 6.0));
    assert_eq!(store.pending_samples().await.expect("pending"), 0);
    assert_eq!(store.rollup_backlog_points().await.expect("backlog"), 0);

    // Two hubs read the same range; the second to write loses.
    store
        .insert_samples("gw", "d", "p", vec![numbered(4)])
        .await
        .expect("4");
    let (a, b) = (read(&store).await, read(&store).await);
    let merged = store.commit_merge(a, 0).await.expect("a");
    assert_eq!((merged.samples, merged.lost), (1, 0));
    assert_eq!(store.commit_merge(b, 0).await.expect("b").lost, 1);
    assert_eq!(hour_of(&store).await, (5, 10.0), "the lost merge wrote nothing");
    assert_eq!(store.rollup_backlog_points().await.expect("backlog"), 0);

    // A late sample below the watermark (5, after 6 was rolled up) waits
    // in a pending row, and is counted once.
    store
        .insert_samples("gw", "d", "p", vec![numbered(6)])
        .await
        .expect("6");
    store.roll_up(0, &KEEP, 0, 0).await.expect("roll up");
    store
        .insert_samples("gw", "d", "p", vec![numbered(5)])
        .await
        .expect("5");
    assert_eq!(store.rollup_backlog_points().await.expect("backlog"), 1);
    assert_eq!(store.pending_samples().await.expect("pending"), 1);
    let merged = store.roll_up(0, &KEEP, 0, 0).await.expect("roll up");
    assert_eq!((merged.samples, merged.pending_rows), (1, 1));
    assert_eq!(hour_of(&store).await, (7, 21.0));
    assert_eq!(store.rollup_backlog_points().await.expect("backlog"), 0);
    assert_eq!(
        store.roll_up(0, &KEEP, 0, 0).await.expect("again"),
        Merged::default()
    );
}
