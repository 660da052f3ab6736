//! `/ui/topics/NAME/messages`: records from the oldest, the newest N, an offset or a
//! time, in one partition or all; filters (bounded scans; with JavaScript they stream
//! their progress and can be cancelled); one record in full; export as NDJSON or CSV;
//! and producing a record (`POST`).

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderMap};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use maud::{Markup, html};
use serde::Deserialize;
use sluice_broker::admin::{Admin, ProduceRecord, RecordView, StartAt};

use super::{describe, not_found_page, notice_text, see_other, status_of};
use crate::decode::{full, preview};
use crate::filter::Filter;
use crate::format::{bytes as show_bytes, count, parse_timestamp};
use crate::forms::{Posted, audit};
use crate::layout::{self, Nav, Page, encode, html_response, time, token, topic_url};
use crate::{AppState, Console};

/// Bytes read from one partition per step of a read or scan.
pub const CHUNK_BYTES: usize = 1 << 20;

/// What the page shows, all in its URL.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct MessagesQuery {
    /// `all` or a partition number.
    #[serde(default)]
    pub partition: String,
    /// `oldest`, `newest` (default), `offset` or `timestamp`.
    #[serde(default)]
    pub start: String,
    /// Records to show.
    #[serde(default)]
    pub n: Option<usize>,
    /// The offset for `start=offset`.
    #[serde(default)]
    pub offset: String,
    /// The time for `start=timestamp` (UTC, or ms since the epoch).
    #[serde(default)]
    pub ts: String,
    /// Filter: `key`, `value`, `header` or `json`.
    #[serde(default)]
    pub field: String,
    /// Filter: the header name or JSON pointer.
    #[serde(default)]
    pub name: String,
    /// Filter: `contains`, `eq`, `ne`, `lt`, `gt`.
    #[serde(default)]
    pub op: String,
    /// Filter: the text looked for.
    #[serde(default)]
    pub q: String,
    /// Export format: `ndjson` or `csv`.
    #[serde(default)]
    pub format: String,
    /// A fixed message after a change.
    #[serde(default)]
    pub notice: Option<String>,
}

/// Where a scan starts in each chosen partition (partition, offset), and its filter.
pub struct ScanPlan {
    pub positions: Vec<(i32, i64)>,
    pub filter: Option<Filter>,
}

impl MessagesQuery {
    /// The records asked for, within the limits.
    pub fn count(&self, console: &Console) -> usize {
        self.n
            .unwrap_or(console.config.limits.page_records)
            .clamp(1, console.config.limits.max_records)
    }

    /// The partitions chosen, checked against the topic's: `all` means every partition
    /// this node has a replica of (`local`; in a cluster, often not all of them).
    pub fn partitions(&self, partition_count: i32, local: &[i32]) -> Result<Vec<i32>, String> {
        match self.partition.as_str() {
            "" | "all" if local.is_empty() && partition_count > 0 => Err(
                "This node has no replica of any partition of this topic: read it from a node \
                 that has one (the topic page lists each partition's replicas)."
                    .to_string(),
            ),
            "" | "all" => Ok(local.to_vec()),
            p => match p.parse::<i32>() {
                Ok(p) if (0..partition_count).contains(&p) => Ok(vec![p]),
                _ => Err(format!(
                    "'{p}' is not a partition of this topic (0 to {})",
                    partition_count - 1
                )),
            },
        }
    }

    /// Where reading starts.
    pub fn start_at(&self, n: usize) -> Result<StartAt, String> {
        Ok(match self.start.as_str() {
            "" | "newest" => StartAt::Newest(n as u64),
            "oldest" => StartAt::Oldest,
            "offset" => StartAt::Offset(
                self.offset
                    .trim()
                    .parse()
                    .map_err(|_| format!("'{}' is not an offset", self.offset))?,
            ),
            "timestamp" => StartAt::Timestamp(parse_timestamp(&self.ts).ok_or_else(|| {
                format!(
                    "'{}' is not a time (use 2026-12-07T05:42:00Z or milliseconds)",
                    self.ts
                )
            })?),
            other => return Err(format!("unknown start '{other}'")),
        })
    }

