//! Saved day partials read back from arbitrary bytes (a damaged file that passed its
//! checksum, a file from another build): decoding and reports from them must never
//! panic, only refuse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upshot_engine::days::DayPartials;
use upshot_engine::{Model, Query};
use upshot_model::Settings;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let Ok(partials) = DayPartials::from_bytes(bytes.to_vec()) else { return };
    let (from, to) = partials.coverage();
    // One lens a run (the first byte picks it), over the whole coverage and one day.
    let model = Model::ALL[usize::from(selector) % Model::ALL.len()];
    let page_type = (selector >= 128).then(|| "product".to_string());
    let settings = Settings::default();
    for (first, last) in [(from, to), (to, to)] {
        let query = Query { model, page_type: page_type.clone(), ..Query::utc(first, last) };
        let _ = partials.report(&settings, &query);
    }
    if selector % 16 == 0 {
        let _ = partials.to_bytes();
    }
});
