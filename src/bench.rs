//! `wearline bench`: figures for the goals in the issues, measured on this
//! machine and printed with a JSON last line.
//!
//! - `bench agent`: a real agent process polling a simulated fleet through a
//!   real hub; its peak RSS and CPU use.
//! - `bench ingest`: a hub's sustained ingest rate against a bare subscriber
//!   (in `bench_ingest.rs`).
//! - `bench queue`: the disk queue's append and replay rates.

use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

const PROFILE: &str = include_str!("../configs/profiles/air-purifier.toml");

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Peak RSS and CPU of an agent polling a simulated fleet (100 devices × 20 registers at 1 Hz).
    Agent {
        #[arg(long, default_value_t = 100)]
        devices: usize,
        /// Measured seconds (after a 5 s warm-up).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// The agent binary to measure (`wearline-agent`, or `wearline` for
        /// `wearline agent`). Default: `wearline-agent` (the lean gateway
        /// build) when it sits next to this binary, else `wearline agent`.
        #[arg(long)]
        agent_bin: Option<std::path::PathBuf>,
    },
    /// Telemetry points per second a hub fully processes, against a bare
    /// subscriber on the same broker, and the hub's peak RSS.
    Ingest(crate::bench_ingest::IngestArgs),
    /// Append and replay rates of the disk queue with 1 KB messages.
    Queue {
        #[arg(long, default_value_t = 200_000)]
        messages: usize,
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Where to put the queue (default: a temporary folder).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Agent {
            devices,
            seconds,
            interval_ms,
            agent_bin,
        } => tokio::task::spawn_blocking(move || agent(devices, seconds, interval_ms, agent_bin)).await?,
        BenchCommand::Ingest(args) => crate::bench_ingest::run(args).await,
        BenchCommand::Queue { messages, size, dir } => {
            let tmp = tempfile::tempdir()?;
            let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
            use wearline_agent::buffer::{FsyncPolicy, bench};
            let policy = FsyncPolicy::Batch {
                records: 1000,
                interval: Duration::from_secs(1),
            };
            let r = tokio::task::spawn_blocking(move || bench(&dir.join("queue"), messages, size, policy))
                .await??;
            println!("disk queue, {messages} messages of {size} bytes, fsync every 1000 records or 1 s:");
            println!(
                "  append {:.0} msg/s, replay (read + ack) {:.0} msg/s",
                r.append_per_sec(),
                r.replay_per_sec()
            );
            println!(
                "{}",
                serde_json::json!({"messages": messages, "size": size,
                    "append_per_sec": r.append_per_sec().round(), "replay_per_sec": r.replay_per_sec().round()})
            );
            Ok(())
        }
    }
}

/// A child process killed on drop.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(
    args: &[&str],
    dir: &Path,
    name: &str,
) -> anyhow::Result<(Kid, std::io::Lines<BufReader<std::process::ChildStdout>>)> {
    let exe = std::env::current_exe().context("locating the wearline binary")?;
    spawn_exe(&exe, args, dir, name)
}

fn spawn_exe(
    exe: &Path,
    args: &[&str],
    dir: &Path,
    name: &str,
) -> anyhow::Result<(Kid, std::io::Lines<BufReader<std::process::ChildStdout>>)> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let mut child = Command::new(exe)
        .args(args)
        .env("RUST_LOG", "warn,rumqttd=off")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let out = child.stdout.take().context("stdout")?;
    Ok((Kid(child), BufReader::new(out).lines()))
}