    /// The filter asked for, if any.
    pub fn filter(&self) -> Result<Option<Filter>, String> {
        Filter::parse(&self.field, &self.name, &self.op, &self.q)
    }

    /// What a scan of `topic` for up to `n` records reads (a search, an export), or why
    /// the query is wrong.
    pub fn scan_plan(&self, console: &Console, topic: &str, n: usize) -> Result<ScanPlan, String> {
        let partition_count = console
            .admin
            .partition_count(topic)
            .map_err(|e| describe(&e))?;
        let partitions =
            self.partitions(partition_count, &console.admin.local_partitions(topic))?;
        let at = self.start_at(n)?;
        let positions = start_positions(&console.admin, topic, &partitions, at)?;
        Ok(ScanPlan {
            positions,
            filter: self.filter()?,
        })
    }

    /// This query as URL parameters (for export and search links).
    pub fn to_params(&self) -> String {
        let pairs = [
            ("partition", self.partition.as_str()),
            ("start", self.start.as_str()),
            ("offset", self.offset.as_str()),
            ("ts", self.ts.as_str()),
            ("field", self.field.as_str()),
            ("name", self.name.as_str()),
            ("op", self.op.as_str()),
            ("q", self.q.as_str()),
        ];
        let mut out: Vec<String> = pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        if let Some(n) = self.n {
            out.push(format!("n={n}"));
        }
        out.join("&")
    }
}

/// Each chosen partition's first offset to read.
pub fn start_positions(
    admin: &Admin,
    topic: &str,
    partitions: &[i32],
    at: StartAt,
) -> Result<Vec<(i32, i64)>, String> {
    partitions
        .iter()
        .map(|&p| {
            admin
                .start_offset(topic, p, at)
                .map(|o| (p, o))
                .map_err(|e| describe(&e))
        })
        .collect()
}

/// Up to `n` records of each partition from its start position, merged: newest first
/// for `newest`, oldest first otherwise.
pub fn browse(
    admin: &Admin,
    topic: &str,
    positions: &[(i32, i64)],
    n: usize,
    newest_first: bool,
) -> Result<Vec<RecordView>, String> {
    let mut all = Vec::new();
    for &(partition, start) in positions {
        let mut next = start;
        let mut taken = 0;
        while taken < n {
            let read = admin
                .read_records(topic, partition, next, n - taken, CHUNK_BYTES)
                .map_err(|e| describe(&e))?;
            taken += read.records.len();
            all.extend(read.records);
            if read.next_offset <= next || read.next_offset >= read.offsets.high_watermark {
                break;
            }
            next = read.next_offset;
        }
    }
    let key = |r: &RecordView| (r.timestamp, r.partition, r.offset);
    if newest_first {
        all.sort_by_key(|r| std::cmp::Reverse(key(r)));
    } else {
        all.sort_by_key(key);
    }
    all.truncate(n);
    Ok(all)
}

/// Why a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanEnd {
    /// Found as many records as asked.
    Enough,
    /// Read every chosen partition to its end.
    EndOfLog,
    /// Read the most bytes one scan may.
    ByteBudget,
    /// Ran the longest one scan may.
    TimeBudget,
}

impl ScanEnd {
    /// Says why, in words.
    pub fn text(self) -> &'static str {
        match self {
            ScanEnd::Enough => "found as many records as asked for",
            ScanEnd::EndOfLog => "reached the end of every partition",
            ScanEnd::ByteBudget => "stopped: read the most bytes one search may",
            ScanEnd::TimeBudget => "stopped: ran the longest one search may",
        }
    }
}

