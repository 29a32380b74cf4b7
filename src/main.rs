//! `wearline`: the one user-facing binary. It parses the command line and
//! hands over to the crates: `agent`, `hub`, `sim`, `demo`, and the API
//! access commands `token`, `customer` and `device`.
//!
//! Thin by design: no logic here beyond turning flags into settings, starting
//! things, and reporting errors with context at the edge.

mod admin;
mod bench;
mod bench_ingest;
mod demo;
mod detect_cmd;
mod fleet_eval;
mod push_config;
mod rul_cmd;
mod sim;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
pub use wearline_agent::cli::shutdown_signal;

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
    Agent(wearline_agent::cli::AgentArgs),
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
    /// Send an agent config to a gateway (retained) and wait for its answer; exit code 2 if refused.
    PushConfig(push_config::PushConfigArgs),
    /// Score a CSV file's rows for anomalies: `timestamp,anomaly_score,is_anomaly` on stdout.
    Detect(detect_cmd::DetectArgs),
    /// Evaluate the detector on a public data set (SKAB, IMS, CWRU).
    EvalDetect(detect_cmd::EvalArgs),
    /// Evaluate the remaining-useful-life models on a public data set (C-MAPSS, air filter).
    RulEval(rul_cmd::EvalArgs),
    /// Make, revoke and list the API's bearer tokens (in the hub's store).
    Token {
        #[command(subcommand)]
        command: admin::TokenCommand,
    },
    /// Add and list customers, and give them devices.
    Customer {
        #[command(subcommand)]
        command: admin::CustomerCommand,
    },
    /// Device settings kept by the hub (criticality).
    Device {
        #[command(subcommand)]
        command: admin::DeviceCommand,
    },
}

/// mimalloc rather than glibc's allocator: ingest allocates and frees per
/// message on several threads, and the hub's tokio threads took 30 µs of
/// CPU a message with it instead of 44 (`wearline bench ingest`). Built
/// without its transparent-huge-page advice (`no_thp`), and see
/// [`no_huge_pages`].
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, clap::Args)]
struct HubArgs {
    /// Hub config file (TOML).
    #[arg(long)]
    config: PathBuf,
}

/// Transparent huge pages off for this process. A 2 MiB huge page is
/// resident whole as soon as one byte of it is touched: with them, the
/// hub's peak RSS under `wearline bench ingest --rate 7500` was 185–189 MB
/// (39 MB in huge pages in one sample); without, 118–122 MB, same code
/// otherwise, at the same throughput and latency. mimalloc asks for them on
/// its arenas unless built with `no_thp`; on a kernel with THP `always` both
/// allocators get them unasked, hence the process-wide switch (Linux only; a
/// kernel that refuses it is only logged).
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        tracing::debug!(error = %e, "cannot turn transparent huge pages off");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Demo(_) | Command::Token { .. } | Command::Customer { .. } | Command::Device { .. } => {
            "warn"
        }
        _ => "info",
    };
    init_logging(default_level);
    no_huge_pages();
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
            Command::Agent(a) => wearline_agent::cli::run(a).await,
            Command::Hub(h) => run_hub(h).await,
            Command::Sim(s) => sim::run(s).await,
            Command::Demo(d) => demo::run(d).await,
            Command::Bench { command } => bench::run(command).await,
            Command::PushConfig(p) => match push_config::run(p).await? {
                push_config::Outcome::Applied => Ok(()),
                push_config::Outcome::Refused => {
                    std::process::exit(i32::from(push_config::EXIT_REFUSED));
                }
            },
            Command::Detect(d) => detect_cmd::run_detect(d),
            Command::EvalDetect(e) => detect_cmd::run_eval(e),
            Command::RulEval(e) => rul_cmd::run_eval(e),
            Command::Token { command } => admin::token(command).await,
            Command::Customer { command } => admin::customer(command).await,
            Command::Device { command } => admin::device(command).await,
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
    wearline_agent::cli::init_logging(&format!("{default_level},rumqttd=off,sqlx=warn"));
}

async fn run_hub(args: HubArgs) -> anyhow::Result<()> {
    let config = wearline_hub::HubConfig::load(&args.config)?;
    let hub = wearline_hub::Hub::start(config).await?;
    println!("api: http://{}", hub.api_addr);
    println!("broker: {}", hub.broker_addr);
    if let Some(tls) = hub.broker_tls_addr {
        println!("broker-tls: {tls}");
    }
    shutdown_signal().await;
    hub.stop().await;
    Ok(())
}
