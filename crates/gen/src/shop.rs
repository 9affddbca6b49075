//! The synthetic shop: a catalog, placements of every kind, and visitors who browse,
//! see and click personalization, buy, refund, join experiments and journeys.

use serde_json::{json, Map, Value};

use crate::rng::SplitMix64;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenOptions {
    pub seed: u64,
    pub visitors: u64,
    pub days: u32,
    /// First instant of the generated period, epoch milliseconds.
    pub start_ms: i64,
    /// True relative lift of the `variant_b` conversion rate over `control` (0.1 = +10%).
    pub lift: f64,
    pub currency: String,
    /// Crowd events onto the rules' edges (gaps of exactly 30 minutes, windows to the
    /// millisecond, equal timestamps), for tests rather than for realism.
    pub edge_cases: bool,
    /// No event after this instant: a shop's data never lies in the future (the demo
    /// passes the present; visitors' later sessions would otherwise run past it).
    pub end_ms: Option<i64>,
}

impl Default for GenOptions {
    fn default() -> GenOptions {
        GenOptions {
            seed: 1,
            visitors: 1000,
            days: 30,
            start_ms: 1_714_521_600_000, // 2024-05-01T00:00:00Z
            lift: 0.1,
            currency: "USD".to_string(),
            edge_cases: false,
            end_ms: None,
        }
    }
}

struct Placement {
    id: &'static str,
    kind: &'static str,
    page: &'static str,
    campaign: Option<&'static str>,
    sequence: Option<&'static str>,
    show: f64,
    click: f64,
}

const PLACEMENTS: [Placement; 9] = [
    Placement {
        id: "home_recs",
        kind: "recommendation",
        page: "home",
        campaign: Some("spring_sale"),
        sequence: None,
        show: 0.9,
        click: 0.12,
    },
    Placement {
        id: "pdp_similar",
        kind: "recommendation",
        page: "product",
        campaign: None,
        sequence: None,
        show: 0.8,
        click: 0.10,
    },
    Placement {
        id: "cart_cross_sell",
        kind: "recommendation",
        page: "cart",
        campaign: Some("aov_boost"),
        sequence: None,
        show: 0.7,
        click: 0.08,
    },
    Placement {
        id: "exit_popup",
        kind: "popup",
        page: "category",
        campaign: Some("retention"),
        sequence: Some("welcome_series"),
        show: 0.3,
        click: 0.06,
    },
    Placement {
        id: "free_shipping_bar",
        kind: "notification",
        page: "product",
        campaign: Some("spring_sale"),
        sequence: None,
        show: 0.5,
        click: 0.04,
    },
    Placement {
        id: "hero_banner",
        kind: "block",
        page: "home",
        campaign: Some("spring_sale"),
        sequence: Some("welcome_series"),
        show: 0.95,
        click: 0.05,
    },
    Placement {
        id: "help_widget",
        kind: "widget",
        page: "checkout",
        campaign: None,
        sequence: None,
        show: 0.6,
        click: 0.1,
    },
    Placement {
        id: "search_tips",
        kind: "other",
        page: "search",
        campaign: None,
        sequence: None,
        show: 0.5,
        click: 0.03,
    },
    Placement {
        id: "category_block",
        kind: "block",
        page: "category",
        campaign: None,
        sequence: Some("onboarding"),
        show: 0.6,
        click: 0.04,
    },
];

const PAGE_FLOW: [&str; 7] = ["home", "category", "product", "search", "product", "cart", "checkout"];
const TOPICS: [&str; 4] = ["shipping", "returns", "sizing", "payment \"options\""];
const CHANNELS: [&str; 4] = ["email", "sms", "push", "web"];
const CATALOG_SIZE: u64 = 400;
/// Devices and their shares of visitors.
const DEVICES: [(&str, f64); 4] = [("desktop", 0.52), ("mobile", 0.38), ("tablet", 0.08), ("other", 0.02)];
/// Where a session comes from, with its share: (referrer, utm_source, utm_medium, utm_campaign).
type Source = (Option<&'static str>, Option<&'static str>, Option<&'static str>, Option<&'static str>);
const SOURCES: [(Source, f64); 9] = [
    ((None, None, None, None), 0.36),
    ((Some("https://www.google.com/"), None, None, None), 0.16),
    ((Some("https://www.bing.com/search?q=shop"), None, None, None), 0.04),
    ((Some("https://l.facebook.com/l.php"), None, None, None), 0.07),
    ((Some("https://www.instagram.com/"), Some("instagram"), Some("social"), Some("spring_sale")), 0.03),
    ((None, Some("newsletter"), Some("email"), Some("spring_sale")), 0.09),
    ((Some("https://www.google.com/"), Some("google"), Some("cpc"), Some("brand")), 0.12),
    ((Some("https://blog.example.org/best-picks"), None, None, None), 0.07),
    ((None, Some("partner"), None, Some("affiliates")), 0.06),
];
const SHOP_URL: &str = "https://shop.example";

