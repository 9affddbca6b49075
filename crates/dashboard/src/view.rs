//! What a page shows, as it lives in the URL: site, date range (a preset or custom),
//! page type, attribution model, and a table's kind filter and sort. Every link and form
//! carries it, so a view can be shared by its address.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::ToSpan;

/// The date presets of SPEC section 5; the dashboard opens on the last 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Today,
    Yesterday,
    Last7Days,
    Last30Days,
    ThisMonth,
    LastMonth,
    Custom,
}

impl Preset {
    pub const ALL: [Preset; 7] = [
        Preset::Today,
        Preset::Yesterday,
        Preset::Last7Days,
        Preset::Last30Days,
        Preset::ThisMonth,
        Preset::LastMonth,
        Preset::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Today => "today",
            Preset::Yesterday => "yesterday",
            Preset::Last7Days => "last_7_days",
            Preset::Last30Days => "last_30_days",
            Preset::ThisMonth => "this_month",
            Preset::LastMonth => "last_month",
            Preset::Custom => "custom",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Preset::Today => "Today",
            Preset::Yesterday => "Yesterday",
            Preset::Last7Days => "Last 7 days",
            Preset::Last30Days => "Last 30 days",
            Preset::ThisMonth => "This month",
            Preset::LastMonth => "Last month",
            Preset::Custom => "Custom range",
        }
    }

    pub fn parse(text: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|preset| preset.as_str() == text)
    }

    /// The preset's dates (inclusive), `today` being the site's local date.
    pub fn range(self, today: Date) -> Option<(Date, Date)> {
        let days_back = |days: i64| today.checked_sub(days.days()).ok();
        let first_of_month = today.first_of_month();
        Some(match self {
            Preset::Today => (today, today),
            Preset::Yesterday => (days_back(1)?, days_back(1)?),
            Preset::Last7Days => (days_back(6)?, today),
            Preset::Last30Days => (days_back(29)?, today),
            Preset::ThisMonth => (first_of_month, today),
            Preset::LastMonth => {
                let last = first_of_month.yesterday().ok()?;
                (last.first_of_month(), last)
            }
            Preset::Custom => return None,
        })
    }
}

/// The models a report can credit orders by.
pub const MODELS: [(&str, &str); 5] = [
    ("last", "Last interaction"),
    ("first", "First interaction"),
    ("linear", "Linear"),
    ("time_decay", "Time decay"),
    ("position", "Position based"),
];

/// The page types of SPEC section 2, offered in the filter (others can be typed in the URL).
pub use upshot_model::PAGE_TYPES;

pub const KINDS: [&str; 6] = ["recommendation", "popup", "notification", "block", "widget", "other"];

/// The session attributes (SPEC section 9.1) a breakdown is shown by, with labels.
pub const DIMENSIONS: [(&str, &str); 4] = [
    ("device", "Device"),
    ("visitor_type", "Visitor type"),
    ("channel", "Channel"),
    ("landing_page_type", "Landing page"),
];

/// The segments offered in the control, per dimension (a landing page type may be any:
/// the page types of SPEC section 2 are offered, others can be typed in the URL).
pub fn segment_values(dimension: &str) -> &'static [&'static str] {
    let mut offered = upshot_engine::breakdown::OFFERED_SEGMENTS.iter();
    offered.find(|(name, _)| *name == dimension).map_or(&[], |(_, values)| values)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub site: String,
    /// Sites the signed-in user may switch to.
    pub sites: Vec<String>,
    pub preset: Preset,
    pub from: Date,
    pub to: Date,
    pub page_type: Option<String>,
    pub model: String,
    /// The placements table's kind filter.
    pub kind: Option<String>,
    /// Only sessions with one value of an attribute (`device:mobile`, SPEC section 9.2).
    pub segment: Option<String>,
    /// The attribute the overview's breakdown table is by (`device` when absent).
    pub breakdown: Option<String>,
    /// Column to sort a table by, and whether descending.
    pub sort: Option<String>,
    pub descending: bool,
}

impl View {
    /// The view a URL's parameters ask for; `today` is the site's local date. Bad
    /// parameters are an error a person can read.
    pub fn from_params(
        site: &str,
        sites: Vec<String>,
        params: &BTreeMap<String, String>,
        today: Date,
    ) -> Result<View, String> {
        let text = |name: &str| params.get(name).map(|value| value.trim()).filter(|value| !value.is_empty());
        let date = |name: &str| -> Result<Option<Date>, String> {
            text(name)
                .map(|value| {
                    value.parse::<Date>().map_err(|_| format!("{name} {value:?} is not a date like 2024-05-31"))
                })
                .transpose()
        };
        let (from, to) = (date("from")?, date("to")?);
        let preset = match text("preset") {
            Some(name) => Preset::parse(name).ok_or_else(|| format!("unknown date preset {name:?}"))?,
            None if from.is_some() || to.is_some() => Preset::Custom,
            None => Preset::Last30Days,
        };
        let (from, to) = match preset.range(today) {
            Some(range) => range,
            None => (from.unwrap_or(today), to.unwrap_or(today)),
        };
        if from > to {
            return Err(format!("the range starts ({from}) after it ends ({to})"));
        }
        let model = text("model").unwrap_or("last");
        if !MODELS.iter().any(|(name, _)| *name == model) {
            return Err(format!("unknown attribution model {model:?}"));
        }
        let kind = text("kind").map(str::to_string);
        if let Some(kind) = &kind {
            if !KINDS.contains(&kind.as_str()) {
                return Err(format!("unknown placement kind {kind:?}"));
            }
        }
        let segment = text("segment").map(str::to_string);
        if let Some(segment) = &segment {
            upshot_engine::query::Segment::parse(segment).map_err(|error| error.to_string())?;
        }
        let breakdown = text("breakdown").map(str::to_string);
        if let Some(dimension) = &breakdown {
            if !DIMENSIONS.iter().any(|(name, _)| name == dimension) {
                return Err(format!(
                    "unknown breakdown {dimension:?} (device, visitor_type, channel or landing_page_type)"
                ));
            }
        }
        Ok(View {
            site: site.to_string(),
            sites,
            preset,
            from,
            to,
            page_type: text("page_type").map(str::to_string),
            model: model.to_string(),
            kind,
            segment,
            breakdown,
            sort: text("sort").map(str::to_string),
            descending: text("dir") != Some("asc"),
        })
    }

