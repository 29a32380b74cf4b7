//! `wearline-agent`: the edge agent alone, for gateways. It takes the same
//! arguments as `wearline agent` and runs the same code, in a binary without
//! the hub, the simulators or the evaluations, so less of it is mapped into
//! memory on a small gateway.

use clap::Parser;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "wearline-agent",
    version,
    about = "Wearline edge agent: poll devices, detect on the spot, publish uplink"
)]
struct Cli {
    #[command(flatten)]
    agent: wearline_agent::cli::AgentArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    wearline_agent::cli::init_logging("info");
    // Mostly waiting on timers and sockets: one thread keeps the footprint small.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(wearline_agent::cli::run(cli.agent)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
