//! Server-sent event streams: the live tail, search progress, and chart points. Each
//! holds one of a bounded number of stream permits (429 beyond it) and ends when the
//! client goes away or the HTTP listener stops.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use maud::html;
use serde::Deserialize;
use serde_json::json;
use sluice_broker::admin::{RecordView, TrafficTotals};
use tokio::sync::OwnedSemaphorePermit;

use crate::AppState;
use crate::pages::messages::{MessagesQuery, Scan, row};
use crate::pages::not_found_page;

/// Records the tail sends in one event; a client further behind skips ahead.
const TAIL_BATCH: usize = 200;
/// Records a tail may be behind before it skips to the newest.
const TAIL_MAX_BEHIND: i64 = 500;
/// The pause after each tail event, so bursts go out as one event (at most ten a second).
const TAIL_COALESCE: Duration = Duration::from_millis(50);
/// How long the tail waits for records before a keep-alive.
const TAIL_IDLE: Duration = Duration::from_secs(15);
/// How often a search reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

type Events = std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

fn sse(events: Events) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn too_many() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        "too many live streams are open; close another tab and try again\n",
    )
        .into_response()
}

/// An HTML fragment as event data (SSE data cannot hold carriage returns).
fn html_event(name: &str, html: String) -> Event {
    Event::default()
        .event(name)
        .data(html.replace('\r', "&#13;"))
}

fn json_event(name: &str, value: &serde_json::Value) -> Event {
    Event::default().event(name).data(value.to_string())
}

