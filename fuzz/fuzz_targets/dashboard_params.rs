//! Any query string a browser may send to a dashboard page: reading it into a view must
//! never panic; a view it gives renders every page (escaped: no markup from the URL)
//! and its own links read back as the same view.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use upshot_dashboard::{Page, View};
use upshot_engine::{compute_report, Dataset, Query, Report};
use upshot_model::{parse_event_line, ParseContext, Settings};

static REPORT: LazyLock<Report> = LazyLock::new(|| {
    let context = ParseContext { currency: "USD".into() };
    let events: Vec<_> = [
        r#"{"event_id":"1","type":"impression","ts":"2024-05-27T10:00:01Z","visitor_id":"v","placement":"hero","kind":"recommendation","items":["a"]}"#,
        r#"{"event_id":"2","type":"interaction","ts":"2024-05-27T10:00:02Z","visitor_id":"v","placement":"hero","kind":"recommendation","action":"click","item":"a"}"#,
        r#"{"event_id":"3","type":"order","ts":"2024-05-27T10:01:00Z","visitor_id":"v","order_id":"o","revenue":5,"items":[{"item":"a","price":5}]}"#,
    ]
    .iter()
    .map(|line| parse_event_line(line, &context).expect("valid"))
    .collect();
    let day = jiff::civil::date(2024, 5, 27);
    compute_report(&Dataset::from_events(&events), &Settings::default(), &Query::utc(day, day)).expect("a report")
});

fuzz_target!(|data: &[u8]| {
    let params: BTreeMap<String, String> = form_urlencoded::parse(data).into_owned().collect();
    let today = jiff::civil::date(2024, 5, 28);
    let Ok(view) = View::from_params("shop", vec!["shop".into()], &params, today) else { return };
    let _ = view.previous_range();
    let again = View::from_params("shop", vec!["shop".into()], &view.params(&[]), today).expect("a view's own params");
    assert_eq!((again.from, again.to, &again.model, &again.page_type), (view.from, view.to, &view.model, &view.page_type));
    for page in [Page::Overview, Page::Placements, Page::Rollups, Page::Experiments, Page::Journeys] {
        if let Some(html) = upshot_dashboard::render(&page, &view, &REPORT, None) {
            assert_eq!(html.matches("<script").count(), 1, "only the dashboard's own script tag");
        }
    }
});
