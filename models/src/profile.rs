//! Device profiles: a reusable register map for one kind of device, with the
//! metrics it yields and the consumables those metrics wear out.
//!
//! A profile is written once by a device maker (`configs/profiles/*.toml`) and
//! referenced by every device of that kind. The agent uses the register map
//! and the detectors; the hub uses the consumables. Parsing and validation are pure.

use crate::config::{ConfigError, parse_toml};
use crate::detect::DetectorSpec;
use crate::registers::{Calibration, DataType, RegisterKind, WordOrder};
use serde::Deserialize;

/// One kind of device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name, referenced by devices in the agent config.
    pub name: String,
    /// Free text for people.
    #[serde(default)]
    pub description: String,
    /// The register map.
    #[serde(default)]
    pub fields: Vec<Field>,
    /// Metrics that come from elsewhere than registers: an appliance's own
    /// MQTT readings, or features the agent derives from a waveform.
    #[serde(default)]
    pub metrics: Vec<MetricDecl>,
    /// Parts that wear out, and the metric that shows it.
    #[serde(default)]
    pub consumables: Vec<Consumable>,
    /// Detectors the agent runs on the metrics, each raising its own alert.
    #[serde(default)]
    pub detectors: Vec<DetectorSpec>,
}

/// A metric the profile declares without a register.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDecl {
    /// Metric name in telemetry.
    pub name: String,
    /// Unit for people and charts.
    #[serde(default)]
    pub unit: String,
}

/// One metric read from the device's registers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Metric name as it appears in telemetry, e.g. `filter_dp`.
    pub metric: String,
    /// Unit for people and charts, e.g. `Pa`.
    #[serde(default)]
    pub unit: String,
    /// Which Modbus table the value lives in.
    pub kind: RegisterKind,
    /// Protocol (0-based) address of the first register or bit.
    pub address: u16,
    /// Layout of the value.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// Byte and word order of multi-register values.
    #[serde(default)]
    pub order: WordOrder,
    /// For `type = "bool"` in a holding or input register: which bit (0–15).
    pub bit: Option<u8>,
    /// For `type = "string"`: how many registers (two characters each).
    pub length: Option<u16>,
    /// Multiplier applied to the raw value.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Added after scaling.
    #[serde(default)]
    pub offset: f64,
}

const fn default_scale() -> f64 {
    1.0
}

impl Field {
    /// Number of registers (or bits) the field spans.
    pub fn span(&self) -> u16 {
        if self.kind.is_bit() {
            1
        } else if self.data_type == DataType::String {
            self.length.unwrap_or(1)
        } else {
            self.data_type.words()
        }
    }

    /// The calibration applied after decoding.
    pub fn calibration(&self) -> Calibration {
        Calibration {
            scale: self.scale,
            offset: self.offset,
        }
    }
}

/// A part that wears out: what shows its wear (a signal rising to a
/// threshold, a usage counter against a rated life, a calendar limit, or
/// several of these; the first one reached ends the life), how a replacement
/// shows in the data, and how much notice a replacement visit needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumable {
    /// Name, unique within the profile, e.g. `filter`.
    pub name: String,
    /// The metric that rises as the part wears, e.g. `filter_dp`.
    #[serde(default)]
    pub signal: Option<String>,
    /// Signal value at which the part is spent (with `signal`).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Level of the signal on a new part, below every reading (the log
    /// shapes' baseline); default 0.
    #[serde(default)]
    pub baseline: Option<f64>,
    /// A counter of use (run hours, litres) the life is measured in; without
    /// it, usage is operating time in hours since the part was fitted.
    #[serde(default)]
    pub usage: Option<String>,
    /// The usage counter counts this part only and restarts at a
    /// replacement (a fall of the counter then starts a new life).
    #[serde(default)]
    pub usage_resets: bool,
    /// Rated life in usage units: the part is spent when it has been used this much.
    #[serde(default)]
    pub rated_life: Option<f64>,
    /// The part is spent this many days after it was fitted, whatever its wear.
    #[serde(default)]
    pub calendar_limit_days: Option<f64>,
    /// How long before the predicted end of life a work order must open.
    pub lead_time_days: f64,
    /// A replacement shows as the signal falling by at least this fraction of
    /// its rise since the last replacement.
    #[serde(default = "default_reset_fraction")]
    pub reset_fraction: f64,
    /// Metrics whose mean over a life explains how long it lasts (dust load,
    /// fan speed): the fleet prior learns life against them.
    #[serde(default)]
    pub covariates: Vec<String>,
    /// The appliance's own indicator for this part (a "replace filter"
    /// light): a writable field (a coil or a holding register) the hub
    /// sets through the agent when a customer's reminder on the
    /// `indicator` channel falls due, and clears when a new part is fitted.
    #[serde(default)]
    pub indicator: Option<String>,
    /// The value written to `indicator` to switch it on, in the field's
    /// units; default 1. Off is 0.
    #[serde(default)]
    pub indicator_on: Option<f64>,
}

