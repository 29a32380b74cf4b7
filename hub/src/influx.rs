//! The InfluxDB sink: every fresh sample also goes, as one line-protocol
//! point, to an InfluxDB 2 server (or anything that speaks its
//! `/api/v2/write`, such as victoria-metrics) through the influxdb2 crate.
//!
//! The store stays the ground truth; this is a derived copy for dashboards,
//! and it must never be a silent one. Every point the sink accepts ends up in
//! exactly one of: written (the server answered 204), dropped and counted by
//! reason, or still held in memory. So `accepted = written + dropped + queued`
//! at any time, and `/metrics` shows each term.
//!
//! - **Batches.** A writer task sends a batch once it holds `batch_points`
//!   points, or `flush` after its oldest point was accepted.
//! - **Retries.** A failed write is retried with exponential backoff
//!   ([`BACKOFF_START`] doubling to [`BACKOFF_MAX`]) until `retry_max` after
//!   the batch's oldest point was accepted; then the batch is dropped as
//!   `retry_exhausted`. A point older than that is not tried again while
//!   the server is failing, so a long outage drains the queue instead of
//!   holding ingest for `retry_max` per batch. A server that refuses a
//!   batch as malformed (400, 413, 422) gets no retry: `rejected`.
//! - **Bounded memory, back-pressure.** At most `max_queue_points` points
//!   are held (queued or being written). [`InfluxHandle::send`] waits for
//!   room rather than drop: the samples are already stored, so a full queue
//!   slows MQTT intake (the broker and the agents' disk queues hold the rest)
//!   instead of punching holes in the copy. Retries are bounded in time, so
//!   the wait is too: about `retry_max` at worst.
//! - **Health.** A task asks the server's `/ready` every [`HEALTH_EVERY`]
//!   (influxdb2's `health()` cannot decode victoria-metrics' answer), and
//!   every write attempt updates the state too.
//! - **Stopping.** On cancel, what is held gets one last attempt within
//!   [`SHUTDOWN_GRACE`]; the rest is dropped as `shutdown`.
//!
//! Delivery is at least once: a write whose answer was lost is sent again.
//!
//! This module does not read the store, decide anything, or touch ingest's
//! counters.

use crate::config::InfluxConfig;
use crate::histogram::{Histogram, HistogramSnapshot};
use bytes::Bytes;
use influxdb2::api::write::TimestampPrecision;
use influxdb2::models::{DataPoint, WriteDataPoint};
use serde::Serialize;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wearline_models::wire::Sample;

/// First wait after a failed write.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest wait between two attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often the server's readiness is checked.
pub const HEALTH_EVERY: Duration = Duration::from_secs(5);
/// How long stopping may spend writing what is still held.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Drops are logged at most once per this interval.
const LOG_EVERY: Duration = Duration::from_secs(5);
/// Why points were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Retried for `retry_max` without success.
    RetryExhausted,
    /// The server refused the batch as malformed or too large.
    Rejected,
    /// The hub stopped before the points could be written.
    Shutdown,
}

impl DropReason {
    pub const ALL: [DropReason; 3] = [
        DropReason::RetryExhausted,
        DropReason::Rejected,
        DropReason::Shutdown,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::RetryExhausted => "retry_exhausted",
            DropReason::Rejected => "rejected",
            DropReason::Shutdown => "shutdown",
        }
    }
}

/// Why one write attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Worth another try: connection refused, timeout, 5xx, 401…
    Transient(String),
    /// The batch itself was refused; another try would fail the same way.
    Rejected(String),
}

/// Where batches go: the influxdb2 client, or a fake in tests.
pub trait Target: Send + Sync + 'static {
    /// Writes one batch of line protocol with millisecond timestamps.
    fn write(&self, body: Bytes) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// Whether the server is ready to take writes.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// An InfluxDB 2 (compatible) server through the influxdb2 crate.
