//! The site-wide order book: which order event counts for each order_id, which orders
//! are cancelled, and each order's net revenue after refunds (SPEC sections 3 and 8).
//! Built from every order and refund of the site whatever their ts, by one or more
//! workers whose books are merged.

use rustc_hash::FxHashMap as HashMap;
use upshot_model::KeyRole;

/// An order event as its (ts, event_id): the smallest of an order_id counts.
type Winner = (i64, Box<[u8]>);

/// What the refunds of one key role say about an order.
#[derive(Clone, Copy, Debug, Default)]
struct Refunds {
    cancelled: bool,
    refund_all: bool,
    refunded: i64,
}

impl Refunds {
    fn add(&mut self, amount: Option<i64>, cancel: bool) {
        self.cancelled |= cancel;
        match amount {
            Some(amount) => self.refunded = self.refunded.saturating_add(amount),
            None => self.refund_all = true,
        }
    }

    fn merge(&mut self, other: Refunds) {
        self.cancelled |= other.cancelled;
        self.refund_all |= other.refund_all;
        self.refunded = self.refunded.saturating_add(other.refunded);
    }
}

/// One order_id's events, kept apart by the key they came with (SPEC section 7: the
/// public key can never drop or change what the secret key sent). When the secret key
/// sent an order event of this id, the counted one is its smallest (ts, event_id), and
/// only the secret key's refunds apply; otherwise the public key's smallest counts and
/// every refund applies.
#[derive(Clone, Debug, Default)]
struct OrderState {
    /// The smallest (ts, event_id) order event seen per role.
    secret_winner: Option<Winner>,
    public_winner: Option<Winner>,
    secret_refunds: Refunds,
    public_refunds: Refunds,
}

fn keep_earlier(slot: &mut Option<Winner>, ts: i64, event_id: &[u8]) {
    let earlier = match slot {
        None => true,
        Some((winner_ts, winner_id)) => (ts, event_id) < (*winner_ts, &winner_id[..]),
    };
    if earlier {
        *slot = Some((ts, event_id.into()));
    }
}

impl OrderState {
    /// The counted order event, its role, and the refunds that apply to it.
    fn counted(&self) -> Option<(&Winner, KeyRole, Refunds)> {
        if let Some(winner) = &self.secret_winner {
            return Some((winner, KeyRole::Secret, self.secret_refunds));
        }
        let mut refunds = self.secret_refunds;
        refunds.merge(self.public_refunds);
        self.public_winner.as_ref().map(|winner| (winner, KeyRole::Public, refunds))
    }
}

#[derive(Debug, Default, Clone)]
pub struct OrderBook {
    orders: HashMap<Box<[u8]>, OrderState>,
}

impl OrderBook {
    fn state(&mut self, order_id: &[u8]) -> &mut OrderState {
        if !self.orders.contains_key(order_id) {
            self.orders.insert(order_id.into(), OrderState::default());
        }
        self.orders.get_mut(order_id).expect("inserted above")
    }

    pub fn add_order(&mut self, order_id: &[u8], ts: i64, event_id: &[u8], role: KeyRole) {
        let state = self.state(order_id);
        match role {
            KeyRole::Secret => keep_earlier(&mut state.secret_winner, ts, event_id),
            KeyRole::Public => keep_earlier(&mut state.public_winner, ts, event_id),
        }
    }

    /// A refund of an order that never shows up does nothing.
    pub fn add_refund(&mut self, order_id: &[u8], amount: Option<i64>, cancel: bool, role: KeyRole) {
        let state = self.state(order_id);
        match role {
            KeyRole::Secret => state.secret_refunds.add(amount, cancel),
            KeyRole::Public => state.public_refunds.add(amount, cancel),
        }
    }

    /// Adds another worker's book.
    pub fn merge(&mut self, other: OrderBook) {
        for (order_id, theirs) in other.orders {
            let Some(ours) = self.orders.get_mut(&order_id) else {
                self.orders.insert(order_id, theirs);
                continue;
            };
            for (slot, their_winner) in
                [(&mut ours.secret_winner, theirs.secret_winner), (&mut ours.public_winner, theirs.public_winner)]
            {
                if let Some((ts, event_id)) = their_winner {
                    keep_earlier(slot, ts, &event_id);
                }
            }
            ours.secret_refunds.merge(theirs.secret_refunds);
            ours.public_refunds.merge(theirs.public_refunds);
        }
    }

    /// The net revenue (money units) when this order event is the counted event of a
    /// live order; `None` for duplicates and cancelled orders.
    pub fn counted_net_revenue(
        &self,
        order_id: &[u8],
        ts: i64,
        event_id: &[u8],
        role: KeyRole,
        revenue: i64,
    ) -> Option<i64> {
        let state = self.orders.get(order_id)?;
        let ((winner_ts, winner_id), winner_role, refunds) = state.counted()?;
        if refunds.cancelled || *winner_ts != ts || &winner_id[..] != event_id || winner_role != role {
            return None;
        }
        if refunds.refund_all {
            return Some(0);
        }
        Some(revenue.saturating_sub(refunds.refunded).max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: KeyRole = KeyRole::Public;
    const SECRET: KeyRole = KeyRole::Secret;

    #[test]
    fn the_public_key_can_neither_shadow_nor_cancel_nor_refund_the_backends_order() {
        let mut book = OrderBook::default();
        book.add_order(b"1002", 5_000, b"backend", SECRET);
        // Earlier, with the same order_id: would be "the first order" if roles mixed.
        book.add_order(b"1002", 1_000, b"squat", PUBLIC);
        book.add_refund(b"1002", None, true, PUBLIC);
        book.add_refund(b"1002", Some(10_000), false, PUBLIC);
        assert_eq!(book.counted_net_revenue(b"1002", 5_000, b"backend", SECRET, 250_000), Some(250_000));
        assert_eq!(book.counted_net_revenue(b"1002", 1_000, b"squat", PUBLIC, 250_000), None);
        // A same-looking public event (same ts and id) is not the backend's either.
        assert_eq!(book.counted_net_revenue(b"1002", 5_000, b"backend", PUBLIC, 250_000), None);
        book.add_refund(b"1002", Some(50_000), false, SECRET);
        assert_eq!(book.counted_net_revenue(b"1002", 5_000, b"backend", SECRET, 250_000), Some(200_000));
    }

    #[test]
    fn an_order_only_the_tracker_sent_counts_and_takes_every_refund() {
        let mut book = OrderBook::default();
        book.add_order(b"7", 2_000, b"b", PUBLIC);
        book.add_order(b"7", 1_000, b"a", PUBLIC);
        book.add_refund(b"7", Some(1_000), false, PUBLIC);
        book.add_refund(b"7", Some(2_000), false, SECRET);
        assert_eq!(book.counted_net_revenue(b"7", 1_000, b"a", PUBLIC, 10_000), Some(7_000));
        assert_eq!(book.counted_net_revenue(b"7", 2_000, b"b", PUBLIC, 10_000), None, "a duplicate");
        let mut other = OrderBook::default();
        other.add_refund(b"7", None, true, SECRET);
        book.merge(other);
        assert_eq!(book.counted_net_revenue(b"7", 1_000, b"a", PUBLIC, 10_000), None, "cancelled by the backend");
    }
}
