//! Per-site identity and the settings SPEC calls configurable, with their validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{Action, Kind};
use crate::time::{format_duration_setting, parse_duration_setting, MILLIS_PER_DAY, MILLIS_PER_MINUTE};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("site id {0:?} must be 1 to 64 of a-z, 0-9, '_' and '-'")]
    SiteId(String),
    #[error("time zone {0:?} is not an IANA time zone (like Europe/Berlin or UTC)")]
    TimeZone(String),
    #[error("currency {0:?} must be an ISO 4217 code of three capital letters (like EUR)")]
    Currency(String),
    #[error("unknown setting {0:?}; the settings are: {SETTING_KEYS}")]
    UnknownKey(String),
    #[error("{key}: {reason}")]
    Value { key: String, reason: String },
}

/// The keys `upshot site set` accepts, for error messages and help.
pub const SETTING_KEYS: &str = "timezone, session_gap, attribution_window, \
    recommendation_window, cuped_lookback, sequential_tuning_visitors, qualifying.<kind>, \
    experiment.<name>.control, experiment.<name>.split";

/// SPEC section 9.5: how far before an assignment CUPED looks for pre-period revenue.
pub const DEFAULT_CUPED_LOOKBACK_MS: i64 = 14 * MILLIS_PER_DAY;
/// SPEC section 9.5: the visitor count the always-valid intervals are tightest at.
pub const DEFAULT_SEQUENTIAL_TUNING_VISITORS: u64 = 5000;
/// Largest `sequential_tuning_visitors` accepted (a billion visitors).
const SEQUENTIAL_TUNING_VISITORS_MAX: u64 = 1_000_000_000;

fn default_cuped_lookback_ms() -> i64 {
    DEFAULT_CUPED_LOOKBACK_MS
}

fn default_sequential_tuning_visitors() -> u64 {
    DEFAULT_SEQUENTIAL_TUNING_VISITORS
}

/// Percent-encodes a URL component (everything but unreserved characters): site ids
/// and placements in dashboard paths, queries in ClickHouse requests.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub fn validate_site_id(site: &str) -> Result<(), SettingError> {
    let valid = (1..=64).contains(&site.len())
        && site.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(SettingError::SiteId(site.to_string()))
    }
}

pub fn validate_time_zone(name: &str) -> Result<jiff::tz::TimeZone, SettingError> {
    jiff::tz::TimeZone::get(name).map_err(|_| SettingError::TimeZone(name.to_string()))
}

pub fn validate_currency(code: &str) -> Result<(), SettingError> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(SettingError::Currency(code.to_string()))
    }
}

/// Which interactions of a kind qualify as touches (SPEC section 4); `discard` never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualifyingActions {
    pub click: bool,
    pub hover: bool,
}

impl QualifyingActions {
    pub fn qualifies(self, action: Action) -> bool {
        match action {
            Action::Click => self.click,
            Action::Hover => self.hover,
            Action::Discard => false,
        }
    }

    fn describe(self) -> String {
        match (self.click, self.hover) {
            (true, true) => "click,hover".into(),
            (true, false) => "click".into(),
            (false, true) => "hover".into(),
            (false, false) => "none".into(),
        }
    }

    fn parse(text: &str) -> Result<QualifyingActions, String> {
        let mut actions = QualifyingActions { click: false, hover: false };
        if text == "none" {
            return Ok(actions);
        }
        for part in text.split(',').map(str::trim) {
            match part {
                "click" => actions.click = true,
                "hover" => actions.hover = true,
                "discard" => return Err("a discard never qualifies as a touch".into()),
                _ => return Err(format!("{part:?} is not click or hover (write e.g. click,hover or none)")),
            }
        }
        Ok(actions)
    }
}

/// An experiment's control variant and expected split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSettings {
    pub control: String,
    /// Expected share per variant; absent means equal shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<BTreeMap<String, f64>>,
}