const fn default_reset_fraction() -> f64 {
    0.5
}

impl Consumable {
    /// The value that switches the indicator on: `indicator_on`, default 1.
    pub fn indicator_on(&self) -> f64 {
        self.indicator_on.unwrap_or(1.0)
    }
}

impl Profile {
    /// Parses and validates a profile's TOML text.
    pub fn parse(origin: &str, text: &str) -> Result<Profile, ConfigError> {
        let profile: Profile = parse_toml(origin, text)?;
        profile
            .validate()
            .map_err(|(key, msg)| ConfigError::invalid(origin, text, &key, msg))?;
        Ok(profile)
    }

    /// Checks what serde cannot: names unique, no overlapping fields,
    /// addresses in range, types fit their table, consumables refer to fields.
    /// On error returns the key path and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.name.trim().is_empty() {
            return Err(("name".into(), "must not be empty".into()));
        }
        for (i, f) in self.fields.iter().enumerate() {
            let key = |k: &str| format!("fields[{i}].{k}");
            if f.metric.trim().is_empty() {
                return Err((key("metric"), "must not be empty".into()));
            }
            if self.fields[..i].iter().any(|g| g.metric == f.metric) {
                return Err((key("metric"), format!("metric `{}` is defined twice", f.metric)));
            }
            if f.data_type == DataType::String {
                if f.kind.is_bit() {
                    return Err((key("type"), "text lives in holding or input registers".into()));
                }
                if !f.length.is_some_and(|l| (1..=125).contains(&l)) {
                    return Err((
                        key("length"),
                        "a string field needs `length` = 1–125 registers".into(),
                    ));
                }
            } else if f.length.is_some() {
                return Err((key("length"), "`length` applies only to type \"string\"".into()));
            }
            if f.kind.is_bit() && f.data_type != DataType::Bool {
                return Err((
                    key("type"),
                    format!("a {:?} field must have type \"bool\"", f.kind),
                ));
            }
            if f.bit.is_some() && (f.kind.is_bit() || f.data_type != DataType::Bool) {
                return Err((
                    key("bit"),
                    "`bit` applies only to type \"bool\" in a holding or input register".into(),
                ));
            }
            if f.bit.is_some_and(|b| b > 15) {
                return Err((key("bit"), "must be 0–15".into()));
            }
            if u32::from(f.address) + u32::from(f.span()) > 65536 {
                return Err((key("address"), "field runs past register 65535".into()));
            }
            if !f.scale.is_finite() || f.scale == 0.0 || !f.offset.is_finite() {
                return Err((
                    key("scale"),
                    "scale must be finite and non-zero, offset finite".into(),
                ));
            }
            let overlap = self.fields[..i].iter().find(|g| {
                g.kind == f.kind
                    && f.address < g.address + g.span()
                    && g.address < f.address + f.span()
                    && !(f.bit.is_some() && g.bit.is_some() && f.bit != g.bit)
            });
            if let Some(g) = overlap {
                return Err((
                    key("address"),
                    format!("overlaps field `{}` at {:?} {}", g.metric, g.kind, g.address),
                ));
            }
        }
        for (i, m) in self.metrics.iter().enumerate() {
            if m.name.trim().is_empty() {
                return Err((format!("metrics[{i}].name"), "must not be empty".into()));
            }
            let twice = self.fields.iter().any(|f| f.metric == m.name)
                || self.metrics[..i].iter().any(|n| n.name == m.name);
            if twice {
                return Err((
                    format!("metrics[{i}].name"),
                    format!("metric `{}` is defined twice", m.name),
                ));
            }
        }
        for (i, c) in self.consumables.iter().enumerate() {
            let key = |k: &str| format!("consumables[{i}].{k}");
            if self.consumables[..i].iter().any(|d| d.name == c.name) {
                return Err((key("name"), format!("consumable `{}` is defined twice", c.name)));
            }
            let metric = |k: &str, m: &str| {
                if self.has_metric(m) {
                    Ok(())
                } else {
                    Err((key(k), format!("no field or metric yields `{m}`")))
                }
            };
            match (&c.signal, c.threshold) {
                (Some(s), Some(t)) => {
                    metric("signal", s)?;
                    if !t.is_finite() {
                        return Err((key("threshold"), "must be a finite number".into()));
                    }
                    if let Some(b) = c.baseline.filter(|b| !(b.is_finite() && *b < t)) {
                        return Err((key("baseline"), format!("{b} is not below the threshold {t}")));
                    }
                }
                (Some(_), None) => {
                    return Err((
                        key("threshold"),
                        "a wear `signal` needs the `threshold` at which the part is spent".into(),
                    ));
                }
                (None, Some(_)) => {
                    return Err((
                        key("signal"),
                        "`threshold` needs the wear `signal` it applies to".into(),
                    ));
                }
                (None, None) if c.rated_life.is_none() && c.calendar_limit_days.is_none() => {
                    return Err((
                        key("signal"),
                        "say what ends the part's life: a wear `signal` with its `threshold`, a `rated_life`, or `calendar_limit_days`".into(),
                    ));
                }
                (None, None) => {}
            }
            if let Some(u) = &c.usage {
                metric("usage", u)?;
            } else if c.usage_resets {
                return Err((key("usage_resets"), "applies only with a `usage` counter".into()));
            }
            if c.rated_life.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                return Err((key("rated_life"), "must be a positive number".into()));
            }
            if c.calendar_limit_days.is_some_and(|d| !(d.is_finite() && d > 0.0)) {
                return Err((
                    key("calendar_limit_days"),
                    "must be a positive number of days".into(),
                ));
            }
            for (j, m) in c.covariates.iter().enumerate() {
                metric(&format!("covariates[{j}]"), m)?;
            }
            if !(c.lead_time_days.is_finite() && c.lead_time_days >= 0.0) {
                return Err((key("lead_time_days"), "must be ≥ 0".into()));
            }
            if !(c.reset_fraction > 0.0 && c.reset_fraction <= 1.0) {
                return Err((key("reset_fraction"), "must be in (0, 1]".into()));
            }
            self.validate_indicator(c).map_err(|(k, msg)| (key(k), msg))?;
        }
        for (i, d) in self.detectors.iter().enumerate() {
            let key = |k: &str| format!("detectors[{i}].{k}");
            if !self.has_metric(&d.metric) {
                return Err((key("metric"), format!("no field or metric yields `{}`", d.metric)));
            }
            let same = self.detectors[..i]
                .iter()
                .any(|e| e.metric == d.metric && e.alert_kind() == d.alert_kind());
            if same {
                return Err((
                    key("alert"),
                    format!(
                        "metric `{}` already has a `{}` detector; name this one's `alert` differently",
                        d.metric,
                        d.alert_kind()
                    ),
                ));
            }
            d.validate().map_err(|(k, msg)| (key(k), msg))?;
        }
        Ok(())
    }

    /// Checks a consumable's `indicator`: a field the agent can write (a
    /// coil, or a holding register that is not a single bit), and an
    /// `indicator_on` value it holds that differs from off (0).
    fn validate_indicator(&self, c: &Consumable) -> Result<(), (&'static str, String)> {
        let Some(name) = &c.indicator else {
            return match c.indicator_on {
                Some(_) => Err((
                    "indicator_on",
                    "needs the `indicator` field it is written to".into(),
                )),
                None => Ok(()),
            };
        };
        let Some(f) = self.field(name) else {
            return Err((
                "indicator",
                format!(
                    "no field `{name}`: the indicator must be a coil or holding register of this profile"
                ),
            ));
        };
        let writable = match f.kind {
            RegisterKind::Coil => true,
            RegisterKind::Holding => f.data_type != DataType::Bool && f.data_type != DataType::String,
            RegisterKind::Input | RegisterKind::Discrete => false,
        };
        if !writable {
            return Err((
                "indicator",
                format!(
                    "field `{name}` is not writable: the indicator must be a coil or a numeric holding register"
                ),
            ));
        }
        let on = c.indicator_on();
        if !on.is_finite() || on == 0.0 {
            return Err((
                "indicator_on",
                "must be a finite number other than 0 (0 is off)".into(),
            ));
        }
        if f.kind == RegisterKind::Holding
            && crate::registers::encode_words(f.calibration().invert(on), f.data_type, f.order).is_err()
        {
            return Err((
                "indicator_on",
                format!("{on} does not fit field `{name}` ({:?})", f.data_type),
            ));
        }
        Ok(())
    }

    /// Whether a field or a declared metric yields `metric`.
    pub fn has_metric(&self, metric: &str) -> bool {
        self.fields.iter().any(|f| f.metric == metric) || self.metrics.iter().any(|m| m.name == metric)
    }

    /// The field that yields `metric`.
    pub fn field(&self, metric: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.metric == metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "pump"
[[fields]]
metric = "temp"
kind = "input"
address = 0
type = "i16"
scale = 0.1
[[fields]]
metric = "hours"
kind = "input"
address = 1
type = "u32"
[[consumables]]
name = "seal"
signal = "temp"
threshold = 90.0
lead_time_days = 7
"#;

    #[test]
    fn good_profile_parses() {
        let p = Profile::parse("pump.toml", GOOD).expect("valid");
        assert_eq!(p.fields.len(), 2);
        assert_eq!(p.field("hours").map(Field::span), Some(2));
        assert_eq!(p.consumables[0].reset_fraction, 0.5);
    }

    #[track_caller]
    fn check_invalid(text: &str, key: &str, line: usize) {
        let err = Profile::parse("p.toml", text).expect_err("invalid");
        assert_eq!(err.key, key, "{err}");
        assert_eq!(err.line, Some(line), "{err}");
    }

    #[test]
    fn overlapping_fields_are_refused() {
        let text = GOOD.replace("address = 1\ntype = \"u32\"", "address = 0\ntype = \"u32\"");
        check_invalid(&text, "fields[1].address", 12);
    }

    #[test]
    fn consumable_must_name_a_field() {
        check_invalid(
            &GOOD.replace("signal = \"temp\"", "signal = \"dp\""),
            "consumables[0].signal",
            16,
        );
    }

    #[test]
    fn consumables_by_usage_counter_and_calendar() {
        let counter = GOOD.replace(
            "signal = \"temp\"\nthreshold = 90.0\n",
            "usage = \"hours\"\nusage_resets = true\nrated_life = 4000.0\ncalendar_limit_days = 365\n",
        );
        let p = Profile::parse("p.toml", &counter).expect("valid");
        let c = &p.consumables[0];
        assert_eq!((c.signal.as_deref(), c.usage.as_deref()), (None, Some("hours")));
        assert_eq!(
            (c.rated_life, c.calendar_limit_days, c.usage_resets),
            (Some(4000.0), Some(365.0), true)
        );
        check_invalid(
            &counter.replace("rated_life = 4000.0", "rated_life = -1.0"),
            "consumables[0].rated_life",
            18,
        );
        check_invalid(
            &GOOD.replace("threshold = 90.0\n", ""),
            "consumables[0].threshold",
            14,
        );
        check_invalid(
            &GOOD.replace("signal = \"temp\"\n", ""),
            "consumables[0].signal",
            14,
        );
        check_invalid(
            &GOOD.replace(
                "threshold = 90.0\n",
                "threshold = 90.0\ncovariates = [\"temp\", \"dust\"]\n",
            ),
            "consumables[0].covariates[1]",
            18,
        );
        check_invalid(
            &GOOD.replace("signal = \"temp\"\nthreshold = 90.0\n", ""),
            "consumables[0].signal",
            14,
        );
    }

    #[test]
    fn detectors_are_checked_with_their_key_and_line() {
        let with = |d: &str| format!("{GOOD}[[detectors]]\nmetric = \"temp\"\n{d}");
        let p = Profile::parse("p.toml", &with("type = \"drift\"\nresolution = 0.1\n")).expect("valid");
        assert_eq!(p.detectors[0].alert_kind(), "drift");
        check_invalid(
            &with("type = \"drift\"\nmax_step = 2.0\n"),
            "detectors[0].max_step",
            22,
        );
        check_invalid(
            &with("type = \"drift\"\n").replace("metric = \"temp\"\ntype", "metric = \"rpm\"\ntype"),
            "detectors[0].metric",
            20,
        );
        let twice = format!(
            "{}[[detectors]]\nmetric = \"temp\"\ntype = \"drift\"\n",
            with("type = \"drift\"\n")
        );
        check_invalid(&twice, "detectors[1].alert", 22);
    }

    #[test]
    fn indicators_must_be_writable_fields() {
        let writable = format!(
            "{GOOD}[[fields]]\nmetric = \"light\"\nkind = \"coil\"\naddress = 0\ntype = \"bool\"\n\
             [[fields]]\nmetric = \"level\"\nkind = \"holding\"\naddress = 0\ntype = \"u16\"\n"
        );
        let with =
            |keys: &str| writable.replace("lead_time_days = 7\n", &format!("lead_time_days = 7\n{keys}"));
        let p = Profile::parse("p.toml", &with("indicator = \"light\"\n")).expect("valid");
        assert_eq!(
            (
                p.consumables[0].indicator.as_deref(),
                p.consumables[0].indicator_on()
            ),
            (Some("light"), 1.0)
        );
        let p = Profile::parse("p.toml", &with("indicator = \"level\"\nindicator_on = 3\n")).expect("valid");
        assert_eq!(p.consumables[0].indicator_on(), 3.0);
        assert_eq!(
            Profile::parse("p.toml", GOOD).expect("valid").consumables[0].indicator,
            None
        );
        // Line 19: the key after `lead_time_days` on line 18.
        check_invalid(&with("indicator = \"lamp\"\n"), "consumables[0].indicator", 19);
        check_invalid(&with("indicator = \"temp\"\n"), "consumables[0].indicator", 19);
        check_invalid(&with("indicator_on = 2\n"), "consumables[0].indicator_on", 19);
        check_invalid(
            &with("indicator = \"light\"\nindicator_on = 0\n"),
            "consumables[0].indicator_on",
            20,
        );
        check_invalid(
            &with("indicator = \"level\"\nindicator_on = 70000\n"),
            "consumables[0].indicator_on",
            20,
        );
        let bit = writable.replace(
            "metric = \"level\"\nkind = \"holding\"\naddress = 0\ntype = \"u16\"",
            "metric = \"level\"\nkind = \"holding\"\naddress = 0\ntype = \"bool\"\nbit = 3",
        );
        check_invalid(
            &bit.replace(
                "lead_time_days = 7\n",
                "lead_time_days = 7\nindicator = \"level\"\n",
            ),
            "consumables[0].indicator",
            19,
        );
    }

    #[test]
    fn coils_must_be_bool() {
        check_invalid(
            &GOOD.replace("kind = \"input\"\naddress = 0", "kind = \"coil\"\naddress = 0"),
            "fields[0].type",
            7,
        );
    }
}
