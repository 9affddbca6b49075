//! A request body or file as a batch of events: one JSON array, or NDJSON (SPEC section
//! 8), each value native or mapped (GA4, Segment). A body that cannot be read as a
//! whole is an error naming the position; one bad line is one rejected event.

use serde_json::Value;

use crate::mapping::parse_any_value;
use crate::parse::{ParseContext, Rejection, LINE_BYTES_MAX};
use crate::Event;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("malformed JSON array at line {line}, column {column}: {reason}")]
    Malformed { line: usize, column: usize, reason: String },
    #[error("{count} events in one batch; at most {max} are accepted (split the batch)")]
    TooManyEvents { count: usize, max: usize },
}

/// Every event of the body, in order, each taken or rejected with its reason.
pub fn parse_batch(
    text: &str,
    context: &ParseContext,
    received_at_ms: i64,
    events_max: usize,
) -> Result<Vec<Result<Event, Rejection>>, BatchError> {
    let values: Vec<Result<Value, Rejection>> = if text.trim_start().starts_with('[') {
        let values: Vec<Value> = serde_json::from_str(text).map_err(|error| BatchError::Malformed {
            line: error.line(),
            column: error.column(),
            reason: error.to_string(),
        })?;
        values.into_iter().map(Ok).collect()
    } else {
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                if line.len() > LINE_BYTES_MAX {
                    return Err(Rejection::new("event", format!("line longer than {LINE_BYTES_MAX} bytes")));
                }
                serde_json::from_str(line).map_err(|error| Rejection::new("event", format!("malformed JSON: {error}")))
            })
            .collect()
    };
    if values.len() > events_max {
        return Err(BatchError::TooManyEvents { count: values.len(), max: events_max });
    }
    let mut events = Vec::with_capacity(values.len());
    for value in values {
        match value {
            Ok(value) => events.extend(parse_any_value(&value, context, received_at_ms)),
            Err(rejection) => events.push(Err(rejection)),
        }
        if events.len() > events_max {
            return Err(BatchError::TooManyEvents { count: events.len(), max: events_max });
        }
    }
    Ok(events)
}
