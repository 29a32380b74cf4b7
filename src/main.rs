//! `wearline`: the one user-facing binary. It parses the command line and
//! hands over to the crates: `agent`, `hub`, `sim` and `demo`.
//!
//! Thin by design: no logic here beyond turning flags into settings, starting
//! things, and reporting errors with context at the edge.

mod bench;
mod demo;
mod detect_cmd;
mod rul_cmd;
mod sim;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use wearline_agent::clock::Clock;

#[derive(Debug, Parser)]
#[command(
    name = "wearline",
    version,
    about = "Predictive maintenance from the edge agent to the preventive work order"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the edge agent: poll devices and publish telemetry uplink.
    Agent(AgentArgs),
    /// Run the hub: broker, ingestion, predictions, work orders and the API.
    Hub(HubArgs),
    /// Run simulated air purifiers that speak Modbus TCP.
    Sim(sim::SimArgs),
    /// Run hub, agent and a simulated fleet together on loopback.
    Demo(demo::DemoArgs),
    /// Measure the figures the goals are stated in (agent footprint, disk queue rates).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Score a CSV file's rows for anomalies: `timestamp,anomaly_score,is_anomaly` on stdout.
    Detect(detect_cmd::DetectArgs),
    /// Evaluate the detector on a public data set (SKAB, IMS, CWRU).
    EvalDetect(detect_cmd::EvalArgs),
    /// Evaluate the remaining-useful-life models on a public data set (C-MAPSS, air filter).
    RulEval(rul_cmd::EvalArgs),
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct AgentArgs {
    /// Agent config file (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Stretch sample timestamps this many times faster than real time, to
    /// match simulated devices started with the same `--time-scale`.
    #[arg(long, default_value_t = 1.0, hide = true)]
    time_scale: f64,
    #[command(subcommand)]
    command: Option<AgentCommand>,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Validate a config and the profiles it uses; exit code 2 on error.
    CheckConfig {
        /// Agent config file (TOML).
        file: PathBuf,
    },
    /// Read raw registers and show them under every data type and byte/word order.
    Probe(ProbeArgs),
}

#[derive(Debug, clap::Args)]
struct ProbeArgs {
    /// Modbus TCP address of the device, HOST:PORT.
    #[arg(long)]
    tcp: String,
    /// Modbus unit id.
    #[arg(long, default_value_t = 1)]
    unit: u8,
    /// First register (0-based protocol address).
    #[arg(long)]
    start: u16,
    /// Number of registers (1–125).
    #[arg(long, default_value_t = 8)]
    count: u16,
    /// Register table.
    #[arg(long, value_enum, default_value_t = ProbeTable::Holding)]
    kind: ProbeTable,
    /// Timeout in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProbeTable {
    Holding,
    Input,
}

#[derive(Debug, clap::Args)]
struct HubArgs {
    /// Hub config file (TOML).
    #[arg(long)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Demo(_) => "warn",
        _ => "info",
    };
    init_logging(default_level);
    // The agent is mostly waiting on timers and sockets: one thread keeps its
    // footprint small on a gateway. Everything else uses all cores.
    let mut builder = match cli.command {
        Command::Agent(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Agent(a) => run_agent(a).await,
            Command::Hub(h) => run_hub(h).await,
            Command::Sim(s) => sim::run(s).await,
            Command::Demo(d) => demo::run(d).await,
            Command::Bench { command } => bench::run(command).await,
            Command::Detect(d) => detect_cmd::run_detect(d),
            Command::EvalDetect(e) => detect_cmd::run_eval(e),
            Command::RulEval(e) => rul_cmd::run_eval(e),
        }
    });
    // The embedded broker's threads do not stop on their own; do not wait for them.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default_level: &str) {
    // rumqttd logs every ordinary client disconnect at ERROR; keep it quiet
    // unless asked for with RUST_LOG.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default_level},rumqttd=off,sqlx=warn"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    match args.command {
        Some(AgentCommand::CheckConfig { file }) => check_config(&file),
        Some(AgentCommand::Probe(p)) => probe(p).await,
        None => {
            let path = args
                .config
                .context("`wearline agent` needs --config FILE (or a subcommand; see --help)")?;
            let config = wearline_agent::AgentConfig::load(&path)?;
            let agent = wearline_agent::Agent::new(config, Clock::scaled(args.time_scale))
                .start()
                .context("starting the agent")?;
            if let Some(addr) = agent.metrics_addr {
                println!("metrics: http://{addr}/metrics");
            }
            println!("agent: polling, press Ctrl-C to stop");
            shutdown_signal().await;
            agent.stop().await;
            Ok(())
        }
    }
}

/// Exit code of `agent check-config` for an invalid config.
const EXIT_INVALID_CONFIG: u8 = 2;

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    match wearline_agent::AgentConfig::load(file) {
        Ok(cfg) => {
            let profiles: std::collections::BTreeSet<&str> =
                cfg.devices.iter().map(|d| d.profile.name.as_str()).collect();
            println!(
                "{}: ok (gateway {}, {} devices, profiles: {})",
                file.display(),
                cfg.gateway,
                cfg.devices.len(),
                profiles.into_iter().collect::<Vec<_>>().join(", ")
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            std::process::exit(i32::from(EXIT_INVALID_CONFIG));
        }
    }
}

async fn probe(p: ProbeArgs) -> anyhow::Result<()> {
    use wearline_agent::probe::{ProbeKind, read_registers, render};
    let addr = tokio::net::lookup_host(&p.tcp)
        .await
        .with_context(|| format!("resolving {}", p.tcp))?
        .next()
        .with_context(|| format!("{} resolves to no address", p.tcp))?;
    let kind = match p.kind {
        ProbeTable::Holding => ProbeKind::Holding,
        ProbeTable::Input => ProbeKind::Input,
    };
    let words = read_registers(
        addr,
        p.unit,
        kind,
        p.start,
        p.count,
        std::time::Duration::from_millis(p.timeout_ms),
    )
    .await
    .with_context(|| {
        format!(
            "reading {:?} registers {}..{} of unit {} at {addr}",
            p.kind,
            p.start,
            u32::from(p.start) + u32::from(p.count),
            p.unit
        )
    })?;
    print!("{}", render(p.start, &words));
    Ok(())
}

async fn run_hub(args: HubArgs) -> anyhow::Result<()> {
    let config = wearline_hub::HubConfig::load(&args.config)?;
    let hub = wearline_hub::Hub::start(config).await?;
    println!("api: http://{}", hub.api_addr);
    println!("broker: {}", hub.broker_addr);
    shutdown_signal().await;
    hub.stop().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