/// A filtered scan forward from each partition's start to its end (as it was when the
/// scan began), one chunk at a time, within the byte and time budgets.
pub struct Scan {
    topic: String,
    /// (partition, next offset, end offset).
    cursors: Vec<(i32, i64, i64)>,
    filter: Option<Filter>,
    wanted: usize,
    started: Instant,
    /// Records read.
    pub records: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Records that passed.
    pub matches: usize,
    byte_budget: u64,
    time_budget: std::time::Duration,
}

impl Scan {
    /// A scan of `topic` from `positions` for `wanted` records passing `filter`.
    pub fn new(
        console: &Console,
        topic: &str,
        positions: &[(i32, i64)],
        filter: Option<Filter>,
        wanted: usize,
    ) -> Scan {
        let cursors = positions
            .iter()
            .map(|&(p, start)| {
                let end = console
                    .admin
                    .partition_offsets(topic, p)
                    .map_or(start, |o| o.high_watermark);
                (p, start, end)
            })
            .collect();
        Scan {
            topic: topic.to_string(),
            cursors,
            filter,
            wanted,
            started: Instant::now(),
            records: 0,
            bytes: 0,
            matches: 0,
            byte_budget: console.config.limits.scan_bytes,
            time_budget: console.config.limits.scan_time,
        }
    }

    /// Reads one chunk of the next unfinished partition; returns its passing records,
    /// and why the scan ended when it has.
    pub fn step(&mut self, admin: &Admin) -> Result<(Vec<RecordView>, Option<ScanEnd>), String> {
        if let Some(end) = self.finished() {
            return Ok((Vec::new(), Some(end)));
        }
        let Some(cursor) = self.cursors.iter_mut().find(|(_, next, end)| next < end) else {
            return Ok((Vec::new(), Some(ScanEnd::EndOfLog)));
        };
        let (partition, next, end) = *cursor;
        let read = admin
            .read_records(&self.topic, partition, next, usize::MAX, CHUNK_BYTES)
            .map_err(|e| describe(&e))?;
        cursor.1 = if read.next_offset > next {
            read.next_offset
        } else {
            end
        };
        self.bytes += read.bytes_read;
        let mut passed = Vec::new();
        for record in read.records {
            if record.offset >= end {
                cursor.1 = end;
                break;
            }
            self.records += 1;
            if self.filter.as_ref().is_none_or(|f| f.matches(&record)) {
                passed.push(record);
                self.matches += 1;
                if self.matches >= self.wanted {
                    break;
                }
            }
        }
        Ok((passed, self.finished()))
    }

    fn finished(&self) -> Option<ScanEnd> {
        if self.matches >= self.wanted {
            Some(ScanEnd::Enough)
        } else if self.cursors.iter().all(|(_, next, end)| next >= end) {
            Some(ScanEnd::EndOfLog)
        } else if self.bytes >= self.byte_budget {
            Some(ScanEnd::ByteBudget)
        } else if self.started.elapsed() >= self.time_budget {
            Some(ScanEnd::TimeBudget)
        } else {
            None
        }
    }
}

/// The rows of the page.
enum Shown {
    /// Browsed without a filter.
    Records(Vec<RecordView>),
    /// A filtered scan's matches and why it stopped.
    Scanned {
        records: Vec<RecordView>,
        scanned: u64,
        bytes: u64,
        end: ScanEnd,
    },
}

/// `GET /ui/topics/{name}/messages`.
pub async fn page(
    State(console): State<AppState>,
    Path(topic): Path<String>,
    Query(query): Query<MessagesQuery>,
) -> Response {
    let Ok(partition_count) = console.admin.partition_count(&topic) else {
        return not_found_page(&console, &format!("There is no topic named '{topic}'."));
    };
    let shown = select(&console, &topic, &query, partition_count).await;
    let (status, shown, error) = match shown {
        Ok(shown) => (StatusCode::OK, Some(shown), None),
        Err((status, e)) => (status, None, Some(e)),
    };
    let page = Page {
        title: &format!("Messages of {topic}"),
        nav: Nav::Topics,
        charts: false,
    };
    let body = body(
        &console,
        &topic,
        partition_count,
        &query,
        shown.as_ref(),
        error,
    );
    html_response(status, page.render(&console, body))
}

