//! A request body or file as a batch of events (SPEC section 8): one JSON array, one
//! JSON object (even spread over several lines), or NDJSON; each value native or mapped
//! (GA4, Segment). A body that cannot be read as a whole is an error naming the
//! position; one bad line or element is one rejected event.
//!
//! Untrusted bodies are read with bounded memory: events are counted while they are
//! read (a body of millions of `{}` stops at the limit, not after building them all),
//! each element is checked for size before it becomes a JSON tree, and every byte the
//! parsed events hold is asked of the caller's `MemoryBudget` first.

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::json::{parse_strict, without_byte_order_mark};
use crate::mapping::parse_any_value_as;
use crate::parse::{ParseContext, Rejection, LINE_BYTES_MAX};
use crate::Event;

/// How much larger than its text a JSON tree may be while it is being read (a tree of
/// small numbers costs ~16 bytes of `Value` per byte of text, plus vector growth).
pub const JSON_TREE_BYTES_PER_TEXT_BYTE: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("malformed JSON array at line {line}, column {column}: {reason}")]
    Malformed { line: usize, column: usize, reason: String },
    #[error("more than {max} events in one batch (split the batch)")]
    TooManyEvents { max: usize },
    #[error("the batch needs more memory than the server has free for request bodies now; retry shortly, or send smaller batches")]
    OverBudget,
}

/// Memory that parsed events may take: asked before each event is built, given back
/// when it is dropped. The server bounds what all requests hold together with it.
pub trait MemoryBudget {
    /// True when `bytes` more may be held; false refuses the batch.
    fn reserve(&mut self, bytes: usize) -> bool;
    /// `bytes` reserved earlier are no longer held.
    fn release(&mut self, bytes: usize);
}

/// No bound: for the operator's own files (`import`) and tests.
pub struct Unbounded;

impl MemoryBudget for Unbounded {
    fn reserve(&mut self, _bytes: usize) -> bool {
        true
    }

    fn release(&mut self, _bytes: usize) {}
}

/// Every event of the body, in order, each taken or rejected with its reason.
pub fn parse_batch(
    text: &str,
    context: &ParseContext,
    received_at_ms: i64,
    events_max: usize,
    budget: &mut dyn MemoryBudget,
) -> Result<Vec<Result<Event, Rejection>>, BatchError> {
    parse_batch_with(text, context, received_at_ms, events_max, budget, None)
}

/// `parse_batch`, reading an object without `type` as a Segment call of
/// `segment_call` (`track` or `page`: what Segment's `/v1/track` and `/v1/page` imply).
pub fn parse_batch_with(
    text: &str,
    context: &ParseContext,
    received_at_ms: i64,
    events_max: usize,
    budget: &mut dyn MemoryBudget,
    segment_call: Option<&str>,
) -> Result<Vec<Result<Event, Rejection>>, BatchError> {
    let text = without_byte_order_mark(text);
    let mut batch =
        Batch { context, received_at_ms, events_max, budget, segment_call, events: Vec::new(), stopped: None };
    let start = text.trim_start();
    if start.starts_with('[') {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let read = deserializer.deserialize_seq(ArrayVisitor { batch: &mut batch }).and_then(|()| deserializer.end());
        match read {
            Ok(()) => {}
            Err(error) => return Err(batch.stopped.take().unwrap_or_else(|| malformed(&error))),
        }
    } else if start.starts_with('{') && is_one_json_value(text) {
        // Exactly one JSON object, possibly pretty-printed over many lines.
        batch.element(text)?;
    } else {
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            batch.element(line)?;
        }
    }
    Ok(batch.events)
}

/// True when the whole text is one JSON value (only whitespace after it): read as
/// `RawValue`, without building a tree.
fn is_one_json_value(text: &str) -> bool {
    serde_json::from_str::<&RawValue>(text).is_ok()
}

fn malformed(error: &serde_json::Error) -> BatchError {
    BatchError::Malformed { line: error.line(), column: error.column(), reason: error.to_string() }
}

struct Batch<'a> {
    context: &'a ParseContext,
    received_at_ms: i64,
    events_max: usize,
    budget: &'a mut dyn MemoryBudget,
    segment_call: Option<&'a str>,
    events: Vec<Result<Event, Rejection>>,
    /// Why reading an array stopped, when it was the batch's own limit.
    stopped: Option<BatchError>,
}