pub struct Influx {
    client: influxdb2::Client,
    org: String,
    bucket: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the InfluxDB client for {url}: {message}")]
pub struct ClientError {
    url: String,
    message: String,
}

impl Influx {
    pub fn new(cfg: &InfluxConfig) -> Result<Influx, ClientError> {
        // The URL was parsed by the config, so the builder's own parse (which
        // panics on failure) cannot fail.
        let client = influxdb2::ClientBuilder::new(cfg.url.as_str(), cfg.org.clone(), cfg.token.clone())
            .build()
            .map_err(|e| ClientError {
                url: cfg.url.to_string(),
                message: e.to_string(),
            })?;
        Ok(Influx {
            client,
            org: cfg.org.clone(),
            bucket: cfg.bucket.clone(),
        })
    }
}

impl Target for Influx {
    async fn write(&self, body: Bytes) -> Result<(), WriteError> {
        self.client
            .write_line_protocol_with_precision(
                &self.org,
                &self.bucket,
                body,
                TimestampPrecision::Milliseconds,
            )
            .await
            .map_err(|e| match &e {
                influxdb2::RequestError::Http { status, .. }
                    if matches!(status.as_u16(), 400 | 413 | 422) =>
                {
                    WriteError::Rejected(e.to_string())
                }
                _ => WriteError::Transient(e.to_string()),
            })
    }

    async fn ready(&self) -> Result<(), String> {
        match self.client.ready().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("not ready".to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The sink's settings, from the `[influx]` section.
#[derive(Debug, Clone)]
pub struct Settings {
    pub batch_points: usize,
    pub flush: Duration,
    pub max_queue_points: usize,
    pub retry_max: Duration,
    pub timeout: Duration,
}

impl From<&InfluxConfig> for Settings {
    fn from(c: &InfluxConfig) -> Self {
        Settings {
            batch_points: c.batch_points,
            flush: c.flush,
            max_queue_points: c.max_queue_points,
            retry_max: c.retry_max,
            timeout: c.timeout,
        }
    }
}

/// The sink's counters and state.
#[derive(Debug, Default)]
pub struct InfluxStats {
    /// Points taken into the queue.
    pub accepted: AtomicU64,
    /// Points the server confirmed (204).
    pub written: AtomicU64,
    pub dropped_retry_exhausted: AtomicU64,
    pub dropped_rejected: AtomicU64,
    pub dropped_shutdown: AtomicU64,
    /// Fresh samples with no metric value: nothing to write, never accepted.
    pub empty_samples: AtomicU64,
    /// Batches the server confirmed.
    pub batches: AtomicU64,
    /// Write attempts that failed (each retry counts).
    pub write_errors: AtomicU64,
    /// Time ingest spent waiting for room in the queue, in microseconds.
    pub send_wait_us: AtomicU64,
    /// Latency of confirmed writes.
    pub write_latency: Histogram,
    /// Whether the last readiness check or write succeeded.
    pub up: AtomicBool,
    /// The queue's bound, in points.
    pub capacity: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A point-in-time copy of the sink's counters, for `/health` and `/metrics`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InfluxSnapshot {
    /// `ok` or `down`.
    #[schema(value_type = String)]
    pub state: &'static str,
    pub last_error: Option<String>,
    pub accepted: u64,
    pub written: u64,
    pub dropped: DroppedSnapshot,
    /// Points held in memory: queued or being written.
    pub queue_points: u64,
    pub queue_capacity: u64,
    pub empty_samples: u64,
    pub batches: u64,
    pub write_errors: u64,
    pub send_wait_secs: f64,
    pub write_latency: HistogramSnapshot,
}

/// Points dropped, by reason.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DroppedSnapshot {
    pub retry_exhausted: u64,
    pub rejected: u64,
    pub shutdown: u64,
}

impl DroppedSnapshot {
    pub fn get(&self, r: DropReason) -> u64 {
        match r {
            DropReason::RetryExhausted => self.retry_exhausted,
            DropReason::Rejected => self.rejected,
            DropReason::Shutdown => self.shutdown,
        }
    }

    pub fn total(&self) -> u64 {
        self.retry_exhausted + self.rejected + self.shutdown
    }
}

impl InfluxStats {
    fn dropped(&self, reason: DropReason, points: usize) {
        let c = match reason {
            DropReason::RetryExhausted => &self.dropped_retry_exhausted,
            DropReason::Rejected => &self.dropped_rejected,
            DropReason::Shutdown => &self.dropped_shutdown,
        };
        c.fetch_add(points as u64, Ordering::Relaxed);
    }

    /// Records a success; logs the way back up.
    fn set_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!("InfluxDB is up");
        }
    }

    /// Records a failure; logs the way down once.
    fn set_down(&self, error: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(error, "InfluxDB is down");
        }
        let mut last = match self.last_error.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *last = Some(error.to_string());
    }

