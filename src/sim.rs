//! `wearline sim`: a fleet of simulated air purifiers on Modbus TCP, one port
//! per device. Prints one line per device (id and address), then serves until
//! stopped.

use std::net::SocketAddr;
use wearline_simulators::{FleetConfig, start_fleet};

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Number of air purifiers.
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Seed from which every device is derived.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Address of the first device; device i listens on port + i (port 0: ephemeral ports).
    #[arg(long, default_value = "127.0.0.1:5020")]
    listen: SocketAddr,
    /// Simulated seconds per real second (86400 = one day per second).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Initial fraction of filter life used (0–1), comma-separated, cycled over devices.
    #[arg(long, value_delimiter = ',')]
    filter_load: Vec<f64>,
    /// Ambient PM2.5 in µg/m³, comma-separated, cycled over devices.
    #[arg(long, value_delimiter = ',')]
    pm25: Vec<f64>,
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let cfg = FleetConfig {
        seed: args.seed,
        devices: args.devices,
        time_scale: args.time_scale,
        listen: args.listen,
        filter_loads: args.filter_load,
        pm25: args.pm25,
    };
    let fleet = start_fleet(cfg, crate::shutdown_signal()).await?;
    for d in fleet.devices() {
        println!(
            "{} {} pm25={:.1} filter_load={:.2}",
            d.id, d.addr, d.params.pm25_ugm3, d.params.initial_filter_load
        );
    }
    fleet.wait().await?;
    Ok(())
}
