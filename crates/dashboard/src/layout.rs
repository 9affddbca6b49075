//! The page around every view: header with the site switcher and sign-out, the page
//! navigation, and the controls (dates, page type, model) as a plain GET form.

use maud::{html, Markup, DOCTYPE};

use crate::view::{segment_values, Preset, View, DIMENSIONS, MODELS, PAGE_TYPES};

/// The pages, in the navigation's order: (path under the site, label).
pub const PAGES: [(&str, &str); 6] = [
    ("", "Overview"),
    ("placements", "Placements"),
    ("rollups", "Kinds, campaigns, sequences"),
    ("recommendations", "Recommendations"),
    ("experiments", "Experiments"),
    ("journeys", "Journeys"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · upshot" }
            link rel="icon" href="data:,";
            link rel="stylesheet" href="/assets/app.css";
            script src="/assets/app.js" defer {}
        }
    }
}

/// A whole page of the site's dashboard; `current` is the path under the site.
pub fn page(view: &View, current: &str, title: &str, content: Markup) -> String {
    let page_path = view.site_path(current);
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/" { "upshot" }
                    form.switcher method="get" action="/switch" {
                        label { span.visually-hidden { "Site" }
                            select name="site" data-autosubmit {
                                @for site in &view.sites {
                                    option value=(site) selected[*site == view.site] { (site) }
                                }
                            }
                        }
                        noscript { button type="submit" { "Switch" } }
                    }
                    form.signout method="post" action="/signout" { button type="submit" { "Sign out" } }
                }
                nav.pages {
                    @for (path, label) in PAGES {
                        a href=(view.href(&view.site_path(path), &[("sort", ""), ("dir", "")])) aria-current=[(path == current.split('/').next().unwrap_or("")).then_some("page")] { (label) }
                    }
                }
                (controls(view, &page_path))
                main {
                    h1 { (title) }
                    p.range { (view.from) " – " (view.to)
                        @if let Some(page_type) = &view.page_type { " · page type " strong { (page_type) } }
                        @if let Some(segment) = &view.segment { " · only sessions with " strong { (segment) } }
                        " · " (MODELS.iter().find(|(name, _)| *name == view.model).map_or("", |(_, label)| label)) " attribution" }
                    (content)
                }
                footer { "Figures as defined in docs/metrics.md; hover a label for its definition." }
            }
        }
    }
    .into_string()
}

fn controls(view: &View, page_path: &str) -> Markup {
    html! {
        form.controls method="get" action=(page_path) {
            label { "Dates "
                select name="preset" data-autosubmit {
                    @for preset in Preset::ALL {
                        option value=(preset.as_str()) selected[preset == view.preset] { (preset.label()) }
                    }
                }
            }
            label.custom { "From " input type="date" name="from" value=(view.from); }
            label.custom { "To " input type="date" name="to" value=(view.to); }
            label { "Page type "
                select name="page_type" data-autosubmit {
                    option value="" selected[view.page_type.is_none()] { "All" }
                    @for page_type in PAGE_TYPES {
                        option value=(page_type) selected[view.page_type.as_deref() == Some(page_type)] { (page_type) }
                    }
                    @if let Some(custom) = view.page_type.as_deref().filter(|page_type| !PAGE_TYPES.contains(page_type)) {
                        option value=(custom) selected { (custom) }
                    }
                }
            }
            label { "Attribution "
                select name="model" data-autosubmit {
                    @for (name, label) in MODELS {
                        option value=(name) selected[name == view.model] { (label) }
                    }
                }
            }
            label { "Sessions "
                select name="segment" data-autosubmit {
                    option value="" selected[view.segment.is_none()] { "All" }
                    @for (dimension, label) in DIMENSIONS {
                        optgroup label=(label) {
                            @for value in segment_values(dimension) {
                                @let segment = format!("{dimension}:{value}");
                                option value=(segment) selected[view.segment.as_deref() == Some(segment.as_str())] { (label) ": " (value) }
                            }
                        }
                    }
                    @if let Some(custom) = view.segment.as_deref().filter(|segment| {
                        !DIMENSIONS.iter().any(|(dimension, _)| segment_values(dimension).iter().any(|value| *segment == format!("{dimension}:{value}")))
                    }) {
                        option value=(custom) selected { (custom) }
                    }
                }
            }
            @if let Some(kind) = &view.kind { input type="hidden" name="kind" value=(kind); }
            @if let Some(breakdown) = &view.breakdown { input type="hidden" name="breakdown" value=(breakdown); }
            button type="submit" { "Apply" }
        }
    }
}

/// The sign-in page: a site's secret key, or the admin password.
pub fn sign_in(message: Option<&str>) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body.signin {
                main {
                    h1 { "upshot" }
                    p { "Sign in with your site's secret key, or with the admin password." }
                    @if let Some(message) = message { p.error role="alert" { (message) } }
                    form method="post" action="/signin" {
                        label { "Site " input type="text" name="site" autocomplete="username" placeholder="shop"; }
                        label { "Secret key or admin password " input type="password" name="secret" autocomplete="current-password" required; }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
    .into_string()
}

/// A page that says what went wrong and how to go on.
pub fn problem(title: &str, message: &str, back: &str) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.signin { main { h1 { (title) } p.error role="alert" { (message) } p { a href=(back) { "Back" } } } }
        }
    }
    .into_string()
}

/// The page shown while a view's figures are computed for the first time: it reloads
/// itself every second (no script needed) until they are there.
pub fn computing(view: &View) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="refresh" content="1";
                title { "Computing · upshot" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/assets/app.css";
            }
            body.signin {
                main {
                    h1 { "Computing the figures…" }
                    p { "This view (" (view.from) " – " (view.to) ") is new: its figures are being computed from every event. "
                        "The page reloads by itself in a moment." }
                    p.muted { "Views opened once stay ready for the next ten minutes." }
                }
            }
        }
    }
    .into_string()
}
