//! The agent's command line: `wearline agent …` and the lean gateway binary
//! `wearline-agent …` parse the same arguments and run this code.
//!
//! The edge of the agent: flags become settings, errors get context
//! (`anyhow`), and `check-config` exits with code 2 on an invalid config.

use crate::clock::Clock;
use crate::reconfig::ConfigOrigin;
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentArgs {
    /// Agent config file (TOML).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Stretch sample timestamps this many times faster than real time, to
    /// match simulated devices started with the same `--time-scale`.
    #[arg(long, default_value_t = 1.0, hide = true)]
    pub time_scale: f64,
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Validate a config and the profiles it uses; exit code 2 on error.
    CheckConfig {
        /// Agent config file (TOML).
        file: PathBuf,
    },
    /// Read raw registers and show them under every data type and byte/word order.
    Probe(ProbeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
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
pub enum ProbeTable {
    Holding,
    Input,
}

/// Runs `agent` with its arguments until Ctrl-C or SIGTERM (or the subcommand's end).
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    match args.command {
        Some(AgentCommand::CheckConfig { file }) => check_config(&file),
        Some(AgentCommand::Probe(p)) => probe(p).await,
        None => {
            let path = args
                .config
                .context("`wearline agent` needs --config FILE (or a subcommand; see --help)")?;
            // Read once: the text is both the config and what pushed configs are checked against.
            let origin = ConfigOrigin::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let config = crate::AgentConfig::parse(&path.display().to_string(), &origin.text, &origin.base)?;
            let agent = crate::Agent::new(config, Clock::scaled(args.time_scale))
                .with_origin(origin)
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
    match crate::AgentConfig::load(file) {
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
    use crate::probe::{ProbeKind, read_registers, render};
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

/// Logs to stderr at `default_filter` unless `RUST_LOG` says otherwise.
pub fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
