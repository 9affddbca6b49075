//! Statistics for experiments: delta-method lifts with 95% intervals and p-values, and
//! the chi-square sample-ratio-mismatch test (SPEC section 5).

/// The 97.5% quantile of the standard normal distribution, as SPEC fixes it.
pub const Z_95: f64 = 1.959964;

/// Mean and variance of the mean of one group's metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupEstimate {
    pub mean: f64,
    pub variance_of_mean: f64,
}

/// A relative lift `v / c - 1` with its interval and two-sided p-value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lift {
    pub lift: f64,
    pub interval: [f64; 2],
    /// `None` when the standard error is 0.
    pub p_value: Option<f64>,
}

/// Conversion rate estimate: m = converted / n, var = m (1 - m) / n.
pub fn proportion_estimate(converted: u64, visitors: u64) -> Option<GroupEstimate> {
    if visitors == 0 {
        return None;
    }
    let n = visitors as f64;
    let mean = converted as f64 / n;
    Some(GroupEstimate { mean, variance_of_mean: mean * (1.0 - mean) / n })
}

/// Mean estimate from exact integer sums of values and of squared values (in units
/// and units squared): var = s^2 / n with the (n - 1) sample variance. `None` below 2.
pub fn mean_estimate(count: u64, sum: i128, sum_of_squares: i128, unit: f64) -> Option<GroupEstimate> {
    if count < 2 {
        return None;
    }
    let n = i128::from(count);
    // n * sum(x^2) - (sum x)^2 is exact in integers: no cancellation error.
    let spread = n
        .checked_mul(sum_of_squares)
        .and_then(|scaled| sum.checked_mul(sum).and_then(|square| scaled.checked_sub(square)));
    let sample_variance = match spread {
        Some(spread) => spread as f64 / (n * (n - 1)) as f64 / (unit * unit),
        None => {
            let mean = sum as f64 / n as f64;
            let spread = sum_of_squares as f64 - n as f64 * mean * mean;
            (spread / (n - 1) as f64).max(0.0) / (unit * unit)
        }
    };
    Some(GroupEstimate { mean: sum as f64 / count as f64 / unit, variance_of_mean: sample_variance / count as f64 })
}

/// The delta-method lift of `variant` over `control`; `None` when the control mean is 0.
pub fn relative_lift(variant: GroupEstimate, control: GroupEstimate) -> Option<Lift> {
    let (mv, mc) = (variant.mean, control.mean);
    if mc == 0.0 {
        return None;
    }
    let lift = mv / mc - 1.0;
    let se_squared = variant.variance_of_mean / (mc * mc) + mv * mv * control.variance_of_mean / mc.powi(4);
    let se = se_squared.max(0.0).sqrt();
    let p_value = (se > 0.0).then(|| 2.0 * (1.0 - normal_cdf(lift.abs() / se)));
    Some(Lift { lift, interval: [lift - Z_95 * se, lift + Z_95 * se], p_value })
}

/// Pearson's chi-square test of observed counts against expected shares (any scale);
/// the upper-tail p-value with k - 1 degrees of freedom. `None` for fewer than 2 groups.
pub fn chi_square_p_value(observed: &[u64], expected_shares: &[f64]) -> Option<f64> {
    if observed.len() < 2 || observed.len() != expected_shares.len() {
        return None;
    }
    let total: f64 = observed.iter().map(|&count| count as f64).sum();
    let share_total: f64 = expected_shares.iter().sum();
    if total == 0.0 || share_total <= 0.0 {
        return None;
    }
    let statistic: f64 = observed
        .iter()
        .zip(expected_shares)
        .map(|(&count, &share)| {
            let expected = total * share / share_total;
            let difference = count as f64 - expected;
            difference * difference / expected
        })
        .sum();
    let degrees = (observed.len() - 1) as f64;
    Some(regularized_upper_gamma(degrees / 2.0, statistic / 2.0))
}

/// Phi(x), the standard normal CDF, from erfc (accurate to about 1e-15).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function: a power series for small |x|, a continued
/// fraction beyond, both converging to double precision.
pub fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.0 {
        // erf(x) = 2/sqrt(pi) exp(-x^2) sum_{n>=0} 2^n x^(2n+1) / (2n+1)!!, all terms positive.
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while term > sum * 1e-17 {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        return 1.0 - 2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum;
    }
    // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), by Lentz.
    let tiny = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..500 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        d = if d.abs() < tiny { tiny } else { d };
        c = x + a / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / f
}

/// ln Gamma(x) for x > 0 (Lanczos, g = 7, n = 9; about 1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (index, coefficient) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += coefficient / (x + index as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// Q(a, x) = Gamma(a, x) / Gamma(a): the series below a + 1, Lentz's continued fraction above.
fn regularized_upper_gamma(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let log_prefix = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let mut term = 1.0 / a;
        let mut sum = term;
        let mut denominator = a;
        for _ in 0..10_000 {
            denominator += 1.0;
            term *= x / denominator;
            sum += term;
            if term.abs() < sum.abs() * 1e-17 {
                break;
            }
        }
        return (1.0 - sum * log_prefix.exp()).clamp(0.0, 1.0);
    }
    let tiny = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / tiny;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        d = if d.abs() < tiny { tiny } else { d };
        c = b + an / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (log_prefix.exp() * h).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!((actual - expected).abs() <= tolerance, "{actual} != {expected}");
    }

    #[test]
    fn normal_cdf_matches_tables() {
        close(normal_cdf(0.0), 0.5, 1e-16);
        close(normal_cdf(1.959964), 0.975, 1e-7);
        close(normal_cdf(1.0), 0.841_344_746_068_542_9, 1e-15);
        close(normal_cdf(-3.0), 0.001_349_898_031_630_094_6, 1e-17);
        close(erfc(5.0), 1.537_459_794_428_035e-12, 1e-25);
        close(erfc(0.5), 0.479_500_122_186_953_5, 1e-15);
    }

    #[test]
    fn chi_square_tail_matches_tables() {
        // df = 1, statistic 3.841459 is the 95% point; df = 2: Q = exp(-x/2).
        close(chi_square_p_value(&[0, 0], &[1.0, 1.0]).unwrap_or(-1.0), -1.0, 0.0);
        let one_degree = regularized_upper_gamma(0.5, 3.841_459 / 2.0);
        close(one_degree, 0.05, 1e-7);
        close(regularized_upper_gamma(1.0, 3.0), (-3.0_f64).exp(), 1e-15);
        // 3 groups, statistic 6: Q(1, 3) = exp(-3).
        let p = chi_square_p_value(&[40, 60, 50], &[1.0, 1.0, 1.0]).expect("three groups");
        // expected 50 each: (100 + 100 + 0) / 50 = 4 -> exp(-2)
        close(p, (-2.0_f64).exp(), 1e-14);
    }
}
