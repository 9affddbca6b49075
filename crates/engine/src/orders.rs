//! The site-wide order book: which order event counts for each order_id, which orders
//! are cancelled, and each order's net revenue after refunds (SPEC sections 3 and 8).
//! Built from every order and refund of the site whatever their ts, by one or more
//! workers whose books are merged.

use rustc_hash::FxHashMap as HashMap;

#[derive(Clone, Debug)]
struct OrderState {
    /// The smallest (ts, event_id) order event seen; `None` while only refunds are known.
    winner: Option<(i64, Box<[u8]>)>,
    cancelled: bool,
    refund_all: bool,
    refunded: i64,
}

impl OrderState {
    const EMPTY: OrderState = OrderState { winner: None, cancelled: false, refund_all: false, refunded: 0 };
}

#[derive(Debug, Default, Clone)]
pub struct OrderBook {
    orders: HashMap<Box<[u8]>, OrderState>,
}

impl OrderBook {
    fn state(&mut self, order_id: &[u8]) -> &mut OrderState {
        if !self.orders.contains_key(order_id) {
            self.orders.insert(order_id.into(), OrderState::EMPTY);
        }
        self.orders.get_mut(order_id).expect("inserted above")
    }

    pub fn add_order(&mut self, order_id: &[u8], ts: i64, event_id: &[u8]) {
        let state = self.state(order_id);
        let earlier = match &state.winner {
            None => true,
            Some((winner_ts, winner_id)) => (ts, event_id) < (*winner_ts, &winner_id[..]),
        };
        if earlier {
            state.winner = Some((ts, event_id.into()));
        }
    }

    /// A refund of an order that never shows up does nothing.
    pub fn add_refund(&mut self, order_id: &[u8], amount: Option<i64>, cancel: bool) {
        let state = self.state(order_id);
        state.cancelled |= cancel;
        match amount {
            Some(amount) => state.refunded = state.refunded.saturating_add(amount),
            None => state.refund_all = true,
        }
    }

    /// Adds another worker's book.
    pub fn merge(&mut self, other: OrderBook) {
        for (order_id, theirs) in other.orders {
            let Some(ours) = self.orders.get_mut(&order_id) else {
                self.orders.insert(order_id, theirs);
                continue;
            };
            if let Some((ts, event_id)) = theirs.winner {
                let earlier = match &ours.winner {
                    None => true,
                    Some((our_ts, our_id)) => (ts, &event_id[..]) < (*our_ts, &our_id[..]),
                };
                if earlier {
                    ours.winner = Some((ts, event_id));
                }
            }
            ours.cancelled |= theirs.cancelled;
            ours.refund_all |= theirs.refund_all;
            ours.refunded = ours.refunded.saturating_add(theirs.refunded);
        }
    }

    /// The net revenue (money units) when this order event is the counted event of a
    /// live order; `None` for duplicates and cancelled orders.
    pub fn counted_net_revenue(&self, order_id: &[u8], ts: i64, event_id: &[u8], revenue: i64) -> Option<i64> {
        let state = self.orders.get(order_id)?;
        let (winner_ts, winner_id) = state.winner.as_ref()?;
        if state.cancelled || *winner_ts != ts || &winner_id[..] != event_id {
            return None;
        }
        if state.refund_all {
            return Some(0);
        }
        Some(revenue.saturating_sub(state.refunded).max(0))
    }
}
