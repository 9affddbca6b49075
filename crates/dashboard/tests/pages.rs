//! Every page of the dashboard rendered from a small fixed shop, compared with the
//! snapshots in `test_data/dashboard/` (`UPSHOT_UPDATE_SNAPSHOTS=1` rewrites them after
//! a deliberate change), and everything a shop or visitor can name is escaped.

use std::collections::BTreeMap;
use std::path::PathBuf;

use upshot_dashboard::{Page, View};
use upshot_engine::{compute_report, Dataset, Query, Report};
use upshot_model::{parse_event_line, Event, ParseContext, Settings};

fn shop() -> Vec<Event> {
    let options = upshot_gen::GenOptions {
        seed: 21,
        visitors: 400,
        days: 28,
        start_ms: 1_714_521_600_000, // 2024-05-01
        lift: 0.1,
        currency: "USD".into(),
        edge_cases: false,
        end_ms: None,
    };
    upshot_gen::generate_events(options)
}

fn report(events: &[Event], from: jiff::civil::Date, to: jiff::civil::Date) -> Report {
    compute_report(&Dataset::from_events(events), &Settings::default(), &Query::utc(from, to)).expect("a valid query")
}

fn view(params: &[(&str, &str)]) -> View {
    let params: BTreeMap<String, String> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    View::from_params("shop", vec!["shop".into(), "other".into()], &params, jiff::civil::date(2024, 5, 28))
        .expect("a valid view")
}

fn snapshot(name: &str, html: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test_data/dashboard").join(format!("{name}.html"));
    if std::env::var_os("UPSHOT_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, html).expect("writing the snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("no snapshot {}; run with UPSHOT_UPDATE_SNAPSHOTS=1", path.display()));
    assert!(
        expected == html,
        "{name} differs from {} (UPSHOT_UPDATE_SNAPSHOTS=1 rewrites it after a deliberate change)",
        path.display()
    );
}

#[test]
fn every_page_matches_its_snapshot() {
    let events = shop();
    let view = view(&[("preset", "last_7_days")]);
    let current = report(&events, view.from, view.to);
    let (from, to) = view.previous_range().expect("a previous range");
    let previous = report(&events, from, to);
    let placement = current.placements.first().expect("the shop has placements").placement.clone();
    let pages = [
        ("overview", Page::Overview),
        ("placements", Page::Placements),
        ("placement", Page::Placement(placement)),
        ("rollups", Page::Rollups),
        ("recommendations", Page::Recommendations),
        ("experiments", Page::Experiments),
        ("journeys", Page::Journeys),
    ];
    for (name, page) in pages {
        let html = upshot_dashboard::render(&page, &view, &current, Some(&previous)).expect("the page exists");
        assert!(html.starts_with("<!DOCTYPE html>"), "{name}");
        assert!(!html.contains("http://") && !html.contains("https://"), "{name} loads nothing from elsewhere");
        snapshot(name, &html);
    }
    let sorted = view_sorted();
    let html = upshot_dashboard::render(&Page::Placements, &sorted, &current, None).expect("the page exists");
    let clicks: Vec<u64> = current.placements.iter().map(|row| row.figures.clicks).collect();
    let mut descending = clicks.clone();
    descending.sort_unstable_by(|a, b| b.cmp(a));
    assert!(descending.windows(2).any(|pair| pair[0] != pair[1]), "the shop's placements differ in clicks");
    assert!(html.contains("aria-sort=\"descending\""), "the sorted column says so");
    let csv = upshot_dashboard::csv(&Page::Placements, &sorted, &current, "placements").expect("the table exists");
    assert_eq!(csv.lines().count(), current.placements.len() + 1);
    assert!(csv.starts_with("placement,kind,impressions,clicks,ctr,orders,value,"));
    // The page's rows come in the order asked for: clicks, most first (each row found
    // by its placement's link text).
    let mut shown: Vec<(usize, u64)> = current
        .placements
        .iter()
        .map(|row| {
            let link_text = format!(">{}</a>", row.placement);
            (html.find(&link_text).expect("each placement has a row"), row.figures.clicks)
        })
        .collect();
    shown.sort_unstable();
    let shown_clicks: Vec<u64> = shown.into_iter().map(|(_, clicks)| clicks).collect();
    assert_eq!(shown_clicks, descending, "rows in the order of the sorted column");
}

#[test]
fn every_experiment_past_the_eighth_has_its_own_csv() {
    let context = ParseContext { currency: "USD".into() };
    let events: Vec<Event> = (1..=10)
        .map(|index| {
            let line = format!(
                r#"{{"event_id":"a{index}","type":"assignment","ts":"2024-05-27T10:00:00Z","visitor_id":"v{index}","experiment":"exp-{index:02}","variant":"variant-of-{index}"}}"#
            );
            parse_event_line(&line, &context).expect("valid")
        })
        .collect();
    let view = view(&[("preset", "last_7_days")]);
    let current = report(&events, view.from, view.to);
    assert_eq!(current.experiments.len(), 10);
    for (index, experiment) in current.experiments.iter().enumerate() {
        let table = format!("variants-{}", index + 1);
        let csv = upshot_dashboard::csv(&Page::Experiments, &view, &current, &table).expect("each has its table");
        let variant = &experiment.variants[0].variant;
        assert!(csv.contains(variant.as_str()), "{table} is {}'s: {csv}", experiment.experiment);
    }
}

