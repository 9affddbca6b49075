//! Order-level attribution models: which touches share an order, and in what shares.
//!
//! Shares are fixed point (`SHARE_ONE` = 1) so that sums of shares and of credited
//! money stay exact for the rational models; only `time_decay` needs floating weights.

use upshot_model::Exact;

/// One whole order, in share units.
pub const SHARE_ONE: i128 = 1_000_000_000_000_000_000;

/// The attribution model of a report (SPEC section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Model {
    #[default]
    Last,
    First,
    Linear,
    TimeDecay,
    Position,
}

impl Model {
    pub const ALL: [Model; 5] = [Model::Last, Model::First, Model::Linear, Model::TimeDecay, Model::Position];

    pub fn as_str(self) -> &'static str {
        match self {
            Model::Last => "last",
            Model::First => "first",
            Model::Linear => "linear",
            Model::TimeDecay => "time_decay",
            Model::Position => "position",
        }
    }

    pub fn parse(text: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|model| model.as_str() == text)
    }
}

/// A touch's part of one order: its share and the net revenue that share carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credit {
    pub share: i128,
    pub value: Exact,
}

/// Shares for `touch_ages_ms` (order.ts - touch.ts, oldest touch first, as ordered by
/// (ts, event_id)), written into `credits` in the same order.
pub fn split_order(model: Model, net: Exact, touch_ages_ms: &[i64], half_life_ms: i64, credits: &mut Vec<Credit>) {
    credits.clear();
    let count = touch_ages_ms.len();
    if count == 0 {
        return;
    }
    let whole = Credit { share: SHARE_ONE, value: net };
    let none = Credit { share: 0, value: Exact::ZERO };
    let fraction = |numerator: i128, denominator: i128| Credit {
        share: SHARE_ONE * numerator / denominator,
        value: net.scale(numerator, denominator),
    };
    match model {
        Model::Last => {
            credits.resize(count, none);
            credits[count - 1] = whole;
        }
        Model::First => {
            credits.resize(count, none);
            credits[0] = whole;
        }
        Model::Linear => credits.resize(count, fraction(1, count as i128)),
        Model::Position => match count {
            1 => credits.push(whole),
            2 => credits.resize(2, fraction(1, 2)),
            _ => {
                credits.push(fraction(2, 5));
                credits.resize(count - 1, fraction(1, 5 * (count as i128 - 2)));
                credits.push(fraction(2, 5));
            }
        },
        Model::TimeDecay => {
            let weight = |age: i64| (-(age as f64) / half_life_ms as f64).exp2();
            let total: f64 = touch_ages_ms.iter().map(|&age| weight(age)).sum();
            for &age in touch_ages_ms {
                let share = weight(age) / total;
                credits.push(Credit {
                    share: (share * SHARE_ONE as f64).round() as i128,
                    value: Exact((net.0 as f64 * share).round() as i128),
                });
            }
        }
    }
    // Rounded shares may miss the whole by a few units: the last touch takes the
    // remainder, so an order's shares add up to exactly one order and its net revenue.
    let (shares, values): (i128, i128) =
        credits[..count - 1].iter().fold((0, 0), |(s, v), c| (s + c.share, v + c.value.0));
    let last = &mut credits[count - 1];
    last.share = SHARE_ONE - shares;
    last.value = Exact(net.0 - values);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(model: Model, ages: &[i64]) -> Vec<f64> {
        let mut credits = Vec::new();
        split_order(model, Exact(SHARE_ONE), ages, 7, &mut credits);
        credits.iter().map(|credit| credit.share as f64 / SHARE_ONE as f64).collect()
    }

    #[test]
    fn position_gives_forty_twenty_forty() {
        assert_eq!(shares(Model::Position, &[3]), vec![1.0]);
        assert_eq!(shares(Model::Position, &[3, 2]), vec![0.5, 0.5]);
        assert_eq!(shares(Model::Position, &[4, 3, 2, 1]), vec![0.4, 0.1, 0.1, 0.4]);
    }

    #[test]
    fn time_decay_halves_every_half_life() {
        let decay = shares(Model::TimeDecay, &[7, 0]);
        assert!((decay[0] - 1.0 / 3.0).abs() < 1e-15 && (decay[1] - 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn shares_add_up_to_exactly_one_order() {
        for model in Model::ALL {
            for ages in [&[1][..], &[3, 2, 1], &[30, 20, 10, 5, 1, 0], &[6, 5, 4, 3, 2, 1, 0]] {
                let mut credits = Vec::new();
                let net = Exact(1_000_000_000_000_000_007);
                split_order(model, net, ages, 7, &mut credits);
                assert_eq!(credits.iter().map(|c| c.share).sum::<i128>(), SHARE_ONE, "{model:?} {ages:?}");
                assert_eq!(credits.iter().map(|c| c.value.0).sum::<i128>(), net.0, "{model:?} {ages:?}");
            }
        }
    }

    #[test]
    fn last_and_first_take_the_whole_order() {
        assert_eq!(shares(Model::Last, &[5, 1]), vec![0.0, 1.0]);
        assert_eq!(shares(Model::First, &[5, 1]), vec![1.0, 0.0]);
        assert_eq!(shares(Model::Linear, &[5, 1]), vec![0.5, 0.5]);
    }
}
