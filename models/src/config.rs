//! Parsing TOML config text into typed values, with errors that name the
//! file, the line and the key.
//!
//! Pure: the caller reads the file and passes its text and name. Every config
//! struct in Wearline uses `#[serde(deny_unknown_fields)]`, so a misspelt key
//! is an error here rather than a silently ignored setting.

use serde::de::DeserializeOwned;
use std::fmt;

/// A config file that could not be parsed into its typed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or other origin) the text came from.
    pub origin: String,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted path of the key, e.g. `devices[2].interval_ms`; empty at the top level.
    pub key: String,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": key `{}`: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error about a value that parsed but is not acceptable; `key` is a
    /// path such as `devices[2].interval_ms`, located in `text` to give the line.
    pub fn invalid(origin: &str, text: &str, key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            origin: origin.to_string(),
            line: locate(text, key),
            column: None,
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// Finds the 1-based line of a key path such as `fields[1].address` in TOML
/// text written with `[table]` and `[[array]]` headers: the line of the key
/// itself, or of its table's header when the key is not written out.
fn locate(text: &str, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut segments: Vec<&str> = key.split('.').filter(|s| !s.is_empty()).collect();
    let last = segments.pop()?;
    let mut start = 0;
    let mut prefix = String::new();
    let mut found_header = None;
    let nested = !segments.is_empty();
    for seg in segments {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(name);
        let header = match index {
            Some(_) => format!("[[{prefix}]]"),
            None => format!("[{prefix}]"),
        };
        let nth = index.unwrap_or(0);
        // A table may be written only through a sub-table's header
        // (`[reminders.smtp]` without `[reminders]`): look further down.
        let Some(pos) = lines[start..]
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim() == header)
            .nth(nth)
            .map(|(i, _)| start + i)
        else {
            continue;
        };
        start = pos + 1;
        found_header = Some(pos + 1);
    }
    if nested && found_header.is_none() {
        return None;
    }
    let (name, _) = last.split_once('[').unwrap_or((last, ""));
    for (i, l) in lines.iter().enumerate().skip(start) {
        let t = l.trim_start();
        if t.starts_with('[') {
            break;
        }
        if t.strip_prefix(name)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(i + 1);
        }
    }
    found_header
}

/// Splits a `host:port` address; IPv6 hosts are written in brackets
/// (`[::1]:1883`) and returned without them.
pub fn host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['[', ']']) {
        return None;
    }
    Some((host, port.parse().ok()?))
}

/// Parses `text` (read from `origin`) as TOML into `T`.
pub fn parse_toml<T: DeserializeOwned>(origin: &str, text: &str) -> Result<T, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| from_toml(origin, text, e, String::new()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        from_toml(origin, text, e.into_inner(), key)
    })
}

fn from_toml(origin: &str, text: &str, e: toml::de::Error, mut key: String) -> ConfigError {
    let (line, column) = match e.span() {
        Some(span) => {
            let (l, c) = line_col(text, span.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    let message = e.message().trim().to_string();
    // Make sure an unknown field's key names the field itself.
    if let Some(field) = unknown_field(&message)
        && !key.ends_with(&field)
    {
        key = if key.is_empty() {
            field
        } else {
            format!("{key}.{field}")
        };
    }
    ConfigError {
        origin: origin.to_string(),
        line,
        column,
        key,
        message,
    }
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        #[serde(default)]
        devices: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        id: String,
        interval_ms: u64,
    }

    #[track_caller]
    fn check_err(text: &str, line: usize, key: &str, msg_part: &str) {
        let err = parse_toml::<Outer>("agent.toml", text).expect_err("must fail");
        assert_eq!(err.line, Some(line), "{err}");
        assert_eq!(err.key, key, "{err}");
        assert!(err.message.contains(msg_part), "{err}");
        assert!(
            err.to_string().starts_with(&format!("agent.toml:{line}")),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        check_err(
            "name = \"x\"\n[[devices]]\nid = \"a\"\ninterval_ms = 5\ncolour = 3\n",
            5,
            "devices[0].colour",
            "unknown field",
        );
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        check_err(
            "name = \"x\"\n\n[[devices]]\nid = \"a\"\ninterval_ms = \"soon\"\n",
            5,
            "devices[0].interval_ms",
            "invalid type",
        );
    }

    #[test]
    fn syntax_error_names_line() {
        let err = parse_toml::<Outer>("a.toml", "name = \"x\"\nbroken =\n").expect_err("must fail");
        assert_eq!(err.line, Some(2), "{err}");
    }

    #[test]
    fn invalid_value_is_located_by_key() {
        let text = "name = \"x\"\n[[devices]]\nid = \"a\"\ninterval_ms = 0\n";
        let err = ConfigError::invalid("a.toml", text, "devices[0].interval_ms", "must be > 0");
        assert_eq!(err.line, Some(4));
        assert_eq!(
            err.to_string(),
            "a.toml:4: key `devices[0].interval_ms`: must be > 0"
        );
    }

    #[test]
    fn keys_of_a_sub_table_without_its_parent_header_are_located() {
        let text = "name = \"x\"\n[reminders.smtp]\nhost = \"\"\ntls = \"tls\"\n";
        let err = ConfigError::invalid("a.toml", text, "reminders.smtp.tls", "bad");
        assert_eq!(err.line, Some(4), "{err}");
        let err = ConfigError::invalid("a.toml", text, "reminders.smtp.port", "bad");
        assert_eq!(err.line, Some(2), "the sub-table's header: {err}");
        let err = ConfigError::invalid("a.toml", text, "other.key", "bad");
        assert_eq!(err.line, None, "{err}");
    }

    #[test]
    fn host_port_splits_addresses() {
        assert_eq!(host_port("hub.example:1883"), Some(("hub.example", 1883)));
        assert_eq!(host_port("[::1]:1883"), Some(("::1", 1883)));
        assert_eq!(host_port("127.0.0.1:0"), Some(("127.0.0.1", 0)));
        for bad in ["hub", ":1883", "hub:99999", "hub:", "[::1:1883"] {
            assert_eq!(host_port(bad), None, "{bad}");
        }
    }

    #[test]
    fn good_config_parses() {
        let cfg: Outer = parse_toml(
            "a.toml",
            "name = \"x\"\n[[devices]]\nid = \"a\"\ninterval_ms = 5\n",
        )
        .expect("ok");
        assert_eq!(cfg.devices.len(), 1);
    }
}
