//! Timestamps: parsing `ts` (RFC 3339 with offset, or integer epoch milliseconds),
//! local report ranges in a site's IANA time zone, and duration settings.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::Value;

pub const MILLIS_PER_MINUTE: i64 = 60_000;
pub const MILLIS_PER_HOUR: i64 = 3_600_000;
pub const MILLIS_PER_DAY: i64 = 86_400_000;

/// Parses a `ts`-like field; sub-millisecond digits are truncated.
pub fn parse_timestamp(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(number) => {
            let millis = match (number.as_i64(), number.as_f64()) {
                (Some(millis), _) => millis,
                (None, Some(float)) if float.fract() == 0.0 && float.abs() < 9.0e15 => float as i64,
                _ => return Err("expected integer milliseconds since the Unix epoch".to_string()),
            };
            check_millis(millis)
        }
        Value::String(text) => text
            .parse::<Timestamp>()
            .map(|timestamp| timestamp.as_millisecond())
            .map_err(|_| "expected an RFC 3339 timestamp with offset, like 2024-05-01T12:00:00Z".to_string()),
        _ => Err("expected an RFC 3339 string or integer milliseconds".to_string()),
    }
}

/// The instant, when it lies in the supported range (years -9999 to 9999): what every
/// stored `ts` must satisfy, also after the collector corrected it for clock skew.
pub fn check_millis(millis: i64) -> Result<i64, String> {
    Timestamp::from_millisecond(millis)
        .map(|_| millis)
        .map_err(|_| "milliseconds out of the supported range".to_string())
}

/// RFC 3339 UTC with milliseconds, as reports show times.
pub fn format_utc_millis(millis: i64) -> String {
    match Timestamp::from_millisecond(millis) {
        Ok(timestamp) => timestamp.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => millis.to_string(),
    }
}

/// The first instant of a local date in a time zone, in epoch milliseconds.
pub fn local_midnight_millis(date: Date, zone: &TimeZone) -> Result<i64, jiff::Error> {
    Ok(date.to_zoned(zone.clone())?.timestamp().as_millisecond())
}

/// The local date of an instant.
pub fn local_date(millis: i64, zone: &TimeZone) -> Option<Date> {
    Timestamp::from_millisecond(millis).ok().map(|timestamp| timestamp.to_zoned(zone.clone()).date())
}

/// Parses a duration setting like `30m`, `2h` or `7d` into milliseconds.
pub fn parse_duration_setting(text: &str) -> Result<i64, String> {
    let error = || format!("{text:?} is not a duration like 30m, 2h or 7d");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(error)?;
    let (digits, unit) = text.split_at(split);
    let count: i64 = digits.parse().map_err(|_| error())?;
    let unit_millis = match unit {
        "m" => MILLIS_PER_MINUTE,
        "h" => MILLIS_PER_HOUR,
        "d" => MILLIS_PER_DAY,
        _ => return Err(error()),
    };
    if count == 0 || count > 3650 * MILLIS_PER_DAY / unit_millis {
        return Err(format!("{text:?} must be between 1{unit} and 10 years"));
    }
    Ok(count * unit_millis)
}

/// The shortest `30m` / `2h` / `7d` text of a duration setting.
pub fn format_duration_setting(millis: i64) -> String {
    if millis % MILLIS_PER_DAY == 0 {
        format!("{}d", millis / MILLIS_PER_DAY)
    } else if millis % MILLIS_PER_HOUR == 0 {
        format!("{}h", millis / MILLIS_PER_HOUR)
    } else {
        format!("{}m", millis / MILLIS_PER_MINUTE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_and_millis_truncating_sub_millis() {
        let parse = |v: Value| parse_timestamp(&v);
        assert_eq!(parse(Value::from("1970-01-01T00:00:01.2349Z")), Ok(1234));
        assert_eq!(parse(Value::from("1970-01-01T01:00:00+01:00")), Ok(0));
        assert_eq!(parse(Value::from(1_700_000_000_000_i64)), Ok(1_700_000_000_000));
        assert!(parse(Value::from("2024-01-01T00:00:00")).is_err(), "offset is required");
        assert!(parse(Value::from(1.5)).is_err());
        assert!(parse(Value::from(true)).is_err());
    }

    #[test]
    fn duration_settings_round_trip() {
        assert_eq!(parse_duration_setting("30m"), Ok(30 * MILLIS_PER_MINUTE));
        assert_eq!(parse_duration_setting("7d"), Ok(7 * MILLIS_PER_DAY));
        assert!(parse_duration_setting("7").is_err());
        assert!(parse_duration_setting("0d").is_err());
        assert_eq!(format_duration_setting(90 * MILLIS_PER_MINUTE), "90m");
        assert_eq!(format_duration_setting(48 * MILLIS_PER_HOUR), "2d");
    }
}