/// The records the query selects: browsed, or scanned with the filter (bounded).
async fn select(
    console: &Console,
    topic: &str,
    query: &MessagesQuery,
    partition_count: i32,
) -> Result<Shown, (StatusCode, String)> {
    let bad = |e: String| (StatusCode::BAD_REQUEST, e);
    let n = query.count(console);
    let local = console.admin.local_partitions(topic);
    let partitions = query.partitions(partition_count, &local).map_err(bad)?;
    let at = query.start_at(n).map_err(bad)?;
    let filter = query.filter().map_err(bad)?;
    let positions = start_positions(&console.admin, topic, &partitions, at).map_err(bad)?;
    let Some(filter) = filter else {
        let newest = matches!(at, StartAt::Newest(_));
        return browse(&console.admin, topic, &positions, n, newest)
            .map(Shown::Records)
            .map_err(bad);
    };
    let Ok(_permit) = console.scans.clone().try_acquire_owned() else {
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            "Too many searches are running; try again shortly.".to_string(),
        ));
    };
    let mut scan = Scan::new(console, topic, &positions, Some(filter), n);
    let mut records = Vec::new();
    loop {
        let (found, end) = scan.step(&console.admin).map_err(bad)?;
        records.extend(found);
        if let Some(end) = end {
            return Ok(Shown::Scanned {
                records,
                scanned: scan.records,
                bytes: scan.bytes,
                end,
            });
        }
        tokio::task::yield_now().await;
    }
}

fn body(
    console: &Console,
    topic: &str,
    partition_count: i32,
    query: &MessagesQuery,
    shown: Option<&Shown>,
    error: Option<String>,
) -> Markup {
    let url = format!("{}/messages", topic_url(topic));
    let params = query.to_params();
    html! {
        p.actions { a href=(topic_url(topic)) { "← Topic " (topic) } }
        @if let Some(text) = notice_text(query.notice.as_deref()) { (layout::notice(text)) }
        @if let Some(e) = &error { (layout::error(e)) }
        (query_form(topic, partition_count, query, &url))
        (replicas_here(console, topic, partition_count))
        @match shown {
            Some(Shown::Records(records)) => {
                p.count { (records.len()) " records" }
                (table(topic, records, &query.offset))
            }
            Some(Shown::Scanned { records, scanned, bytes, end }) => {
                p.count #search-status role="status" {
                    (records.len()) " matches in " (count(i64::try_from(*scanned).unwrap_or(i64::MAX)))
                    " records (" (show_bytes(*bytes)) ") — " (end.text())
                }
                (table(topic, records, ""))
            }
            None => {}
        }
        p.actions {
            a href=(format!("{url}/export?{params}&format=ndjson")) download { "Export NDJSON" }
            " "
            a href=(format!("{url}/export?{params}&format=csv")) download { "Export CSV" }
        }
        section.tail aria-labelledby="tail" data-tail=(format!("{url}/tail?partition={}", encode(&query.partition))) {
            h2 #tail { "Live tail" }
            p.js-only {
                button type="button" data-action="tail-start" { "Start" }
                " "
                button type="button" data-action="tail-pause" disabled { "Pause" }
                " "
                span.tail-status role="status" aria-live="polite" {}
            }
            noscript { p { "The live tail needs JavaScript; reload the page to see new records." } }
            table.records {
                caption.visually-hidden { "Records as they arrive, newest first" }
                (head())
                tbody.tail-rows {}
            }
        }
        @if !console.config.read_only {
            (produce_form(console, topic, partition_count, &url))
        }
    }
}

