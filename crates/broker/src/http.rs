//! The operator HTTP listener: `/metrics` (Prometheus text format 0.0.4),
//! `/health` and `/ready`, and whatever an [`HttpExtension`] mounted by the binary serves
//! (the web console under `/ui`).
//!
//! It runs beside the Kafka listener and outlives it during shutdown, so that
//! `/ready` can answer 503 while in-flight requests drain.
//!
//! Responses are streaming bodies ([`HttpBody`]): an extension may answer with a body
//! that never ends (server-sent events); such connections are aborted when the listener
//! stops.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::future::Future;
use std::pin::Pin;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kafka_protocol::messages::{ListGroupsRequest, OffsetFetchRequest};
use sluice_protocol::kafka_protocol;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::metrics::{escape_label, header, process_stats};

/// The content type of the Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: a whole buffer or a stream of frames.
pub type HttpBody = UnsyncBoxBody<Bytes, BoxError>;

/// What an [`HttpExtension`] answers with.
pub type HttpResponseFuture = Pin<Box<dyn Future<Output = Response<HttpBody>> + Send>>;

/// The peer of an HTTP connection, put in every request's extensions for
/// [`HttpExtension`]s (which may, for example, serve loopback peers only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Paths the HTTP listener hands to code outside this crate (the binary mounts the web
/// console this way, so the broker never depends on it). Every method reaches it.
pub trait HttpExtension: Send + Sync {
    /// Whether requests for `path` are this extension's.
    fn serves(&self, path: &str) -> bool;
    /// Answers one request; its extensions carry the [`PeerAddr`].
    fn handle(&self, req: Request<Incoming>) -> HttpResponseFuture;
}

/// What the HTTP handlers read.
pub(crate) struct HttpState {
    pub broker: Arc<Broker>,
    /// True once the logs are open and the Kafka listener accepts; false
    /// again when shutdown begins.
    pub ready: Arc<AtomicBool>,
    /// Mounted by the binary, if any.
    pub extension: Option<Arc<dyn HttpExtension>>,
}

/// Serves HTTP connections until `stop` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = crate::server::stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let state = state.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |mut req: Request<Incoming>| {
                            let state = state.clone();
                            req.extensions_mut().insert(PeerAddr(peer));
                            async move { Ok::<_, Infallible>(route(&state, req).await) }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(socket), service)
                            .await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

