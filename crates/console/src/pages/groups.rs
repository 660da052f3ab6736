//! `/ui/groups` and `/ui/groups/ID`: state, members and lag (refreshed every five
//! seconds), offset resets (a preview first; Empty groups only) and deletion.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use sluice_broker::admin::{GroupDetail, OffsetChange, ResetTarget};

use super::{describe, not_found_page, notice_text, see_other, status_of};
use crate::format::{count, lag_ms, parse_timestamp};
use crate::forms::{Posted, audit};
use crate::layout::{self, Nav, Page, facts, group_url, html_response, token, topic_url};
use crate::{AppState, Console};

/// `GET /ui/groups`.
pub async fn list(State(console): State<AppState>) -> Response {
    let groups = console.admin.groups().await;
    let page = Page {
        title: "Consumer groups",
        nav: Nav::Groups,
        charts: false,
    };
    let body = html! {
        @if groups.is_empty() {
            p { "No consumer groups yet." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Group" } th scope="col" { "State" } th scope="col" { "Protocol" }
                    th scope="col" { "Members" } th scope="col" { "Topics" } th scope="col" { "Total lag" }
                    th scope="col" { "Max lag (time)" }
                } }
                tbody {
                    @for g in &groups {
                        tr {
                            th scope="row" { a href=(group_url(&g.id)) { (g.id) } }
                            td { (g.state) }
                            td { (protocol(&g.protocol_type, &g.protocol)) }
                            td.num { (g.members) }
                            td { (g.topics.join(", ")) }
                            td.num { (count(g.total_lag)) }
                            td.num { (lag_ms(g.max_lag_ms)) }
                        }
                    }
                }
            }
        }
    };
    html_response(StatusCode::OK, page.render(&console, body))
}

fn protocol(kind: &str, assignor: &str) -> String {
    match (kind.is_empty(), assignor.is_empty()) {
        (true, _) => "offsets only".to_string(),
        (false, true) => kind.to_string(),
        (false, false) => format!("{kind} ({assignor})"),
    }
}

/// `?notice=` after a change; `?fragment=partitions` for the refreshing table alone.
#[derive(Debug, Default, Deserialize)]
pub struct GroupQuery {
    #[serde(default)]
    notice: Option<String>,
    #[serde(default)]
    fragment: Option<String>,
}

/// `GET /ui/groups/{id}`.
pub async fn page(
    State(console): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<GroupQuery>,
    headers: HeaderMap,
) -> Response {
    let message = notice_text(query.notice.as_deref()).map(layout::notice);
    let Some(detail) = console.admin.group(&id).await else {
        return not_found_page(&console, &format!("There is no group '{id}'."));
    };
    if query.fragment.as_deref() == Some("partitions") && headers.contains_key("hx-request") {
        return html_response(StatusCode::OK, partitions(&detail));
    }
    render(&console, &detail, message, None, StatusCode::OK)
}

fn render(
    console: &Console,
    detail: &GroupDetail,
    message: Option<Markup>,
    preview: Option<(&ResetForm, &[OffsetChange])>,
    status: StatusCode,
) -> Response {
    let page = Page {
        title: &format!("Group {}", detail.summary.id),
        nav: Nav::Groups,
        charts: false,
    };
    html_response(
        status,
        page.render(console, body(console, detail, message, preview)),
    )
}

