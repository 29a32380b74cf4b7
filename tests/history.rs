//! The hub's downsampled history through the real binary: the telemetry
//! endpoint at each resolution against a brute-force count (with duplicate
//! deliveries), its refusals, who may read it; and a hub SIGKILLed under
//! load, restarted and sent everything again, ending with exact rollups.

mod support;

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::*;
use wearline_hub::store::{Location, Resolution, Store};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .expect("clock after 1970")
}

/// A telemetry message: `(topic, payload)`.
fn message(device: &str, samples: &[(u64, i64, BTreeMap<&str, f64>)]) -> (String, String) {
    let samples: Vec<Value> = samples
        .iter()
        .map(|(seq, ts, values)| serde_json::json!({"seq": seq, "ts_ms": ts, "values": values}))
        .collect();
    let body = serde_json::json!({
        "v": 1, "gateway": "gw-h", "device": device, "profile": "air-purifier", "samples": samples,
    });
    (format!("wearline/v1/gw-h/telemetry/{device}"), body.to_string())
}

/// Publishes every message with QoS 1; returns how many the broker
/// acknowledged before the connection ended (all of them, unless the
/// broker went away).
fn publish(broker: &str, client_id: &str, msgs: &[(String, String)]) -> usize {
    let (host, port) = broker.rsplit_once(':').expect("host:port");
    let mut opts = MqttOptions::new(client_id, host, port.parse().expect("port"));
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_inflight(100);
    let (client, mut connection) = Client::new(opts, 200);
    let total = msgs.len();
    let to_send = msgs.to_vec();
    let sender = std::thread::spawn(move || {
        for (topic, payload) in to_send {
            if client.publish(topic, QoS::AtLeastOnce, false, payload).is_err() {
                return;
            }
        }
    });
    let mut acked = 0;
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
            _ => {}
        }
        if acked == total {
            break;
        }
    }
    drop(connection);
    let _ = sender.join();
    acked
}

/// Buckets of width `width` from distinct samples: per metric and bucket
/// start, `(count, sum, min, max, last)` (last by time, then sequence).
type Buckets = BTreeMap<(String, i64), (i64, f64, f64, f64, f64)>;