/// In a cluster, which partitions this node can read (`all` means those), when not all.
fn replicas_here(console: &Console, topic: &str, partition_count: i32) -> Markup {
    let local = console.admin.local_partitions(topic);
    if local.len() >= usize::try_from(partition_count).unwrap_or(0) {
        return html! {};
    }
    let list = local
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        p.hint {
            "Node " (console.admin.node_id()) " has replicas of "
            @if local.is_empty() { "no partition" } @else { "partitions " (list) " only" }
            " of " (topic) ": “all” reads those; the others are read on the nodes the "
            a href=(topic_url(topic)) { "topic page" } " lists as their replicas."
        }
    }
}

fn query_form(topic: &str, partition_count: i32, query: &MessagesQuery, url: &str) -> Markup {
    let start = if query.start.is_empty() {
        "newest"
    } else {
        query.start.as_str()
    };
    html! {
        form.query method="get" action=(url) data-search=(format!("{url}/search")) {
            fieldset {
                legend { "Where" }
                label for="partition" { "Partition" }
                select #partition name="partition" {
                    option value="all" { "all" }
                    @for p in 0..partition_count {
                        option value=(p) selected[query.partition == p.to_string()] { (p) }
                    }
                }
                label for="start" { "Start at" }
                select #start name="start" {
                    @for (v, l) in [("newest", "the newest N"), ("oldest", "the oldest"), ("offset", "an offset"), ("timestamp", "a time (UTC)")] {
                        option value=(v) selected[start == v] { (l) }
                    }
                }
                label for="n" { "N" }
                input #n name="n" type="number" min="1" value=(query.n.unwrap_or(50));
                label for="offset" { "Offset" }
                input #offset name="offset" inputmode="numeric" value=(query.offset);
                label for="ts" { "Time" }
                input #ts name="ts" placeholder="2026-12-07T05:42:00Z" value=(query.ts);
            }
            fieldset {
                legend { "Filter (optional)" }
                label for="field" { "Field" }
                select #field name="field" {
                    @for (v, l) in [("value", "value"), ("key", "key"), ("header", "header"), ("json", "JSON field")] {
                        option value=(v) selected[query.field == v] { (l) }
                    }
                }
                label for="fname" { "Header name or JSON pointer" }
                input #fname name="name" placeholder="/user/id" value=(query.name);
                label for="op" { "Test" }
                select #op name="op" {
                    @for (v, l) in [("contains", "contains"), ("eq", "equals"), ("ne", "differs from"), ("lt", "is below"), ("gt", "is above")] {
                        option value=(v) selected[query.op == v] { (l) }
                    }
                }
                label for="q" { "Text" }
                input #q name="q" value=(query.q);
            }
            button type="submit" { "Show" }
            " "
            button.js-only type="button" data-action="search-cancel" hidden { "Cancel search" }
            span.search-progress role="status" aria-live="polite" {}
        }
        p.hint { "Topic " (topic) ": filters scan forward from the start position, at most 1 GiB or 60 s per search." }
    }
}

fn head() -> Markup {
    html! {
        thead { tr {
            th scope="col" { "Partition" } th scope="col" { "Offset" } th scope="col" { "Timestamp" }
            th scope="col" { "Key" } th scope="col" { "Value" } th scope="col" { "Headers" }
            th scope="col" { "Size" } th scope="col" { "Record" }
        } }
    }
}

fn table(topic: &str, records: &[RecordView], highlight: &str) -> Markup {
    html! {
        table.records {
            (head())
            tbody.result-rows {
                @for r in records { (row(topic, r, highlight == r.offset.to_string())) }
            }
        }
    }
}