    pub fn snapshot(&self) -> InfluxSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let dropped = DroppedSnapshot {
            retry_exhausted: l(&self.dropped_retry_exhausted),
            rejected: l(&self.dropped_rejected),
            shutdown: l(&self.dropped_shutdown),
        };
        // Read after written and dropped: whatever they count was accepted
        // before, so the depth cannot come out negative.
        let written = l(&self.written);
        let accepted = l(&self.accepted);
        let up = self.up.load(Ordering::Relaxed);
        InfluxSnapshot {
            state: if up { "ok" } else { "down" },
            last_error: match self.last_error.lock() {
                Ok(g) => g.clone(),
                Err(p) => p.into_inner().clone(),
            },
            queue_points: accepted.saturating_sub(written + dropped.total()),
            accepted,
            written,
            dropped,
            queue_capacity: l(&self.capacity),
            empty_samples: l(&self.empty_samples),
            batches: l(&self.batches),
            write_errors: l(&self.write_errors),
            send_wait_secs: l(&self.send_wait_us) as f64 / 1e6,
            write_latency: self.write_latency.snapshot(),
        }
    }
}

/// Points encoded together, from one call to [`InfluxHandle::send`].
#[derive(Debug)]
struct Chunk {
    lines: Vec<u8>,
    points: usize,
    accepted_at: Instant,
}

/// The ingest side of the sink. Cloning it is cheap.
#[derive(Debug, Clone)]
pub struct InfluxHandle {
    tx: mpsc::UnboundedSender<Chunk>,
    /// One permit per point of room in the queue.
    room: Arc<Semaphore>,
    stats: Arc<InfluxStats>,
    batch_points: usize,
}

/// Encodes one sample as a line-protocol point: measurement = profile, tags
/// `device` and `gateway`, a field per finite metric value, `ts_ms`. `None`
/// when it has no such value.
pub fn encode(gateway: &str, device: &str, profile: &str, s: &Sample, out: &mut Vec<u8>) -> Option<()> {
    let mut point = DataPoint::builder(profile)
        .tag("device", device)
        .tag("gateway", gateway)
        .timestamp(s.ts_ms);
    for (k, v) in s.values.iter().filter(|(_, v)| v.is_finite()) {
        point = point.field(k.as_str(), *v);
    }
    // Writing into a Vec cannot fail.
    point.build().ok()?.write_data_point_to(out).ok()
}

