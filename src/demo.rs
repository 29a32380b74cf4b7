//! `wearline demo`: the whole system on loopback with no config file and no
//! external server. A hub with its embedded broker and SQLite store, a
//! simulated fleet of air purifiers at varied dust exposure and filter ages,
//! and an agent polling them, with simulated time running one day per second.
//! Prints a manager, a customer and a technician token (the customer owns the first
//! device) to try the API with, one line per work order as it opens, and a
//! JSON summary at the end.

use anyhow::Context;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use wearline_agent::clock::Clock;
use wearline_agent::config::{AgentConfig, DeviceConfig, UplinkConfig};
use wearline_agent::sources::modbus::bus::Endpoint;
use wearline_hub::config::{BrokerConfig, BrokerKind, HttpConfig};
use wearline_hub::{Hub, HubConfig, HubEvent};
use wearline_models::profile::Profile;
use wearline_models::time::date;
use wearline_simulators::{FleetConfig, start_fleet};

const PROFILE: &str = include_str!("../configs/profiles/air-purifier.toml");

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Number of simulated air purifiers.
    #[arg(long, default_value_t = 20)]
    devices: usize,
    /// Seed of the simulated fleet.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Address of the REST API (default: a free port on loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    http: SocketAddr,
    /// Keep the hub's database here instead of a temporary folder.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Stop after this many seconds and print a JSON summary.
    #[arg(long)]
    exit_after: Option<u64>,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 86_400.0)]
    time_scale: f64,
    /// Poll interval of each device, in real milliseconds.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let profile = std::sync::Arc::new(Profile::parse("air-purifier.toml (built in)", PROFILE)?);
    let tmp = tempfile::tempdir().context("creating a temporary folder")?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());

    let hub_config = HubConfig {
        broker: BrokerConfig {
            kind: BrokerKind::Embedded,
            address: "127.0.0.1:0".into(),
            client_id: "wearline-hub".into(),
            username: None,
            password: None,
            shared_group: None,
            password_file: None,
            max_connections: None,
            max_payload_bytes: None,
            backlog_mib: None,
            tls: None,
        },
        http: HttpConfig {
            listen: args.http,
            bootstrap_token_file: None,
        },
        store: wearline_hub::store::Location::Sqlite(data_dir.join("hub.db")),
        retention: wearline_hub::store::Retention::default(),
        rollup_every: std::time::Duration::from_secs(10),
        influx: None,
        reminders: Default::default(),
        escalation_notify: Vec::new(),
        offline_after: wearline_hub::ingest::DEFAULT_OFFLINE_AFTER,
        indicator_result_timeout: wearline_hub::reminders::indicator::DEFAULT_RESULT_TIMEOUT,
        unknown_devices: wearline_hub::config::UnknownDevices::Register,
        known_devices: Default::default(),
        profiles: BTreeMap::from([(profile.name.clone(), (*profile).clone())]),
        passwords: None,
        bootstrap_token_hash: None,
    };
    let hub = Hub::start(hub_config).await?;
    let mut events = hub.subscribe();

    let fleet = start_fleet(
        FleetConfig {
            seed: args.seed,
            devices: args.devices,
            time_scale: args.time_scale,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            filter_loads: Vec::new(),
            pm25: Vec::new(),
        },
        std::future::pending(),
    )
    .await?;

    demo_team(&hub.store).await?;
    let agent_config = AgentConfig {
        gateway: "demo-gateway".into(),
        data_dir: data_dir.join("agent"),
        uplink: UplinkConfig {
            broker: hub.broker_addr.clone(),
            client_id: None,
            username: None,
            password: None,
            batch_max_samples: 5,
            batch_delay_ms: 500,
            keep_alive_secs: 15,
            health_interval_secs: 30,
            protocol: Default::default(),
            tenant_topics: false,
            tls: None,
            tls_material: None,
        },
        devices: fleet
            .devices()
            .iter()
            .map(|d| DeviceConfig {
                id: d.id.clone(),
                profile: profile.clone(),
                endpoint: Endpoint::Tcp(d.addr),
                unit: 1,
                interval: Duration::from_millis(args.poll_ms),
                timeout: Duration::from_millis(1000),
                retries: 1,
                max_registers_per_request: 125,
                gap_alert_intervals: 5,
            })
            .collect(),
        buffer: wearline_agent::buffer::QueueConfig::default(),
        metrics_listen: None,
        mqtt_input: None,
        mqtt_devices: Vec::new(),
    };
    let agent = wearline_agent::Agent::new(agent_config, Clock::scaled(args.time_scale))
        .start()
        .context("starting the agent")?;

    let (manager, customer, technician) = demo_tokens(&hub.store, &fleet.devices()[0].id).await?;
    println!(
        "wearline demo: {} simulated air purifiers, one simulated day per {:.1} s",
        args.devices,
        86_400.0 / args.time_scale
    );
    println!("api: http://{}/api/v1/work-orders", hub.api_addr);
    println!("manager token: {manager}");
    println!(
        "customer token ({DEMO_CUSTOMER}, owns {}): {customer}",
        fleet.devices()[0].id
    );
    println!("technician token ({DEMO_TECHNICIAN}, takes every order): {technician}");
    println!(
        "try: curl -H \"Authorization: Bearer {manager}\" http://{}/api/v1/devices",
        hub.api_addr
    );

    let stop = async {
        match args.exit_after {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => crate::shutdown_signal().await,
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            ev = events.recv() => match ev {
                Ok(HubEvent::WorkOrderOpened(wo)) => print_order(&wo),
                Ok(HubEvent::WorkOrderEscalated { order, breach }) => {
                    println!("work order #{} escalated to {} ({breach} time missed)", order.id, order.priority);
                }
                Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "work order events missed"),
                Err(RecvError::Closed) => break,
            },
        }
    }

    // Stop polling, send what is pending, then let the hub store it.
    let published = {
        let stats = agent.stats.clone();
        agent.stop().await;
        stats.published.load(std::sync::atomic::Ordering::Relaxed)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while hub.stats.snapshot().samples < published && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The hub stores what is pending and its order desk finishes; orders
    // opened by the last samples are printed too.
    let store = hub.store.clone();
    hub.stop().await;
    while let Ok(ev) = events.try_recv() {
        if let HubEvent::WorkOrderOpened(wo) = ev {
            print_order(&wo);
        }
    }
    fleet.stop();
    let devices = store.devices().await?.len();
    let points = store.points().await?;
    let work_orders = store.work_orders().await?.len();
    println!(
        "{}",
        serde_json::json!({ "devices": devices, "telemetry_points": points, "work_orders": work_orders })
    );
    Ok(())
}

