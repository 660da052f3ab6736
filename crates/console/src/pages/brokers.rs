//! `/ui/brokers`: the nodes, this node's settings, and the broker configs changed at
//! runtime.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use crate::AppState;
use crate::format::duration;
use crate::layout::{Nav, Page, html_response};

/// `GET /ui/brokers`.
pub async fn page(State(console): State<AppState>) -> Response {
    let overview = console.admin.overview();
    let settings = console.admin.broker_settings();
    let dynamic = console.admin.dynamic_broker_configs();
    let page = Page {
        title: "Brokers",
        nav: Nav::Brokers,
        charts: false,
    };
    let body = html! {
        section aria-labelledby="nodes" {
            h2 #nodes { "Nodes" }
            table {
                thead { tr { th scope="col" { "Id" } th scope="col" { "Address" } th scope="col" { "Rack" } th scope="col" { "Role" } th scope="col" { "State" } th scope="col" { "Uptime" } } }
                tbody {
                    @for n in &overview.nodes {
                        tr {
                            th scope="row" { (n.id) }
                            td { (n.host) ":" (n.port) }
                            td { (n.rack.as_deref().unwrap_or("–")) }
                            td {
                                @if overview.quorum_leader == Some(n.id) { "metadata quorum leader" }
                                @else if n.is_local { "this node" }
                                @else { "broker" }
                            }
                            td.bad[n.fenced] {
                                @if n.fenced { "fenced" } @else if n.shutting_down { "shutting down" } @else { "active" }
                            }
                            td { @if n.is_local { (duration(overview.uptime)) } @else { "–" } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="dynamic" {
            h2 #dynamic { "Configs changed at runtime" }
            @if dynamic.is_empty() {
                p { "None: every topic default comes from the settings below." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Kafka name" } th scope="col" { "Value" } } }
                    tbody { @for (k, v) in &dynamic { tr { th scope="row" { code { (k) } } td { code { (v) } } } } }
                }
            }
        }
        section aria-labelledby="settings" {
            h2 #settings { "Settings of node " (overview.local_node) }
            table.configs {
                thead { tr { th scope="col" { "Setting" } th scope="col" { "Value" } th scope="col" { "Kafka name" } th scope="col" { "Description" } } }
                tbody {
                    @for s in &settings {
                        tr.override[!s.is_default] {
                            th scope="row" { code { (s.name) } }
                            td { code { (s.value.as_deref().unwrap_or("–")) } }
                            td { @if let Some(k) = s.kafka_name { code { (k) } } @else { "–" } }
                            td { (s.doc) @if !s.needs_restart { " (changeable at runtime)" } }
                        }
                    }
                }
            }
        }
    };
    html_response(StatusCode::OK, page.render(&console, body))
}