fn view_sorted() -> View {
    view(&[("preset", "last_7_days"), ("sort", "clicks"), ("dir", "desc")])
}

#[test]
fn names_from_the_shop_are_shown_as_text_never_as_markup() {
    let context = ParseContext { currency: "USD".into() };
    let lines = [
        r#"{"event_id":"1","type":"page_view","ts":"2024-05-27T10:00:00Z","visitor_id":"v"}"#,
        r#"{"event_id":"2","type":"impression","ts":"2024-05-27T10:00:01Z","visitor_id":"v","placement":"<script>alert(1)</script>","kind":"widget","campaign":"\"quoted\" & 'single'"}"#,
        r#"{"event_id":"3","type":"interaction","ts":"2024-05-27T10:00:02Z","visitor_id":"v","placement":"<script>alert(1)</script>","kind":"widget","action":"click","label":"say \"hi\" <b>"}"#,
        r#"{"event_id":"4","type":"assignment","ts":"2024-05-27T10:00:03Z","visitor_id":"v","experiment":"<img src=x onerror=alert(2)>","variant":"control"}"#,
        r#"{"event_id":"5","type":"order","ts":"2024-05-27T10:01:00Z","visitor_id":"v","order_id":"</td><script>","revenue":5}"#,
    ];
    let events: Vec<Event> = lines.iter().map(|line| parse_event_line(line, &context).expect("valid")).collect();
    let view = view(&[("preset", "last_7_days"), ("page_type", "\"><script>alert(3)</script>")]);
    let current = report(&events, view.from, view.to);
    let pages = [
        Page::Overview,
        Page::Placements,
        Page::Placement("<script>alert(1)</script>".into()),
        Page::Rollups,
        Page::Experiments,
    ];
    for page in pages {
        let html = upshot_dashboard::render(&page, &view, &current, None).expect("the page exists");
        for raw in ["<script>alert", "<img src=x", "<b>", "\"><script>"] {
            assert!(!html.contains(raw), "{page:?} shows {raw:?} as markup");
        }
        assert_eq!(html.matches("<script").count(), 1, "{page:?}: only the dashboard's own script tag");
    }
    let placements = upshot_dashboard::render(&Page::Placements, &view, &current, None).expect("exists");
    assert!(placements.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let rollups = upshot_dashboard::render(&Page::Rollups, &view, &current, None).expect("exists");
    assert!(rollups.contains("&quot;quoted&quot; &amp; 'single'"), "quotes and ampersands are escaped");
}

/// SPEC section 9 on the pages: the breakdown with its switch and the segment control,
/// goals, rpm and add-to-cart rate, clicks by position, and the experiments' rigour.
#[test]
fn breakdowns_goals_positions_and_verdicts_show_where_a_marketer_looks() {
    let events = shop();
    let by_channel = view(&[("preset", "last_30_days"), ("breakdown", "channel"), ("segment", "device:mobile")]);
    let current = report(&events, by_channel.from, by_channel.to);
    let overview = upshot_dashboard::render(&Page::Overview, &by_channel, &current, None).expect("the overview");
    assert!(overview.contains("By channel") && overview.contains("Break down by"), "the breakdown and its switch");
    assert!(overview.contains("value=\"device:mobile\" selected"), "the segment control keeps the view's segment");
    assert!(overview.contains("only sessions with <strong>device:mobile</strong>"));
    let goal = &current.goals.first().expect("the shop's visitors reach goals").goal;
    assert!(overview.contains("<h2>Goals</h2>") && overview.contains(goal.as_str()), "the goals table");
    let csv = upshot_dashboard::csv(&Page::Overview, &by_channel, &current, "breakdown").expect("its CSV");
    assert!(csv.starts_with("value,sessions,") && csv.lines().count() == current.breakdowns.channel.len() + 1, "{csv}");

    let placements = upshot_dashboard::render(&Page::Placements, &by_channel, &current, None).expect("placements");
    assert!(placements.contains("RPM") && placements.contains("Add-to-cart rate"));
    let recommendation = current.placements.iter().find(|row| row.kind == "recommendation").expect("a recommendation");
    let page = Page::Placement(recommendation.placement.clone());
    let html = upshot_dashboard::render(&page, &by_channel, &current, None).expect("its page");
    assert!(html.contains("Click-through by position in the list") && html.contains("<svg"), "the positions chart");
    let csv = upshot_dashboard::csv(&page, &by_channel, &current, "positions").expect("the positions CSV");
    assert_eq!(csv.lines().count(), recommendation.positions.as_ref().expect("positions").len() + 1);

    let experiments = upshot_dashboard::render(&Page::Experiments, &by_channel, &current, None).expect("experiments");
    assert!(
        experiments.contains("p adjusted (CR)") && experiments.contains("always-valid"),
        "adjusted p, both intervals"
    );
    assert!(
        ["wins (", "loses (", "not decided yet (", "too few visitors"].iter().any(|word| experiments.contains(word)),
        "a sentence per variant"
    );
}