/// The demo's customer, owning the first device.
const DEMO_CUSTOMER: &str = "acme";
/// The demo's one technician, with every skill, so orders are dispatched
/// as they open.
const DEMO_TECHNICIAN: &str = "tess";

/// Puts the demo's technician on the team (before any order opens).
async fn demo_team(store: &wearline_hub::store::Store) -> anyhow::Result<()> {
    store
        .upsert_technician(&wearline_hub::store::TechnicianRow {
            name: DEMO_TECHNICIAN.into(),
            skills: r#"["*"]"#.into(),
            latitude: 48.137,
            longitude: 11.575,
            capacity: 100,
            shift_start: 0,
            shift_end: 0,
            utc_offset_minutes: 0,
            active: 1,
            load: 0,
        })
        .await?;
    Ok(())
}

/// Gives `device` to the demo customer once the hub knows it (its first
/// telemetry), and makes a manager, a customer and a technician token.
/// Tokens of an earlier run in the same `--data-dir` are revoked.
async fn demo_tokens(
    store: &wearline_hub::store::Store,
    device: &str,
) -> anyhow::Result<(String, String, String)> {
    use wearline_hub::policy::Access;
    use wearline_hub::store::{NewCustomer, NewToken};
    let now = wearline_hub::clock::wall_ms();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.device(device).await?.is_none() {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("no telemetry from {device} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let customer = match store.customer_by_name(DEMO_CUSTOMER).await? {
        Some(c) => c,
        None => {
            store
                .add_customer(&NewCustomer {
                    name: DEMO_CUSTOMER,
                    contact: Some("Facilities desk"),
                    created_ms: now,
                    ..NewCustomer::default()
                })
                .await?
        }
    };
    store.set_device_owner(device, Some(DEMO_CUSTOMER)).await?;
    let make = async |name: &str, access: Access| -> anyhow::Result<String> {
        store.revoke_token(name, now).await?;
        let token = wearline_hub::auth::new_token()?;
        store
            .create_token(&NewToken {
                name,
                access: &access,
                hash: &wearline_hub::auth::hash(&token),
                created_ms: now,
            })
            .await?;
        Ok(token)
    };
    let manager = make("demo-manager", Access::Manager).await?;
    let customer = make("demo-customer", Access::Customer(customer.id)).await?;
    let technician = make("demo-technician", Access::Technician(DEMO_TECHNICIAN.into())).await?;
    Ok((manager, customer, technician))
}

fn print_order(wo: &wearline_hub::store::WorkOrderRow) {
    let eol = wo.predicted_eol_ms.map_or_else(|| "unknown".to_string(), date);
    println!(
        "work order #{} {}: {} {} ({}), predicted end of life {}, lead time {} days",
        wo.id,
        wo.priority,
        wo.device_id,
        wo.cause.trim_start_matches("consumable:"),
        wo.kind,
        eol,
        wo.lead_time_days.unwrap_or(0.0)
    );
}
