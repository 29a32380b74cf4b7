//! Configurations pushed by the hub: validate a revision against the file the
//! agent started from, keep the one in effect on disk, and find it again
//! after a restart.
//!
//! A pushed revision is the whole agent config (and optionally profiles). It
//! is refused when it does not parse or validate, or when it changes a key
//! that needs a restart ([`RESTART_KEYS`](crate::config::RESTART_KEYS)); the
//! agent then keeps running the revision it had.

use crate::config::{AgentConfig, LoadError, restart_key_changed};
use std::path::{Path, PathBuf};
use wearline_models::wire::{ConfigPush, decode, encode};

/// Where the agent's config came from: what a pushed revision is checked against.
#[derive(Debug, Clone)]
pub struct ConfigOrigin {
    /// Folder that relative paths in the config are resolved against.
    pub base: PathBuf,
    /// The config file's text.
    pub text: String,
}

impl ConfigOrigin {
    /// The config file at `path`.
    pub fn read(path: &Path) -> std::io::Result<ConfigOrigin> {
        Ok(ConfigOrigin {
            base: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            text: std::fs::read_to_string(path)?,
        })
    }
}

/// The revision in effect and how to judge the next one.
pub struct Reconfig {
    origin: Option<ConfigOrigin>,
    store: PathBuf,
    active: Option<String>,
}

/// File, under the data dir, holding the pushed revision in effect.
const STORE: &str = "pushed-config.json";

impl Reconfig {
    pub fn new(origin: Option<ConfigOrigin>, data_dir: &Path) -> Reconfig {
        Reconfig {
            origin,
            store: data_dir.join(STORE),
            active: None,
        }
    }

    /// The pushed revision in effect, if any.
    pub fn active(&self) -> Option<&str> {
        self.active.as_deref()
    }

    /// Parses and checks a pushed revision.
    pub fn evaluate(&self, push: &ConfigPush) -> Result<AgentConfig, String> {
        let Some(origin) = &self.origin else {
            return Err("this agent was started without a config file; it cannot take pushed configs".into());
        };
        let name = format!("hub config {}", push.revision);
        let config =
            AgentConfig::parse_with(&name, &push.agent_toml, &origin.base, &push.profiles).map_err(|e| {
                match e {
                    LoadError::Invalid(e) => e.to_string(),
                    other => format!("{name}: {other}"),
                }
            })?;
        if let Some(key) = restart_key_changed(&origin.text, &push.agent_toml) {
            return Err(format!(
                "{name}: key `{key}` differs from the gateway's config file; \
                 it cannot change while the agent runs (edit the file on the gateway and restart)"
            ));
        }
        Ok(config)
    }

    /// Records `push` as the revision in effect, durably.
    pub fn commit(&mut self, push: &ConfigPush) -> std::io::Result<()> {
        let tmp = self.store.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&encode(push))?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.store)?;
        if let Some(dir) = self.store.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.active = Some(push.revision.clone());
        Ok(())
    }

    /// The revision kept from before a restart, if there is one and it is
    /// still valid against the config file; the config it gives.
    pub fn restore(&mut self) -> Option<(ConfigPush, AgentConfig)> {
        let bytes = std::fs::read(&self.store).ok()?;
        let push: ConfigPush = match decode(&bytes) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(file = %self.store.display(), error = %e, "ignoring an unreadable pushed config");
                return None;
            }
        };
        match self.evaluate(&push) {
            Ok(config) => {
                self.active = Some(push.revision.clone());
                Some((push, config))
            }
            Err(e) => {
                tracing::warn!(revision = %push.revision, error = %e, "ignoring the pushed config kept from before the restart");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wearline_models::wire::VERSION;

    const FILE: &str = "gateway = \"gw\"\ndata_dir = \"data\"\n[uplink]\nbroker = \"127.0.0.1:1883\"\n";

    fn push(rev: &str, toml: &str) -> ConfigPush {
        ConfigPush {
            v: VERSION,
            revision: rev.into(),
            ts_ms: 1,
            agent_toml: toml.into(),
            profiles: [(
                "p".to_string(),
                "name = \"p\"\n[[fields]]\nmetric = \"t\"\nkind = \"input\"\naddress = 0\ntype = \"u16\"\n"
                    .to_string(),
            )]
            .into(),
        }
    }

    #[test]
    fn revisions_are_checked_kept_and_restored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin = ConfigOrigin {
            base: dir.path().to_path_buf(),
            text: FILE.into(),
        };
        let mut r = Reconfig::new(Some(origin.clone()), dir.path());
        let device = "[[devices]]\nid = \"d1\"\nprofile = \"p\"\ntcp = \"127.0.0.1:502\"\n";
        let good = push("r1", &format!("{FILE}{device}"));
        let config = r.evaluate(&good).expect("valid");
        assert_eq!(config.devices[0].profile.name, "p", "inline profile used");

        let bad = push("r2", &format!("{FILE}{device}interval_ms = 0\n"));
        let err = r.evaluate(&bad).expect_err("invalid");
        assert!(
            err.contains("hub config r2:9") && err.contains("devices[0].interval_ms"),
            "{err}"
        );

        let moved = push("r3", &FILE.replace("1883", "8883"));
        let err = r.evaluate(&moved).expect_err("uplink changed");
        assert!(err.contains("`uplink`"), "{err}");

        r.commit(&good).expect("commit");
        assert_eq!(r.active(), Some("r1"));
        let mut again = Reconfig::new(Some(origin), dir.path());
        let (p, c) = again.restore().expect("restored");
        assert_eq!((p.revision.as_str(), c.devices.len()), ("r1", 1));
        assert_eq!(again.active(), Some("r1"));
        // Without a config file nothing can be checked, so nothing is taken.
        assert!(Reconfig::new(None, dir.path()).evaluate(&good).is_err());
    }
}