/// One record as a table row (also what the tail and the search stream send).
pub fn row(topic: &str, r: &RecordView, highlight: bool) -> Markup {
    let record_url = format!(
        "{}/messages/record?partition={}&offset={}",
        topic_url(topic),
        r.partition,
        r.offset
    );
    html! {
        tr.highlight[highlight] {
            td.num { (r.partition) }
            td.num { (r.offset) }
            td { (time(r.timestamp)) @if r.log_append_time { " " abbr title="LogAppendTime: stamped by the broker" { "(append)" } } }
            td.key { (preview(r.key.as_deref(), 40)) }
            td.value { (preview(r.value.as_deref(), 120)) }
            td.headers {
                @for (k, v) in &r.headers {
                    span.header { (k) "=" (preview(v.as_deref(), 30)) } " "
                }
            }
            td.num { (show_bytes(r.size() as u64)) }
            td {
                details hx-get=(record_url) hx-trigger="toggle once" hx-swap="beforeend" {
                    summary { "Expand" }
                    a href=(record_url) { "Open" }
                }
            }
        }
    }
}

/// Query of the record view.
#[derive(Debug, Deserialize)]
pub struct RecordQuery {
    partition: i32,
    offset: i64,
}

/// `GET /ui/topics/{name}/messages/record`: one record in full (a fragment for htmx).
pub async fn record(
    State(console): State<AppState>,
    Path(topic): Path<String>,
    Query(q): Query<RecordQuery>,
    headers: HeaderMap,
) -> Response {
    let read = console
        .admin
        .read_records(&topic, q.partition, q.offset, 1, CHUNK_BYTES);
    let found = match read {
        Ok(read) => read.records.into_iter().find(|r| r.offset == q.offset),
        Err(e) => return not_found_page(&console, &describe(&e)),
    };
    let Some(r) = found else {
        return not_found_page(
            &console,
            &format!(
                "Partition {} has no record at offset {}.",
                q.partition, q.offset
            ),
        );
    };
    let limit = console.config.limits.value_bytes;
    let fragment = html! {
        div.record {
            h3 { "Key" } (full(r.key.as_deref(), limit))
            h3 { "Value" } (full(r.value.as_deref(), limit))
            h3 { "Headers" }
            @if r.headers.is_empty() { p { "none" } }
            @for (k, v) in &r.headers { h4 { (k) } (full(v.as_deref(), limit)) }
        }
    };
    if headers.contains_key("hx-request") {
        return html_response(StatusCode::OK, fragment);
    }
    let page = Page {
        title: &format!("{topic} partition {} offset {}", q.partition, q.offset),
        nav: Nav::Topics,
        charts: false,
    };
    let body = html! {
        p.actions { a href=(format!("{}/messages", topic_url(&topic))) { "← Messages of " (topic) } }
        (layout::facts(&[
            ("Partition", html! { (r.partition) }),
            ("Offset", html! { (r.offset) }),
            ("Timestamp", html! { (time(r.timestamp)) (if r.log_append_time { " (LogAppendTime)" } else { " (CreateTime)" }) }),
            ("Size", html! { (show_bytes(r.size() as u64)) }),
        ]))
        (fragment)
    };
    html_response(StatusCode::OK, page.render(&console, body))
}

fn produce_form(console: &Console, _topic: &str, partition_count: i32, url: &str) -> Markup {
    html! {
        section aria-labelledby="produce" {
            h2 #produce { "Produce a record" }
            form.stack method="post" action=(url) {
                (token(console))
                label for="p-partition" { "Partition" }
                select #p-partition name="partition" {
                    option value="" { "by key (Kafka's partitioner)" }
                    @for p in 0..partition_count { option value=(p) { (p) } }
                }
                label for="p-key" { "Key (empty: null)" }
                input #p-key name="key";
                label for="p-value" { "Value" }
                textarea #p-value name="value" rows="4" {}
                label for="p-headers" { "Headers (one name: value a line)" }
                textarea #p-headers name="headers" rows="2" placeholder="source: console" {}
                button type="submit" { "Produce" }
            }
        }
    }
}

/// Parses `name: value` lines.
pub fn parse_headers(text: &str) -> Result<Vec<(String, Option<Bytes>)>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| format!("'{line}' is not name: value"))?;
            Ok((
                k.trim().to_string(),
                Some(Bytes::copy_from_slice(v.trim().as_bytes())),
            ))
        })
        .collect()
}

