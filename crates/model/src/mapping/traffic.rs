//! The traffic fields of SPEC section 9.1 (`device`, `referrer`, `utm_*`) as GA4 and
//! Segment carry them; the table is in docs/ingest.md.

use serde_json::{Map, Value};

use crate::traffic::TRAFFIC_CHARS_MAX;

/// Sets a traffic field, a text cut to the 512 code points the field holds (as the
/// tracker cuts it): a long referrer (an ad click's) must not cost the page view.
fn put(native: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    let cut = value.map(|value| match value.as_str() {
        Some(text) if text.chars().count() > TRAFFIC_CHARS_MAX => {
            Value::from(text.chars().take(TRAFFIC_CHARS_MAX).collect::<String>())
        }
        _ => value.clone(),
    });
    super::put(native, key, cut.as_ref());
}

/// The `utm_*` parameters of a URL's query (percent-decoded); `None` for a text that
/// is not a URL with a query.
fn utm_of(url: Option<&Value>) -> Map<String, Value> {
    let mut found = Map::new();
    let Some(query) = url.and_then(Value::as_str).and_then(|url| url.split_once('?')).map(|(_, query)| query) else {
        return found;
    };
    let query = query.split('#').next().unwrap_or_default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if matches!(name.as_ref(), "utm_source" | "utm_medium" | "utm_campaign") && !found.contains_key(name.as_ref()) {
            found.insert(name.into_owned(), Value::from(value.into_owned()));
        }
    }
    found
}

/// GA4: `page_referrer`; `source` / `campaign_source`, `medium` / `campaign_medium`,
/// `campaign` / `campaign_name`, else the `utm_*` of `page_location`; the body's
/// `device.category` (desktop, mobile, tablet; any other category is `other`).
pub(super) fn ga4(body: &Map<String, Value>, params: &Map<String, Value>, native: &mut Map<String, Value>) {
    put(native, "referrer", params.get("page_referrer"));
    let from_url = utm_of(params.get("page_location"));
    for (field, names) in [
        ("utm_source", ["source", "campaign_source"]),
        ("utm_medium", ["medium", "campaign_medium"]),
        ("utm_campaign", ["campaign", "campaign_name"]),
    ] {
        let explicit = names.iter().find_map(|name| params.get(*name).filter(|value| !value.is_null()));
        put(native, field, explicit.or_else(|| from_url.get(field)));
    }
    if let Some(category) = body.get("device").and_then(|device| device.get("category")).and_then(Value::as_str) {
        let device = match category.to_ascii_lowercase().as_str() {
            "desktop" => "desktop",
            "mobile" | "smartphone" => "mobile",
            "tablet" => "tablet",
            _ => "other",
        };
        native.insert("device".into(), Value::from(device));
    }
}

/// Segment: `context.page.referrer` (a page call's `properties.referrer` first) and
/// `context.campaign` (`source`, `medium`, `name`), which analytics.js fills from the
/// landing URL's `utm_*`.
pub(super) fn segment(call: &Map<String, Value>, properties: &Map<String, Value>, native: &mut Map<String, Value>) {
    let context = call.get("context");
    let referrer = properties.get("referrer").filter(|value| !value.is_null());
    put(native, "referrer", referrer.or_else(|| context.and_then(|context| context.pointer("/page/referrer"))));
    let campaign = context.and_then(|context| context.get("campaign"));
    for (field, name) in [("utm_source", "source"), ("utm_medium", "medium"), ("utm_campaign", "name")] {
        put(native, field, campaign.and_then(|campaign| campaign.get(name)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn utm_parameters_are_read_from_a_url_percent_decoded() {
        let url = json!("https://shop.example/p?utm_source=news%20letter&x=1&utm_medium=email&utm_medium=second#top");
        let found = utm_of(Some(&url));
        assert_eq!(found.get("utm_source"), Some(&json!("news letter")));
        assert_eq!(found.get("utm_medium"), Some(&json!("email")), "the first of a repeated parameter");
        assert!(utm_of(Some(&json!("https://shop.example/p"))).is_empty());
        assert!(utm_of(None).is_empty());
    }

    #[test]
    fn a_long_referrer_is_cut_not_refused() {
        let mut native = Map::new();
        let long = format!("https://www.google.com/aclk?gclid={}", "é".repeat(600));
        segment(&Map::new(), &json!({"referrer": long}).as_object().cloned().unwrap_or_default(), &mut native);
        assert_eq!(native["referrer"].as_str().map(|text| text.chars().count()), Some(512));
    }
}
