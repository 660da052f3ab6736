//! `/ui/topics`: every topic, searchable, sortable and paged on the server; and the form
//! that creates one (`POST /ui/topics`).

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use sluice_broker::admin::{NewTopicSpec, TopicConsumer, TopicSummary};

use super::{describe, notice_text, see_other, status_of};
use crate::format::{bytes, count};
use crate::forms::{Posted, audit};
use crate::layout::{self, Nav, Page, encode, html_response, pager, sort_header, token, topic_url};
use crate::series::TopicRate;
use crate::{AppState, Console};

/// Topics on one page.
pub const PAGE_SIZE: usize = 100;

/// The list's state, all in the URL.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Substring of the name to look for.
    #[serde(default)]
    pub q: String,
    /// Whether internal topics are listed (`1`).
    #[serde(default)]
    pub internal: String,
    /// The column sorted by.
    #[serde(default)]
    pub sort: String,
    /// `desc` for descending.
    #[serde(default)]
    pub dir: String,
    /// The page, from 1.
    #[serde(default)]
    pub page: Option<usize>,
    /// A fixed message after a change.
    #[serde(default)]
    pub notice: Option<String>,
}

/// One row of the list.
struct Row {
    topic: TopicSummary,
    rate: TopicRate,
    groups: usize,
    max_lag: Option<i64>,
}

/// What the create form had, to show it again with an error.
#[derive(Default)]
struct CreateForm {
    name: String,
    partitions: String,
    replication_factor: String,
    configs: String,
    error: Option<String>,
}

/// `GET /ui/topics`.
pub async fn page(State(console): State<AppState>, Query(query): Query<ListQuery>) -> Response {
    render(&console, &query, CreateForm::default(), StatusCode::OK)
}

fn render(console: &Console, query: &ListQuery, form: CreateForm, status: StatusCode) -> Response {
    let page = Page {
        title: "Topics",
        nav: Nav::Topics,
        charts: false,
    };
    let rows = rows(console, query);
    html_response(
        status,
        page.render(console, body(console, query, &rows, &form)),
    )
}

/// The topics the query selects, sorted.
fn rows(console: &Console, query: &ListQuery) -> Vec<Row> {
    let needle = query.q.trim().to_ascii_lowercase();
    let show_internal = query.internal == "1";
    let mut consumers: BTreeMap<String, Vec<TopicConsumer>> = console.admin.consumers_by_topic();
    let mut rows: Vec<Row> = console
        .admin
        .topics()
        .into_iter()
        .filter(|t| show_internal || !t.internal)
        .filter(|t| needle.is_empty() || t.name.to_ascii_lowercase().contains(&needle))
        .map(|topic| {
            let groups = consumers.remove(&topic.name).unwrap_or_default();
            Row {
                rate: console.series.topic_rate(&topic.name),
                groups: groups.len(),
                max_lag: groups.iter().map(|g| g.max_lag).max(),
                topic,
            }
        })
        .collect();
    let key = query.sort.as_str();
    rows.sort_by(|a, b| {
        let (x, y) = (&a.topic, &b.topic);
        let order = match key {
            "partitions" => x.partitions.cmp(&y.partitions),
            "rf" => x.replication_factor.cmp(&y.replication_factor),
            "under" => x.under_replicated.cmp(&y.under_replicated),
            "size" => x.size_bytes.cmp(&y.size_bytes),
            "records" => x.approximate_records.cmp(&y.approximate_records),
            "in" => a.rate.bytes_in.total_cmp(&b.rate.bytes_in),
            "out" => a.rate.bytes_out.total_cmp(&b.rate.bytes_out),
            "groups" => a.groups.cmp(&b.groups),
            "lag" => a.max_lag.cmp(&b.max_lag),
            _ => std::cmp::Ordering::Equal,
        };
        order.then_with(|| x.name.cmp(&y.name))
    });
    if query.dir == "desc" {
        rows.reverse();
    }
    rows
}

/// The list's URL with its search and filter (not its sort or page).
fn base_url(query: &ListQuery) -> String {
    let mut url = format!("/ui/topics?q={}", encode(query.q.trim()));
    if query.internal == "1" {
        url.push_str("&internal=1");
    }
    url
}

