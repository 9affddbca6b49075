//! Saved day partials read back from arbitrary bytes (a damaged file that passed its
//! checksum, a file from another build, a section kept in the cluster): decoding and
//! reports from them must never panic, only refuse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upshot_engine::days::DayPartials;
use upshot_engine::{Model, Query};
use upshot_model::Settings;

/// Every lens's bytes are the same bytes.
struct SameBytes(Vec<u8>);

impl upshot_engine::days::SavedLenses for SameBytes {
    fn lens_bytes(&self, _index: usize, _length: usize) -> upshot_engine::days::LensBytes<'_> {
        upshot_engine::days::LensBytes::Found(std::borrow::Cow::Borrowed(&self.0))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    // Read whole (the data dir's file), or from a head with every other lens's bytes
    // fetched later (the cluster's sections; here, the same bytes for every lens).
    let read = if selector % 2 == 0 {
        DayPartials::from_bytes(bytes.to_vec())
    } else {
        DayPartials::from_head(bytes, Box::new(SameBytes(bytes.to_vec())))
    };
    let Ok(partials) = read else { return };
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
