//! Fixed-point money: parsing of input amounts, exact sums, half-even rounding for output.
//!
//! Input amounts carry at most 4 decimals, so they are kept as integer ten-thousandths
//! (`Money`). Derived amounts (order lines scaled to net revenue, fractional credit) are
//! kept as `Exact`, integer units of 1e-18, and are rounded only when shown.

use std::fmt;

/// Ten-thousandths of the site's currency unit per currency unit.
pub const MONEY_UNITS_PER_CURRENCY_UNIT: i64 = 10_000;
/// Units of `Exact` per unit of `Money` (1e-18 / 1e-4).
pub const EXACT_UNITS_PER_MONEY_UNIT: i128 = 100_000_000_000_000;
/// Units of `Exact` per cent (1e-2 / 1e-18).
const EXACT_UNITS_PER_CENT: i128 = 10_000_000_000_000_000;

/// An input amount in ten-thousandths of the currency unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i64);

/// A derived amount in units of 1e-18 of the currency unit; sums of these are exact
/// for all practical purposes (see docs/metrics.md, "Money").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Exact(pub i128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("expected a plain decimal like 12.50 (digits, optional '-', optional '.digits')")]
    Syntax,
    #[error("more than 4 decimals")]
    TooPrecise,
    #[error("amount too large")]
    TooLarge,
}

impl Money {
    pub const ZERO: Money = Money(0);

    /// Parses a plain decimal `-?digits(.digits)?`; trailing zeros of the fraction are
    /// dropped before the 4-decimal limit is checked.
    pub fn parse_decimal(text: &str) -> Result<Money, MoneyError> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (unsigned, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
            return Err(MoneyError::Syntax);
        }
        let fraction = fraction.unwrap_or("").trim_end_matches('0');
        if fraction.len() > 4 {
            return Err(MoneyError::TooPrecise);
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 14 {
            return Err(MoneyError::TooLarge);
        }
        let mut units: i64 = 0;
        for b in whole.bytes() {
            units = units * 10 + i64::from(b - b'0');
        }
        units *= MONEY_UNITS_PER_CURRENCY_UNIT;
        let mut scale = MONEY_UNITS_PER_CURRENCY_UNIT / 10;
        for b in fraction.bytes() {
            units += i64::from(b - b'0') * scale;
            scale /= 10;
        }
        Ok(Money(if negative { -units } else { units }))
    }

    /// Converts a JSON number. Its shortest round-trip decimal form is the text the
    /// sender wrote for any amount of at most 15 significant digits, so this is exact
    /// for every amount the 4-decimal rule allows.
    pub fn from_json_number(number: f64) -> Result<Money, MoneyError> {
        if !number.is_finite() {
            return Err(MoneyError::Syntax);
        }
        Money::parse_decimal(&format!("{number}"))
    }

    pub fn to_exact(self) -> Exact {
        Exact(i128::from(self.0) * EXACT_UNITS_PER_MONEY_UNIT)
    }
}

impl fmt::Display for Money {
    /// Canonical decimal text, at most 4 decimals, no trailing zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let unit = MONEY_UNITS_PER_CURRENCY_UNIT.unsigned_abs();
        let (whole, fraction) = (magnitude / unit, magnitude % unit);
        if fraction == 0 {
            return write!(f, "{sign}{whole}");
        }
        let digits = format!("{fraction:04}");
        write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl Exact {
    pub const ZERO: Exact = Exact(0);

    /// Rounds half-even to whole cents.
    pub fn round_to_cents(self) -> i128 {
        let quotient = self.0.div_euclid(EXACT_UNITS_PER_CENT);
        let remainder = self.0.rem_euclid(EXACT_UNITS_PER_CENT);
        let twice = remainder * 2;
        if twice > EXACT_UNITS_PER_CENT || (twice == EXACT_UNITS_PER_CENT && quotient % 2 != 0) {
            quotient + 1
        } else {
            quotient
        }
    }

    /// The amount rounded half-even to 2 decimals, as a JSON-ready number.
    pub fn to_rounded_f64(self) -> f64 {
        self.round_to_cents() as f64 / 100.0
    }

    /// The unrounded amount as a float, for ratios (which are computed unrounded).
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / 1e18
    }

    /// `self * numerator / denominator`, rounded to the nearest 1e-18 (halves away from
    /// zero). Exact for every input: a product past i128 (absurd amounts times absurd
    /// quantities) is formed in 256 bits; a result past i128 saturates.
    pub fn scale(self, numerator: i128, denominator: i128) -> Exact {
        debug_assert!(denominator > 0, "scale denominator must be positive");
        let half = denominator / 2;
        let fast = self.0.checked_mul(numerator).and_then(|product| {
            if product >= 0 {
                product.checked_add(half)
            } else {
                product.checked_sub(half)
            }
        });
        if let Some(adjusted) = fast {
            return Exact(adjusted / denominator);
        }
        let magnitude = mul_div_round(self.0.unsigned_abs(), numerator.unsigned_abs(), denominator.unsigned_abs());
        let magnitude = i128::try_from(magnitude).unwrap_or(i128::MAX);
        Exact(if (self.0 < 0) != (numerator < 0) { -magnitude } else { magnitude })
    }
}