fn body(console: &Console, query: &ListQuery, rows: &[Row], form: &CreateForm) -> Markup {
    let pages = rows.len().div_ceil(PAGE_SIZE).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let shown = rows.iter().skip((page - 1) * PAGE_SIZE).take(PAGE_SIZE);
    let base = base_url(query);
    let sort = if query.sort.is_empty() {
        "name"
    } else {
        query.sort.as_str()
    };
    let desc = query.dir == "desc";
    let th = |label: &str, key: &str| sort_header(label, key, sort, desc, &base);
    let link = |p: usize| {
        format!(
            "{base}&sort={sort}&dir={}&page={p}",
            if desc { "desc" } else { "asc" }
        )
    };
    html! {
        @if let Some(text) = notice_text(query.notice.as_deref()) { (layout::notice(text)) }
        form.search method="get" action="/ui/topics" role="search" {
            label for="q" { "Search topics" }
            input #q type="search" name="q" value=(query.q) placeholder="name contains…";
            label.inline {
                input type="checkbox" name="internal" value="1" checked[query.internal == "1"];
                " Show internal topics"
            }
            button type="submit" { "Search" }
        }
        p.count { (rows.len()) " topics" }
        table.topics {
            thead {
                tr {
                    (th("Name", "name")) (th("Partitions", "partitions")) (th("RF", "rf"))
                    (th("Under-replicated", "under")) (th("Size", "size")) (th("Records (approx.)", "records"))
                    (th("In", "in")) (th("Out", "out")) (th("Groups", "groups")) (th("Max lag", "lag"))
                }
            }
            tbody {
                @for row in shown {
                    @let t = &row.topic;
                    tr {
                        th scope="row" {
                            a href=(topic_url(&t.name)) { (t.name) }
                            @if t.internal { " " span.tag { "internal" } }
                        }
                        td.num { (t.partitions) }
                        td.num { (t.replication_factor) }
                        td.num.bad[t.under_replicated > 0] { (t.under_replicated) }
                        td.num { (bytes(t.size_bytes)) }
                        td.num { (count(t.approximate_records)) }
                        td.num { (bytes(row.rate.bytes_in as u64)) "/s" }
                        td.num { (bytes(row.rate.bytes_out as u64)) "/s" }
                        td.num { (row.groups) }
                        td.num { (row.max_lag.map_or_else(|| "–".to_string(), count)) }
                    }
                }
            }
        }
        (pager(page, pages, link))
        @if !console.config.read_only {
            (create_form(console, form))
        }
    }
}

fn create_form(console: &Console, form: &CreateForm) -> Markup {
    html! {
        section aria-labelledby="create" {
            h2 #create { "Create a topic" }
            @if let Some(e) = &form.error { (layout::error(e)) }
            form.stack method="post" action="/ui/topics" {
                (token(console))
                label for="name" { "Name" }
                input #name name="name" required maxlength="249" pattern="[a-zA-Z0-9._\\-]+" value=(form.name);
                label for="partitions" { "Partitions" }
                input #partitions name="partitions" type="number" min="1" value=(if form.partitions.is_empty() { "1" } else { &form.partitions });
                label for="replication_factor" { "Replication factor" }
                input #replication_factor name="replication_factor" type="number" min="1" value=(if form.replication_factor.is_empty() { "1" } else { &form.replication_factor });
                label for="configs" { "Configs (one name=value a line)" }
                textarea #configs name="configs" rows="3" placeholder="retention.ms=86400000" { (form.configs) }
                button type="submit" { "Create topic" }
            }
        }
    }
}

/// Parses `name=value` lines.
pub fn parse_configs(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut configs = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| format!("'{line}' is not name=value"))?;
        configs.insert(name.trim().to_string(), value.trim().to_string());
    }
    Ok(configs)
}

/// `POST /ui/topics`: creates a topic, then shows it.
pub async fn create(State(console): State<AppState>, form: Posted) -> Response {
    let name = form.get("name").unwrap_or("").to_string();
    let filled = CreateForm {
        name: name.clone(),
        partitions: form.get("partitions").unwrap_or("").to_string(),
        replication_factor: form.get("replication_factor").unwrap_or("").to_string(),
        configs: form.raw("configs").to_string(),
        error: None,
    };
    let spec = (|| -> Result<NewTopicSpec, String> {
        Ok(NewTopicSpec {
            name: name.clone(),
            partitions: form.number("partitions", "Partitions")?,
            replication_factor: form.number("replication_factor", "Replication factor")?,
            configs: parse_configs(form.raw("configs"))?,
        })
    })();
    let outcome = match spec {
        Err(reason) => Err((StatusCode::BAD_REQUEST, reason)),
        Ok(spec) => console
            .admin
            .create_topic(spec)
            .await
            .map(|_| ())
            .map_err(|e| (status_of(&e), describe(&e))),
    };
    audit(
        form.peer,
        "create-topic",
        &name,
        &outcome.as_ref().map(|_| ()).map_err(|(_, e)| e.clone()),
    );
    match outcome {
        Ok(()) => see_other(&format!("{}?notice=created", topic_url(&name))),
        Err((status, reason)) => render(
            &console,
            &ListQuery::default(),
            CreateForm {
                error: Some(reason),
                ..filled
            },
            status,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines_parse_or_say_which_line_is_wrong() {
        let parsed = parse_configs("retention.ms = 1000\n\n cleanup.policy=compact\n").ok();
        assert_eq!(
            parsed,
            Some(BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("retention.ms".to_string(), "1000".to_string()),
            ]))
        );
        assert_eq!(
            parse_configs("retention.ms"),
            Err("'retention.ms' is not name=value".to_string())
        );
    }
}