    /// The equally long range just before this one (for the change against it).
    pub fn previous_range(&self) -> Option<(Date, Date)> {
        let days = (self.to - self.from).get_days() as i64 + 1;
        let to = self.from.yesterday().ok()?;
        Some((to.checked_sub((days - 1).days()).ok()?, to))
    }

    /// The URL parameters that keep this view, with `changes` applied (an empty value
    /// removes a parameter).
    pub fn params(&self, changes: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut params = BTreeMap::new();
        if self.preset == Preset::Custom {
            params.insert("from".to_string(), self.from.to_string());
            params.insert("to".to_string(), self.to.to_string());
        } else if self.preset != Preset::Last30Days {
            params.insert("preset".to_string(), self.preset.as_str().to_string());
        }
        if let Some(page_type) = &self.page_type {
            params.insert("page_type".to_string(), page_type.clone());
        }
        if self.model != "last" {
            params.insert("model".to_string(), self.model.clone());
        }
        if let Some(kind) = &self.kind {
            params.insert("kind".to_string(), kind.clone());
        }
        if let Some(segment) = &self.segment {
            params.insert("segment".to_string(), segment.clone());
        }
        if let Some(breakdown) = &self.breakdown {
            params.insert("breakdown".to_string(), breakdown.clone());
        }
        if let Some(sort) = &self.sort {
            params.insert("sort".to_string(), sort.clone());
            params.insert("dir".to_string(), if self.descending { "desc" } else { "asc" }.to_string());
        }
        for (name, value) in changes {
            if value.is_empty() {
                params.remove(*name);
            } else {
                params.insert(name.to_string(), value.to_string());
            }
        }
        params
    }

    /// `path?query` keeping this view, with `changes`.
    pub fn href(&self, path: &str, changes: &[(&str, &str)]) -> String {
        let query: Vec<String> =
            self.params(changes).iter().map(|(name, value)| format!("{}={}", encode(name), encode(value))).collect();
        if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", query.join("&"))
        }
    }

    /// The base path of the site's pages.
    pub fn site_path(&self, page: &str) -> String {
        format!("/sites/{}/{page}", encode(&self.site))
    }
}

/// Percent-encodes a URL component (everything but unreserved characters).
pub use upshot_model::site::percent_encode as encode;

#[cfg(test)]
mod tests {
    use super::*;

    fn view(params: &[(&str, &str)]) -> Result<View, String> {
        let params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        View::from_params("shop", vec!["shop".into()], &params, jiff::civil::date(2024, 3, 15))
    }

    #[test]
    fn presets_cover_the_days_a_marketer_means() {
        let dates = |preset: &str| {
            let view = view(&[("preset", preset)]).expect("valid");
            (view.from.to_string(), view.to.to_string())
        };
        assert_eq!(dates("today"), ("2024-03-15".into(), "2024-03-15".into()));
        assert_eq!(dates("yesterday"), ("2024-03-14".into(), "2024-03-14".into()));
        assert_eq!(dates("last_7_days"), ("2024-03-09".into(), "2024-03-15".into()));
        assert_eq!(dates("last_30_days"), ("2024-02-15".into(), "2024-03-15".into()));
        assert_eq!(dates("this_month"), ("2024-03-01".into(), "2024-03-15".into()));
        assert_eq!(dates("last_month"), ("2024-02-01".into(), "2024-02-29".into()));
        let default = view(&[]).expect("valid");
        assert_eq!(default.preset, Preset::Last30Days);
        let previous = default.previous_range().expect("a previous range");
        assert_eq!((previous.0.to_string(), previous.1.to_string()), ("2024-01-16".into(), "2024-02-14".into()));
    }

    #[test]
    fn the_url_keeps_the_view_and_refuses_nonsense() {
        let custom =
            view(&[("from", "2024-01-01"), ("to", "2024-01-31"), ("page_type", "product & more")]).expect("valid");
        assert_eq!(custom.preset, Preset::Custom);
        assert_eq!(
            custom.href("/sites/shop/", &[("sort", "clicks")]),
            "/sites/shop/?from=2024-01-01&page_type=product%20%26%20more&sort=clicks&to=2024-01-31"
        );
        assert!(view(&[("from", "2024-02-01"), ("to", "2024-01-01")]).is_err());
        assert!(view(&[("model", "best")]).is_err());
        assert!(view(&[("preset", "forever")]).is_err());
        assert!(view(&[("kind", "banner")]).is_err());
        let segmented = view(&[("segment", "device:mobile"), ("breakdown", "channel")]).expect("valid");
        assert_eq!(segmented.href("/p", &[]), "/p?breakdown=channel&segment=device%3Amobile");
        assert!(view(&[("segment", "colour:red")]).is_err());
        assert!(view(&[("breakdown", "colour")]).is_err());
    }
}