/// The configurable parts of the figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub session_gap_ms: i64,
    pub attribution_window_ms: i64,
    pub recommendation_window_ms: i64,
    /// Indexed by `Kind::index()`.
    pub qualifying: [QualifyingActions; 6],
    #[serde(default)]
    pub experiments: BTreeMap<String, ExperimentSettings>,
    /// Site records written before SPEC section 9 read with the defaults.
    #[serde(default = "default_cuped_lookback_ms")]
    pub cuped_lookback_ms: i64,
    #[serde(default = "default_sequential_tuning_visitors")]
    pub sequential_tuning_visitors: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        let click = QualifyingActions { click: true, hover: false };
        let click_or_hover = QualifyingActions { click: true, hover: true };
        Settings {
            session_gap_ms: 30 * MILLIS_PER_MINUTE,
            attribution_window_ms: 30 * MILLIS_PER_DAY,
            recommendation_window_ms: 7 * MILLIS_PER_DAY,
            // recommendation, popup, notification, block, widget, other
            qualifying: [click, click, click_or_hover, click, click_or_hover, click],
            experiments: BTreeMap::new(),
            cuped_lookback_ms: DEFAULT_CUPED_LOOKBACK_MS,
            sequential_tuning_visitors: DEFAULT_SEQUENTIAL_TUNING_VISITORS,
        }
    }
}

pub const DEFAULT_CONTROL_VARIANT: &str = "control";

impl Settings {
    pub fn control_variant<'a>(&'a self, experiment: &str) -> &'a str {
        self.experiments.get(experiment).map_or(DEFAULT_CONTROL_VARIANT, |settings| settings.control.as_str())
    }

    pub fn expected_split(&self, experiment: &str) -> Option<&BTreeMap<String, f64>> {
        self.experiments.get(experiment).and_then(|settings| settings.split.as_ref())
    }

    /// Every setting as `(key, value)` text, as `upshot site show` prints them.
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut rows = vec![
            ("session_gap".to_string(), format_duration_setting(self.session_gap_ms)),
            ("attribution_window".to_string(), format_duration_setting(self.attribution_window_ms)),
            ("recommendation_window".to_string(), format_duration_setting(self.recommendation_window_ms)),
            ("cuped_lookback".to_string(), format_duration_setting(self.cuped_lookback_ms)),
            ("sequential_tuning_visitors".to_string(), self.sequential_tuning_visitors.to_string()),
        ];
        for kind in Kind::ALL {
            rows.push((format!("qualifying.{}", kind.as_str()), self.qualifying[kind.index()].describe()));
        }
        for (name, experiment) in &self.experiments {
            rows.push((format!("experiment.{name}.control"), experiment.control.clone()));
            let split = experiment.split.as_ref().map_or_else(
                || "equal".to_string(),
                |split| split.iter().map(|(v, s)| format!("{v}={s}")).collect::<Vec<_>>().join(","),
            );
            rows.push((format!("experiment.{name}.split"), split));
        }
        rows
    }

    /// Changes one setting (not `timezone`, which lives on the site).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SettingError> {
        let invalid = |reason: String| SettingError::Value { key: key.to_string(), reason };
        match key {
            "session_gap" => self.session_gap_ms = parse_duration_setting(value).map_err(invalid)?,
            "attribution_window" => self.attribution_window_ms = parse_duration_setting(value).map_err(invalid)?,
            "recommendation_window" => {
                self.recommendation_window_ms = parse_duration_setting(value).map_err(invalid)?
            }
            "cuped_lookback" => self.cuped_lookback_ms = parse_duration_setting(value).map_err(invalid)?,
            "sequential_tuning_visitors" => {
                self.sequential_tuning_visitors = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|visitors| (1..=SEQUENTIAL_TUNING_VISITORS_MAX).contains(visitors))
                    .ok_or_else(|| {
                        invalid(format!(
                            "{value:?} must be a whole number of visitors from 1 to \
                             {SEQUENTIAL_TUNING_VISITORS_MAX} (the default is {DEFAULT_SEQUENTIAL_TUNING_VISITORS})"
                        ))
                    })?
            }
            _ => return self.set_keyed(key, value),
        }
        Ok(())
    }

    fn set_keyed(&mut self, key: &str, value: &str) -> Result<(), SettingError> {
        let invalid = |reason: String| SettingError::Value { key: key.to_string(), reason };
        if let Some(kind) = key.strip_prefix("qualifying.") {
            let kind = Kind::parse(kind).ok_or_else(|| invalid(format!("{kind:?} is not a placement kind")))?;
            self.qualifying[kind.index()] = QualifyingActions::parse(value).map_err(invalid)?;
            return Ok(());
        }
        let Some(rest) = key.strip_prefix("experiment.") else {
            return Err(SettingError::UnknownKey(key.to_string()));
        };
        let (name, field) = rest.rsplit_once('.').ok_or_else(|| SettingError::UnknownKey(key.to_string()))?;
        if name.is_empty() {
            return Err(invalid("the experiment name is empty".into()));
        }
        let experiment = self
            .experiments
            .entry(name.to_string())
            .or_insert_with(|| ExperimentSettings { control: DEFAULT_CONTROL_VARIANT.to_string(), split: None });
        match field {
            "control" if !value.is_empty() => experiment.control = value.to_string(),
            "control" => return Err(invalid("the control variant name is empty".into())),
            "split" => experiment.split = parse_split(value).map_err(invalid)?,
            _ => return Err(SettingError::UnknownKey(key.to_string())),
        }
        Ok(())
    }
}

