//! upshot's engine: from a site's events to every figure of SPEC sections 3 to 5.
//! Synchronous and pure: no IO, no clock (the report range is passed in), no threads
//! of its own. Data flows dataset -> order book -> per-visitor pass -> totals -> report.

pub mod accumulate;
pub mod attribution;
pub mod dataset;
pub mod figures;
mod finish;
pub mod orders;
pub mod query;
pub mod stats;
mod visitor;

pub use attribution::Model;
pub use dataset::Dataset;
pub use figures::Report;
pub use query::{Query, QueryError};

use upshot_model::Settings;

use crate::accumulate::Totals;
use crate::finish::Finisher;
use crate::orders::OrderBook;
use crate::query::{Filter, Window};
use crate::visitor::{Context, Scratch};

/// Computes the whole report of `query` over `dataset` (which `finish` has sorted).
pub fn compute_report(
    dataset: &Dataset,
    settings: &Settings,
    query: &Query,
) -> Result<Report, QueryError> {
    let window = Window::resolve(query)?;
    let filter = Filter::resolve(query, dataset);
    let book = OrderBook::build(dataset);
    let context = Context {
        dataset,
        book: &book,
        settings,
        window: &window,
        filter: &filter,
        model: query.model,
    };
    let mut totals = Totals::new(dataset, window.dates.len());
    let mut scratch = Scratch::default();
    for visitor in &dataset.visitors {
        context.add_visitor(&dataset.events[visitor.clone()], &mut scratch, &mut totals);
    }
    Ok(Finisher {
        dataset,
        settings,
        query,
        window: &window,
    }
    .report(totals))
}
