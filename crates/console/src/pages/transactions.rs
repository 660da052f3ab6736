//! `/ui/transactions`: transactional ids (overdue open transactions marked) and the
//! producers each partition knows.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use crate::AppState;
use crate::format::lag_ms;
use crate::layout::{Nav, Page, html_response, time, topic_url};

/// Producer rows shown at most (a broker may know many producers).
const MAX_PRODUCERS: usize = 500;

/// `GET /ui/transactions`.
pub async fn page(State(console): State<AppState>) -> Response {
    let now = console.admin.now_ms();
    let transactions = console.admin.transactions();
    let producers = console.admin.producers();
    let page = Page {
        title: "Transactions and producers",
        nav: Nav::Transactions,
        charts: false,
    };
    let body = html! {
        section aria-labelledby="txns" {
            h2 #txns { "Transactional ids" }
            @if transactions.is_empty() {
                p { "No transactional producer has registered with this node's transaction coordinator." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Transactional id" } th scope="col" { "Producer id" } th scope="col" { "Epoch" }
                        th scope="col" { "State" } th scope="col" { "Open for" } th scope="col" { "Timeout" }
                        th scope="col" { "Partitions" } th scope="col" { "Last change" }
                    } }
                    tbody {
                        @for t in &transactions {
                            tr {
                                th scope="row" { (t.id) }
                                td.num { (t.producer_id) }
                                td.num { (t.epoch) }
                                td { (t.state) }
                                td.num.bad[t.overdue(now)] {
                                    (lag_ms(t.started_ms.map(|s| now - s)))
                                    @if t.overdue(now) { " (past its timeout)" }
                                }
                                td.num { (lag_ms(Some(i64::from(t.timeout_ms)))) }
                                td {
                                    @for (topic, ps) in &t.partitions {
                                        a href=(topic_url(topic)) { (topic) } " [" (ps.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")) "] "
                                    }
                                }
                                td { (time(t.updated_ms)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="producers" {
            h2 #producers { "Producers by partition" }
            @if producers.is_empty() {
                p { "No idempotent or transactional producer has written to this node." }
            } @else {
                @if producers.len() > MAX_PRODUCERS {
                    p.count { "The first " (MAX_PRODUCERS) " of " (producers.len()) " producers." }
                }
                table {
                    thead { tr {
                        th scope="col" { "Topic" } th scope="col" { "Partition" } th scope="col" { "Producer id" }
                        th scope="col" { "Epoch" } th scope="col" { "Last sequence" } th scope="col" { "Last write" }
                        th scope="col" { "Open transaction from offset" }
                    } }
                    tbody {
                        @for p in producers.iter().take(MAX_PRODUCERS) {
                            tr {
                                th scope="row" { a href=(topic_url(&p.topic)) { (p.topic) } }
                                td.num { (p.partition) }
                                td.num { (p.producer_id) }
                                td.num { (p.epoch) }
                                td.num { (p.last_sequence) }
                                td { (time(p.last_timestamp)) }
                                td.num { (p.ongoing_txn_first_offset.map_or_else(|| "–".to_string(), |o| o.to_string())) }
                            }
                        }
                    }
                }
            }
        }
    };
    html_response(StatusCode::OK, page.render(&console, body))
}