/// `equal`, or `variant=share,...` with positive shares (any scale: 50,50 or 0.5,0.5).
fn parse_split(text: &str) -> Result<Option<BTreeMap<String, f64>>, String> {
    if text == "equal" {
        return Ok(None);
    }
    let mut split = BTreeMap::new();
    for part in text.split(',') {
        let (variant, share) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not variant=share (write e.g. control=50,b=50 or equal)"))?;
        let share: f64 = share
            .trim()
            .parse()
            .ok()
            .filter(|share: &f64| share.is_finite() && *share > 0.0)
            .ok_or_else(|| format!("share of {variant:?} must be a positive number"))?;
        split.insert(variant.trim().to_string(), share);
    }
    Ok(Some(split))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_validated_and_described() {
        let mut settings = Settings::default();
        settings.set("session_gap", "45m").expect("valid gap");
        settings.set("qualifying.popup", "click,hover").expect("valid actions");
        settings.set("experiment.hero.control", "baseline").expect("valid control");
        settings.set("experiment.hero.split", "baseline=90,b=10").expect("valid split");
        assert_eq!(settings.session_gap_ms, 45 * MILLIS_PER_MINUTE);
        assert_eq!(settings.control_variant("hero"), "baseline");
        assert_eq!(settings.control_variant("other"), "control");
        assert!(settings.set("qualifying.popup", "discard").is_err());
        assert!(settings.set("session_gap", "soon").is_err());
        assert!(matches!(settings.set("colour", "red"), Err(SettingError::UnknownKey(_))));
        settings.set("cuped_lookback", "7d").expect("valid lookback");
        assert_eq!(settings.cuped_lookback_ms, 7 * MILLIS_PER_DAY);
        settings.set("sequential_tuning_visitors", "20000").expect("valid tuning");
        assert_eq!(settings.sequential_tuning_visitors, 20_000);
        for bad in ["0", "-5", "many", "1.5"] {
            let error = settings.set("sequential_tuning_visitors", bad).expect_err("refused");
            assert!(error.to_string().contains("whole number of visitors"), "{error}");
        }
        let described = settings.describe();
        assert!(described.contains(&("experiment.hero.split".into(), "b=10,baseline=90".into())));
    }

    #[test]
    fn site_ids_follow_the_spec_pattern() {
        assert!(validate_site_id("shop_1-a").is_ok());
        assert!(validate_site_id("Shop").is_err());
        assert!(validate_site_id("").is_err());
        assert!(validate_site_id(&"a".repeat(65)).is_err());
    }
}