fn body(
    console: &Console,
    d: &GroupDetail,
    message: Option<Markup>,
    preview: Option<(&ResetForm, &[OffsetChange])>,
) -> Markup {
    let s = &d.summary;
    let url = group_url(&s.id);
    let empty = matches!(s.state.as_str(), "Empty" | "Dead");
    html! {
        @if let Some(m) = message { (m) }
        (facts(&[
            ("State", html! { (s.state) }),
            ("Protocol", html! { (protocol(&s.protocol_type, &s.protocol)) }),
            ("Members", html! { (s.members) }),
            ("Total lag", html! { (count(s.total_lag)) }),
            ("Max lag (time)", html! { (lag_ms(s.max_lag_ms)) }),
        ]))
        section aria-labelledby="members" {
            h2 #members { "Members" }
            @if d.members.is_empty() {
                p { "No members: the group is not consuming now." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Member" } th scope="col" { "Client" } th scope="col" { "Host" } th scope="col" { "Assigned" } } }
                    tbody {
                        @for m in &d.members {
                            tr {
                                th scope="row" { code { (m.member_id) } @if let Some(i) = &m.instance_id { " (static: " (i) ")" } }
                                td { (m.client_id) }
                                td { (m.host) }
                                td {
                                    @for (topic, ps) in &m.assignment {
                                        (topic) " [" (ps.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")) "] "
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="offsets" {
            h2 #offsets { "Partitions" }
            (partitions(d))
        }
        @if let Some((form, changes)) = preview { (preview_table(console, &url, form, changes)) }
        @if !console.config.read_only {
            section.danger aria-labelledby="reset" {
                h2 #reset { "Reset offsets" }
                @if !empty {
                    p { "Offsets can only be reset while the group is Empty: stop its consumers first." }
                } @else {
                    (reset_form(console, &url, d))
                }
            }
            section.danger aria-labelledby="delete" {
                h2 #delete { "Delete" }
                @if empty {
                    form.inline method="post" action=(url) {
                        (token(console))
                        button.destructive type="submit" name="action" value="delete" { "Delete the group and its offsets" }
                    }
                }
                form.inline method="post" action=(url) {
                    (token(console))
                    label for="offsets-topic" { "Delete the group's offsets of" }
                    select #offsets-topic name="topic" {
                        @for t in &s.topics { option value=(t) { (t) } }
                    }
                    button.destructive type="submit" name="action" value="delete-offsets" { "Delete offsets" }
                }
            }
        }
    }
}

/// The per-partition table, which htmx reloads every five seconds.
fn partitions(d: &GroupDetail) -> Markup {
    let url = format!("{}?fragment=partitions", group_url(&d.summary.id));
    html! {
        div #group-partitions hx-get=(url) hx-trigger="every 5s" hx-swap="outerHTML" {
            table {
                thead { tr {
                    th scope="col" { "Topic" } th scope="col" { "Partition" } th scope="col" { "Committed" }
                    th scope="col" { "End" } th scope="col" { "Lag" } th scope="col" { "Lag (time)" }
                    th scope="col" { "Member" } th scope="col" { "Client" } th scope="col" { "Host" }
                } }
                tbody {
                    @for p in &d.partitions {
                        tr {
                            th scope="row" { a href=(topic_url(&p.topic)) { (p.topic) } }
                            td.num { (p.partition) }
                            td.num { (p.committed.map_or_else(|| "–".to_string(), count)) }
                            td.num { (count(p.end)) }
                            td.num { (p.lag.map_or_else(|| "–".to_string(), count)) }
                            td.num { (lag_ms(p.lag_ms)) }
                            td { code { (p.member_id.as_deref().unwrap_or("–")) } }
                            td { (p.client_id.as_deref().unwrap_or("–")) }
                            td { (p.host.as_deref().unwrap_or("–")) }
                        }
                    }
                }
            }
        }
    }
}

/// What the reset form asks for, to show it again with its preview.
#[derive(Debug, Clone, Default)]
struct ResetForm {
    topic: String,
    target: String,
    value: String,
}

impl ResetForm {
    fn read(form: &Posted) -> Self {
        Self {
            topic: form.get("topic").unwrap_or("").to_string(),
            target: form.get("target").unwrap_or("").to_string(),
            value: form.get("value").unwrap_or("").to_string(),
        }
    }

    fn target(&self) -> Result<ResetTarget, String> {
        let number = |label: &str| {
            self.value
                .parse::<i64>()
                .map_err(|_| format!("{label} must be a whole number, not '{}'", self.value))
        };
        Ok(match self.target.as_str() {
            "earliest" => ResetTarget::Earliest,
            "latest" => ResetTarget::Latest,
            "offset" => ResetTarget::Offset(number("The offset")?),
            "shift" => ResetTarget::ShiftBy(number("The shift")?),
            "timestamp" => {
                ResetTarget::Timestamp(parse_timestamp(&self.value).ok_or_else(|| {
                    format!(
                        "'{}' is not a time (use 2026-12-07T05:42:00Z or milliseconds)",
                        self.value
                    )
                })?)
            }
            other => return Err(format!("unknown reset target '{other}'")),
        })
    }

    fn topics(&self) -> Vec<String> {
        if self.topic.is_empty() {
            Vec::new()
        } else {
            vec![self.topic.clone()]
        }
    }
}

const TARGETS: [(&str, &str); 5] = [
    ("earliest", "Earliest"),
    ("latest", "Latest"),
    ("offset", "Offset"),
    ("timestamp", "Time (UTC)"),
    ("shift", "Shift by"),
];

fn reset_form(console: &Console, url: &str, d: &GroupDetail) -> Markup {
    html! {
        form.stack method="post" action=(url) {
            (token(console))
            label for="reset-topic" { "Topic" }
            select #reset-topic name="topic" {
                option value="" { "every topic of the group" }
                @for t in &d.summary.topics { option value=(t) { (t) } }
            }
            label for="reset-target" { "To" }
            select #reset-target name="target" {
                @for (value, label) in TARGETS { option value=(value) { (label) } }
            }
            label for="reset-value" { "Offset, time or shift (when the target needs one)" }
            input #reset-value name="value" placeholder="2026-12-07T05:42:00Z";
            button type="submit" name="action" value="preview" { "Preview" }
        }
    }
}

fn preview_table(
    console: &Console,
    url: &str,
    form: &ResetForm,
    changes: &[OffsetChange],
) -> Markup {
    html! {
        section aria-labelledby="preview" {
            h2 #preview { "Preview: nothing is changed yet" }
            table {
                thead { tr { th scope="col" { "Topic" } th scope="col" { "Partition" } th scope="col" { "Committed now" } th scope="col" { "After the reset" } } }
                tbody {
                    @for c in changes {
                        tr {
                            th scope="row" { (c.topic) }
                            td.num { (c.partition) }
                            td.num { (c.current.map_or_else(|| "–".to_string(), count)) }
                            td.num { (count(c.new)) }
                        }
                    }
                }
            }
            form.inline method="post" action=(url) {
                (token(console))
                input type="hidden" name="topic" value=(form.topic);
                input type="hidden" name="target" value=(form.target);
                input type="hidden" name="value" value=(form.value);
                button.destructive type="submit" name="action" value="reset" { "Apply this reset" }
            }
        }
    }
}

/// `POST /ui/groups/{id}`.
pub async fn act(
    State(console): State<AppState>,
    Path(id): Path<String>,
    form: Posted,
) -> Response {
    let action = form.get("action").unwrap_or("").to_string();
    let failed = |status: StatusCode, reason: String| (status, reason);
    let outcome: Result<Result<&str, Vec<OffsetChange>>, (StatusCode, String)> =
        match action.as_str() {
            "preview" | "reset" => {
                let reset = ResetForm::read(&form);
                match reset.target() {
                    Err(reason) => Err(failed(StatusCode::BAD_REQUEST, reason)),
                    Ok(target) => console
                        .admin
                        .reset_offsets(&id, &reset.topics(), target, action == "preview")
                        .await
                        .map(|changes| {
                            if action == "preview" {
                                Err(changes)
                            } else {
                                Ok("reset")
                            }
                        })
                        .map_err(|e| (status_of(&e), describe(&e))),
                }
            }
            "delete" => console
                .admin
                .delete_group(&id)
                .await
                .map(|()| Ok("group-deleted"))
                .map_err(|e| (status_of(&e), describe(&e))),
            "delete-offsets" => {
                let topic = form.get("topic").unwrap_or("");
                console
                    .admin
                    .delete_group_offsets(&id, topic)
                    .await
                    .map(|()| Ok("offsets-deleted"))
                    .map_err(|e| (status_of(&e), describe(&e)))
            }
            _ => Err(failed(
                StatusCode::BAD_REQUEST,
                "Unknown action.".to_string(),
            )),
        };
    if action != "preview" {
        audit(
            form.peer,
            &format!("group-{action}"),
            &id,
            &outcome.as_ref().map(|_| ()).map_err(|(_, e)| e.clone()),
        );
    }
    match outcome {
        Ok(Ok("group-deleted")) => see_other("/ui/groups"),
        Ok(Ok(notice)) => see_other(&format!("{}?notice={notice}", group_url(&id))),
        Ok(Err(changes)) => match console.admin.group(&id).await {
            Some(detail) => {
                let reset = ResetForm::read(&form);
                render(
                    &console,
                    &detail,
                    None,
                    Some((&reset, &changes)),
                    StatusCode::OK,
                )
            }
            None => not_found_page(&console, &format!("There is no group '{id}'.")),
        },
        Err((status, reason)) => match console.admin.group(&id).await {
            Some(detail) => render(
                &console,
                &detail,
                Some(layout::error(&reason)),
                None,
                status,
            ),
            None => not_found_page(&console, &reason),
        },
    }
}
