//! The sink against a scripted target in paused time (batching, backoff,
//! drop accounting, back-pressure, stopping), and the influxdb2 client
//! against an in-process HTTP stub (the request it makes).

use super::*;
use std::collections::{BTreeMap, VecDeque};

const T0: i64 = 1_750_000_000_000;

/// A target that answers from a script, then with `then`; records each
/// attempt. With a gate, each write first waits for one permit.
struct Fake {
    script: Mutex<VecDeque<Result<(), WriteError>>>,
    then: Result<(), WriteError>,
    attempts: Mutex<Vec<(Instant, String)>>,
    gate: Option<Arc<Semaphore>>,
}

impl Fake {
    fn new(script: Vec<Result<(), WriteError>>, then: Result<(), WriteError>) -> Arc<Fake> {
        Arc::new(Fake {
            script: Mutex::new(script.into()),
            then,
            attempts: Mutex::new(Vec::new()),
            gate: None,
        })
    }

    fn ok() -> Arc<Fake> {
        Fake::new(Vec::new(), Ok(()))
    }

    fn down() -> Arc<Fake> {
        Fake::new(Vec::new(), Err(down_error()))
    }

    fn attempts(&self) -> Vec<(Instant, String)> {
        self.attempts.lock().expect("lock").clone()
    }

    /// Points per attempt.
    fn sizes(&self) -> Vec<usize> {
        self.attempts().iter().map(|(_, b)| b.lines().count()).collect()
    }
}

fn down_error() -> WriteError {
    WriteError::Transient("connection refused".into())
}

impl Target for Fake {
    async fn write(&self, body: Bytes) -> Result<(), WriteError> {
        if let Some(g) = &self.gate {
            g.acquire().await.expect("gate").forget();
        }
        let text = String::from_utf8(body.to_vec()).expect("utf-8");
        self.attempts.lock().expect("lock").push((Instant::now(), text));
        let next = self.script.lock().expect("lock").pop_front();
        next.unwrap_or_else(|| self.then.clone())
    }

    async fn ready(&self) -> Result<(), String> {
        match &self.then {
            Ok(()) => Ok(()),
            Err(e) => Err(format!("{e:?}")),
        }
    }
}

fn settings(batch_points: usize, max_queue_points: usize) -> Settings {
    Settings {
        batch_points,
        flush: Duration::from_millis(200),
        max_queue_points,
        retry_max: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
    }
}

fn samples(from: u64, n: u64) -> Vec<Sample> {
    (from..from + n)
        .map(|seq| Sample {
            seq,
            ts_ms: T0 + seq as i64 * 1000,
            values: BTreeMap::from([("dp".to_string(), seq as f64 + 0.5)]),
            text: BTreeMap::new(),
            restart: false,
        })
        .collect()
}

struct Sink {
    handle: InfluxHandle,
    tasks: Vec<JoinHandle<()>>,
    cancel: CancellationToken,
}

impl Sink {
    fn start<T: Target>(target: &Arc<T>, settings: Settings) -> Sink {
        let cancel = CancellationToken::new();
        let (handle, tasks) = spawn(target.clone(), settings, cancel.clone());
        Sink {
            handle,
            tasks,
            cancel,
        }
    }

    async fn send(&self, samples: &[Sample]) {
        let refs: Vec<&Sample> = samples.iter().collect();
        self.handle.send("gw-1", "dev-1", "purifier", &refs).await;
    }

    fn snap(&self) -> InfluxSnapshot {
        self.handle.stats().snapshot()
    }

    async fn stop(self) -> InfluxSnapshot {
        self.cancel.cancel();
        for t in self.tasks {
            t.await.expect("task");
        }
        self.handle.stats().snapshot()
    }
}

/// Waits (in paused time: advances the clock) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..200_000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never happened: {what}");
}

/// Every accepted point is written, dropped, or still held.
#[track_caller]
fn check_accounting(s: &InfluxSnapshot) {
    assert_eq!(
        s.accepted,
        s.written + s.dropped.total() + s.queue_points,
        "{s:?}"
    );
}

#[test]
fn a_sample_is_one_point_with_its_finite_values() {
    let mut s = samples(7, 1).remove(0);
    s.values.insert("fan".into(), 1200.0);
    s.values.insert("broken".into(), f64::NAN);
    s.text.insert("serial".into(), "SN 1".into());
    let mut out = Vec::new();
    encode("gw 1", "dev,1", "air-purifier", &s, &mut out).expect("a point");
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        "air-purifier,device=dev\\,1,gateway=gw\\ 1 dp=7.5,fan=1200 1750000007000\n"
    );
    let empty = Sample {
        values: BTreeMap::from([("x".to_string(), f64::INFINITY)]),
        ..s
    };
    assert_eq!(encode("gw", "dev", "p", &empty, &mut Vec::new()), None);
}

