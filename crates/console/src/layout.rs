//! The page shell (head, navigation, skip link, footer) and the pieces pages share:
//! notices, errors, the form token, times, sortable headers, paging.

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::Console;
use crate::assets::url;
use crate::forms::TOKEN_FIELD;

/// The section of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Topics,
    Groups,
    Transactions,
    Brokers,
}

const NAV: [(Nav, &str, &str); 5] = [
    (Nav::Overview, "/ui/", "Overview"),
    (Nav::Topics, "/ui/topics", "Topics"),
    (Nav::Groups, "/ui/groups", "Consumer groups"),
    (Nav::Transactions, "/ui/transactions", "Transactions"),
    (Nav::Brokers, "/ui/brokers", "Brokers"),
];

/// htmx settings: no injected `<style>` (the CSP forbids it), no eval, no scripts from
/// swapped content, requests to this origin only, no history cache (record contents
/// stay out of the browser's storage).
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true,"historyCacheSize":0}"#;

/// A whole page.
pub struct Page<'a> {
    /// The `<title>` and `<h1>`.
    pub title: &'a str,
    /// Where it sits in the navigation.
    pub nav: Nav,
    /// Whether it draws charts (loads uPlot).
    pub charts: bool,
}

impl Page<'_> {
    /// The page around `body`.
    pub fn render(&self, console: &Console, body: Markup) -> Markup {
        html! {
            (DOCTYPE)
            html.no-js lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="color-scheme" content="light dark";
                    meta name="htmx-config" content=(HTMX_CONFIG);
                    title { (self.title) " · Sluice" }
                    link rel="icon" href="data:,";
                    link rel="stylesheet" href=(url("console.css"));
                    script src=(url("htmx.min.js")) defer {}
                    @if self.charts {
                        script src=(url("uPlot.iife.min.js")) defer {}
                    }
                    script src=(url("console.js")) defer {}
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    header.top {
                        a.brand href="/ui/" { "Sluice" }
                        nav aria-label="Main" {
                            ul {
                                @for (nav, href, label) in NAV {
                                    li {
                                        @if nav == self.nav {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        @if console.config.read_only {
                            span.badge title="Changes are refused: the broker runs with console = read-only" { "read-only" }
                        }
                    }
                    main #main {
                        h1 { (self.title) }
                        (body)
                    }
                    footer { "Sluice " (env!("CARGO_PKG_VERSION")) }
                }
            }
        }
    }
}

/// An HTML response.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// The hidden form-token field.
pub fn token(console: &Console) -> Markup {
    html! { input type="hidden" name=(TOKEN_FIELD) value=(console.csrf_token); }
}

/// A success message.
pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

/// An error message.
pub fn error(text: &str) -> Markup {
    html! { p.error role="alert" { (text) } }
}

/// A timestamp shown in UTC, with the value console.js turns into local time.
pub fn time(ms: i64) -> Markup {
    let text = crate::format::timestamp(ms);
    html! { time datetime=(text) { (text) } }
}

/// Percent-encodes a URL path segment or query value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL of a topic's page.
pub fn topic_url(name: &str) -> String {
    format!("/ui/topics/{}", encode(name))
}

/// The URL of a group's page.
pub fn group_url(id: &str) -> String {
    format!("/ui/groups/{}", encode(id))
}

/// A column header that sorts by `key` (ascending first, then flipping).
pub fn sort_header(label: &str, key: &str, sort: &str, descending: bool, base: &str) -> Markup {
    let (next_desc, marker, aria) = if sort == key {
        if descending {
            (false, " ▼", "descending")
        } else {
            (true, " ▲", "ascending")
        }
    } else {
        (false, "", "none")
    };
    let href = format!(
        "{base}{}sort={key}&dir={}",
        if base.contains('?') { "&" } else { "?" },
        if next_desc { "desc" } else { "asc" }
    );
    html! {
        th scope="col" aria-sort=(aria) { a href=(href) { (label) (marker) } }
    }
}

/// "Page 2 of 7" with previous and next links.
pub fn pager(page: usize, pages: usize, link: impl Fn(usize) -> String) -> Markup {
    html! {
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 { a href=(link(page - 1)) rel="prev" { "← Previous" } }
                span { "Page " (page) " of " (pages) }
                @if page < pages { a href=(link(page + 1)) rel="next" { "Next →" } }
            }
        }
    }
}

/// A labelled description list of (term, value) pairs.
pub fn facts(items: &[(&str, Markup)]) -> Markup {
    html! {
        dl.facts {
            @for (term, value) in items {
                div { dt { (term) } dd { (value) } }
            }
        }
    }
}

/// A chart console.js draws with uPlot from the server-sent events at `source`, over
/// the series `series` (indices into each point's values), with the latest points as a
/// table for readers without the chart.
pub fn chart(
    title: &str,
    source: &str,
    series: &[(usize, &str)],
    unit: &str,
    recent: &[(i64, Vec<Option<f64>>)],
) -> Markup {
    let indices: Vec<String> = series.iter().map(|(i, _)| i.to_string()).collect();
    let labels: Vec<&str> = series.iter().map(|(_, l)| *l).collect();
    html! {
        figure.chart data-source=(source) data-series=(indices.join(",")) data-labels=(labels.join("|")) data-unit=(unit) {
            figcaption { (title) }
            div.plot {}
            table.fallback {
                caption { "Latest values" }
                thead { tr { th scope="col" { "Time (UTC)" } @for l in &labels { th scope="col" { (l) } } } }
                tbody {
                    @for (t, values) in recent.iter().rev().take(5) {
                        tr {
                            td { (time(t * 1000)) }
                            @for (i, _) in series {
                                td { (values.get(*i).copied().flatten().map_or_else(|| "–".to_string(), |v| format!("{v:.1}"))) }
                            }
                        }
                    }
                }
            }
        }
    }
}
