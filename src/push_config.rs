//! `wearline push-config`: publish an agent config (and profiles) to a
//! gateway as a retained revision, and wait for the gateway's answer.
//!
//! The config is checked here first, with the agent's own code, so a typo is
//! reported with file, line and key before anything reaches the gateway.
//!
//! The revision is published in every form the gateway may subscribe in
//! (`TopicForm::downlink`): plain, and under `/tenants/{gateway}/` when the
//! id can be a tenant, so it reaches a password gateway and a certificate
//! gateway on the embedded broker alike without being told which this is.
//! An agent subscribes in one form, so it gets the revision once; both
//! retained copies always hold the same revision, so a gateway that changes
//! form still starts from the latest.

use anyhow::{Context, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wearline_models::config::host_port;
use wearline_models::profile::Profile;
use wearline_models::wire::{ConfigPush, ConfigResult, Topic, TopicForm, VERSION, decode, encode};

#[derive(Debug, clap::Args)]
pub struct PushConfigArgs {
    /// The broker the gateway's agent connects to, HOST:PORT.
    #[arg(long)]
    broker: String,
    /// The gateway's id.
    #[arg(long)]
    gateway: String,
    /// Name of this revision (reported back; a revision is applied once).
    #[arg(long)]
    revision: String,
    /// The agent config file to send.
    #[arg(long)]
    config: PathBuf,
    /// Profile files to send along (each used instead of the gateway's own file of that name).
    #[arg(long)]
    profile: Vec<PathBuf>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    /// MQTT client id. The embedded broker with a `password_file` wants a
    /// user's own name here (never the hub's: that would end its session).
    #[arg(long)]
    client_id: Option<String>,
    /// How long to wait for the gateway's answer.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

/// Exit code when the config is invalid or the gateway refused it.
pub const EXIT_REFUSED: u8 = 2;

/// What became of a push.
pub enum Outcome {
    Applied,
    Refused,
}

pub async fn run(args: PushConfigArgs) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let mut profiles = BTreeMap::new();
    for path in &args.profile {
        let p = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let name = match Profile::parse(&path.display().to_string(), &p) {
            Ok(profile) => profile.name,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(Outcome::Refused);
            }
        };
        profiles.insert(name, p);
    }
    let base = args.config.parent().unwrap_or(Path::new("."));
    let origin = args.config.display().to_string();
    match wearline_agent::AgentConfig::parse_with(&origin, &text, base, &profiles) {
        Ok(c) if c.gateway != args.gateway => {
            eprintln!(
                "error: {origin}: `gateway` is \"{}\" but the push is for \"{}\"",
                c.gateway, args.gateway
            );
            return Ok(Outcome::Refused);
        }
        Ok(_) => {}
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            return Ok(Outcome::Refused);
        }
    }
    let (host, port) = host_port(&args.broker).context("--broker must be HOST:PORT")?;
    let client_id = args
        .client_id
        .clone()
        .unwrap_or_else(|| format!("wearline-push-{}", std::process::id()));
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(15));
    if let (Some(u), Some(p)) = (&args.username, &args.password) {
        opts.set_credentials(u, p);
    }
    let (client, mut events) = AsyncClient::new(opts, 16);
    let forms = TopicForm::downlink(&args.gateway);
    let results = Topic::ConfigResult {
        gateway: args.gateway.clone(),
    };
    for form in forms {
        client
            .subscribe(results.render_in(*form), QoS::AtLeastOnce)
            .await?;
    }
    let push = ConfigPush {
        v: VERSION,
        revision: args.revision.clone(),
        ts_ms: now_ms(),
        agent_toml: text,
        profiles,
    };
    let config = Topic::Config {
        gateway: args.gateway.clone(),
    };
    for form in forms {
        client
            .publish(config.render_in(*form), QoS::AtLeastOnce, true, encode(&push))
            .await?;
    }
    let mut unacked = forms.len();
    let wait = async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p)))
                    if Topic::parse_in(&p.topic).is_ok_and(|(_, t)| t == results) =>
                {
                    if let Ok(r) = decode::<ConfigResult>(&p.payload)
                        && r.revision == args.revision
                    {
                        return Ok(r);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    unacked = unacked.saturating_sub(1);
                    if unacked == 0 {
                        eprintln!(
                            "published revision {} (retained); waiting for the gateway…",
                            args.revision
                        );
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("broker {}: {e}", args.broker)),
            }
        }
    };
    let result = match tokio::time::timeout(Duration::from_secs(args.timeout_secs), wait).await {
        Ok(r) => r?,
        Err(_) => bail!(
            "gateway {} did not answer within {} s; the revision is retained, so it applies it when it connects",
            args.gateway,
            args.timeout_secs
        ),
    };
    let _ = client.disconnect().await;
    if result.ok {
        println!("{}: revision {} in effect", result.gateway, result.revision);
        Ok(Outcome::Applied)
    } else {
        println!(
            "{}: revision {} refused; {} stays in effect: {}",
            result.gateway,
            result.revision,
            result
                .active
                .as_deref()
                .unwrap_or("the gateway's own config file"),
            result.error.as_deref().unwrap_or("no reason given")
        );
        Ok(Outcome::Refused)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
