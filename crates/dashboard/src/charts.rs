//! Charts drawn on the server as inline SVG: a daily line (or bars), a pair of bars,
//! and a confidence-interval bar. They scale with their container (viewBox) and carry a
//! text alternative; every label is escaped by the template.

use maud::{html, Markup};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// A rounded-up scale maximum: 1, 2 or 5 times a power of ten.
fn nice_max(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|step| step * power).find(|max| *max >= value).unwrap_or(value)
}

fn axis_label(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("{:.1}M", value / 1_000_000.0)
    } else if value >= 10_000.0 {
        format!("{:.0}k", value / 1_000.0)
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// A daily series as bars, with the first and last date under the axis.
pub fn daily_bars(title: &str, points: &[(String, f64)]) -> Markup {
    let max = nice_max(points.iter().map(|(_, value)| *value).fold(0.0, f64::max));
    let plot_width = WIDTH - LEFT - 8.0;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let slot = plot_width / points.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let summary =
        points.iter().map(|(date, value)| format!("{date}: {}", axis_label(*value))).collect::<Vec<_>>().join(", ");
    html! {
        figure.chart {
            figcaption { (title) }
            svg viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-label={(title) ": " (summary)} preserveAspectRatio="none" {
                @for step in 0..=2 {
                    @let y = TOP + plot_height * (1.0 - f64::from(step) / 2.0);
                    line.grid x1=(LEFT) x2=(WIDTH - 8.0) y1=(y) y2=(y) {}
                    text.axis x=(LEFT - 6.0) y=(y + 4.0) text-anchor="end" { (axis_label(max * f64::from(step) / 2.0)) }
                }
                @for (index, (date, value)) in points.iter().enumerate() {
                    @let height = plot_height * value / max;
                    rect.bar x=(LEFT + slot * index as f64 + (slot - bar) / 2.0) y=(TOP + plot_height - height)
                        width=(bar) height=(height) { title { (date) ": " (axis_label(*value)) } }
                }
                @if let (Some((first, _)), Some((last, _))) = (points.first(), points.last()) {
                    text.axis x=(LEFT) y=(HEIGHT - 6.0) { (first) }
                    text.axis x=(WIDTH - 8.0) y=(HEIGHT - 6.0) text-anchor="end" { (last) }
                }
            }
        }
    }
}

/// Two or more named amounts as horizontal bars.
pub fn bars(title: &str, values: &[(&str, f64, String)]) -> Markup {
    let max = values.iter().map(|(_, value, _)| *value).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let row = 34.0;
    let height = row * values.len() as f64 + 8.0;
    html! {
        figure.chart {
            figcaption { (title) }
            svg viewBox={"0 0 " (WIDTH) " " (height)} role="img" aria-label=(title) {
                @for (index, (label, value, shown)) in values.iter().enumerate() {
                    @let y = 4.0 + row * index as f64;
                    text.axis x="0" y=(y + 20.0) { (label) }
                    rect class={"bar bar-" (index)} x="150" y=(y + 4.0) width=((WIDTH - 300.0) * value / max) height="22" {}
                    text.value x=(156.0 + (WIDTH - 300.0) * value / max) y=(y + 20.0) { (shown) }
                }
            }
        }
    }
}

fn tone(low: f64, high: f64) -> &'static str {
    if low > 0.0 {
        "good"
    } else if high < 0.0 {
        "bad"
    } else {
        "neutral"
    }
}

/// A lift with its 95% interval on an axis through zero, and beneath it the
/// always-valid interval (SPEC section 9.5) when there is one, on the same scale.
pub fn interval(lift: Option<f64>, ci: Option<[f64; 2]>, sequential: Option<[f64; 2]>) -> Markup {
    let (Some(lift), Some([low, high])) = (lift, ci) else {
        return html! { span.muted { "–" } };
    };
    let widest = sequential.map_or(0.0, |[low, high]| low.abs().max(high.abs()));
    let reach = low.abs().max(high.abs()).max(lift.abs()).max(widest).max(0.01) * 1.1;
    let x = |value: f64| 100.0 + 90.0 * value / reach;
    let mut label = format!("{:+.1}% (95% interval {:+.1}% to {:+.1}%", lift * 100.0, low * 100.0, high * 100.0);
    if let Some([low, high]) = sequential {
        label.push_str(&format!("; always-valid {:+.1}% to {:+.1}%", low * 100.0, high * 100.0));
    }
    label.push(')');
    html! {
        span.interval-cell {
            svg.interval viewBox="0 0 200 28" width="200" height="28" role="img" aria-label=(label) {
                title { (label) }
                line.zero x1="100" x2="100" y1="2" y2="26" {}
                rect class={"ci " (tone(low, high))} x=(x(low)) y="5" width=((x(high) - x(low)).max(1.0)) height="7" rx="3" {}
                @if let Some([low, high]) = sequential {
                    rect class={"ci sequential " (tone(low, high))} x=(x(low)) y="16" width=((x(high) - x(low)).max(1.0)) height="7" rx="3" {}
                }
                circle.point cx=(x(lift)) cy="8.5" r="4" {}
            }
            span.interval-text { (label) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_up_to_readable_steps() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(130.0), 200.0);
        assert_eq!(nice_max(4_100.0), 5_000.0);
    }

    #[test]
    fn labels_in_charts_are_escaped() {
        let chart = daily_bars("<b>", &[("<script>".to_string(), 1.0)]).into_string();
        assert!(!chart.contains("<script>") && chart.contains("&lt;script&gt;"));
    }
}