/// `GET /ui/series`: the last hour (ten-second buckets), then each new point.
pub async fn cluster_series(State(console): State<AppState>) -> Response {
    let Ok(permit) = console.streams.clone().try_acquire_owned() else {
        return too_many();
    };
    let points = console.series.downsampled(10);
    let last = points.last().map_or(0, |p| p.t);
    let init = json!({
        "t": points.iter().map(|p| p.t).collect::<Vec<_>>(),
        "v": (0..7).map(|i| points.iter().map(|p| p.v.get(i).copied().flatten()).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    let first = json_event("init", &init);
    let updates = console.series.subscribe();
    let state = (console, updates, last, permit);
    let rest = futures::stream::unfold(state, |(console, mut updates, last, permit)| async move {
        let mut stop = console.stop.clone();
        tokio::select! {
            changed = updates.changed() => changed.ok()?,
            _ = stop.wait_for(|s| *s) => return None,
        }
        let fresh = console.series.since(last);
        let last = fresh.last().map_or(last, |p| p.t);
        let data = json!(fresh);
        Some((
            Ok(json_event("points", &data)),
            (console, updates, last, permit),
        ))
    });
    sse(Box::pin(futures::StreamExt::chain(
        futures::stream::once(async move { Ok(first) }),
        rest,
    )))
}

/// `GET /ui/topics/{name}/series`: the topic's rates, one point a second, while open.
pub async fn topic_series(State(console): State<AppState>, Path(topic): Path<String>) -> Response {
    if console.admin.partition_count(&topic).is_err() {
        return not_found_page(&console, "There is no such topic.");
    }
    let Ok(permit) = console.streams.clone().try_acquire_owned() else {
        return too_many();
    };
    let totals =
        |c: &AppState, t: &str| c.admin.topic_traffic().get(t).copied().unwrap_or_default();
    let before = totals(&console, &topic);
    let first = json_event("init", &json!({ "t": [], "v": [[], [], [], []] }));
    let state = (console, topic, before, permit);
    let rest = futures::stream::unfold(state, move |(console, topic, before, permit)| async move {
        let mut stop = console.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return None,
        }
        let now: TrafficTotals = totals(&console, &topic);
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64;
        let point = json!([{
            "t": console.admin.now_ms() / 1000,
            "v": [
                rate(now.bytes_in, before.bytes_in),
                rate(now.bytes_out, before.bytes_out),
                rate(now.records_in, before.records_in),
                rate(now.records_out, before.records_out),
            ],
        }]);
        Some((
            Ok(json_event("points", &point)),
            (console, topic, now, permit),
        ))
    });
    sse(Box::pin(futures::StreamExt::chain(
        futures::stream::once(async move { Ok(first) }),
        rest,
    )))
}

/// Query of the tail.
#[derive(Debug, Deserialize)]
pub struct TailQuery {
    /// `all` or a partition.
    #[serde(default)]
    partition: String,
    /// Where to resume: `partition:offset,…` (what the last event's id said).
    #[serde(default)]
    from: String,
}

/// Parses `partition:offset,…`.
fn parse_cursors(text: &str) -> Vec<(i32, i64)> {
    text.split(',')
        .filter_map(|pair| {
            let (p, o) = pair.split_once(':')?;
            Some((p.trim().parse().ok()?, o.trim().parse().ok()?))
        })
        .collect()
}

fn cursors_text(cursors: &[(i32, i64)]) -> String {
    cursors
        .iter()
        .map(|(p, o)| format!("{p}:{o}"))
        .collect::<Vec<_>>()
        .join(",")
}

struct Tail {
    console: AppState,
    topic: String,
    cursors: Vec<(i32, i64)>,
    _permit: OwnedSemaphorePermit,
}

impl Tail {
    /// New records of every partition from the cursors (skipping ahead when far
    /// behind), newest first, and how many were skipped; `None` when there are none.
    fn read(&mut self) -> Option<(Vec<RecordView>, i64)> {
        let mut records = Vec::new();
        let mut skipped = 0;
        for (partition, next) in &mut self.cursors {
            let Ok(offsets) = self
                .console
                .admin
                .partition_offsets(&self.topic, *partition)
            else {
                continue;
            };
            let end = offsets.high_watermark;
            if end - *next > TAIL_MAX_BEHIND {
                skipped += end - TAIL_MAX_BEHIND - *next;
                *next = end - TAIL_MAX_BEHIND;
            }
            *next = (*next).max(offsets.log_start_offset);
            if *next >= end {
                continue;
            }
            let Ok(read) = self.console.admin.read_records(
                &self.topic,
                *partition,
                *next,
                TAIL_BATCH,
                1 << 20,
            ) else {
                continue;
            };
            *next = read.next_offset.max(*next);
            records.extend(read.records);
        }
        if records.is_empty() && skipped == 0 {
            return None;
        }
        records.sort_by_key(|r| std::cmp::Reverse((r.timestamp, r.partition, r.offset)));
        Some((records, skipped))
    }
}

/// `GET /ui/topics/{name}/messages/tail`: new records as table rows, newest first, as
/// they arrive. Each event's id is where the next one continues (`from=` resumes).
pub async fn tail(
    State(console): State<AppState>,
    Path(topic): Path<String>,
    Query(query): Query<TailQuery>,
) -> Response {
    let Ok(partition_count) = console.admin.partition_count(&topic) else {
        return not_found_page(&console, "There is no such topic.");
    };
    let partitions = match (MessagesQuery {
        partition: query.partition.clone(),
        ..MessagesQuery::default()
    })
    .partitions(partition_count, &console.admin.local_partitions(&topic))
    {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let Ok(permit) = console.streams.clone().try_acquire_owned() else {
        return too_many();
    };
    let resume = parse_cursors(&query.from);
    let cursors: Vec<(i32, i64)> = partitions
        .iter()
        .map(|&p| {
            let end = console
                .admin
                .partition_offsets(&topic, p)
                .map_or(0, |o| o.high_watermark);
            let from = resume
                .iter()
                .find(|(rp, _)| *rp == p)
                .map_or(end, |(_, o)| *o);
            (p, from)
        })
        .collect();
    let watch = match console.admin.watch(&topic, &partitions) {
        Ok(w) => w,
        Err(e) => return not_found_page(&console, &e.message),
    };
    let tail = Tail {
        console,
        topic,
        cursors,
        _permit: permit,
    };
    let events = futures::stream::unfold((tail, watch), |(mut tail, watch)| async move {
        loop {
            if *tail.console.stop.borrow() {
                return None;
            }
            let found = watch.read_or_wait(TAIL_IDLE, || tail.read()).await;
            let Some((records, skipped)) = found else {
                continue;
            };
            let fragment = html! {
                @if skipped > 0 {
                    tr.skipped { td colspan="8" { (skipped) " records skipped (the tail fell behind)" } }
                }
                @for r in &records { (row(&tail.topic, r, false)) }
            };
            let event = html_event("rows", fragment.into_string()).id(cursors_text(&tail.cursors));
            tokio::time::sleep(TAIL_COALESCE).await;
            return Some((Ok(event), (tail, watch)));
        }
    });
    sse(Box::pin(events))
}

/// `GET /ui/topics/{name}/messages/search`: a filtered scan whose matches, progress
/// and end stream as events; closing the stream cancels it.
pub async fn search(
    State(console): State<AppState>,
    Path(topic): Path<String>,
    Query(query): Query<MessagesQuery>,
) -> Response {
    let n = query.count(&console);
    let prepared = query
        .scan_plan(&console, &topic, n)
        .map(|plan| (plan.positions, plan.filter, n));
    let (positions, filter, n) = match prepared {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let (Ok(stream_permit), Ok(scan_permit)) = (
        console.streams.clone().try_acquire_owned(),
        console.scans.clone().try_acquire_owned(),
    ) else {
        return too_many();
    };
    let scan = Scan::new(&console, &topic, &positions, filter, n);
    let state = SearchState {
        console,
        topic,
        scan,
        done: false,
        _permits: (stream_permit, scan_permit),
    };
    let events = futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let reported = tokio::time::Instant::now();
        let mut rows = String::new();
        let mut end = None;
        while end.is_none() && reported.elapsed() < PROGRESS_EVERY {
            match s.scan.step(&s.console.admin) {
                Ok((found, stop)) => {
                    for r in &found {
                        rows.push_str(&row(&s.topic, r, false).into_string());
                    }
                    end = stop;
                }
                Err(e) => {
                    s.done = true;
                    let failed = Ok(json_event("failed", &json!({ "error": e })));
                    return Some((futures::stream::iter(vec![failed]), s));
                }
            }
            tokio::task::yield_now().await;
        }
        let progress = json!({
            "records": s.scan.records,
            "bytes": s.scan.bytes,
            "matches": s.scan.matches,
            "done": end.map(|e| e.text()),
        });
        let mut events = Vec::with_capacity(2);
        if !rows.is_empty() {
            events.push(Ok(html_event("rows", rows)));
        }
        events.push(Ok(json_event(
            if end.is_some() { "done" } else { "progress" },
            &progress,
        )));
        s.done = end.is_some();
        Some((futures::stream::iter(events), s))
    });
    sse(Box::pin(futures::StreamExt::flatten(events)))
}

struct SearchState {
    console: AppState,
    topic: String,
    scan: Scan,
    done: bool,
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_cursors_round_trip_and_ignore_garbage() {
        let cursors = parse_cursors("0:15, 2:7,x:1,3");
        assert_eq!(cursors, vec![(0, 15), (2, 7)]);
        assert_eq!(cursors_text(&cursors), "0:15,2:7");
    }
}
