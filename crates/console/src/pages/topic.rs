//! `/ui/topics/NAME`: partitions, configs (overrides highlighted, editable), consumers,
//! throughput; and its actions (`POST` with `action` = `set-config`, `delete-config`,
//! `add-partitions`, `purge`, `delete`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use sluice_broker::admin::{ConfigChange, ConfigSource, TopicConsumer, TopicDetail};

use super::{describe, not_found_page, notice_text, see_other, status_of};
use crate::format::{bytes, count};
use crate::forms::{Posted, audit};
use crate::layout::{self, Nav, Page, chart, facts, group_url, html_response, token, topic_url};
use crate::{AppState, Console};

/// `?notice=` after a change.
#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    #[serde(default)]
    notice: Option<String>,
}

/// `GET /ui/topics/{name}`.
pub async fn page(
    State(console): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Response {
    let notice = notice_text(query.notice.as_deref()).map(layout::notice);
    render(&console, &name, notice, StatusCode::OK)
}

fn render(console: &Console, name: &str, message: Option<Markup>, status: StatusCode) -> Response {
    let Some(detail) = console.admin.topic(name) else {
        return not_found_page(console, &format!("There is no topic named '{name}'."));
    };
    let consumers = console.admin.topic_consumers(name);
    let page = Page {
        title: &format!("Topic {name}"),
        nav: Nav::Topics,
        charts: true,
    };
    html_response(
        status,
        page.render(console, body(console, &detail, &consumers, message)),
    )
}

fn source_name(source: ConfigSource) -> &'static str {
    match source {
        ConfigSource::DynamicTopic => "topic",
        ConfigSource::DynamicBroker => "broker (dynamic)",
        ConfigSource::StaticBroker => "broker (static)",
        ConfigSource::Default => "default",
    }
}

