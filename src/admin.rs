//! `wearline token|customer|device`: API access managed in the hub's store,
//! as a service manager does it: tokens made (shown once) and revoked,
//! customers added, devices given to customers and rated for criticality.
//!
//! Each command opens the store named by the hub's config file (SQLite or
//! PostgreSQL), so it works while the hub runs. Only flag checks here; the
//! rules are in `wearline_hub::store` and `wearline_hub::policy`.

use anyhow::{Context, bail};
use std::path::PathBuf;
use wearline_hub::policy::Access;
use wearline_hub::store::{NewCustomer, NewToken, Store};
use wearline_models::time::rfc3339;
use wearline_models::workorder::Criticality;

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The hub's config file (TOML): its `[store]` is used.
    #[arg(long)]
    config: PathBuf,
}

impl StoreArgs {
    async fn open(&self) -> anyhow::Result<Store> {
        let config = wearline_hub::HubConfig::load(&self.config)?;
        Store::open(&config.store)
            .await
            .with_context(|| format!("opening the store {}", config.store))
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    /// Everything (and, later, administration).
    Admin,
    /// Every device and work order.
    Manager,
    /// The work orders assigned to them and those orders' devices.
    Technician,
    /// Their own devices, alerts and work orders.
    Customer,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make an API token and print it once on stdout (only its hash is kept).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Who holds it (unique among active tokens), e.g. `maria`.
        #[arg(long)]
        name: String,
        /// Customer tokens: the customer's name.
        #[arg(long)]
        customer: Option<String>,
        /// Technician tokens: the technician's name as orders are assigned
        /// (default: `--name`).
        #[arg(long)]
        technician: Option<String>,
    },
    /// Revoke the active token of this name; it is refused from then on.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        name: String,
    },
    /// List tokens, active and revoked (never the tokens themselves).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum CustomerCommand {
    /// Add a customer.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// Unique name, e.g. `acme`.
        #[arg(long)]
        name: String,
        /// The person to talk to.
        #[arg(long)]
        contact: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
    /// List customers.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Give a device to a customer (the device must have sent telemetry).
    AssignDevice {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        customer: String,
        #[arg(long)]
        device: String,
    },
    /// Take a device from its customer.
    UnassignDevice {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        device: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CriticalityArg {
    Low,
    Normal,
    High,
}

#[derive(Debug, clap::Subcommand)]
pub enum DeviceCommand {
    /// Set how critical a device is: its work orders' priority follows.
    Criticality {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        device: String,
        #[arg(value_enum)]
        level: CriticalityArg,
    },
}

pub async fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            store,
            role,
            name,
            customer,
            technician,
        } => {
            if name.trim().is_empty() {
                bail!("--name is empty");
            }
            if customer.is_some() && !matches!(role, RoleArg::Customer) {
                bail!("--customer is for `--role customer` only");
            }
            if technician.is_some() && !matches!(role, RoleArg::Technician) {
                bail!("--technician is for `--role technician` only");
            }
            let store = store.open().await?;
            let access = match role {
                RoleArg::Admin => Access::Admin,
                RoleArg::Manager => Access::Manager,
                RoleArg::Technician => Access::Technician(technician.unwrap_or_else(|| name.clone())),
                RoleArg::Customer => {
                    let Some(c) = customer else {
                        bail!("`--role customer` needs --customer NAME (see `wearline customer list`)");
                    };
                    let row = store.customer_by_name(&c).await?.with_context(|| {
                        format!("no customer `{c}` (add it with `wearline customer add`)")
                    })?;
                    Access::Customer(row.id)
                }
            };
            let token = wearline_hub::auth::new_token()?;
            let row = store
                .create_token(&NewToken {
                    name: &name,
                    access: &access,
                    hash: &wearline_hub::auth::hash(&token),
                    created_ms: wearline_hub::clock::wall_ms(),
                })
                .await?;
            eprintln!(
                "token {} `{}` ({}) made; it is shown only this once:",
                row.id, row.name, row.role
            );
            println!("{token}");
        }
        TokenCommand::Revoke { store, name } => {
            let store = store.open().await?;
            if !store.revoke_token(&name, wearline_hub::clock::wall_ms()).await? {
                bail!("no active token named `{name}` (see `wearline token list`)");
            }
            println!("token `{name}` revoked");
        }
        TokenCommand::List { store } => {
            let store = store.open().await?;
            println!("id\tname\trole\tfor\tcreated\trevoked");
            for t in store.tokens().await? {
                let whom = match (t.customer_id, t.technician) {
                    (Some(c), _) => format!("customer {c}"),
                    (None, Some(t)) => format!("technician {t}"),
                    (None, None) => "-".into(),
                };
                println!(
                    "{}\t{}\t{}\t{whom}\t{}\t{}",
                    t.id,
                    t.name,
                    t.role,
                    rfc3339(t.created_ms),
                    t.revoked_ms.map_or_else(|| "-".into(), rfc3339)
                );
            }
        }
    }
    Ok(())
}

pub async fn customer(cmd: CustomerCommand) -> anyhow::Result<()> {
    match cmd {
        CustomerCommand::Add {
            store,
            name,
            contact,
            email,
            phone,
        } => {
            if name.trim().is_empty() {
                bail!("--name is empty");
            }
            let store = store.open().await?;
            let row = store
                .add_customer(&NewCustomer {
                    name: &name,
                    contact: contact.as_deref(),
                    email: email.as_deref(),
                    phone: phone.as_deref(),
                    created_ms: wearline_hub::clock::wall_ms(),
                })
                .await?;
            println!("customer {} `{}` added", row.id, row.name);
        }
        CustomerCommand::List { store } => {
            let store = store.open().await?;
            println!("id\tname\tcontact\temail\tphone");
            for c in store.customers().await? {
                let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    c.id,
                    c.name,
                    or_dash(c.contact),
                    or_dash(c.email),
                    or_dash(c.phone)
                );
            }
        }
        CustomerCommand::AssignDevice {
            store,
            customer,
            device,
        } => {
            store
                .open()
                .await?
                .set_device_owner(&device, Some(&customer))
                .await?;
            println!("device `{device}` belongs to `{customer}`");
        }
        CustomerCommand::UnassignDevice { store, device } => {
            store.open().await?.set_device_owner(&device, None).await?;
            println!("device `{device}` belongs to no customer");
        }
    }
    Ok(())
}

pub async fn device(cmd: DeviceCommand) -> anyhow::Result<()> {
    match cmd {
        DeviceCommand::Criticality { store, device, level } => {
            let (c, name) = match level {
                CriticalityArg::Low => (Criticality::Low, "low"),
                CriticalityArg::Normal => (Criticality::Normal, "normal"),
                CriticalityArg::High => (Criticality::High, "high"),
            };
            store.open().await?.set_device_criticality(&device, c).await?;
            println!("device `{device}` criticality {name}");
        }
    }
    Ok(())
}