impl InfluxHandle {
    /// Hands fresh samples to the sink, one point each. Waits while the queue
    /// is full (back-pressure); never fails: points that cannot be queued
    /// because the sink has stopped are counted as dropped (`shutdown`).
    pub async fn send(&self, gateway: &str, device: &str, profile: &str, samples: &[&Sample]) {
        for part in samples.chunks(self.batch_points) {
            let mut lines = Vec::with_capacity(part.len() * 96);
            let mut points = 0;
            for s in part {
                match encode(gateway, device, profile, s, &mut lines) {
                    Some(()) => points += 1,
                    None => {
                        self.stats.empty_samples.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if points == 0 {
                continue;
            }
            let waited = Instant::now();
            // `points` ≤ batch_points ≤ max_queue_points ≤ u32::MAX (config).
            let permits = u32::try_from(points).unwrap_or(u32::MAX);
            let room = self.room.acquire_many(permits).await;
            self.stats.accepted.fetch_add(points as u64, Ordering::Relaxed);
            match room {
                Ok(p) => p.forget(),
                Err(_) => {
                    self.stats.dropped(DropReason::Shutdown, points);
                    continue;
                }
            }
            let wait = waited.elapsed();
            if wait > Duration::from_millis(1) {
                self.stats.send_wait_us.fetch_add(
                    u64::try_from(wait.as_micros()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
            }
            let chunk = Chunk {
                lines,
                points,
                accepted_at: Instant::now(),
            };
            if self.tx.send(chunk).is_err() {
                self.stats.dropped(DropReason::Shutdown, points);
            }
        }
    }

    pub fn stats(&self) -> &Arc<InfluxStats> {
        &self.stats
    }
}

/// Starts the sink for `cfg` on the current runtime: the writer and the
/// health check, both stopping (after a last flush) when `cancel` fires.
pub fn start(
    cfg: &InfluxConfig,
    cancel: CancellationToken,
) -> Result<(InfluxHandle, Vec<JoinHandle<()>>), ClientError> {
    let target = Arc::new(Influx::new(cfg)?);
    tracing::info!(url = %cfg.url, bucket = %cfg.bucket, "InfluxDB sink started");
    Ok(spawn(target, Settings::from(cfg), cancel))
}

/// Starts the sink's tasks against any [`Target`].
pub fn spawn<T: Target>(
    target: Arc<T>,
    settings: Settings,
    cancel: CancellationToken,
) -> (InfluxHandle, Vec<JoinHandle<()>>) {
    let stats = Arc::new(InfluxStats::default());
    stats
        .capacity
        .store(settings.max_queue_points as u64, Ordering::Relaxed);
    let room = Arc::new(Semaphore::new(settings.max_queue_points));
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = InfluxHandle {
        tx,
        room: room.clone(),
        stats: stats.clone(),
        batch_points: settings.batch_points,
    };
    let health = tokio::spawn(health(
        target.clone(),
        stats.clone(),
        settings.timeout,
        cancel.clone(),
    ));
    let writer = Writer {
        target,
        stats,
        room,
        settings,
        last_drop_log: None,
        suppressed: 0,
    };
    (handle, vec![tokio::spawn(writer.run(rx, cancel)), health])
}

/// Checks readiness every [`HEALTH_EVERY`] until `cancel` fires.
async fn health<T: Target>(
    target: Arc<T>,
    stats: Arc<InfluxStats>,
    timeout: Duration,
    cancel: CancellationToken,
) {
    loop {
        match tokio::time::timeout(timeout, target.ready()).await {
            Ok(Ok(())) => stats.set_up(),
            Ok(Err(e)) => stats.set_down(&format!("ready: {e}")),
            Err(_) => stats.set_down(&format!("ready: no answer within {timeout:?}")),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(HEALTH_EVERY) => {}
        }
    }
}

/// Points gathered for one write.
struct Batch {
    lines: Vec<u8>,
    points: usize,
    /// When its oldest point was accepted.
    oldest: Instant,
}

impl Batch {
    fn new(c: Chunk) -> Batch {
        Batch {
            lines: c.lines,
            points: c.points,
            oldest: c.accepted_at,
        }
    }

    fn push(&mut self, c: Chunk) {
        self.lines.extend_from_slice(&c.lines);
        self.points += c.points;
        self.oldest = self.oldest.min(c.accepted_at);
    }
}

/// How one batch ended.
enum Outcome {
    Done,
    /// Cancelled while retrying: the batch is still held.
    Cancelled(Batch),
}

struct Writer<T> {
    target: Arc<T>,
    stats: Arc<InfluxStats>,
    room: Arc<Semaphore>,
    settings: Settings,
    last_drop_log: Option<Instant>,
    suppressed: usize,
}

impl<T: Target> Writer<T> {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Chunk>, cancel: CancellationToken) {
        let mut next: Option<Chunk> = None;
        let held = loop {
            let first = match next.take() {
                Some(c) => c,
                None => tokio::select! {
                    () = cancel.cancelled() => break None,
                    c = rx.recv() => match c {
                        Some(c) => c,
                        None => break None,
                    },
                },
            };
            let mut batch = Batch::new(first);
            let full = self.fill(&mut batch, &mut rx, &mut next, &cancel).await;
            tracing::trace!(points = batch.points, full, "batch ready");
            if let Outcome::Cancelled(b) = self.deliver(batch, &cancel).await {
                break Some(b);
            }
            if cancel.is_cancelled() {
                break None;
            }
        };
        self.shutdown(held, next, rx).await;
    }

    /// Adds queued chunks to `batch` until it is full, its flush time has
    /// come, or `cancel` fires. A chunk that does not fit goes to `next`.
    /// Returns whether the batch is full.
    async fn fill(
        &self,
        batch: &mut Batch,
        rx: &mut mpsc::UnboundedReceiver<Chunk>,
        next: &mut Option<Chunk>,
        cancel: &CancellationToken,
    ) -> bool {
        let max = self.settings.batch_points;
        let flush_at = batch.oldest + self.settings.flush;
        loop {
            // What is already queued goes in without waiting.
            while batch.points < max {
                match rx.try_recv() {
                    Ok(c) if batch.points + c.points <= max => batch.push(c),
                    Ok(c) => {
                        *next = Some(c);
                        return true;
                    }
                    Err(_) => break,
                }
            }
            if batch.points >= max {
                return true;
            }
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep_until(flush_at) => return false,
                c = rx.recv() => match c {
                    Some(c) if batch.points + c.points <= max => batch.push(c),
                    Some(c) => {
                        *next = Some(c);
                        return true;
                    }
                    None => return false,
                },
            }
        }
    }

    /// One attempt, bounded by the timeout.
    async fn attempt(&self, body: &Bytes) -> Result<(), WriteError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.settings.timeout, self.target.write(body.clone())).await
        {
            Ok(r) => r,
            Err(_) => Err(WriteError::Transient(format!(
                "write: no answer within {:?}",
                self.settings.timeout
            ))),
        };
        match &result {
            Ok(()) => {
                self.stats.write_latency.observe(started.elapsed());
                self.stats.set_up();
            }
            Err(WriteError::Transient(e)) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                self.stats.set_down(e);
            }
            Err(WriteError::Rejected(e)) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                // The server answered: it is up, the batch is bad.
                self.stats.set_up();
                let mut last = match self.stats.last_error.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                *last = Some(e.clone());
            }
        }
        result
    }

    /// Writes `batch`, retrying with backoff until `retry_max` after its
    /// oldest point was accepted; then drops it, counted.
    async fn deliver(&mut self, batch: Batch, cancel: &CancellationToken) -> Outcome {
        let body = Bytes::from(batch.lines);
        let (points, oldest) = (batch.points, batch.oldest);
        let give_up = oldest + self.settings.retry_max;
        // Points that waited out their window in the queue while the server
        // was failing are not tried again.
        if Instant::now() >= give_up && !self.stats.up.load(Ordering::Relaxed) {
            self.finish(points, Some(DropReason::RetryExhausted));
            return Outcome::Done;
        }
        let mut backoff = BACKOFF_START;
        loop {
            match self.attempt(&body).await {
                Ok(()) => {
                    self.finish(points, None);
                    return Outcome::Done;
                }
                Err(WriteError::Rejected(_)) => {
                    self.finish(points, Some(DropReason::Rejected));
                    return Outcome::Done;
                }
                Err(WriteError::Transient(_)) => {}
            }
            let now = Instant::now();
            if now >= give_up {
                self.finish(points, Some(DropReason::RetryExhausted));
                return Outcome::Done;
            }
            let wait = backoff.min(give_up - now);
            backoff = (backoff * 2).min(BACKOFF_MAX);
            tokio::select! {
                () = cancel.cancelled() => {
                    return Outcome::Cancelled(Batch {
                        lines: body.to_vec(),
                        points,
                        oldest,
                    });
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Counts a finished batch and gives its room back.
    fn finish(&mut self, points: usize, dropped: Option<DropReason>) {
        match dropped {
            None => {
                self.stats.written.fetch_add(points as u64, Ordering::Relaxed);
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
            }
            Some(reason) => {
                self.stats.dropped(reason, points);
                let now = Instant::now();
                if self
                    .last_drop_log
                    .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
                {
                    self.last_drop_log = Some(now);
                    let suppressed = std::mem::take(&mut self.suppressed);
                    tracing::warn!(
                        points,
                        reason = reason.as_str(),
                        suppressed_batches = suppressed,
                        "InfluxDB points dropped"
                    );
                } else {
                    self.suppressed += 1;
                }
            }
        }
        self.room.add_permits(points);
    }

    /// Stops taking points, gives what is held one attempt per batch within
    /// [`SHUTDOWN_GRACE`], and counts the rest as dropped (`shutdown`).
    async fn shutdown(
        mut self,
        held: Option<Batch>,
        next: Option<Chunk>,
        mut rx: mpsc::UnboundedReceiver<Chunk>,
    ) {
        // Senders waiting for room give up and count their points.
        self.room.close();
        rx.close();
        let mut chunks: Vec<Chunk> = next.into_iter().collect();
        while let Ok(c) = rx.try_recv() {
            chunks.push(c);
        }
        let mut batches: Vec<Batch> = held.into_iter().collect();
        for c in chunks {
            match batches.last_mut() {
                Some(b) if b.points + c.points <= self.settings.batch_points => b.push(c),
                _ => batches.push(Batch::new(c)),
            }
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut up = true;
        for b in batches {
            let points = b.points;
            let result = if up && Instant::now() < deadline {
                tokio::time::timeout_at(deadline, self.attempt(&Bytes::from(b.lines)))
                    .await
                    .unwrap_or_else(|_| Err(WriteError::Transient("stopping".to_string())))
            } else {
                Err(WriteError::Transient("stopping".to_string()))
            };
            up = !matches!(result, Err(WriteError::Transient(_)));
            let dropped = match result {
                Ok(()) => None,
                Err(WriteError::Rejected(_)) => Some(DropReason::Rejected),
                Err(WriteError::Transient(_)) => Some(DropReason::Shutdown),
            };
            self.finish(points, dropped);
        }
    }
}

#[cfg(test)]
mod tests;