/// A whole body.
pub fn full_body(bytes: impl Into<Bytes>) -> HttpBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<HttpBody> {
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn route(state: &HttpState, req: Request<Incoming>) -> Response<HttpBody> {
    if let Some(extension) = &state.extension
        && extension.serves(req.uri().path())
    {
        return extension.handle(req).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported\n");
        r.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let body = render(&state.broker).await;
            let mut r = text(StatusCode::OK, body);
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
            r
        }
        "/health" => text(StatusCode::OK, "ok\n"),
        "/ready" => {
            if state.ready.load(Ordering::Acquire) {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /health or /ready\n",
        ),
    }
}

/// The whole `/metrics` page: counters, then gauges computed now.
pub(crate) async fn render(broker: &Broker) -> String {
    let mut out = String::with_capacity(32 * 1024);
    broker
        .metrics
        .write_counters(&mut out, broker.clock.now_ms());
    broker.security.write_metrics(&mut out);
    write_partition_gauges(broker, &mut out);
    write_compaction_gauges(broker, &mut out);
    write_replication_gauges(broker, &mut out);
    write_group_lag(broker, &mut out).await;
    write_process(&mut out);
    out
}

fn write_partition_gauges(broker: &Broker, out: &mut String) {
    let mut partitions: Vec<_> = broker
        .replicas
        .logs()
        .all()
        .into_iter()
        .map(|p| {
            let offsets = p.offsets();
            (
                (p.topic.clone(), p.index),
                (
                    p.size_bytes(),
                    offsets.log_start_offset,
                    offsets.log_end_offset,
                ),
            )
        })
        .collect();
    partitions.sort_by(|a, b| a.0.cmp(&b.0));
    let families: [(&str, &str); 3] = [
        (
            "sluice_partition_log_size_bytes",
            "Bytes of the partition's log segments on disk.",
        ),
        (
            "sluice_partition_log_end_offset",
            "Offset the next record appended to the partition gets.",
        ),
        (
            "sluice_partition_log_start_offset",
            "First offset still in the partition's log.",
        ),
    ];
    for (i, (name, help)) in families.iter().enumerate() {
        header(out, name, "gauge", help);
        for ((topic, index), (size, start, end)) in &partitions {
            let value = match i {
                0 => i64::try_from(*size).unwrap_or(i64::MAX),
                1 => *end,
                _ => *start,
            };
            let _ = writeln!(
                out,
                "{name}{{topic=\"{}\",partition=\"{index}\"}} {value}",
                escape_label(topic)
            );
        }
    }
}

/// Per compacted partition: its dirty ratio, and how long ago the cleaner last cleaned it.
fn write_compaction_gauges(broker: &Broker, out: &mut String) {
    let now = broker.clock.now_ms();
    let mut partitions: Vec<_> = broker
        .replicas
        .logs()
        .all()
        .into_iter()
        .filter_map(|p| {
            let stats = p.dirty_stats()?;
            let cleaned = p.last_cleaned_ms();
            Some(((p.topic.clone(), p.index), stats.dirty_ratio, cleaned))
        })
        .collect();
    partitions.sort_by(|a, b| a.0.cmp(&b.0));
    header(
        out,
        "sluice_partition_dirty_ratio",
        "gauge",
        "Share of a compacted partition's log written since it was last cleaned and cleanable now.",
    );
    for ((topic, index), ratio, _) in &partitions {
        let _ = writeln!(
            out,
            "sluice_partition_dirty_ratio{{topic=\"{}\",partition=\"{index}\"}} {ratio}",
            escape_label(topic)
        );
    }
    header(
        out,
        "sluice_partition_seconds_since_last_clean",
        "gauge",
        "Time since the log cleaner last cleaned a compacted partition (since the broker started).",
    );
    for ((topic, index), _, cleaned) in &partitions {
        if let Some(at) = cleaned {
            let seconds = now.saturating_sub(*at).max(0) as f64 / 1000.0;
            let _ = writeln!(
                out,
                "sluice_partition_seconds_since_last_clean{{topic=\"{}\",partition=\"{index}\"}} {seconds}",
                escape_label(topic)
            );
        }
    }
}

/// How replication stands: partitions this node leads with too few in-sync replicas,
/// partitions without a leader (as this node's metadata says: the same on every node),
/// each follower's lag behind its leader, and which node leads the metadata quorum.
fn write_replication_gauges(broker: &Broker, out: &mut String) {
    let mut led: Vec<_> = broker
        .replicas
        .logs()
        .all()
        .into_iter()
        .filter_map(|p| Some(((p.topic.clone(), p.index), p.leader_summary()?)))
        .collect();
    led.sort_by(|a, b| a.0.cmp(&b.0));
    let under_replicated = led.iter().filter(|(_, s)| s.isr < s.replicas).count();
    let under_min_isr = led.iter().filter(|(_, s)| s.isr < s.min_isr).count();
    let image = broker.metadata.image();
    let offline = image
        .topics()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.leader < 0)
        .count();
    for (name, help, value) in [
        (
            "sluice_under_replicated_partitions",
            "Partitions this node leads with fewer in-sync replicas than replicas.",
            under_replicated,
        ),
        (
            "sluice_under_min_isr_partitions",
            "Partitions this node leads with fewer in-sync replicas than acks=all needs.",
            under_min_isr,
        ),
        (
            "sluice_offline_partitions",
            "Partitions without a leader, as the cluster metadata says (the same on every node).",
            offline,
        ),
    ] {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    header(
        out,
        "sluice_replica_lag_offsets",
        "gauge",
        "How far each follower of a partition this node leads is behind its log end.",
    );
    for ((topic, index), summary) in &led {
        for (replica, lag) in &summary.follower_lag {
            let _ = writeln!(
                out,
                "sluice_replica_lag_offsets{{topic=\"{}\",partition=\"{index}\",replica=\"{replica}\"}} {lag}",
                escape_label(topic)
            );
        }
    }
    header(
        out,
        "sluice_metadata_quorum_leader",
        "gauge",
        "The node leading the metadata quorum (-1: none known).",
    );
    let _ = writeln!(
        out,
        "sluice_metadata_quorum_leader {}",
        broker.metadata.leader().unwrap_or(-1)
    );
}

/// Lag of every committed offset: log end offset minus committed offset,
/// asked of the group coordinator through its ListGroups and OffsetFetch APIs.
async fn write_group_lag(broker: &Broker, out: &mut String) {
    header(
        out,
        "sluice_consumer_group_lag",
        "gauge",
        "Log end offset minus the group's committed offset, per partition with a committed offset.",
    );
    let groups = broker
        .groups
        .list_groups(ListGroupsRequest::default(), 4)
        .await;
    let mut lags: BTreeMap<(String, String, i32), i64> = BTreeMap::new();
    for group in groups.groups {
        let group_id = group.group_id;
        let fetched = broker
            .groups
            .offset_fetch(
                OffsetFetchRequest::default()
                    .with_group_id(group_id.clone())
                    .with_topics(None),
                7,
            )
            .await;
        for topic in fetched.topics {
            for p in topic.partitions {
                if p.error_code != 0 || p.committed_offset < 0 {
                    continue;
                }
                let image = broker.metadata.image();
                let Some(partition) = image
                    .topic(topic.name.as_str())
                    .and_then(|t| broker.replicas.logs().get(t.id, p.partition_index))
                else {
                    continue;
                };
                let end = partition.offsets().log_end_offset;
                lags.insert(
                    (
                        group_id.to_string(),
                        topic.name.to_string(),
                        p.partition_index,
                    ),
                    (end - p.committed_offset).max(0),
                );
            }
        }
    }
    for ((group, topic, partition), lag) in lags {
        let _ = writeln!(
            out,
            "sluice_consumer_group_lag{{group=\"{}\",topic=\"{}\",partition=\"{partition}\"}} {lag}",
            escape_label(&group),
            escape_label(&topic)
        );
    }
}

fn write_process(out: &mut String) {
    let (cpu, rss) = process_stats();
    if let Some(cpu) = cpu {
        header(
            out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time of the broker process, in seconds.",
        );
        let _ = writeln!(out, "process_cpu_seconds_total {cpu}");
    }
    if let Some(rss) = rss {
        header(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the broker process, in bytes.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
}

/// Binds the HTTP listener (before anything else starts, so a busy port is
/// a one-line start error).
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::server::StartError> {
    TcpListener::bind(addr).await.map_err(|source| {
        let hint = match source.kind() {
            std::io::ErrorKind::AddrInUse => {
                " (another process uses this port; stop it, pass --http-listen with another port, or --http-listen off)"
            }
            std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
            _ => "",
        };
        crate::server::StartError::HttpBind {
            addr,
            source,
            hint,
        }
    })
}
