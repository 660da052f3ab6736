//! `/ui/`: the nodes, partition health, disk, connections and the last hour's charts.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use sluice_broker::admin::ClusterOverview;

use crate::format::{bytes, count, duration};
use crate::layout::{Nav, Page, chart, facts, html_response};
use crate::series::Point;
use crate::{AppState, Console};

/// `GET /ui/`.
pub async fn page(State(console): State<AppState>) -> Response {
    let overview = console.admin.overview();
    let recent = console.series.since(console.admin.now_ms() / 1000 - 10);
    let page = Page {
        title: "Overview",
        nav: Nav::Overview,
        charts: true,
    };
    html_response(
        StatusCode::OK,
        page.render(&console, body(&console, &overview, &recent)),
    )
}

fn body(_console: &Console, o: &ClusterOverview, recent: &[Point]) -> Markup {
    let h = &o.health;
    let recent: Vec<(i64, Vec<Option<f64>>)> = recent.iter().map(|p| (p.t, p.v.to_vec())).collect();
    html! {
        (facts(&[
            ("Cluster id", html! { code { (o.cluster_id) } }),
            ("This node", html! { (o.local_node) }),
            ("Version", html! { (o.version) }),
            ("Uptime", html! { (duration(o.uptime)) }),
            ("Topics", html! { (o.topics) }),
            ("Partitions", html! { (count(i64::try_from(h.partitions).unwrap_or(i64::MAX))) }),
            ("Client connections", html! { (o.connections) }),
            ("Metadata quorum leader", html! {
                @match o.quorum_leader { Some(id) => (id), None => "single node (no quorum)" }
            }),
        ]))
        section aria-labelledby="health" {
            h2 #health { "Partition health" }
            ul.tiles {
                (tile("Offline", h.offline, "partitions without a leader"))
                (tile("Under-replicated", h.under_replicated, "fewer in-sync replicas than replicas"))
                (tile("Under min ISR", h.under_min_isr, "acks=all writes fail"))
            }
        }
        section aria-labelledby="nodes" {
            h2 #nodes { "Nodes" }
            table {
                thead { tr { th scope="col" { "Id" } th scope="col" { "Address" } th scope="col" { "Rack" } th scope="col" { "State" } th scope="col" { "Version" } th scope="col" { "Uptime" } } }
                tbody {
                    @for n in &o.nodes {
                        tr {
                            td { (n.id) @if n.is_local { " (this node)" } }
                            td { (n.host) ":" (n.port) }
                            td { (n.rack.as_deref().unwrap_or("–")) }
                            td.bad[n.fenced] {
                                @if n.fenced { "fenced" } @else if n.shutting_down { "shutting down" } @else { "active" }
                                @if o.quorum_leader == Some(n.id) { ", quorum leader" }
                            }
                            td { @if n.is_local { (o.version) } @else { "–" } }
                            td { @if n.is_local { (duration(o.uptime)) } @else { "–" } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="disk" {
            h2 #disk { "Disk" }
            table {
                thead { tr { th scope="col" { "Log directory" } th scope="col" { "Logs" } th scope="col" { "Free" } th scope="col" { "Size" } } }
                tbody {
                    @for d in &o.log_dirs {
                        tr {
                            td { code { (d.path.display()) } }
                            td { (bytes(d.log_bytes)) }
                            td { (d.usable_bytes.map_or_else(|| "–".into(), bytes)) }
                            td { (d.total_bytes.map_or_else(|| "–".into(), bytes)) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="charts" {
            h2 #charts { "Last hour" }
            div.charts {
                (chart("Bytes per second", "/ui/series", &[(0, "in"), (1, "out")], "B/s", &recent))
                (chart("Records per second", "/ui/series", &[(2, "in"), (3, "out")], "records/s", &recent))
                (chart("Requests per second", "/ui/series", &[(4, "requests")], "requests/s", &recent))
                (chart("p99 latency (ms)", "/ui/series", &[(5, "requests (all but Fetch, JoinGroup, SyncGroup)"), (6, "fsync")], "ms", &recent))
            }
        }
    }
}

fn tile(label: &str, n: usize, help: &str) -> Markup {
    html! {
        li.tile.bad[n > 0] {
            span.value { (n) }
            span.label { (label) }
            span.help { (help) }
        }
    }
}
