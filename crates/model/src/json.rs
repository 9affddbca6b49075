//! Untrusted JSON text into a `serde_json::Value`, strictly: an object that names a
//! field twice is refused (serde_json would keep the last silently, so two readers of
//! the same bytes could disagree about an event), and a leading UTF-8 byte-order mark is
//! skipped.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The UTF-8 byte-order mark some Windows tools put before a file's first line.
pub const BYTE_ORDER_MARK: char = '\u{feff}';

/// The text without a leading byte-order mark.
pub fn without_byte_order_mark(text: &str) -> &str {
    text.strip_prefix(BYTE_ORDER_MARK).unwrap_or(text)
}

/// Parses one JSON value (only whitespace may follow it), refusing duplicate fields.
pub fn parse_strict(text: &str) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = StrictValue.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// A `Value` seed whose objects refuse a field named twice.
#[derive(Clone, Copy)]
pub struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Value, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = sequence.next_element_seed(StrictValue)? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "the field {key:?} appears twice in one object (send it once)"
                )));
            }
            let value = map.next_value_seed(StrictValue)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_in_one_json_object_are_refused_at_any_depth() {
        let error = parse_strict(r#"{"revenue": 1, "revenue": 1000}"#).expect_err("refused").to_string();
        assert!(error.contains("\"revenue\" appears twice"), "{error}");
        assert!(parse_strict(r#"{"items": [{"item": "a", "item": "b"}]}"#).is_err());
        let value = parse_strict(r#"{"a": {"b": 1}, "b": [1, 2.5, "x", null, true]}"#).expect("distinct keys");
        assert_eq!(value, serde_json::json!({"a": {"b": 1}, "b": [1, 2.5, "x", null, true]}));
    }

    #[test]
    fn only_whitespace_may_follow_the_value() {
        assert!(parse_strict("{} \n").is_ok());
        assert!(parse_strict("{} {}").is_err());
    }
}