impl Batch<'_> {
    /// One element of an array, one NDJSON line, or the one object: counted, checked
    /// for size, read strictly, mapped, and its events' memory reserved.
    fn element(&mut self, text: &str) -> Result<(), BatchError> {
        if self.events.len() >= self.events_max {
            return Err(BatchError::TooManyEvents { max: self.events_max });
        }
        if text.len() > LINE_BYTES_MAX {
            let reason = format!("longer than {LINE_BYTES_MAX} bytes");
            return self.push(Err(Rejection::new("event", reason)));
        }
        let tree_bytes = text.len().saturating_mul(JSON_TREE_BYTES_PER_TEXT_BYTE);
        if !self.budget.reserve(tree_bytes) {
            return Err(BatchError::OverBudget);
        }
        let parsed = match parse_strict(text) {
            Ok(value) => parse_any_value_as(&value, self.context, self.received_at_ms, self.segment_call),
            Err(error) => vec![Err(Rejection::new("event", format!("malformed JSON: {error}")))],
        };
        self.budget.release(tree_bytes);
        for event in parsed {
            self.push(event)?;
        }
        Ok(())
    }

    fn push(&mut self, event: Result<Event, Rejection>) -> Result<(), BatchError> {
        if self.events.len() >= self.events_max {
            return Err(BatchError::TooManyEvents { max: self.events_max });
        }
        let bytes = match &event {
            Ok(event) => event.heap_bytes(),
            Err(rejection) => std::mem::size_of::<Event>() + rejection.field.len() + rejection.reason.len(),
        };
        if !self.budget.reserve(bytes) {
            return Err(BatchError::OverBudget);
        }
        self.events.push(event);
        Ok(())
    }
}

/// Reads a JSON array element by element, each as raw text: counted and sized before
/// it is parsed, so no tree of the whole body is ever built.
struct ArrayVisitor<'b, 'a> {
    batch: &'b mut Batch<'a>,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        while let Some(element) = sequence.next_element::<&RawValue>()? {
            if let Err(error) = self.batch.element(element.get()) {
                let message = error.to_string();
                self.batch.stopped = Some(error);
                return Err(serde::de::Error::custom(message));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, events_max: usize) -> Result<Vec<Result<Event, Rejection>>, BatchError> {
        parse_batch(text, &ParseContext { currency: "USD".into() }, 1_700_000_000_000, events_max, &mut Unbounded)
    }

    fn page_view(id: &str) -> String {
        format!(r#"{{"event_id":"{id}","type":"page_view","ts":1000,"visitor_id":"v"}}"#)
    }

    #[test]
    fn a_pretty_printed_ga4_body_is_one_object_not_ndjson() {
        let body = r#"{
  "client_id": "123456.7654321",
  "events": [{
    "name": "view_item",
    "params": {"items": [{"item_id": "SKU_12345"}]}
  }]
}"#;
        let events = parse(body, 10).expect("one object");
        assert_eq!(events.len(), 1);
        assert!(events[0].is_ok(), "{:?}", events[0]);
        // A native event spread over lines is that event too.
        let native = "{\n \"event_id\": \"a\",\n \"type\": \"page_view\",\n \"ts\": 1000,\n \"visitor_id\": \"v\"\n}\n";
        assert_eq!(parse(native, 10).expect("one object").len(), 1);
        // Two objects on two lines stay NDJSON.
        let two = format!("{}\n{}\n", page_view("a"), page_view("b"));
        assert_eq!(parse(&two, 10).expect("ndjson").iter().filter(|event| event.is_ok()).count(), 2);
    }

    #[test]
    fn a_utf8_byte_order_mark_before_the_first_event_is_skipped() {
        for body in [format!("\u{feff}{}\n{}", page_view("a"), page_view("b")), format!("\u{feff}[{}]", page_view("a"))]
        {
            let events = parse(&body, 10).expect("a batch");
            assert!(events.iter().all(Result::is_ok), "{events:?}");
        }
    }

    #[test]
    fn events_are_counted_while_the_body_is_read() {
        let array = format!("[{}]", vec!["{}"; 100_000].join(","));
        assert_eq!(parse(&array, 10), Err(BatchError::TooManyEvents { max: 10 }));
        let lines = vec!["{}"; 100_000].join("\n");
        assert_eq!(parse(&lines, 10), Err(BatchError::TooManyEvents { max: 10 }));
        assert_eq!(parse(&format!("[{}]", ["{}"; 10].join(",")), 10).expect("ten").len(), 10);
    }

    #[test]
    fn duplicate_keys_in_one_json_object_reject_the_event() {
        let body = r#"[{"event_id":"a","event_id":"b","type":"page_view","ts":1000,"visitor_id":"v"}]"#;
        let events = parse(body, 10).expect("a batch");
        let rejection = events[0].as_ref().expect_err("rejected");
        assert!(rejection.reason.contains("\"event_id\" appears twice"), "{rejection:?}");
    }

    #[test]
    fn a_spent_budget_refuses_the_batch() {
        struct Fixed(usize);
        impl MemoryBudget for Fixed {
            fn reserve(&mut self, bytes: usize) -> bool {
                self.0 = match self.0.checked_sub(bytes) {
                    Some(left) => left,
                    None => return false,
                };
                true
            }
            fn release(&mut self, bytes: usize) {
                self.0 += bytes;
            }
        }
        let body = (0..100).map(|index| page_view(&index.to_string())).collect::<Vec<_>>().join("\n");
        let context = ParseContext { currency: "USD".into() };
        let refused = parse_batch(&body, &context, 0, 1000, &mut Fixed(20_000));
        assert_eq!(refused, Err(BatchError::OverBudget));
        assert_eq!(parse_batch(&body, &context, 0, 1000, &mut Fixed(1 << 20)).expect("fits").len(), 100);
    }
}