/// `POST /ui/topics/{name}/messages`: produces one record, then shows where it landed.
pub async fn produce(
    State(console): State<AppState>,
    Path(topic): Path<String>,
    form: Posted,
) -> Response {
    let outcome = produce_posted(&console, &topic, &form).await;
    audit(
        form.peer,
        "produce",
        &topic,
        &outcome.as_ref().map(|_| ()).map_err(|(_, e)| e.clone()),
    );
    match outcome {
        Ok((partition, offset)) => see_other(&format!(
            "{}/messages?partition={partition}&start=offset&offset={offset}&notice=produced",
            topic_url(&topic)
        )),
        Err((status, reason)) => {
            let Ok(partition_count) = console.admin.partition_count(&topic) else {
                return not_found_page(&console, &reason);
            };
            let page = Page {
                title: &format!("Messages of {topic}"),
                nav: Nav::Topics,
                charts: false,
            };
            let query = MessagesQuery::default();
            let body = body(
                &console,
                &topic,
                partition_count,
                &query,
                None,
                Some(reason),
            );
            html_response(status, page.render(&console, body))
        }
    }
}

async fn produce_posted(
    console: &Console,
    topic: &str,
    form: &Posted,
) -> Result<(i32, i64), (StatusCode, String)> {
    let bad = |e: String| (StatusCode::BAD_REQUEST, e);
    let partitions = console
        .admin
        .partition_count(topic)
        .map_err(|e| (status_of(&e), describe(&e)))?;
    let key = form
        .get("key")
        .map(|k| Bytes::copy_from_slice(k.as_bytes()));
    let partition = match form.get("partition") {
        Some(p) => p
            .parse::<i32>()
            .ok()
            .filter(|p| (0..partitions).contains(p))
            .ok_or_else(|| bad(format!("'{p}' is not a partition of this topic")))?,
        None => match &key {
            Some(k) => sluice_client::partitioner::partition_for_key(k, partitions),
            None => i32::try_from(
                console
                    .admin
                    .now_ms()
                    .rem_euclid(i64::from(partitions.max(1))),
            )
            .unwrap_or(0),
        },
    };
    let record = ProduceRecord {
        partition,
        key,
        value: Some(Bytes::copy_from_slice(form.raw("value").as_bytes())),
        headers: parse_headers(form.raw("headers")).map_err(bad)?,
    };
    console
        .admin
        .produce(topic, record)
        .await
        .map(|p| (p.partition, p.offset))
        .map_err(|e| (status_of(&e), describe(&e)))
}

/// A field of an export: text when it is UTF-8, else hex.
fn export_text(bytes: Option<&[u8]>) -> serde_json::Value {
    match bytes {
        None => serde_json::Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => serde_json::Value::String(text.to_string()),
            Err(_) => serde_json::json!({ "hex": crate::decode::hex(b) }),
        },
    }
}

/// One record as an NDJSON line.
pub fn ndjson_line(r: &RecordView) -> String {
    let headers: Vec<serde_json::Value> = r
        .headers
        .iter()
        .map(|(k, v)| serde_json::json!({ "name": k, "value": export_text(v.as_deref()) }))
        .collect();
    let line = serde_json::json!({
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "timestamp_type": if r.log_append_time { "LogAppendTime" } else { "CreateTime" },
        "key": export_text(r.key.as_deref()),
        "value": export_text(r.value.as_deref()),
        "headers": headers,
    });
    format!("{line}\n")
}

/// One CSV cell: quoted, quotes doubled, and a leading `= + - @` defused so that a
/// spreadsheet does not run it as a formula.
fn csv_cell(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

fn csv_bytes(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => String::new(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => csv_cell(text),
            Err(_) => csv_cell(&format!("0x{}", crate::decode::hex(b))),
        },
    }
}