/// `floor((a * b + d / 2) / d)`, the product in 256 bits; `u128::MAX` when the
/// quotient does not fit. `d` must not be 0.
fn mul_div_round(a: u128, b: u128, d: u128) -> u128 {
    let (high, low) = widening_mul(a, b);
    let (low, carry) = low.overflowing_add(d / 2);
    // a * b <= (2^128 - 1)^2, so `high` is at most 2^128 - 2 and this cannot overflow.
    let high = high + u128::from(carry);
    if high >= d {
        return u128::MAX;
    }
    // Long division of (high, low) by d, a bit at a time; `high < d` keeps each step's
    // remainder below d.
    let mut remainder = high;
    let mut quotient = 0u128;
    for bit in (0..128).rev() {
        let overflowed = remainder >> 127 == 1;
        remainder = (remainder << 1) | ((low >> bit) & 1);
        quotient <<= 1;
        if overflowed || remainder >= d {
            remainder = remainder.wrapping_sub(d);
            quotient |= 1;
        }
    }
    quotient
}

/// The 256-bit product of two u128 as (high, low) halves.
fn widening_mul(a: u128, b: u128) -> (u128, u128) {
    let mask = u128::from(u64::MAX);
    let (a_high, a_low) = (a >> 64, a & mask);
    let (b_high, b_low) = (b >> 64, b & mask);
    let low_low = a_low * b_low;
    let low_high = a_low * b_high;
    let high_low = a_high * b_low;
    let middle = (low_low >> 64) + (low_high & mask) + (high_low & mask);
    let low = (low_low & mask) | (middle << 64);
    let high = a_high * b_high + (low_high >> 64) + (high_low >> 64) + (middle >> 64);
    (high, low)
}

// Sums saturate: ~1.7e20 currency units is past any real shop, but absurd input must
// not wrap into a wrong sign (release) or panic (debug).
impl std::ops::Add for Exact {
    type Output = Exact;
    fn add(self, other: Exact) -> Exact {
        Exact(self.0.saturating_add(other.0))
    }
}

impl std::ops::AddAssign for Exact {
    fn add_assign(&mut self, other: Exact) {
        self.0 = self.0.saturating_add(other.0);
    }
}

impl std::ops::Sub for Exact {
    type Output = Exact;
    fn sub(self, other: Exact) -> Exact {
        Exact(self.0.saturating_sub(other.0))
    }
}

impl std::iter::Sum for Exact {
    fn sum<I: Iterator<Item = Exact>>(iter: I) -> Exact {
        iter.fold(Exact::ZERO, |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_decimals_and_drops_trailing_zeros() {
        assert_eq!(Money::parse_decimal("12.5"), Ok(Money(125_000)));
        assert_eq!(Money::parse_decimal("-0.0001"), Ok(Money(-1)));
        assert_eq!(Money::parse_decimal("1.123400"), Ok(Money(11_234)));
        assert_eq!(Money::parse_decimal("1.12345"), Err(MoneyError::TooPrecise));
        for bad in ["", ".5", "1.", "+1", " 1", "1e2", "0x10", "--1"] {
            assert_eq!(Money::parse_decimal(bad), Err(MoneyError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn json_numbers_keep_their_written_decimals() {
        assert_eq!(Money::from_json_number(19.99), Ok(Money(199_900)));
        assert_eq!(Money::from_json_number(0.1 + 0.2), Err(MoneyError::TooPrecise));
        assert_eq!(Money::from_json_number(1e2), Ok(Money(1_000_000)));
    }

    #[test]
    fn rounds_half_even_to_cents() {
        let cents = |text: &str| Money::parse_decimal(text).map(|m| m.to_exact().round_to_cents());
        assert_eq!(cents("0.125"), Ok(12));
        assert_eq!(cents("0.135"), Ok(14));
        assert_eq!(cents("0.1251"), Ok(13));
        assert_eq!(cents("-0.125"), Ok(-12));
        assert_eq!(cents("-0.135"), Ok(-14));
    }

    #[test]
    fn money_scaling_of_absurd_amounts_is_exact_or_saturates_never_overflows() {
        // The largest order (10^14 units, 4 decimals) and the largest line (u32::MAX of
        // the largest price): the product is past i128.
        let net = Money(999_999_999_999_999_999).to_exact();
        let line = i128::from(u32::MAX) * 999_999_999_999_999_999;
        assert_eq!(net.scale(line, line), net, "a single line gets the whole net");
        assert_eq!(net.scale(line, line * 2), Exact(net.0 / 2), "half of it");
        // Worked out with Python's integers: (a * b + d // 2) // d.
        let (a, b, d) =
            (99_999_999_999_999_999_900_000_000_000_000i128, 4_294_967_295_000_000_000_000_000_000i128, 7i128);
        assert_eq!(Exact(a).scale(b, d), Exact(i128::MAX), "past i128: saturated");
        assert_eq!(
            Exact(a).scale(b, 100_000_000_000_000_000_000_000_000_000),
            Exact(4_294_967_294_999_999_995_705_032_705_000)
        );
        assert_eq!(
            Exact(-a).scale(b, 100_000_000_000_000_000_000_000_000_000).0,
            -4_294_967_294_999_999_995_705_032_705_000
        );
        assert_eq!(Exact(i128::MAX) + Exact(1), Exact(i128::MAX));
    }

    #[test]
    fn displays_canonically() {
        assert_eq!(Money(125_000).to_string(), "12.5");
        assert_eq!(Money(-1).to_string(), "-0.0001");
        assert_eq!(Money(20_000).to_string(), "2");
    }
}
