//! `wearline bench ingest`: how many telemetry points per second a hub fully
//! processes (decoded, deduplicated, stored, predictions updated), against
//! what the same broker delivers to a bare subscriber in the same run.
//!
//! The hub runs as its own process (`wearline hub`, embedded broker, SQLite
//! in a temporary folder), so its peak RSS is its own. This process runs the
//! publishers (each message is one device poll in the agent's format: one
//! time stamp and `--metrics` values, thousands of distinct devices, QoS 1)
//! and the bare subscriber, which subscribes to the same topics and only
//! counts. Rates are taken over the measured window after a warm-up, from the
//! hub's `/health` counters and the subscriber's count.

use anyhow::{Context, Result, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wearline_models::wire::{Sample, Telemetry, Topic, VERSION};

const PROFILE: &str = include_str!("../configs/profiles/air-purifier.toml");
/// Metrics the air-purifier profile's filter needs, first in every poll.
const REAL_METRICS: [&str; 4] = ["filter_dp", "run_hours", "pm25", "fan_speed"];

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Distinct devices, spread over the publishers.
    #[arg(long, default_value_t = 5000)]
    devices: usize,
    /// Publisher connections (one per simulated gateway).
    #[arg(long, default_value_t = 8)]
    publishers: usize,
    /// Values per poll.
    #[arg(long, default_value_t = 20)]
    metrics: usize,
    /// Measured seconds, after the warm-up. A minute by default: the window
    /// then holds one merge of the downsampled history, as every minute of
    /// the hub's life does (30 s missed it, and its stall of the writer).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Messages per second over all publishers; 0 publishes as fast as the
    /// broker takes them. Run once at 0 to find the maximum, then at half of
    /// it for the latency goal.
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

/// Points the hub reports fully processed in `/health` (read whatever its
/// status: a loaded hub may report itself degraded), tried a few times.
fn hub_points(api: &str) -> Option<u64> {
    (0..5).find_map(|attempt| {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let v = get_json(&format!("{api}/health"), None, Duration::from_secs(5))?;
        v["ingest"]["points"].as_u64()
    })
}

/// The JSON body of `GET url` (with a bearer `token`), whatever its status;
/// `None` if it cannot be read within `timeout`.
fn get_json(url: &str, token: Option<&str>, timeout: Duration) -> Option<serde_json::Value> {
    let mut req = ureq::get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    req.config()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .call()
        .ok()?
        .body_mut()
        .read_json()
        .ok()
}

/// Sequence numbers missing between the samples stored, over all devices
/// (`gaps` of `GET /api/v1/devices`).
fn sequence_gaps(api: &str, token: &str) -> Option<u64> {
    let v = get_json(
        &format!("{api}/api/v1/devices"),
        Some(token),
        Duration::from_secs(30),
    )?;
    v.as_array()?
        .iter()
        .map(|d| d["gaps"].as_u64())
        .sum::<Option<u64>>()
}

/// Points the hub has stored but not yet merged into its downsampled
/// history, as its `/health` reports them. The merge runs behind ingest: a
/// backlog that grows over a longer run is a rate the history cannot
/// sustain, however well ingest keeps up.
fn rollup_backlog(api: &str) -> Option<i64> {
    let v = get_json(&format!("{api}/health"), None, Duration::from_secs(5))?;
    v["history"]["backlog_points"].as_i64()
}

/// Peak resident set of a process, bytes (`VmHWM`).
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Two distinct free loopback ports (both held while the second is taken,
/// so they cannot be the same one).
fn free_ports() -> Result<(u16, u16)> {
    let a = std::net::TcpListener::bind("127.0.0.1:0")?;
    let b = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// One poll of device `d` with sequence number `seq`.
fn poll(gateway: &str, device: &str, seq: u64, metrics: usize) -> Telemetry {
    let mut values = BTreeMap::new();
    for name in REAL_METRICS {
        values.insert(name.to_string(), 0.0);
    }
    for k in REAL_METRICS.len()..metrics {
        values.insert(format!("m{k:02}"), 0.0);
    }
    let mut t = Telemetry {
        v: VERSION,
        gateway: gateway.to_string(),
        device: device.to_string(),
        profile: "air-purifier".to_string(),
        samples: vec![Sample {
            seq,
            ts_ms: 0,
            values,
            text: BTreeMap::new(),
            restart: false,
        }],
    };
    advance(&mut t, seq);
    t
}

/// Makes `t` (built by [`poll`]) the poll with sequence number `seq`, taken
/// now, in place: the publishers reuse one per device, so the load
/// generator takes less of the machine from the hub and the broker it
/// measures. Stamped with the wall clock, as an agent does: a fixed date in
/// the past put every sample beyond the 1-minute rollups' retention, so
/// the hub skipped half of its downsampling work.
fn advance(t: &mut Telemetry, seq: u64) {
    let Some(s) = t.samples.first_mut() else {
        return;
    };
    s.seq = seq;
    s.ts_ms = wearline_hub::clock::wall_ms();
    let x = (seq % 5000) as f64 / 5000.0;
    let real = [80.0 + 170.0 * x * x, 1000.0 + seq as f64, 35.0, 1020.0];
    for (name, v) in REAL_METRICS.iter().zip(real) {
        if let Some(slot) = s.values.get_mut(*name) {
            *slot = v;
        }
    }
    for (k, (name, slot)) in s.values.iter_mut().enumerate() {
        if !REAL_METRICS.contains(&name.as_str()) {
            *slot = (seq % 997) as f64 * 0.1 + k as f64;
        }
    }
}

async fn publisher(
    port: u16,
    index: usize,
    devices: Vec<String>,
    metrics: usize,
    rate: f64,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let gateway = format!("bench-gw-{index:03}");
    let mut opts = MqttOptions::new(&gateway, "127.0.0.1", port);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let driver = tokio::spawn(async move {
        loop {
            if let Err(e) = eventloop.poll().await {
                tracing::debug!(error = %e, "publisher connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    // Each device's poll and topic, made once and advanced in place.
    let mut polls: Vec<(Telemetry, String)> = devices
        .iter()
        .map(|d| {
            let topic = Topic::Telemetry {
                gateway: gateway.clone(),
                device: d.clone(),
            }
            .render();
            (poll(&gateway, d, 0, metrics), topic)
        })
        .collect();
    let mut seq = 0u64;
    let started = tokio::time::Instant::now();
    let mut sent = 0u64;
    'outer: loop {
        seq += 1;
        for (t, topic) in &mut polls {
            if stop.load(Ordering::Relaxed) {
                break 'outer;
            }
            if rate > 0.0 {
                // Paced: message `sent` leaves at `sent / rate` seconds.
                tokio::time::sleep_until(started + Duration::from_secs_f64(sent as f64 / rate)).await;
            }
            sent += 1;
            advance(t, seq);
            let payload = serde_json::to_vec(&*t)?;
            client
                .publish(topic.as_str(), QoS::AtLeastOnce, false, payload)
                .await?;
        }
    }
    driver.abort();
    Ok(())
}

/// Publishes one poll of a probe device every 20 ms and reads the hub's API
/// until each is queryable; returns the latencies (publish to visible) of
/// the probes published between `from` and `until`.
async fn probe(
    port: u16,
    api: String,
    token: String,
    metrics: usize,
    from: Instant,
    until: Instant,
) -> Result<Vec<Duration>> {
    let mut opts = MqttOptions::new("bench-probe", "127.0.0.1", port);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let driver = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let published: Arc<std::sync::Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let seen = Arc::new(AtomicBool::new(false));
    // The reader: polls the probe device's last sequence number.
    let reader = {
        let published = published.clone();
        let seen = seen.clone();
        tokio::task::spawn_blocking(move || {
            let url = format!("{api}/api/v1/devices/bench-probe");
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut latencies = Vec::new();
            let mut last = 0u64;
            while Instant::now() < until + Duration::from_secs(2) {
                let v: Option<serde_json::Value> = agent
                    .get(&url)
                    .header("Authorization", &format!("Bearer {token}"))
                    .call()
                    .ok()
                    .and_then(|mut r| r.body_mut().read_json().ok());
                let now = Instant::now();
                if let Some(seq) = v.and_then(|v| v["last_seq"].as_u64()).filter(|s| *s > last) {
                    let map = published.lock().map(|m| m.clone()).unwrap_or_default();
                    for at in map.range(last + 1..=seq).map(|(_, at)| *at) {
                        if at >= from && at <= until {
                            latencies.push(now - at);
                        }
                    }
                    last = seq;
                    seen.store(true, Ordering::Relaxed);
                }
                // Every 2 ms: a latency is seen at most 2 ms late (never
                // early), and the reads cost the hub half what 1 ms did.
                std::thread::sleep(Duration::from_millis(2));
            }
            latencies
        })
    };
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while Instant::now() < until {
        tick.tick().await;
        seq += 1;
        let t = poll("bench-gw-probe", "bench-probe", seq, metrics);
        let topic = Topic::Telemetry {
            gateway: t.gateway.clone(),
            device: t.device.clone(),
        }
        .render();
        let payload = serde_json::to_vec(&t)?;
        if let Ok(mut m) = published.lock() {
            m.insert(seq, Instant::now());
        }
        client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
    }
    let latencies = reader.await?;
    driver.abort();
    Ok(latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Subscribes like the hub and counts telemetry messages.
async fn bare_subscriber(port: u16, count: Arc<AtomicU64>, ready: tokio::sync::oneshot::Sender<()>) {
    let mut opts = MqttOptions::new("bench-bare-subscriber", "127.0.0.1", port);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let mut ready = Some(ready);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = client.try_subscribe("wearline/v1/+/telemetry/+", QoS::AtLeastOnce);
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Ok(Event::Incoming(Packet::Publish(_))) => {
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub async fn run(args: IngestArgs) -> Result<()> {
    if args.devices == 0 || args.publishers == 0 || args.metrics < REAL_METRICS.len() {
        bail!(
            "need at least one device and one publisher, and --metrics ≥ {}",
            REAL_METRICS.len()
        );
    }
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("profiles"))?;
    std::fs::write(dir.path().join("profiles/air-purifier.toml"), PROFILE)?;
    let (broker_port, api_port) = free_ports()?;
    // The probes read the API as an admin: a bootstrap token made for this run.
    let token = wearline_hub::auth::new_token()?;
    std::fs::write(dir.path().join("admin.token"), &token)?;
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "profiles_dir = \"profiles\"\n[broker]\naddress = \"127.0.0.1:{broker_port}\"\n[http]\nlisten = \"127.0.0.1:{api_port}\"\nbootstrap_token_file = \"admin.token\"\n[store]\nsqlite = \"hub.db\"\n"
        ),
    )?;
    let exe = std::env::current_exe().context("locating the wearline binary")?;
    let log = std::fs::File::create(dir.path().join("hub.log"))?;
    let mut hub = std::process::Command::new(exe)
        .args(["hub", "--config", config.to_str().context("utf-8 path")?])
        .env("RUST_LOG", "warn,rumqttd=off")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting the hub")?;
    let pid = hub.id();
    let result = measure(&args, broker_port, api_port, &token, pid, hub.stdout.take()).await;
    let _ = hub.kill();
    let _ = hub.wait();
    if result.is_err() || std::env::var_os("WEARLINE_BENCH_KEEP").is_some() {
        eprintln!("hub log kept in {}", dir.keep().display());
    }
    result
}

async fn measure(
    args: &IngestArgs,
    broker_port: u16,
    api_port: u16,
    token: &str,
    pid: u32,
    stdout: Option<std::process::ChildStdout>,
) -> Result<()> {
    // The hub prints its API address once it serves. Its stdout is read to
    // the end on a thread of its own: a closed pipe would fail its next line.
    let stdout = stdout.context("hub stdout")?;
    let (serving_tx, serving) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut serving_tx = Some(serving_tx);
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("api:")
                && let Some(tx) = serving_tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    serving
        .await
        .context("the hub exited before serving (see its log)")?;
    let api = format!("http://127.0.0.1:{api_port}");

    let bare = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let sub = tokio::spawn(bare_subscriber(broker_port, bare.clone(), ready_tx));
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .context("the bare subscriber could not subscribe")??;

    let stop = Arc::new(AtomicBool::new(false));
    let mut pubs = Vec::new();
    for p in 0..args.publishers {
        let devices: Vec<String> = (p..args.devices)
            .step_by(args.publishers)
            .map(|d| format!("bench-{d:06}"))
            .collect();
        let rate = args.rate as f64 / args.publishers as f64;
        pubs.push(tokio::spawn(publisher(
            broker_port,
            p,
            devices,
            args.metrics,
            rate,
            stop.clone(),
        )));
    }
    eprintln!(
        "{} publishers, {} devices, {} values per poll: warming up {} s, measuring {} s",
        args.publishers, args.devices, args.metrics, args.warmup, args.seconds
    );
    let window_start = Instant::now() + Duration::from_secs(args.warmup);
    let window_end = window_start + Duration::from_secs(args.seconds);
    let prober = tokio::spawn(probe(
        broker_port,
        api.clone(),
        token.to_string(),
        args.metrics,
        window_start,
        window_end,
    ));
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let points = |api: String| async move {
        tokio::task::spawn_blocking(move || hub_points(&api))
            .await
            .ok()
            .flatten()
    };
    let (h0, b0, t0) = (
        points(api.clone()).await.context("reading the hub's counters")?,
        bare.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (h1, b1, elapsed) = (
        points(api.clone()).await.context("reading the hub's counters")?,
        bare.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64(),
    );
    stop.store(true, Ordering::Relaxed);
    for p in pubs {
        if let Ok(Err(e)) = p.await {
            eprintln!("publisher: {e:#}");
        }
    }
    sub.abort();
    // What the broker acknowledged but the hub never got: let the hub drain
    // what the broker holds for it (its counter still for 2 s, at most a
    // minute), then count the sequence numbers missing between stored ones.
    let drain_until = Instant::now() + Duration::from_secs(60);
    let mut last = points(api.clone()).await;
    let mut still_since = Instant::now();
    while Instant::now() < drain_until && still_since.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = points(api.clone()).await;
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    let lost = {
        let (api, token) = (api.clone(), token.to_string());
        tokio::task::spawn_blocking(move || sequence_gaps(&api, &token))
            .await
            .ok()
            .flatten()
    };
    let backlog = {
        let api = api.clone();
        tokio::task::spawn_blocking(move || rollup_backlog(&api))
            .await
            .ok()
            .flatten()
    };
    let mut latencies = prober.await??;
    latencies.sort_unstable();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let per_msg = args.metrics as f64;
    let hub_pps = (h1 - h0) as f64 / elapsed;
    let bare_pps = (b1 - b0) as f64 * per_msg / elapsed;
    let rss_mb = peak_rss(pid).map_or(f64::NAN, |b| b as f64 / 1e6);
    let ratio = if bare_pps > 0.0 {
        hub_pps / bare_pps
    } else {
        f64::NAN
    };
    println!(
        "hub: {:.0} points/s ({:.0} messages/s) fully processed; bare subscriber: {:.0} points/s; ratio {:.3}; hub peak RSS {:.1} MB",
        hub_pps,
        hub_pps / per_msg,
        bare_pps,
        ratio,
        rss_mb
    );
    println!(
        "publish to queryable through the API ({} probes, one per 20 ms): p50 {p50:.1} ms, p99 {p99:.1} ms",
        latencies.len()
    );
    match lost {
        Some(n) => println!(
            "samples lost between the broker and the hub (sequence numbers missing once it drained): {n}"
        ),
        None => println!("samples lost: unknown (the device list could not be read)"),
    }
    match backlog {
        Some(points) => println!(
            "points stored but not yet merged into the 1-minute and 1-hour history: {points} ({:.1} s of the measured rate)",
            points as f64 / hub_pps.max(1.0)
        ),
        None => println!("history backlog: unknown (/health did not report it)"),
    }
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "points_per_sec": hub_pps.round(),
            "messages_per_sec": (hub_pps / per_msg).round(),
            "bare_subscriber_points_per_sec": bare_pps.round(),
            "ratio": r(ratio),
            "peak_rss_mb": r(rss_mb),
            "rate_limit_messages_per_sec": args.rate,
            "latency_probes": latencies.len(),
            "latency_p50_ms": r(p50),
            "latency_p99_ms": r(p99),
            "lost_samples": lost,
            "rollup_backlog_points": backlog,
        })
    );
    Ok(())
}