/// Produces events visitor by visitor, handing each to a sink as a JSON object.
pub struct Generator {
    options: GenOptions,
    rng: SplitMix64,
    visitor: String,
    profile: Option<String>,
    device: &'static str,
    counter: u64,
    order_counter: u64,
}

impl Generator {
    pub fn new(options: GenOptions) -> Generator {
        let rng = SplitMix64::new(options.seed);
        Generator {
            options,
            rng,
            visitor: String::new(),
            profile: None,
            device: DEVICES[0].0,
            counter: 0,
            order_counter: 0,
        }
    }

    fn price(&self, item: u64) -> i64 {
        // 4.99 .. 199.99 in cents, fixed per item.
        let spread = (item.wrapping_mul(2_654_435_761) % 19_500) as i64;
        499 + spread
    }

    /// Generates every visitor, calling `sink` with each event in turn.
    pub fn run(&mut self, mut sink: impl FnMut(Value)) {
        let end_ms = self.options.end_ms;
        let mut within = |value: Value| {
            let ts = value.get("ts").and_then(|ts| upshot_model::time::parse_timestamp(ts).ok());
            if end_ms.is_none_or(|end| ts.is_some_and(|ts| ts <= end)) {
                sink(value);
            }
        };
        for visitor in 0..self.options.visitors {
            self.visitor_events(visitor, &mut within);
        }
    }

    fn base(&mut self, kind: &str, ts: i64, page_type: Option<&str>) -> Map<String, Value> {
        self.counter += 1;
        let mut event = Map::new();
        event.insert("event_id".into(), json!(format!("{}-{:x}", self.visitor, self.counter)));
        event.insert("type".into(), json!(kind));
        // Mostly integer milliseconds, sometimes RFC 3339, as real senders mix both.
        if self.rng.chance(0.2) {
            event.insert("ts".into(), json!(upshot_model::time::format_utc_millis(ts)));
        } else {
            event.insert("ts".into(), json!(ts));
        }
        event.insert("visitor_id".into(), json!(self.visitor));
        if let Some(profile) = &self.profile {
            event.insert("profile_id".into(), json!(profile));
        }
        if let Some(page_type) = page_type {
            event.insert("page_type".into(), json!(page_type));
        }
        event
    }

    fn emit(&mut self, event: Map<String, Value>, sink: &mut impl FnMut(Value)) {
        let value = Value::Object(event);
        // A few events arrive twice, as retrying senders do.
        if self.rng.chance(0.004) {
            sink(value.clone());
        }
        sink(value);
    }

