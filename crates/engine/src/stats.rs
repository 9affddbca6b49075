//! Statistics for experiments: delta-method lifts with 95% intervals and p-values, the
//! chi-square sample-ratio-mismatch test (SPEC section 5), and the rigour of section
//! 9.5: CUPED, Holm-adjusted p-values and always-valid intervals.

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
    /// The delta-method standard error of the lift.
    pub se: f64,
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
    let sample_variance = sample_covariance(count, sum, sum, sum_of_squares, unit)?;
    Some(GroupEstimate { mean: sum as f64 / count as f64 / unit, variance_of_mean: sample_variance / count as f64 })
}

/// The (n - 1) sample covariance of two series from exact integer sums (in units, so
/// divided by `unit` squared); the variance when both series are the same. `None`
/// below 2 values.
pub fn sample_covariance(count: u64, sum_a: i128, sum_b: i128, sum_ab: i128, unit: f64) -> Option<f64> {
    if count < 2 {
        return None;
    }
    let n = i128::from(count);
    // n * sum(ab) - sum(a) sum(b) is exact in integers: no cancellation error.
    let spread = n
        .checked_mul(sum_ab)
        .and_then(|scaled| sum_a.checked_mul(sum_b).and_then(|product| scaled.checked_sub(product)));
    let covariance = match spread {
        Some(spread) => spread as f64 / (n * (n - 1)) as f64,
        None => {
            let (mean_a, mean_b) = (sum_a as f64 / n as f64, sum_b as f64 / n as f64);
            (sum_ab as f64 - n as f64 * mean_a * mean_b) / (n - 1) as f64
        }
    };
    Some(covariance / (unit * unit))
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
    Some(Lift { lift, interval: [lift - Z_95 * se, lift + Z_95 * se], p_value, se })
}

/// Exact sums over one group's counted visitors of `y` (revenue of section 5) and `x`
/// (pre-period revenue of section 9.5), in money units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairedSums {
    pub count: u64,
    pub sum_x: i128,
    pub sum_y: i128,
    pub sum_xx: i128,
    pub sum_yy: i128,
    pub sum_xy: i128,
}

/// CUPED over an experiment's groups (SPEC section 9.5).
#[derive(Clone, Debug, PartialEq)]
pub struct Cuped {
    /// cov(x, y) / var(x) over all counted visitors as one sample; 0 when var(x) is 0
    /// or fewer than 2 visitors are counted.
    pub theta: f64,
    /// Per group, in the order given: the adjusted mean and variance of the mean;
    /// `None` for a group of fewer than 2 visitors.
    pub adjusted: Vec<Option<GroupEstimate>>,
    /// 1 - (sum of adjusted variances) / (sum of plain variances); `None` when a group
    /// has fewer than 2 visitors or the plain sum is 0.
    pub variance_reduction: Option<f64>,
}

pub fn cuped(groups: &[PairedSums], unit: f64) -> Cuped {
    let mut all = PairedSums::default();
    for group in groups {
        all.count += group.count;
        all.sum_x += group.sum_x;
        all.sum_y += group.sum_y;
        all.sum_xx = all.sum_xx.saturating_add(group.sum_xx);
        all.sum_yy = all.sum_yy.saturating_add(group.sum_yy);
        all.sum_xy = all.sum_xy.saturating_add(group.sum_xy);
    }
    let variance_x = sample_covariance(all.count, all.sum_x, all.sum_x, all.sum_xx, unit);
    let covariance = sample_covariance(all.count, all.sum_x, all.sum_y, all.sum_xy, unit);
    let theta = match (variance_x, covariance) {
        (Some(variance_x), Some(covariance)) if variance_x != 0.0 => covariance / variance_x,
        _ => 0.0,
    };
    let mean_x_all = if all.count == 0 { 0.0 } else { all.sum_x as f64 / all.count as f64 / unit };
    let (mut adjusted_sum, mut plain_sum, mut every_group_defined) = (0.0, 0.0, true);
    let adjusted = groups
        .iter()
        .map(|group| {
            let moments = sample_covariance(group.count, group.sum_y, group.sum_y, group.sum_yy, unit)
                .zip(sample_covariance(group.count, group.sum_x, group.sum_x, group.sum_xx, unit))
                .zip(sample_covariance(group.count, group.sum_x, group.sum_y, group.sum_xy, unit));
            let Some(((variance_y, variance_x), covariance)) = moments else {
                every_group_defined = false;
                return None;
            };
            let n = group.count as f64;
            let (mean_y, mean_x) = (group.sum_y as f64 / n / unit, group.sum_x as f64 / n / unit);
            let variance = (variance_y + theta * theta * variance_x - 2.0 * theta * covariance) / n;
            adjusted_sum += variance;
            plain_sum += variance_y / n;
            Some(GroupEstimate { mean: mean_y - theta * (mean_x - mean_x_all), variance_of_mean: variance })
        })
        .collect();
    let variance_reduction = (every_group_defined && plain_sum != 0.0).then(|| 1.0 - adjusted_sum / plain_sum);
    Cuped { theta, adjusted, variance_reduction }
}

