//! The site-wide order book: which order event counts for each order_id, which orders
//! are cancelled, and each order's net revenue after refunds (SPEC sections 3 and 8).

use std::collections::HashMap;

use crate::dataset::{Dataset, Ev, Payload, Sym};

#[derive(Clone, Copy, Debug)]
struct OrderState {
    /// Index into `Dataset::events` of the smallest (ts, event_id) order event.
    winner: usize,
    cancelled: bool,
    refund_all: bool,
    refunded: i64,
}

/// Built once per report from every order and refund of the site, whatever their ts.
#[derive(Debug, Default)]
pub struct OrderBook {
    orders: HashMap<Sym, OrderState>,
}

impl OrderBook {
    pub fn build(dataset: &Dataset) -> OrderBook {
        let mut orders: HashMap<Sym, OrderState> = HashMap::new();
        for (index, ev) in dataset.events.iter().enumerate() {
            if let Payload::Order { order_id, .. } = ev.payload {
                let state = orders.entry(order_id).or_insert(OrderState {
                    winner: index,
                    cancelled: false,
                    refund_all: false,
                    refunded: 0,
                });
                let current = &dataset.events[state.winner];
                if dataset.time_order(ev, current).is_lt() {
                    state.winner = index;
                }
            }
        }
        for ev in &dataset.events {
            if let Payload::Refund {
                order_id,
                amount,
                cancel,
            } = ev.payload
            {
                // A refund of an unknown order does nothing (until that order exists).
                if let Some(state) = orders.get_mut(&order_id) {
                    state.cancelled |= cancel;
                    match amount {
                        Some(amount) => state.refunded = state.refunded.saturating_add(amount),
                        None => state.refund_all = true,
                    }
                }
            }
        }
        OrderBook { orders }
    }

    /// The net revenue (money units) when `ev` is the counted event of a live order;
    /// `None` for duplicates, cancelled orders and non-order events.
    pub fn counted_net_revenue(&self, dataset: &Dataset, ev: &Ev) -> Option<i64> {
        let Payload::Order {
            order_id, revenue, ..
        } = ev.payload
        else {
            return None;
        };
        let state = self.orders.get(&order_id)?;
        let winner = &dataset.events[state.winner];
        if state.cancelled || winner.event_id != ev.event_id {
            return None;
        }
        if state.refund_all {
            return Some(0);
        }
        Some(revenue.saturating_sub(state.refunded).max(0))
    }
}