#[tokio::test(start_paused = true)]
async fn batches_close_when_full_or_when_their_oldest_point_is_flush_old() {
    let fake = Fake::ok();
    let sink = Sink::start(&fake, settings(10, 100));
    let t0 = Instant::now();
    // One send of 25: full batches of 10 at once, the last 5 after `flush`.
    sink.send(&samples(0, 25)).await;
    until("25 written", || sink.snap().written == 25).await;
    let attempts = fake.attempts();
    assert_eq!(fake.sizes(), [10, 10, 5]);
    assert!(
        attempts[1].0 - t0 < Duration::from_millis(10),
        "full batches wait for nothing"
    );
    assert_eq!(
        attempts[2].0 - t0,
        Duration::from_millis(200),
        "the rest waits for flush"
    );
    // Sends of 4 are not split: 4 + 4 fit in a batch of 10, the third waits.
    for i in 0..3 {
        sink.send(&samples(100 + i * 4, 4)).await;
    }
    until("37 written", || sink.snap().written == 37).await;
    assert_eq!(fake.sizes()[3..], [8, 4]);
    let lines: Vec<String> = fake
        .attempts()
        .iter()
        .flat_map(|(_, b)| b.lines().map(String::from).collect::<Vec<_>>())
        .collect();
    assert_eq!(lines.len(), 37, "each point once, in order");
    assert!(lines[0].ends_with(&format!(" {T0}")), "{}", lines[0]);
    let s = sink.stop().await;
    assert_eq!(
        (s.accepted, s.written, s.batches, s.write_errors),
        (37, 37, 5, 0),
        "{s:?}"
    );
    assert_eq!(s.write_latency.count, 5);
    check_accounting(&s);
}

#[tokio::test(start_paused = true)]
async fn failed_writes_are_retried_with_exponential_backoff() {
    let fake = Fake::new(
        vec![Err(down_error()), Err(down_error()), Err(down_error())],
        Ok(()),
    );
    let sink = Sink::start(
        &fake,
        Settings {
            retry_max: Duration::from_secs(30),
            ..settings(10, 100)
        },
    );
    sink.send(&samples(0, 10)).await;
    until("written", || sink.snap().written == 10).await;
    let times: Vec<Instant> = fake.attempts().iter().map(|a| a.0).collect();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [100, 200, 400].map(Duration::from_millis));
    let s = sink.snap();
    assert_eq!(
        (s.written, s.write_errors, s.dropped.total(), s.state),
        (10, 3, 0, "ok"),
        "{s:?}"
    );
    // The failure is kept as the last error.
    assert!(
        s.last_error.as_deref().is_some_and(|e| e.contains("refused")),
        "{s:?}"
    );
    check_accounting(&sink.stop().await);
}

#[tokio::test(start_paused = true)]
async fn points_failing_past_retry_max_are_dropped_and_counted() {
    let fake = Fake::down();
    let sink = Sink::start(&fake, settings(10, 100));
    let t0 = Instant::now();
    sink.send(&samples(0, 25)).await;
    until("all dropped", || sink.snap().dropped.retry_exhausted == 25).await;
    let s = sink.snap();
    assert_eq!(
        (s.accepted, s.written, s.queue_points, s.state),
        (25, 0, 0, "down"),
        "{s:?}"
    );
    check_accounting(&s);
    // The first batch is tried until `retry_max` after its points were
    // accepted; the others, as old and the server still failing, are not
    // tried again.
    let attempts = fake.attempts();
    let last = attempts.last().expect("attempts").0;
    assert_eq!(last - t0, Duration::from_secs(2), "{attempts:?}");
    assert!(
        attempts.iter().all(|(_, b)| b.lines().count() == 10),
        "{attempts:?}"
    );
    // 100 ms doubling to a wait cut at the deadline: 0, .1, .3, .7, 1.5, 2.
    assert_eq!(attempts.len(), 6, "{attempts:?}");
    // New points later get their own full window.
    sink.send(&samples(100, 5)).await;
    let t1 = Instant::now();
    until("dropped too", || sink.snap().dropped.retry_exhausted == 30).await;
    assert!(Instant::now() - t1 >= Duration::from_secs(2));
    check_accounting(&sink.stop().await);
}