fn body(
    console: &Console,
    d: &TopicDetail,
    consumers: &[TopicConsumer],
    message: Option<Markup>,
) -> Markup {
    let t = &d.summary;
    let url = topic_url(&t.name);
    let writable = !console.config.read_only;
    html! {
        @if let Some(m) = message { (m) }
        p.actions {
            a.button href=(format!("{url}/messages")) { "Messages" }
        }
        (facts(&[
            ("Id", html! { code { (t.id) } }),
            ("Partitions", html! { (t.partitions) }),
            ("Replication factor", html! { (t.replication_factor) }),
            ("Size", html! { (bytes(t.size_bytes)) }),
            ("Records (approx.)", html! { (count(t.approximate_records)) }),
            ("Internal", html! { (if t.internal { "yes" } else { "no" }) }),
        ]))
        section aria-labelledby="partitions" {
            h2 #partitions { "Partitions" }
            table {
                thead { tr {
                    th scope="col" { "Partition" } th scope="col" { "Leader" } th scope="col" { "Replicas" }
                    th scope="col" { "In sync" } th scope="col" { "Log start" } th scope="col" { "High watermark" }
                    th scope="col" { "Log end" } th scope="col" { "Size" }
                } }
                tbody {
                    @for p in &d.partitions {
                        tr {
                            th scope="row" { (p.index) }
                            td.bad[p.leader < 0] { @if p.leader < 0 { "none" } @else { (p.leader) } }
                            td { (join(&p.replicas)) }
                            td.bad[p.isr.len() < p.replicas.len()] { (join(&p.isr)) }
                            @if let Some(l) = &p.local {
                                td.num { (count(l.log_start_offset)) }
                                td.num { (count(l.high_watermark)) }
                                td.num { (count(l.log_end_offset)) }
                                td.num { (bytes(l.size_bytes)) }
                            } @else {
                                td colspan="4" { "not on this node" }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="consumers" {
            h2 #consumers { "Consumer groups" }
            @if consumers.is_empty() {
                p { "No group has committed offsets for this topic." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Group" } th scope="col" { "Total lag" } th scope="col" { "Max partition lag" } } }
                    tbody {
                        @for c in consumers {
                            tr {
                                th scope="row" { a href=(group_url(&c.group)) { (c.group) } }
                                td.num { (count(c.total_lag)) }
                                td.num { (count(c.max_lag)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="throughput" {
            h2 #throughput { "Throughput" }
            div.charts {
                (chart("Bytes per second (live)", &format!("{url}/series"), &[(0, "in"), (1, "out")], "B/s", &[]))
                (chart("Records per second (live)", &format!("{url}/series"), &[(2, "in"), (3, "out")], "records/s", &[]))
            }
        }
        section aria-labelledby="configs" {
            h2 #configs { "Configs" }
            table.configs {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Value" } th scope="col" { "Source" } th scope="col" { "Default" } } }
                tbody {
                    @for c in &d.configs {
                        tr.override[c.is_override()] {
                            th scope="row" { code { (c.name) } }
                            td { code { (c.value) } }
                            td { (source_name(c.source)) }
                            td { code { (c.default) } }
                        }
                    }
                }
            }
            @if writable && !t.internal {
                form.inline method="post" action=(url) {
                    (token(console))
                    label for="config-name" { "Config" }
                    select #config-name name="name" {
                        @for c in &d.configs { option value=(c.name) { (c.name) } }
                    }
                    label for="config-value" { "Value" }
                    input #config-value name="value";
                    button type="submit" name="action" value="set-config" { "Set" }
                    button type="submit" name="action" value="delete-config" { "Back to default" }
                }
            }
        }
        @if writable && !t.internal {
            section.danger aria-labelledby="manage" {
                h2 #manage { "Manage" }
                form.inline method="post" action=(url) {
                    (token(console))
                    label for="count" { "Partitions" }
                    input #count name="count" type="number" min=(t.partitions + 1) value=(t.partitions + 1);
                    button type="submit" name="action" value="add-partitions" { "Add partitions" }
                }
                form.inline method="post" action=(url) {
                    (token(console))
                    label.inline { input type="checkbox" name="confirm" value="yes" required; " Delete every record (up to each partition's high watermark)" }
                    button type="submit" name="action" value="purge" { "Purge" }
                }
                form.inline method="post" action=(url) {
                    (token(console))
                    label for="confirm-name" { "Type the topic's name to delete it" }
                    input #confirm-name name="confirm" autocomplete="off" required;
                    button.destructive type="submit" name="action" value="delete" { "Delete topic" }
                }
            }
        }
    }
}

fn join(ids: &[i32]) -> String {
    ids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `POST /ui/topics/{name}`.
pub async fn act(
    State(console): State<AppState>,
    Path(name): Path<String>,
    form: Posted,
) -> Response {
    let action = form.get("action").unwrap_or("").to_string();
    let outcome: Result<&str, (StatusCode, String)> = match action.as_str() {
        "set-config" | "delete-config" => {
            let config = form.get("name").unwrap_or("").to_string();
            let change = if action == "set-config" {
                ConfigChange::Set(config, form.raw("value").trim().to_string())
            } else {
                ConfigChange::Delete(config)
            };
            console
                .admin
                .alter_topic_configs(&name, &[change])
                .await
                .map(|()| "config")
                .map_err(|e| (status_of(&e), describe(&e)))
        }
        "add-partitions" => match form.number::<i32>("count", "Partitions") {
            Err(reason) => Err((StatusCode::BAD_REQUEST, reason)),
            Ok(n) => console
                .admin
                .add_partitions(&name, n)
                .await
                .map(|()| "partitions")
                .map_err(|e| (status_of(&e), describe(&e))),
        },
        "purge" if form.get("confirm") == Some("yes") => console
            .admin
            .purge_topic(&name)
            .map(|_| "purged")
            .map_err(|e| (status_of(&e), describe(&e))),
        "purge" => Err((
            StatusCode::BAD_REQUEST,
            "Tick the box to confirm the purge.".to_string(),
        )),
        "delete" if form.get("confirm") == Some(name.as_str()) => console
            .admin
            .delete_topic(&name)
            .await
            .map(|()| "deleted")
            .map_err(|e| (status_of(&e), describe(&e))),
        "delete" => Err((
            StatusCode::BAD_REQUEST,
            "The name typed does not match the topic's: nothing was deleted.".to_string(),
        )),
        _ => Err((StatusCode::BAD_REQUEST, "Unknown action.".to_string())),
    };
    audit(
        form.peer,
        &action,
        &name,
        &outcome.as_ref().map(|_| ()).map_err(|(_, e)| e.clone()),
    );
    match outcome {
        Ok("deleted") => see_other("/ui/topics?notice=deleted"),
        Ok(notice) => see_other(&format!("{}?notice={notice}", topic_url(&name))),
        Err((status, reason)) => render(&console, &name, Some(layout::error(&reason)), status),
    }
}