/// A device's distinct samples: sequence number to time and values.
type Samples = BTreeMap<u64, (i64, BTreeMap<&'static str, f64>)>;

/// A bucket being counted: count, sum, min, max, and the last `(ts, seq, value)`.
type Acc = (i64, f64, f64, f64, (i64, u64, f64));

fn brute_force(samples: &Samples, width: i64) -> Buckets {
    let mut out: BTreeMap<(String, i64), Acc> = BTreeMap::new();
    for (seq, (ts, values)) in samples {
        for (m, v) in values {
            let b = ts - ts.rem_euclid(width);
            let e = out.entry((m.to_string(), b)).or_insert((
                0,
                0.0,
                f64::INFINITY,
                f64::NEG_INFINITY,
                (i64::MIN, 0, 0.0),
            ));
            e.0 += 1;
            e.1 += v;
            e.2 = e.2.min(*v);
            e.3 = e.3.max(*v);
            if (*ts, *seq) > (e.4.0, e.4.1) {
                e.4 = (*ts, *seq, *v);
            }
        }
    }
    out.into_iter()
        .map(|(k, (n, s, lo, hi, last))| (k, (n, s, lo, hi, last.2)))
        .collect()
}

/// The buckets an answer of the telemetry endpoint holds.
fn answered(v: &Value) -> Buckets {
    let mut out = Buckets::new();
    for series in v["series"].as_array().expect("series") {
        let metric = series["metric"].as_str().expect("metric").to_string();
        for p in series["points"].as_array().expect("points") {
            let f = |k: &str| p[k].as_f64().unwrap_or_else(|| panic!("{k} in {p}"));
            let n = p["count"].as_i64().expect("count");
            // JSON numbers are parsed to within an ulp.
            let mean = f("sum") / n as f64;
            assert!((f("mean") - mean).abs() <= 1e-9 * mean.abs().max(1.0), "{p}");
            out.insert(
                (metric.clone(), p["ts_ms"].as_i64().expect("ts_ms")),
                (n, f("sum"), f("min"), f("max"), f("last")),
            );
        }
    }
    out
}

fn rfc3339(ms: i64) -> String {
    wearline_models::time::rfc3339(ms)
}

#[test]
fn telemetry_endpoint_answers_each_resolution_and_refuses_bad_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_hub_config(dir.path(), "rollup_every_secs = 1\n");
    let hub = start_hub_config(dir.path(), &cfg);
    // 300 samples of dev-a, one every 36 s over the last three hours, sent
    // 10 per message; the first message three times. Two for dev-b.
    let t0 = now_ms() - 3 * 3_600_000;
    let mut distinct = BTreeMap::new();
    let mut msgs = Vec::new();
    for chunk in (0..300u64).collect::<Vec<_>>().chunks(10) {
        let samples: Vec<(u64, i64, BTreeMap<&str, f64>)> = chunk
            .iter()
            .map(|&k| {
                let values = BTreeMap::from([("filter_dp", k as f64 / 4.0), ("pm25", (k % 7) as f64)]);
                (k + 1, t0 + k as i64 * 36_000, values)
            })
            .collect();
        for (seq, ts, values) in &samples {
            distinct.insert(*seq, (*ts, values.clone()));
        }
        msgs.push(message("dev-a", &samples));
    }
    msgs.insert(1, msgs[0].clone());
    msgs.push(msgs[0].clone());
    msgs.push(message("dev-b", &[(1, t0, BTreeMap::from([("pm25", 1.0)]))]));
    msgs.push(message("dev-b", &[(2, t0 + 1, BTreeMap::from([("pm25", 2.0)]))]));
    assert_eq!(publish(&hub.broker, "history-pub", &msgs), msgs.len());

    let api = format!("{}/api/v1", hub.api);
    let from = rfc3339(t0 - 3_600_000);
    let url = |device: &str, query: &str| format!("{api}/devices/{device}/telemetry?from={from}&{query}");
    // Rolled up within a second or so of being stored.
    let hours = eventually(
        Duration::from_secs(30),
        "every sample in the 1-hour rollups",
        || {
            // 404 until the device's first message is stored.
            let (code, v, _) = get_as(&url("dev-a", "resolution=1h"), Some(ADMIN_TOKEN));
            if code != 200 {
                return None;
            }
            let n: i64 = answered(&v)
                .iter()
                .filter(|((m, _), _)| m == "filter_dp")
                .map(|(_, b)| b.0)
                .sum();
            (n >= 300).then_some(v)
        },
    );
    assert_eq!(hours["resolution"], "1h");
    assert_eq!(answered(&hours), brute_force(&distinct, 3_600_000));
    let minutes = get_json(&url("dev-a", "resolution=1m"));
    assert_eq!(minutes["resolution"], "1m");
    assert_eq!(answered(&minutes), brute_force(&distinct, 60_000));
    let one = get_json(&url("dev-a", "resolution=1m&metric=pm25"));
    let want: Buckets = brute_force(&distinct, 60_000)
        .into_iter()
        .filter(|((m, _), _)| m == "pm25")
        .collect();
    assert_eq!(answered(&one), want);

    // Raw: the newest `limit`, oldest first.
    let raw = get_json(&url("dev-a", "resolution=raw&metric=filter_dp&limit=50"));
    assert_eq!(raw["resolution"], "raw");
    let series = raw["series"].as_array().expect("series");
    assert_eq!(series.len(), 1, "{raw}");
    assert_eq!(series[0]["truncated"], true);
    let points = series[0]["points"].as_array().expect("points");
    let values: Vec<f64> = points
        .iter()
        .map(|p| p["value"].as_f64().expect("value"))
        .collect();
    let want: Vec<f64> = (250..300).map(|k| k as f64 / 4.0).collect();
    assert_eq!(values, want);
    assert_eq!(points[49]["t"], rfc3339(t0 + 299 * 36_000));

    // Auto: the finest resolution that fits the budget and is still kept.
    for (query, want) in [
        ("limit=1000", "raw"),
        ("limit=299", "1m"),
        ("limit=181", "1m"),
        ("limit=100", "1h"),
        ("resolution=auto&limit=5000", "raw"),
    ] {
        let v = get_json(&url("dev-a", query));
        assert_eq!(v["resolution"], want, "{query}: {v}");
        assert_eq!(v["requested"], "auto");
    }
    let month_ago = rfc3339(now_ms() - 30 * 86_400_000);
    let v = get_json(&format!("{api}/devices/dev-a/telemetry?from={month_ago}"));
    assert_eq!(v["resolution"], "1m", "raw samples are kept 7 days: {v}");

    // A window that ends before it starts holds nothing.
    let (code, empty, _) = get_as(&url("dev-a", "to=2020-01-01T00:00:00Z"), Some(ADMIN_TOKEN));
    assert_eq!(
        (code, empty["series"].clone()),
        (200, serde_json::json!([])),
        "{empty}"
    );

    // Bad parameters: 400 with what is wrong.
    for (query, says) in [
        (
            "resolution=5m",
            "resolution `5m`: expected `raw`, `1m`, `1h` or `auto`",
        ),
        ("limit=0", "limit `0`: expected a whole number from 1 to 10000"),
        ("limit=lots", "limit `lots`"),
        ("to=yesterday", "to `yesterday`: expected an RFC 3339 time"),
        ("metrc=pm25", "unknown field `metrc`"),
    ] {
        let (code, body, _) = get_as(&url("dev-a", query), Some(ADMIN_TOKEN));
        assert_eq!(code, 400, "{query}: {body}");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{query}: {msg}");
    }

    // Who may read it: a customer sees only their device's history.
    let cfg_s = cfg.to_str().expect("utf-8");
    for args in [
        vec![
            "customer",
            "add",
            "--config",
            cfg_s,
            "--name",
            "acme",
            "--email",
            "ops@example.com",
        ],
        vec![
            "customer",
            "assign-device",
            "--config",
            cfg_s,
            "--customer",
            "acme",
            "--device",
            "dev-a",
        ],
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let acme = create_token(
        &cfg,
        &[
            "--role",
            "customer",
            "--name",
            "acme-portal",
            "--customer",
            "acme",
        ],
    );
    let (code, mine, _) = get_as(&url("dev-a", "resolution=1h"), Some(&acme));
    assert_eq!(code, 200, "{mine}");
    assert_eq!(answered(&mine), brute_force(&distinct, 3_600_000));
    let (code, other, _) = get_as(&url("dev-b", "resolution=raw"), Some(&acme));
    assert_eq!(code, 404, "{other}");
    let (code, _, _) = get_as(&url("dev-b", "resolution=raw"), Some(ADMIN_TOKEN));
    assert_eq!(code, 200);
    let (code, _, _) = get_as(&url("nope", ""), Some(ADMIN_TOKEN));
    assert_eq!(code, 404);
    let (code, _, _) = get_as(&url("dev-a", ""), None);
    assert_eq!(code, 401);
}

#[test]
fn a_hub_killed_mid_way_and_restarted_ends_with_exact_rollups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_hub_config(dir.path(), "rollup_every_secs = 1\n");
    // 20 devices × 1500 samples over the last five hours, one per message,
    // in shuffled order (late data in buckets already rolled up).
    let t0 = now_ms() - 5 * 3_600_000;
    let mut rng: u64 = 42;
    let mut next = move || {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        rng >> 33
    };
    let devices: Vec<String> = (0..20).map(|i| format!("kill-{i:02}")).collect();
    let mut distinct: BTreeMap<String, Samples> = BTreeMap::new();
    let mut msgs = Vec::new();
    for d in &devices {
        let mut samples = Vec::new();
        for seq in 1..=1500u64 {
            let ts = t0 + (next() % (5 * 3600)) as i64 * 1000;
            let values = BTreeMap::from([
                ("a", (next() % 801) as f64 / 8.0),
                ("b", (next() % 17) as f64 - 8.0),
            ]);
            distinct
                .entry(d.clone())
                .or_default()
                .insert(seq, (ts, values.clone()));
            samples.push((seq, ts, values));
        }
        msgs.extend(samples.chunks(1).map(|c| message(d, c)));
    }
    for i in (1..msgs.len()).rev() {
        msgs.swap(i, next() as usize % (i + 1));
    }
    let total = (devices.len() * 1500) as u64;

    let hub = start_hub_config(dir.path(), &cfg);
    let broker = hub.broker.clone();
    let health = format!("{}/health", hub.api);
    let first = msgs.clone();
    let publisher = std::thread::spawn(move || publish(&broker, "history-kill-1", &first));
    // Killed once a third is stored and some of it rolled up, while ingest
    // and rollups run: the store then holds both rolled-up and pending
    // samples, and maybe a merge cut short.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt
        .block_on(Store::open(&Location::Sqlite(dir.path().join("hub.db"))))
        .expect("open the hub's store");
    let rolled_up = |store: &Store| {
        rt.block_on(async {
            let mut n = 0;
            for d in &devices {
                let rows = store
                    .rollup_history(Resolution::Hour, d, Some("a"), 0, i64::MAX / 2, 100_000)
                    .await
                    .expect("rollups");
                n += rows.iter().map(|r| r.n).sum::<i64>();
            }
            n
        })
    };
    eventually(Duration::from_secs(60), "a third stored, some rolled up", || {
        let stored = get_json(&health)["ingest"]["samples"].as_u64()?;
        (stored >= total / 3 && rolled_up(&store) > 0).then_some(())
    });
    hub.proc.kill();
    // Two values per sample.
    let stored_at_kill = rt.block_on(store.points()).expect("points") / 2;
    let pending = rt.block_on(store.pending_samples()).expect("pending");
    let rolled = rolled_up(&store);
    assert!(
        pending > 0 && rolled > 0,
        "killed with {rolled} samples rolled up and {pending} pending"
    );
    drop(store);
    // The broker may have taken every message before the kill (it
    // acknowledges on receipt); what counts is that the hub had not stored
    // them all.
    let _ = publisher.join().expect("publisher");
    assert!(
        (stored_at_kill as u64) < total,
        "the kill came after the hub had stored everything: nothing tested"
    );

    // Restarted, and sent everything again, as agents replay what was not
    // confirmed (here: all of it, so most are duplicates).
    let hub = start_hub_config(dir.path(), &cfg);
    assert_eq!(publish(&hub.broker, "history-kill-2", &msgs), msgs.len());
    let api = format!("{}/api/v1", hub.api);
    let from = rfc3339(t0 - 3_600_000);
    for d in &devices {
        let url = |res: &str| format!("{api}/devices/{d}/telemetry?from={from}&resolution={res}&limit=10000");
        let want_hours = brute_force(&distinct[d], 3_600_000);
        let hours = eventually(Duration::from_secs(60), "every sample rolled up", || {
            let (code, v, _) = get_as(&url("1h"), Some(ADMIN_TOKEN));
            if code != 200 {
                return None;
            }
            let got = answered(&v);
            let n: i64 = got.iter().filter(|((m, _), _)| m == "a").map(|(_, b)| b.0).sum();
            (n >= 1500).then_some(got)
        });
        assert_eq!(hours, want_hours, "{d}: 1h");
        assert_eq!(
            answered(&get_json(&url("1m"))),
            brute_force(&distinct[d], 60_000),
            "{d}: 1m"
        );
    }
    let health = get_json(&format!("{}/health", hub.api));
    assert!(health["ingest"]["duplicates"].as_u64() > Some(0), "{health}");
    // Everything is rolled up: the backlog the operator sees is empty.
    assert_eq!(health["history"]["backlog_points"], 0, "{health}");
    let metrics = scrape(&format!("{}/metrics", hub.api)).expect("metrics");
    assert_eq!(
        prom_value(&metrics, "wearline_hub_rollup_backlog_points"),
        Some(0.0),
        "{metrics}"
    );
}