/// The CSV header line.
pub const CSV_HEADER: &str = "partition,offset,timestamp,key,value,headers\n";

/// One record as a CSV line.
pub fn csv_line(r: &RecordView) -> String {
    let headers: serde_json::Map<String, serde_json::Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), export_text(v.as_deref())))
        .collect();
    format!(
        "{},{},{},{},{},{}\n",
        r.partition,
        r.offset,
        crate::format::timestamp(r.timestamp),
        csv_bytes(r.key.as_deref()),
        csv_bytes(r.value.as_deref()),
        csv_cell(&serde_json::Value::Object(headers).to_string()),
    )
}

/// `GET /ui/topics/{name}/messages/export`: the records the query selects (forward
/// from its start, filter applied), streamed as NDJSON or CSV, at most the export limit.
pub async fn export(
    State(console): State<AppState>,
    Path(topic): Path<String>,
    Query(query): Query<MessagesQuery>,
) -> Response {
    let n = query
        .n
        .unwrap_or(console.config.limits.export_records)
        .clamp(1, console.config.limits.export_records);
    let prepared = query
        .scan_plan(&console, &topic, n)
        .map(|plan| (plan.positions, plan.filter, n));
    let (positions, filter, n) = match prepared {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let csv = query.format == "csv";
    let Ok(permit) = console.scans.clone().try_acquire_owned() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many searches and exports are running; try again shortly\n",
        )
            .into_response();
    };
    let scan = Scan::new(&console, &topic, &positions, filter, n);
    let header = csv.then(|| Bytes::from_static(CSV_HEADER.as_bytes()));
    let state = (scan, console.clone(), permit, false);
    let rows =
        futures::stream::unfold(state, move |(mut scan, console, permit, done)| async move {
            if done {
                return None;
            }
            let (records, end) = match scan.step(&console.admin) {
                Ok(step) => step,
                Err(_) => (Vec::new(), Some(ScanEnd::EndOfLog)),
            };
            let mut out = String::new();
            for r in &records {
                out.push_str(&if csv { csv_line(r) } else { ndjson_line(r) });
            }
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(out)),
                (scan, console, permit, end.is_some()),
            ))
        });
    let body = match header {
        Some(h) => Body::from_stream(futures::StreamExt::chain(
            futures::stream::once(async move { Ok(h) }),
            rows,
        )),
        None => Body::from_stream(rows),
    };
    let (content_type, extension) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "ndjson")
    };
    (
        [
            (CONTENT_TYPE, content_type.to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{topic}.{extension}\""),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &[u8]) -> RecordView {
        RecordView {
            partition: 1,
            offset: 7,
            timestamp: 0,
            log_append_time: false,
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
        }
    }

    #[test]
    fn exports_keep_text_and_hex_binary_and_defuse_formulas() {
        assert_eq!(
            ndjson_line(&record(b"hi")),
            "{\"headers\":[{\"name\":\"h\",\"value\":\"v\"}],\"key\":null,\"offset\":7,\"partition\":1,\"timestamp\":0,\"timestamp_type\":\"CreateTime\",\"value\":\"hi\"}\n"
        );
        assert!(ndjson_line(&record(&[0xff, 0x00])).contains("\"value\":{\"hex\":\"ff00\"}"));
        assert_eq!(
            csv_line(&record(b"=HYPERLINK(\"x\")")),
            "1,7,1970-01-01T00:00:00.000Z,,\"'=HYPERLINK(\"\"x\"\")\",\"{\"\"h\"\":\"\"v\"\"}\"\n"
        );
        assert_eq!(
            parse_headers("a: 1\n\nb:two words").ok(),
            Some(vec![
                ("a".into(), Some(Bytes::from_static(b"1"))),
                ("b".into(), Some(Bytes::from_static(b"two words"))),
            ])
        );
        assert!(parse_headers("novalue").is_err());
    }
}
