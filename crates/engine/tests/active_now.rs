//! Active counts of a range that ends in the future: the 24 hours before the present
//! the caller passes in (the engine reads no clock), not before the range's end.

use upshot_engine::{compute_report, Dataset, Query};
use upshot_model::{parse_event_line, Event, ParseContext, Settings};

fn event(line: &str) -> Event {
    parse_event_line(line, &ParseContext { currency: "USD".into() }).expect("valid")
}

#[test]
fn a_running_experiment_is_active_in_a_range_that_ends_after_now() {
    // Now is 2024-05-10 12:00 UTC; the range is the whole of 2024-05-10 (ends tonight).
    let now_ms = 1_715_342_400_000;
    let events = [
        event(
            r#"{"event_id":"a","type":"assignment","ts":"2024-05-10T09:00:00Z","visitor_id":"v","experiment":"x","variant":"control"}"#,
        ),
        event(
            r#"{"event_id":"i","type":"impression","ts":"2024-05-10T11:00:00Z","visitor_id":"v","placement":"hero","kind":"block"}"#,
        ),
    ];
    let day = jiff::civil::date(2024, 5, 10);
    let literal = Query::utc(day, day);
    let report = compute_report(&Dataset::from_events(&events), &Settings::default(), &literal).expect("a report");
    assert_eq!((report.overview.active_experiments, report.overview.active_placements), (1, 1));
    // Without now, SPEC section 8 reads the 24 hours before the range's end: both in.
    // With now, the same: both events lie in the 24 hours before noon.
    let with_now = Query { now_ms: Some(now_ms), ..literal.clone() };
    let report = compute_report(&Dataset::from_events(&events), &Settings::default(), &with_now).expect("a report");
    assert_eq!((report.overview.active_experiments, report.overview.active_placements), (1, 1));
    // A range ending three days from now: its last 24 hours hold nothing yet.
    let ahead = Query::utc(day, jiff::civil::date(2024, 5, 13));
    let report = compute_report(&Dataset::from_events(&events), &Settings::default(), &ahead).expect("a report");
    assert_eq!(report.overview.active_experiments, 0, "SPEC-literal: the range's last day is empty");
    let ahead_with_now = Query { now_ms: Some(now_ms), ..ahead };
    let report =
        compute_report(&Dataset::from_events(&events), &Settings::default(), &ahead_with_now).expect("a report");
    assert_eq!(report.overview.active_experiments, 1, "the experiment running now is active");
}
