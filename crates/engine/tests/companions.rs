//! A plan with companion queries (other ranges, models, filters) computes in one pass,
//! over any split of visitors between workers, exactly the reports each query gives
//! on its own.

use upshot_engine::{add_to_order_book, compute_report, Dataset, Model, OrderBook, Query, ReportPlan};
use upshot_gen::{generate_events, GenOptions};
use upshot_model::Settings;

#[test]
fn companions_in_one_pass_equal_their_reports_alone() {
    let events = generate_events(GenOptions {
        seed: 31,
        visitors: 600,
        days: 30,
        start_ms: 1_714_521_600_000,
        lift: 0.1,
        currency: "USD".into(),
        edge_cases: true,
        end_ms: None,
    });
    let dataset = Dataset::from_events(&events);
    let settings = Settings::default();
    let main = Query::utc(jiff::civil::date(2024, 5, 16), jiff::civil::date(2024, 5, 29));
    let companions = [
        Query::utc(jiff::civil::date(2024, 5, 2), jiff::civil::date(2024, 5, 15)),
        Query {
            model: Model::parse("linear").expect("a model"),
            page_type: Some("product".into()),
            ..Query::utc(jiff::civil::date(2024, 5, 10), jiff::civil::date(2024, 5, 20))
        },
        Query {
            model: Model::parse("position").expect("a model"),
            ..Query::utc(jiff::civil::date(2024, 5, 1), jiff::civil::date(2024, 5, 30))
        },
    ];
    let plan = ReportPlan::with_companions(&settings, &main, &companions).expect("valid queries");
    let mut book = OrderBook::default();
    events.iter().for_each(|event| add_to_order_book(&mut book, event));
    // Visitors dealt to three workers in turn, as threads would.
    let mut workers = vec![plan.worker(), plan.worker(), plan.worker()];
    for (index, visitor) in dataset.visitors().enumerate() {
        let worker = &mut workers[index % 3];
        worker.begin_visitor(visitor[0].visitor_id.as_deref().unwrap_or_default());
        visitor.iter().for_each(|event| worker.push_event(event));
        worker.end_visitor(&plan, &book);
    }
    let together = plan.finish_all(workers);
    assert_eq!(together.len(), 4);
    let alone: Vec<_> = std::iter::once(&main)
        .chain(&companions)
        .map(|query| compute_report(&dataset, &settings, query).expect("a report"))
        .collect();
    for (index, (together, alone)) in together.iter().zip(&alone).enumerate() {
        assert_eq!(serde_json::to_value(together).ok(), serde_json::to_value(alone).ok(), "query {index}");
    }
    assert!(plan.earliest_start() < plan.latest_end());
}