/// Holm-Bonferroni adjusted p-values, in the order given: with p(1) <= ... <= p(m),
/// p(k) becomes max over j <= k of min(1, (m - j + 1) p(j)).
pub fn holm_adjusted(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running_max: f64 = 0.0;
    for (rank, &index) in order.iter().enumerate() {
        let scaled = ((m - rank) as f64 * p_values[index]).min(1.0);
        running_max = running_max.max(scaled);
        adjusted[index] = running_max;
    }
    adjusted
}

/// The significance level of the always-valid intervals.
const SEQUENTIAL_ALPHA: f64 = 0.05;

/// The always-valid interval lift +- h (the normal-mixture confidence sequence of
/// Howard et al., 2021, as SPEC section 9.5 fixes it) for `visitors` = N in both
/// groups; `None` when se is 0 or not finite.
pub fn always_valid_interval(lift: f64, se: f64, visitors: u64, tuning_visitors: u64) -> Option<[f64; 2]> {
    if !(se > 0.0 && se.is_finite() && lift.is_finite()) || visitors == 0 {
        return None;
    }
    let n = visitors as f64;
    let sigma_squared = se * se * n;
    let log_inverse_alpha = (1.0 / SEQUENTIAL_ALPHA).ln();
    let rho = tuning_visitors as f64 * sigma_squared / (2.0 * log_inverse_alpha + (1.0 + 2.0 * log_inverse_alpha).ln());
    let spread = n * sigma_squared + rho;
    let h = (spread * (spread / (rho * SEQUENTIAL_ALPHA * SEQUENTIAL_ALPHA)).ln()).sqrt() / n;
    h.is_finite().then_some([lift - h, lift + h])
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

    fn sums(pairs: &[(i128, i128)], unit: i128) -> PairedSums {
        let mut sums = PairedSums { count: pairs.len() as u64, ..PairedSums::default() };
        for &(x, y) in pairs {
            let (x, y) = (x * unit, y * unit);
            sums.sum_x += x;
            sums.sum_y += y;
            sums.sum_xx += x * x;
            sums.sum_yy += y * y;
            sums.sum_xy += x * y;
        }
        sums
    }

    /// Worked independently with Python's `statistics` (covariance and variance with
    /// n - 1):
    /// ```text
    /// c = [(0,10),(5,12),(10,25),(0,0)]; v = [(2,15),(8,20),(0,5)]  # (x, y)
    /// theta = covariance(x_all, y_all) / variance(x_all)            # 1.8250688705234164
    /// m_g = mean(y_g) - theta (mean(x_g) - mean(x_all))             # 11.42409484454939, 13.767873540600814
    /// var_g = (var(y_g) + theta^2 var(x_g) - 2 theta cov(x_g, y_g)) / n_g  # 4.795152367337288, 4.2159848758897125
    /// plain var_g = var(y_g) / n_g                                  # 26.395833333333332, 19.444444444444446
    /// reduction = 1 - sum(var_g) / sum(plain)                       # 0.8034231536093489
    /// ```
    #[test]
    fn cuped_matches_a_worked_example() {
        let unit = 10_000; // money units per currency unit
        let control = sums(&[(0, 10), (5, 12), (10, 25), (0, 0)], unit);
        let variant = sums(&[(2, 15), (8, 20), (0, 5)], unit);
        let result = cuped(&[control, variant], unit as f64);
        close(result.theta, 1.825_068_870_523_416_4, 1e-12);
        let [Some(c), Some(v)] = [result.adjusted[0], result.adjusted[1]] else { panic!("both groups defined") };
        close(c.mean, 11.424_094_844_549_39, 1e-10);
        close(c.variance_of_mean, 4.795_152_367_337_288, 1e-10);
        close(v.mean, 13.767_873_540_600_814, 1e-10);
        close(v.variance_of_mean, 4.215_984_875_889_712_5, 1e-10);
        close(result.variance_reduction.expect("defined"), 0.803_423_153_609_348_9, 1e-12);
    }

    #[test]
    fn cuped_theta_is_0_when_the_pre_period_has_no_variance() {
        let unit = 10_000;
        // Nobody bought before the assignment: x is 0 for all, so theta is 0 and the
        // adjusted figures are the plain ones (reduction 0).
        let control = sums(&[(0, 10), (0, 12), (0, 0)], unit);
        let variant = sums(&[(0, 15), (0, 20)], unit);
        let result = cuped(&[control, variant], unit as f64);
        assert_eq!(result.theta, 0.0);
        let plain = mean_estimate(3, control.sum_y, control.sum_yy, unit as f64).expect("3 visitors");
        assert_eq!(result.adjusted[0], Some(plain));
        close(result.variance_reduction.expect("defined"), 0.0, 1e-15);
        // A group of one visitor: no variance, so no adjusted figures and no reduction.
        let lone = cuped(&[control, sums(&[(3, 4)], unit)], unit as f64);
        assert_eq!(lone.adjusted[1], None);
        assert_eq!(lone.variance_reduction, None);
        // Fewer than 2 visitors in all: theta 0.
        assert_eq!(cuped(&[sums(&[(3, 4)], unit)], unit as f64).theta, 0.0);
    }

    /// By hand: sorted 0.005, 0.01, 0.03, 0.04 (m = 4) scale to 0.02, 0.03, 0.06, 0.04;
    /// the running maximum gives 0.02, 0.03, 0.06, 0.06.
    #[test]
    fn holm_step_down_on_a_worked_example() {
        let adjusted = holm_adjusted(&[0.01, 0.04, 0.03, 0.005]);
        for (actual, expected) in adjusted.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            close(*actual, expected, 1e-15);
        }
        // Capped at 1, and one test is its own family.
        assert_eq!(holm_adjusted(&[0.6, 0.7]), vec![1.0, 1.0]);
        assert_eq!(holm_adjusted(&[0.2]), vec![0.2]);
        assert!(holm_adjusted(&[]).is_empty());
    }

    /// With Python's `math`: se = 0.05, N = 2000, sigma^2 = se^2 N, alpha = 0.05,
    /// rho = 5000 sigma^2 / (2 ln(1/alpha) + ln(1 + 2 ln(1/alpha))),
    /// h = sqrt((N sigma^2 + rho) ln((N sigma^2 + rho) / (rho alpha^2))) / N = 0.1561889545837365.
    #[test]
    fn always_valid_interval_matches_a_worked_example() {
        let [low, high] = always_valid_interval(0.1, 0.05, 2000, 5000).expect("defined");
        close(low, -0.056_188_954_583_736_49, 1e-14);
        close(high, 0.256_188_954_583_736_5, 1e-14);
        // Wider than the plain interval (it holds at every look), and undefined without spread.
        assert!(high - 0.1 > Z_95 * 0.05);
        assert_eq!(always_valid_interval(0.1, 0.0, 2000, 5000), None);
        assert_eq!(always_valid_interval(0.1, 0.05, 0, 5000), None);
    }
}