fn agent(
    devices: usize,
    seconds: u64,
    interval_ms: u64,
    agent_bin: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("profiles"))?;
    std::fs::write(dir.join("profiles/air-purifier.toml"), PROFILE)?;
    // The hub's API is read as an admin: a bootstrap token made for this run.
    let token = wearline_hub::auth::new_token()?;
    std::fs::write(dir.join("admin.token"), &token)?;
    std::fs::write(
        dir.join("hub.toml"),
        "[broker]\naddress = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\nbootstrap_token_file = \"admin.token\"\n[store]\nsqlite = \"hub.db\"\n",
    )?;
    let hub_cfg = dir.join("hub.toml").display().to_string();
    let (_hub, mut hub_out) = spawn(&["hub", "--config", &hub_cfg], dir, "hub")?;
    let mut api = String::new();
    let mut broker = String::new();
    for line in hub_out.by_ref().take(2) {
        let line = line?;
        if let Some(a) = line.strip_prefix("api: ") {
            api = a.to_string();
        } else if let Some(b) = line.strip_prefix("broker: ") {
            broker = b.to_string();
        }
    }
    anyhow::ensure!(
        !broker.is_empty(),
        "the hub did not report its broker; see {}",
        dir.join("hub.log").display()
    );

    let n = devices.to_string();
    let (_sim, sim_out) = spawn(&["sim", "--devices", &n, "--listen", "127.0.0.1:0"], dir, "sim")?;
    let mut text = format!(
        "gateway = \"gw-bench\"\ndata_dir = \"agent-data\"\n[uplink]\nbroker = \"{broker}\"\nbatch_max_samples = 10\nbatch_delay_ms = 1000\n"
    );
    for line in sim_out.take(devices) {
        let line = line?;
        let mut parts = line.split_whitespace();
        let (Some(id), Some(addr)) = (parts.next(), parts.next()) else {
            continue;
        };
        text.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nprofile = \"air-purifier\"\ntcp = \"{addr}\"\ninterval_ms = {interval_ms}\n"
        ));
    }
    std::fs::write(dir.join("agent.toml"), text)?;
    let agent_cfg = dir.join("agent.toml").display().to_string();
    let lean = std::env::current_exe()?.with_file_name("wearline-agent");
    let (mut agent, _agent_out, measured) = match agent_bin.or_else(|| lean.is_file().then_some(lean)) {
        Some(bin) => {
            let bin =
                std::fs::canonicalize(&bin).with_context(|| format!("no agent binary {}", bin.display()))?;
            // The full binary takes the agent's arguments after `agent`.
            let args: &[&str] = if bin.file_name().is_some_and(|n| n == "wearline") {
                &["agent", "--config", &agent_cfg]
            } else {
                &["--config", &agent_cfg]
            };
            let (k, out) = spawn_exe(&bin, args, dir, "agent")?;
            (k, out, bin.display().to_string())
        }
        None => {
            let (k, out) = spawn(&["agent", "--config", &agent_cfg], dir, "agent")?;
            (k, out, "wearline agent".to_string())
        }
    };
    eprintln!("measuring {measured}");
    let pid = Pid::from_u32(agent.0.id());

    let mut sys = System::new().context("reading process figures")?;
    let refresh = |sys: &mut System| {
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_memory().with_cpu(),
        );
        sys.process(pid).map(|p| (p.memory(), p.accumulated_cpu_time()))
    };
    eprintln!("warming up for 5 s…");
    std::thread::sleep(Duration::from_secs(5));
    let (_, cpu_start) = refresh(&mut sys).context("the agent exited; see its log")?;
    let start = Instant::now();
    let mut peak_rss = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(250));
        if let Ok(Some(status)) = agent.0.try_wait() {
            anyhow::bail!(
                "the agent exited ({status}); see {}",
                dir.join("agent.log").display()
            );
        }
        let (rss, _) = refresh(&mut sys).context("the agent exited; see its log")?;
        peak_rss = peak_rss.max(rss);
    }
    let (_, cpu_end) = refresh(&mut sys).context("the agent exited")?;
    let wall = start.elapsed().as_secs_f64();
    let cpu_pct = (cpu_end - cpu_start) as f64 / 1000.0 / wall * 100.0;
    let hwm = std::fs::read_to_string(format!("/proc/{}/status", agent.0.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_string()))
        });
    let received: i64 = hub_samples(&api, &token).unwrap_or(0);
    println!(
        "{measured} polling {devices} devices × 20 registers every {interval_ms} ms for {seconds} s: peak RSS {:.1} MB (VmHWM {}), CPU {:.2} % of one core, {received} samples at the hub",
        peak_rss as f64 / 1e6,
        hwm.as_deref().unwrap_or("n/a"),
        cpu_pct
    );
    println!(
        "{}",
        serde_json::json!({"agent": measured, "devices": devices, "seconds": seconds, "peak_rss_mb": (peak_rss as f64 / 1e5).round() / 10.0,
            "cpu_pct_of_one_core": (cpu_pct * 100.0).round() / 100.0, "samples_at_hub": received})
    );
    Ok(())
}

/// Samples the hub stored, summed over devices.
fn hub_samples(api: &str, token: &str) -> Option<i64> {
    let url = format!("{api}/api/v1/devices");
    let v: serde_json::Value = ureq::get(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .ok()?
        .body_mut()
        .read_json()
        .ok()?;
    Some(v.as_array()?.iter().filter_map(|d| d["samples"].as_i64()).sum())
}