    fn pick_weighted<'a, T>(&mut self, choices: &'a [(T, f64)]) -> &'a T {
        let mut draw = self.rng.unit();
        for (choice, share) in choices {
            if draw < *share {
                return choice;
            }
            draw -= share;
        }
        &choices[choices.len() - 1].0
    }

    /// A page view as the tracker sends it: the page's url and the visitor's device;
    /// the first of a session also says where the visitor came from.
    fn page_view(&mut self, ts: i64, page: &str, landing: bool) -> Map<String, Value> {
        let mut event = self.base("page_view", ts, Some(page));
        event.insert("url".into(), json!(format!("{SHOP_URL}/{page}")));
        event.insert("device".into(), json!(self.device));
        if landing {
            let (referrer, source, medium, campaign) = *self.pick_weighted(&SOURCES);
            for (key, value) in
                [("referrer", referrer), ("utm_source", source), ("utm_medium", medium), ("utm_campaign", campaign)]
            {
                if let Some(value) = value {
                    event.insert(key.into(), json!(value));
                }
            }
        }
        event
    }

    fn gap_between_sessions(&mut self) -> i64 {
        if self.options.edge_cases {
            let gaps =
                [30 * MINUTE_MS, 30 * MINUTE_MS + 1, 29 * MINUTE_MS, 7 * DAY_MS, 7 * DAY_MS + 1, 30 * DAY_MS, 0, 1];
            return *self.rng.pick(&gaps);
        }
        self.rng.range(35 * MINUTE_MS, 9 * DAY_MS)
    }

    fn dwell(&mut self) -> i64 {
        if self.options.edge_cases {
            return *self.rng.pick(&[0, 0, 1, MINUTE_MS, 30 * MINUTE_MS, 31 * MINUTE_MS]);
        }
        self.rng.range(5_000, 6 * MINUTE_MS)
    }

    fn visitor_events(&mut self, visitor: u64, sink: &mut impl FnMut(Value)) {
        self.visitor = format!("v{}-{visitor}", self.options.seed);
        self.profile = self.rng.chance(0.3).then(|| format!("cust-{}-{visitor}", self.options.seed));
        self.device = *self.pick_weighted(&DEVICES);
        self.counter = 0;
        let span = i64::from(self.options.days) * DAY_MS;
        let mut ts = self.options.start_ms + self.rng.below(span.max(1) as u64) as i64;
        let variant = if self.rng.chance(0.8) {
            let variant = if self.rng.chance(0.5) { "control" } else { "variant_b" };
            let mut event = self.base("assignment", ts, None);
            event.insert("experiment".into(), json!("hero_test"));
            event.insert("variant".into(), json!(variant));
            self.emit(event, sink);
            Some(variant)
        } else {
            None
        };
        let boost = if variant == Some("variant_b") { 1.0 + self.options.lift } else { 1.0 };
        let sessions = 1 + (self.rng.unit() * self.rng.unit() * 5.0) as u32;
        let mut ordered = false;
        let mut joined_later_test = false;
        for session in 0..sessions {
            if session > 0 && !joined_later_test {
                joined_later_test = self.maybe_join_later_test(visitor, session, ts, sink);
            }
            ordered |= self.session(&mut ts, boost, sink);
            ts += self.gap_between_sessions();
        }
        if self.profile.is_some() && self.rng.chance(0.35) {
            self.journey(ts, ordered, sink);
        }
    }

    /// A second experiment that returning visitors join at a later session: so that some
    /// counted visitors have orders before their assignment (what CUPED's pre-period
    /// revenue reads). Whether and which variant is drawn from the visitor and session.
    fn maybe_join_later_test(&mut self, visitor: u64, session: u32, ts: i64, sink: &mut impl FnMut(Value)) -> bool {
        let mut draw = crate::rng::SplitMix64::new(self.options.seed ^ (visitor << 8) ^ u64::from(session));
        if !draw.chance(0.3) {
            return false;
        }
        let variant = if draw.chance(0.5) { "control" } else { "variant_b" };
        let mut event = self.base("assignment", ts, None);
        event.insert("experiment".into(), json!("checkout_test"));
        event.insert("variant".into(), json!(variant));
        self.emit(event, sink);
        true
    }

    /// One session; returns whether it placed an order.
    fn session(&mut self, ts: &mut i64, boost: f64, sink: &mut impl FnMut(Value)) -> bool {
        let pages = if self.rng.chance(0.35) { 1 } else { self.rng.range(2, 9) as usize };
        let mut cart: Vec<u64> = Vec::new();
        let mut clicked_recommendation = false;
        let first_page = self.rng.below(4) as usize;
        for step in 0..pages {
            let page = PAGE_FLOW[(first_page + step) % PAGE_FLOW.len()];
            let event = self.page_view(*ts, page, step == 0);
            self.emit(event, sink);
            for placement in PLACEMENTS.iter().filter(|p| p.page == page) {
                *ts += self.dwell() / 4;
                if self.rng.chance(placement.show) {
                    clicked_recommendation |= self.placement_events(placement, *ts, &mut cart, sink);
                }
            }
            if page == "product" || self.rng.chance(0.2) {
                let item = cart
                    .last()
                    .copied()
                    .filter(|_| self.rng.chance(0.6))
                    .unwrap_or_else(|| self.rng.below(CATALOG_SIZE));
                let mut event = self.base("product_view", *ts, Some("product"));
                event.insert("item".into(), json!(format!("p{item:04}")));
                self.emit(event, sink);
                if self.rng.chance(0.25) {
                    cart.push(item);
                    let mut event = self.base("add_to_cart", *ts + 1, Some("product"));
                    event.insert("item".into(), json!(format!("p{item:04}")));
                    event.insert("price".into(), json!(format!("{:.2}", self.price(item) as f64 / 100.0)));
                    self.emit(event, sink);
                }
            }
            *ts += self.dwell();
        }
        if self.rng.chance(0.02) {
            let mut event = self.base("goal", *ts, Some("other"));
            if self.rng.chance(0.5) {
                event.insert("goal".into(), json!("newsletter_signup"));
            } else {
                // A goal with a value, worth what the shop reckons a lead is worth.
                event.insert("goal".into(), json!("catalog_request"));
                event.insert("value".into(), json!(format!("{}.50", self.rng.range(1, 9))));
            }
            self.emit(event, sink);
        }
        let conversion = (0.04 + if clicked_recommendation { 0.08 } else { 0.0 } + cart.len() as f64 * 0.05) * boost;
        if self.rng.chance(conversion.min(0.9)) {
            self.order(*ts, &mut cart, sink);
            return true;
        }
        false
    }

    /// Impression and interactions of one placement; returns whether a recommendation
    /// was clicked.
    fn placement_events(
        &mut self,
        placement: &Placement,
        ts: i64,
        cart: &mut Vec<u64>,
        sink: &mut impl FnMut(Value),
    ) -> bool {
        let impression_id = format!("{}-i{}", self.visitor, self.counter);
        let mut impression = self.base("impression", ts, Some(placement.page));
        let add_attributes = |event: &mut Map<String, Value>| {
            event.insert("placement".into(), json!(placement.id));
            event.insert("kind".into(), json!(placement.kind));
            if let Some(campaign) = placement.campaign {
                event.insert("campaign".into(), json!(campaign));
            }
            if let Some(sequence) = placement.sequence {
                event.insert("sequence".into(), json!(sequence));
            }
        };
        add_attributes(&mut impression);
        let with_id = self.rng.chance(0.8);
        if with_id {
            impression.insert("impression_id".into(), json!(impression_id));
        }
        let mut items = Vec::new();
        if placement.kind == "recommendation" {
            for _ in 0..self.rng.range(3, 6) {
                items.push(self.rng.below(CATALOG_SIZE));
            }
            impression.insert("items".into(), json!(items.iter().map(|i| format!("p{i:04}")).collect::<Vec<_>>()));
        }
        self.emit(impression, sink);
        let click_ts =
            ts + if self.options.edge_cases { *self.rng.pick(&[0, 1, 2_000]) } else { self.rng.range(800, 40_000) };
        let mut clicked = false;
        let action = if self.rng.chance(placement.click) {
            clicked = placement.kind == "recommendation";
            "click"
        } else if matches!(placement.kind, "notification" | "widget") && self.rng.chance(0.15) {
            "hover"
        } else if placement.kind == "popup" && self.rng.chance(0.4) {
            "discard"
        } else {
            return false;
        };
        let mut interaction = self.base("interaction", click_ts, Some(placement.page));
        add_attributes(&mut interaction);
        interaction.insert("action".into(), json!(action));
        if with_id && self.rng.chance(0.9) {
            interaction.insert("impression_id".into(), json!(impression_id));
        }
        if placement.kind == "widget" {
            interaction.insert("label".into(), json!(*self.rng.pick(&TOPICS)));
        }
        if clicked && !items.is_empty() && self.rng.chance(0.9) {
            let item = *self.rng.pick(&items);
            interaction.insert("item".into(), json!(format!("p{item:04}")));
            if self.rng.chance(0.7) {
                cart.push(item);
            }
        }
        self.emit(interaction, sink);
        clicked
    }

    fn order(&mut self, ts: i64, cart: &mut Vec<u64>, sink: &mut impl FnMut(Value)) {
        if cart.is_empty() || self.rng.chance(0.3) {
            cart.push(self.rng.below(CATALOG_SIZE));
        }
        self.order_counter += 1;
        let order_id = format!("o{}-{}-{}", self.options.seed, self.visitor, self.order_counter);
        let mut line_total = 0;
        let lines: Vec<Value> = cart
            .iter()
            .map(|&item| {
                let quantity = if self.rng.chance(0.85) { 1 } else { self.rng.range(2, 3) };
                line_total += quantity * self.price(item);
                json!({"item": format!("p{item:04}"), "quantity": quantity, "price": self.price(item) as f64 / 100.0})
            })
            .collect();
        // Some orders carry a discount, so their lines do not sum to the revenue.
        let discount = if self.rng.chance(0.25) { line_total / 10 } else { 0 };
        let revenue = line_total - discount;
        let mut event = self.base("order", ts, Some("confirmation"));
        event.insert("order_id".into(), json!(order_id));
        event.insert("revenue".into(), json!(format!("{}.{:02}", revenue / 100, revenue % 100)));
        event.insert("shipping".into(), json!(4.95));
        event.insert("tax".into(), json!(format!("{:.2}", revenue as f64 * 0.0007)));
        event.insert("currency".into(), json!(self.options.currency));
        if !(self.options.edge_cases && self.rng.chance(0.2)) {
            event.insert("items".into(), Value::from(lines));
        }
        let duplicate = self.rng.chance(0.01).then(|| event.clone());
        self.emit(event, sink);
        if let Some(mut duplicate) = duplicate {
            // The same order reported again later under a new event id: ignored.
            self.counter += 1;
            duplicate.insert("event_id".into(), json!(format!("{}-{:x}", self.visitor, self.counter)));
            duplicate.insert("ts".into(), json!(ts + 90_000));
            self.emit(duplicate, sink);
        }
        self.refunds(ts, &order_id, revenue, sink);
        cart.clear();
    }

    fn refunds(&mut self, ts: i64, order_id: &str, revenue: i64, sink: &mut impl FnMut(Value)) {
        let roll = self.rng.unit();
        if roll >= 0.08 {
            return;
        }
        let refund_ts = ts + self.rng.range(MINUTE_MS, 20 * DAY_MS);
        let mut event = self.base("refund", refund_ts, None);
        event.insert("order_id".into(), json!(order_id));
        if roll < 0.02 {
            event.insert("cancel".into(), json!(true));
        } else if roll < 0.03 {
            // No amount: the whole order is refunded.
        } else {
            let amount = revenue * self.rng.range(10, 60) / 100;
            event.insert("amount".into(), json!(format!("{}.{:02}", amount / 100, amount % 100)));
        }
        if self.rng.chance(0.5) {
            // Refunds from the shop's backend often carry no visitor.
            event.remove("visitor_id");
            event.remove("profile_id");
        }
        self.emit(event, sink);
    }

    fn journey(&mut self, ts: i64, ordered: bool, sink: &mut impl FnMut(Value)) {
        let journey = if self.rng.chance(0.5) { "cart_recovery" } else { "winback" };
        let run_id = format!("{}-run", self.visitor);
        let mut at = ts;
        self.journey_step(journey, &run_id, "started", at, None, sink);
        let mut event = self.base("sequence_start", at, None);
        event.insert("sequence".into(), json!("welcome_series"));
        if self.rng.chance(0.7) {
            event.insert("campaign".into(), json!("retention"));
        }
        self.emit(event, sink);
        for _ in 0..self.rng.range(1, 3) {
            at += self.rng.range(MINUTE_MS, DAY_MS);
            let channel = if self.rng.chance(0.9) { Some(*self.rng.pick(&CHANNELS)) } else { None };
            self.journey_step(journey, &run_id, "notification", at, channel, sink);
        }
        at += MINUTE_MS;
        if ordered && self.rng.chance(0.5) {
            self.journey_step(journey, &run_id, "converted", at, None, sink);
        }
        let end = if self.rng.chance(0.7) { "completed" } else { "cancelled" };
        self.journey_step(journey, &run_id, end, at + 1, None, sink);
    }

    #[allow(clippy::too_many_arguments)]
    fn journey_step(
        &mut self,
        journey: &str,
        run_id: &str,
        action: &str,
        at: i64,
        channel: Option<&str>,
        sink: &mut impl FnMut(Value),
    ) {
        let mut event = self.base("journey", at, None);
        event.insert("journey".into(), json!(journey));
        event.insert("action".into(), json!(action));
        event.insert("run_id".into(), json!(run_id));
        if let Some(channel) = channel {
            event.insert("channel".into(), json!(channel));
        }
        self.emit(event, sink);
    }
}
