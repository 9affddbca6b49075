//! What each figure means, one hover away: the wording of docs/metrics.md, shortened.
//! A test checks that every figure named here is defined in docs/metrics.md too.

pub fn definition(figure: &str) -> &'static str {
    match figure {
        "visitors" => "Distinct visitors with any web event in the range.",
        "sessions" => "Sessions starting in the range. A session ends after 30 minutes without a web event.",
        "personalized_sessions" => "Sessions with at least one impression of a personalization element.",
        "conversion_rate" => "Sessions with an order / sessions.",
        "aov" => "Average order value: net revenue / orders.",
        "bounce_rate" => "Sessions with at most one page view and no other engagement / sessions.",
        "revenue" => "Net revenue of orders in the range: revenue minus refunds; cancelled orders are not orders.",
        "orders" => "Orders placed in the range (the first order event of each order id; cancelled ones excluded).",
        "attributed_revenue" => "Net revenue of orders in the range credited to a placement by the chosen model.",
        "active_placements" => "Placements with an impression in the 24 hours before the range's end.",
        "active_experiments" => "Experiments with an assignment in the 24 hours before the range's end.",
        "active_journeys" => "Journeys with an event in the 24 hours before the range's end.",
        "impressions" => "Impression events: the element was at least half visible for a second.",
        "product_impressions" => "Products shown: the sum of the impressions' item lists.",
        "clicks" => "Click events on the placement.",
        "clicked_sessions" => "Sessions with at least one click on the placement.",
        "hovered_sessions" => "Sessions with at least one hover on the placement.",
        "ctr" => "Click-through rate: impressions that were clicked / impressions.",
        "converted_clicks" => "Recommendation clicks on a product that the visitor ordered within 7 days.",
        "cr" => "Converted clicks / recommendation clicks.",
        "value" => "Net revenue of the orders credited to it (order level, by the chosen model).",
        "direct_revenue" => "Order lines of a product the visitor clicked in a recommendation within 7 days before.",
        "assisted_revenue" => "Other order lines of visitors who clicked a recommendation within 7 days before.",
        "recommendation_sessions" => "Sessions with an impression of a recommendation.",
        "recommendation_ctr" => {
            "Recommendation sessions with a product view of a recommended item / recommendation sessions."
        }
        "recommendation_conversion_rate" => {
            "Recommendation sessions with an order that has a direct line / recommendation sessions."
        }
        "unique_visitors" => "Distinct visitors with a recommendation impression.",
        "purchases" => "Order lines credited directly to a recommendation.",
        "purchase_sessions_share" => "Sessions with an order having a direct line / sessions with an order.",
        "revenue_change" => "Against the same figure for the equally long range just before.",
        "started" => "Started (sequence_start or journey started events).",
        "profiles" => "Distinct profiles (or visitors without one) that started it.",
        "completed" => "Journey runs completed.",
        "cancelled" => "Journey runs cancelled.",
        "notifications" => "Journey notifications sent, by channel.",
        "converted" => {
            "Conversions (journeys: converted events; experiments: visitors with an order after assignment)."
        }
        "journey_conversion_rate" => "Converted / started; may exceed 100%.",
        "revenue_per_visitor" => "Net revenue of the variant's visitors / its visitors.",
        "incremental_revenue" => "Revenue beyond what the variant's visitors would have spent at the control's rate.",
        "cr_lift" => "Conversion rate relative to control, with its 95% interval (delta method).",
        "rpv_lift" => "Revenue per visitor relative to control, with its 95% interval (delta method).",
        "p_value" => "Two-sided p-value of the lift: how often chance alone would show a lift this large.",
        "srm_p_value" => "Sample-ratio check: under 0.001 means visitors did not split as configured.",
        "rpm" => "Revenue per thousand impressions: the value credited to it x 1000 / impressions.",
        "add_to_carts" => "Add-to-carts of an item whose latest earlier click in the same session was on it.",
        "add_to_cart_rate" => "Add-to-carts credited to it / its clicks.",
        "position" => "The place of the clicked item in the recommendation's list (1 is first).",
        "position_impressions" => "Impressions that showed at least this many items.",
        "position_clicks" => "Clicks on the item shown at this position.",
        "position_ctr" => "Clicks at this position / impressions showing it.",
        "completions" => "Goal events in the range.",
        "goal_sessions" => "Sessions in the range with at least one such goal event.",
        "goal_conversion_rate" => "Sessions with the goal / all sessions.",
        "personalized_conversion_rate" => "Personalized sessions with the goal / personalized sessions.",
        "goal_value" => "The sum of the goal events' values.",
        "attributed_value" => "Net revenue of these sessions' orders credited to a placement by the chosen model.",
        "p_value_adjusted" => {
            "The p-value adjusted for testing several lifts at once (Holm): compare this one with 0.05."
        }
        "rpv_lift_cuped" => {
            "Revenue-per-visitor lift with the visitors' spending before the test taken out (CUPED): a narrower estimate."
        }
        "topics" => {
            "Widget topics (interaction labels): visitors who used one, and of them those who ordered within 30 days."
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_defined_here_is_defined_in_the_metrics_doc() {
        let doc = include_str!("../../../docs/metrics.md");
        let figures = [
            "visitors",
            "sessions",
            "personalized_sessions",
            "conversion_rate",
            "aov",
            "bounce_rate",
            "revenue",
            "orders",
            "active_placements",
            "impressions",
            "product_impressions",
            "clicks",
            "clicked_sessions",
            "hovered_sessions",
            "ctr",
            "converted_clicks",
            "cr",
            "value",
            "direct_revenue",
            "assisted_revenue",
            "unique_visitors",
            "purchases",
            "purchase_sessions_share",
            "revenue_change",
            "started",
            "profiles",
            "completed",
            "cancelled",
            "notifications",
            "converted",
            "revenue_per_visitor",
            "incremental_revenue",
            "cr_lift",
            "rpv_lift",
            "srm_p_value",
            "rpm",
            "add_to_carts",
            "add_to_cart_rate",
            "completions",
            "attributed_value",
            "rpv_lift_cuped",
            "personalized_conversion_rate",
        ];
        for figure in figures {
            assert!(!definition(figure).is_empty(), "{figure} has a definition here");
            assert!(doc.contains(&format!("`{figure}`")), "{figure} is defined in docs/metrics.md");
        }
    }
}
