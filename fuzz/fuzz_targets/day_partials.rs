//! Saved day partials read back from arbitrary bytes (a damaged file that passed its
//! checksum, a file from another build): decoding and reports from them must never
//! panic, only refuse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upshot_engine::days::DayPartials;
use upshot_engine::{Model, Query};
use upshot_model::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(partials) = DayPartials::from_bytes(data.to_vec()) else { return };
    let (from, to) = partials.coverage();
    let settings = Settings::default();
    for model in Model::ALL {
        for page_type in [None, Some("product".to_string())] {
            let query = Query { model, page_type: page_type.clone(), ..Query::utc(from, to) };
            let _ = partials.report(&settings, &query);
            let _ = partials.to_bytes();
        }
    }
});
