//! Figures as a person reads them: money with thousands separators and two decimals,
//! ratios as percentages, changes with an arrow and the colour that means good or bad.

use upshot_engine::figures::{Amount, Ratio, Shares};

/// Money rounded half-even to cents (as in the JSON), `1,234.56`.
pub fn money(amount: Amount) -> String {
    let cents = amount.0.round_to_cents();
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", thousands(cents / 100), cents % 100)
}

pub fn count(value: u64) -> String {
    thousands(u128::from(value))
}

fn thousands(value: u128) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A ratio as a percentage with one decimal (`–` when it has no denominator).
pub fn percent(value: Ratio) -> String {
    match value {
        Some(value) => format!("{:.1}%", value * 100.0),
        None => "–".to_string(),
    }
}

/// Money per something (AOV, revenue per visitor), from an unrounded ratio of units.
pub fn money_ratio(value: Ratio) -> String {
    match value {
        Some(value) => {
            let cents = (value * 100.0).round() as i128;
            let sign = if cents < 0 { "-" } else { "" };
            let cents = cents.unsigned_abs();
            format!("{sign}{}.{:02}", thousands(cents / 100), cents % 100)
        }
        None => "–".to_string(),
    }
}

/// Order shares: whole under last/first interaction, fractional under the others.
pub fn shares(value: Shares) -> String {
    let shares = value.to_f64();
    if shares.fract() == 0.0 {
        count(shares as u64)
    } else {
        format!("{shares:.2}")
    }
}

pub fn p_value(value: Option<f64>) -> String {
    match value {
        Some(value) if value < 0.001 => "< 0.001".to_string(),
        Some(value) => format!("{value:.3}"),
        None => "–".to_string(),
    }
}

/// Whether a rise of the figure is good news (a rising bounce rate is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// A change against the previous period: relative for counts and money, in
/// percentage points for ratios. `None` when there is nothing to compare with.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub text: String,
    /// `up`, `down` or `flat`.
    pub direction: &'static str,
    /// `good`, `bad` or `neutral`.
    pub tone: &'static str,
}

fn change_of(delta: f64, text: String, better: Better) -> Change {
    let direction = if delta > 0.0 {
        "up"
    } else if delta < 0.0 {
        "down"
    } else {
        "flat"
    };
    let tone = match (direction, better) {
        ("flat", _) => "neutral",
        ("up", Better::Higher) | ("down", Better::Lower) => "good",
        _ => "bad",
    };
    Change { text, direction, tone }
}

/// Relative change of a count or an amount.
pub fn relative_change(current: f64, previous: f64, better: Better) -> Option<Change> {
    if previous == 0.0 {
        return None;
    }
    let delta = current / previous - 1.0;
    Some(change_of(delta, format!("{:+.1}%", delta * 100.0), better))
}

/// Change of a ratio, in percentage points.
pub fn point_change(current: Ratio, previous: Ratio, better: Better) -> Option<Change> {
    let (current, previous) = (current?, previous?);
    let delta = (current - previous) * 100.0;
    Some(change_of(delta, format!("{delta:+.1} pts"), better))
}

pub fn amount_f64(amount: Amount) -> f64 {
    amount.0.round_to_cents() as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use upshot_model::Exact;

    #[test]
    fn money_counts_and_ratios_read_like_a_report() {
        let amount = |cents: i128| Amount(Exact(cents * 10_000_000_000_000_000));
        assert_eq!(money(amount(123_456_789)), "1,234,567.89");
        assert_eq!(money(amount(-5)), "-0.05");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(999), "999");
        assert_eq!(percent(Some(0.1234)), "12.3%");
        assert_eq!(percent(None), "–");
        assert_eq!(money_ratio(Some(1234.567)), "1,234.57");
    }

    #[test]
    fn a_falling_bounce_rate_is_good_news() {
        let change = point_change(Some(0.40), Some(0.50), Better::Lower).expect("comparable");
        assert_eq!((change.text.as_str(), change.direction, change.tone), ("-10.0 pts", "down", "good"));
        let revenue = relative_change(90.0, 100.0, Better::Higher).expect("comparable");
        assert_eq!((revenue.text.as_str(), revenue.tone), ("-10.0%", "bad"));
        assert!(relative_change(5.0, 0.0, Better::Higher).is_none());
    }
}