#[tokio::test(start_paused = true)]
async fn a_batch_the_server_refuses_is_dropped_without_retry() {
    let fake = Fake::new(vec![Err(WriteError::Rejected("400 bad line".into()))], Ok(()));
    let sink = Sink::start(&fake, settings(10, 100));
    sink.send(&samples(0, 10)).await;
    until("rejected", || sink.snap().dropped.rejected == 10).await;
    sink.send(&samples(10, 10)).await;
    until("written", || sink.snap().written == 10).await;
    let s = sink.stop().await;
    assert_eq!(fake.attempts().len(), 2);
    assert_eq!(
        (s.accepted, s.dropped.rejected, s.write_errors),
        (20, 10, 1),
        "{s:?}"
    );
    assert_eq!(s.last_error.as_deref(), Some("400 bad line"));
    check_accounting(&s);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_makes_send_wait_for_room() {
    let gate = Arc::new(Semaphore::new(0));
    let fake = Arc::new(Fake {
        gate: Some(gate.clone()),
        ..Arc::into_inner(Fake::ok()).expect("sole owner")
    });
    let sink = Sink::start(
        &fake,
        Settings {
            timeout: Duration::from_secs(600),
            retry_max: Duration::from_secs(600),
            ..settings(10, 20)
        },
    );
    sink.send(&samples(0, 20)).await;
    assert_eq!(sink.snap().queue_points, 20);
    // The queue holds 20 points; the write of the first 10 hangs.
    let handle = sink.handle.clone();
    let blocked = tokio::spawn(async move {
        let owned = samples(20, 5);
        let refs: Vec<&Sample> = owned.iter().collect();
        handle.send("gw-1", "dev-1", "purifier", &refs).await
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!blocked.is_finished(), "send must wait while the queue is full");
    assert!(sink.snap().queue_points <= 20, "{:?}", sink.snap());
    // One write confirmed: room for the 5.
    gate.add_permits(1);
    tokio::time::timeout(Duration::from_secs(1), blocked)
        .await
        .expect("room once a batch is written")
        .expect("send");
    gate.add_permits(10);
    until("all written", || sink.snap().written == 25).await;
    let s = sink.stop().await;
    assert!(s.send_wait_secs >= 10.0, "{s:?}");
    check_accounting(&s);
}

#[tokio::test(start_paused = true)]
async fn stopping_writes_what_is_held_or_counts_it() {
    let fake = Fake::ok();
    let sink = Sink::start(
        &fake,
        Settings {
            flush: Duration::from_secs(60),
            ..settings(10, 100)
        },
    );
    sink.send(&samples(0, 5)).await;
    let s = sink.stop().await;
    assert_eq!((s.written, s.dropped.total()), (5, 0), "{s:?}");

    let fake = Fake::down();
    let sink = Sink::start(
        &fake,
        Settings {
            retry_max: Duration::from_secs(600),
            ..settings(10, 100)
        },
    );
    sink.send(&samples(0, 15)).await;
    until("retrying", || fake.attempts().len() >= 2).await;
    let s = sink.stop().await;
    assert_eq!((s.accepted, s.written, s.dropped.shutdown), (15, 0, 15), "{s:?}");
    check_accounting(&s);
}

/// The real client: what it sends over HTTP, and how answers are classed.
#[tokio::test]
async fn the_influxdb2_client_writes_line_protocol_in_milliseconds() {
    use axum::extract::{RawQuery, State};
    use axum::http::{HeaderMap, StatusCode};

    type Seen = Arc<Mutex<Vec<(String, String, String)>>>;
    let seen: Seen = Arc::default();
    let answers = Arc::new(Mutex::new(VecDeque::from([500u16, 400, 204])));
    // A scripted InfluxDB, not the hub's documented API.
    #[allow(clippy::disallowed_methods)]
    let app = axum::Router::new()
        .route(
            "/api/v2/write",
            axum::routing::post(
                |State((seen, answers)): State<(Seen, Arc<Mutex<VecDeque<u16>>>)>,
                 RawQuery(q): RawQuery,
                 headers: HeaderMap,
                 body: String| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    seen.lock()
                        .expect("lock")
                        .push((q.unwrap_or_default(), auth, body));
                    let code = answers.lock().expect("lock").pop_front().unwrap_or(204);
                    StatusCode::from_u16(code).expect("status")
                },
            ),
        )
        .route("/ready", axum::routing::get(|| async { "ready" }))
        .with_state((seen.clone(), answers));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let cfg = InfluxConfig {
        url: url::Url::parse(&format!("http://{addr}")).expect("url"),
        org: "acme".into(),
        bucket: "raw".into(),
        token: "t0ken".into(),
        batch_points: 10,
        flush: Duration::from_millis(10),
        max_queue_points: 100,
        retry_max: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
    };
    let target = Influx::new(&cfg).expect("client");
    assert_eq!(target.ready().await, Ok(()));
    let body = Bytes::from_static(b"p,device=d x=1 1750000000000\n");
    assert!(matches!(target.write(body.clone()).await, Err(WriteError::Transient(e)) if e.contains("500")));
    assert!(matches!(target.write(body.clone()).await, Err(WriteError::Rejected(e)) if e.contains("400")));
    assert_eq!(target.write(body).await, Ok(()));
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3);
    let (query, auth, body) = &seen[2];
    assert_eq!(query, "bucket=raw&org=acme&precision=ms");
    assert_eq!(auth, "Token t0ken");
    assert_eq!(body, "p,device=d x=1 1750000000000\n");
    server.abort();
}
