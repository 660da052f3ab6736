//! One client connection: frames in, responses out, in request order.
//!
//! The reader decodes and handles requests one at a time, so their effects
//! (appends, commits) happen in the order the client sent them. A handler may
//! hand back a task for the part that waits (fsync for acks=all, a long-poll
//! fetch, a rebalance); the writer awaits those in order, so responses leave in
//! request order while later requests are already being handled. The channel
//! between them is bounded: a client that pipelines more than
//! `MAX_IN_FLIGHT` requests waits for responses before more are read, and
//! one that pipelines more than `MAX_FETCHES_IN_FLIGHT` fetches (the only
//! responses that carry much data) waits for those to be written.
//!
//! The connection works over any byte stream ([`ConnectionStream`]): a TCP socket, a TLS
//! stream wrapping one, or an in-memory pipe in tests. Before a request is decoded, the
//! connection's [`Session`] decides whether it may reach the router at all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use sluice_protocol::codec::{self, RequestFrame};
use sluice_protocol::fetch_encoder::encode_fetch_response;
use sluice_protocol::frame::FrameDecoder;
use sluice_protocol::frame::frame_size_prefix;
use sluice_protocol::kafka_protocol;
use sluice_protocol::legacy;
use sluice_protocol::model::TopicPartition;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::broker::Broker;
use crate::handlers::fetch::response_limit;
use crate::metrics::Metrics;
use crate::quotas::QuotaKind;
use crate::request::{ConnectionIdentity, Reply, RequestContext, RequestHeader};
use crate::router;
use crate::sasl;
use crate::session::Session;

/// Requests whose responses may be outstanding on one connection. acks=all
/// produce responses wait for a sync, and a producer with linger.ms=0 has
/// hundreds in flight at 50 MB/s: a small bound stopped the reading of new
/// requests, so their appends (and consumers' view of them) waited for
/// unrelated syncs. Each outstanding produce costs a few hundred bytes.
const MAX_IN_FLIGHT: usize = 1024;
/// Fetches whose responses may be outstanding on one connection: each may
/// hold up to its `max_bytes` of log data until it is written. Clients send
/// one fetch per broker at a time.
const MAX_FETCHES_IN_FLIGHT: usize = 4;
const READ_BUFFER: usize = 64 * 1024;

// Moved once per request; boxing the ready response would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Pending {
    Ready(ResponseKind),
    Task(tokio::task::JoinHandle<ResponseKind>),
    /// A raw SASL token (after SaslHandshake v0): framed without a response header.
    Raw(Bytes),
}

struct Outgoing {
    request: RequestInfo,
    /// The version the client used (the response is encoded at it).
    version: i16,
    pending: Pending,
    /// Set when the request used a version older than kafka-protocol decodes.
    legacy: Option<LegacyReply>,
    /// Held by a fetch until its response is written (see `MAX_FETCHES_IN_FLIGHT`).
    _fetch_permit: Option<OwnedSemaphorePermit>,
    /// The client quota this response counts against.
    throttle: Throttle,
}

/// How a response is throttled (KIP-219): it carries `throttle_time_ms` and the connection
/// then reads nothing for that long.
enum Throttle {
    /// No quota applies.
    None,
    /// Worked out when the request was read (Produce counts request bytes).
    Known(i64),
    /// Worked out from the response (Fetch counts response bytes); `at_least` is the
    /// request time throttle already due.
    FetchBytes {
        user: String,
        client_id: String,
        at_least: i64,
    },
}

impl Throttle {
    /// This throttle, and at least `ms` (the request time quota's).
    fn at_least(self, ms: i64) -> Throttle {
        if ms <= 0 {
            return self;
        }
        match self {
            Throttle::None => Throttle::Known(ms),
            Throttle::Known(known) => Throttle::Known(known.max(ms)),
            Throttle::FetchBytes {
                user,
                client_id,
                at_least,
            } => Throttle::FetchBytes {
                user,
                client_id,
                at_least: at_least.max(ms),
            },
        }
    }
}

/// Until when the connection reads nothing (a throttled client).
#[derive(Default)]
struct Mute(parking_lot::Mutex<Option<tokio::time::Instant>>);

impl Mute {
    /// Mutes for `ms` from now (never shortening a longer mute).
    fn for_ms(&self, ms: i64) {
        let Ok(ms) = u64::try_from(ms) else { return };
        let until = tokio::time::Instant::now() + Duration::from_millis(ms);
        let mut current = self.0.lock();
        if current.is_none_or(|c| c < until) {
            *current = Some(until);
        }
    }

    /// Until when, if muted.
    fn until(&self) -> Option<tokio::time::Instant> {
        *self.0.lock()
    }
}

/// What encoding a response to a legacy request needs beyond the response.
struct LegacyReply {
    /// Fetch offset per (topic, partition), so down-converted message sets
    /// start at the requested offset, as Kafka's do.
    fetch_offsets: HashMap<TopicPartition, i64>,
    /// The byte limit of a Fetch response, which down-converted message sets
    /// (larger than the stored records) must keep to as well.
    fetch_max_bytes: usize,
}

/// A client's byte stream, split into a read half and a write half so that the reader and
/// the writer of a connection run as separate tasks.
pub trait ConnectionStream: Send + 'static {
    /// The half requests are read from.
    type Reader: AsyncRead + Unpin + Send + 'static;
    /// The half responses are written to (vectored writes should be native).
    type Writer: AsyncWrite + Unpin + Send + 'static;
    /// Splits the stream.
    fn into_halves(self) -> (Self::Reader, Self::Writer);
}

/// A TCP socket splits into halves that share no lock.
impl ConnectionStream for TcpStream {
    type Reader = tokio::net::tcp::OwnedReadHalf;
    type Writer = tokio::net::tcp::OwnedWriteHalf;
    fn into_halves(self) -> (Self::Reader, Self::Writer) {
        self.into_split()
    }
}

/// Any other stream (TLS, an in-memory pipe): split with [`tokio::io::split`], whose halves
/// take turns on one lock.
pub struct SharedStream<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> ConnectionStream for SharedStream<S> {
    type Reader = tokio::io::ReadHalf<S>;
    type Writer = tokio::io::WriteHalf<S>;
    fn into_halves(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self.0)
    }
}

/// What the reader does after a request.
enum Next {
    Continue,
    Close,
    /// Close once the answer is out and the client has closed its end (or
    /// [`LINGER_AFTER_FAILED_AUTHENTICATION`] has passed).
    CloseAfterClient,
}

/// How long a connection whose authentication failed stays open after its answer, for the
/// client to read it and close first: a client that reads the answer and the end of the
/// stream in one go may report only the end (kafka-python does), not why it was refused.
const LINGER_AFTER_FAILED_AUTHENTICATION: Duration = Duration::from_secs(1);

/// Serves one connection until the client closes it, sends something
/// undecodable, or the broker shuts down.
pub async fn serve_connection<S: ConnectionStream>(
    stream: S,
    identity: ConnectionIdentity,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) {
    let _open = broker.metrics.connection_opened();
    let peer = identity.peer;
    let tls_listener = identity.security_protocol.uses_tls();
    let mut session = Session::new(identity, broker.security.auth_timeout);
    let (mut reader, writer) = stream.into_halves();
    let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
    let unanswered = Arc::new(AtomicUsize::new(0));
    let mute = Arc::new(Mute::default());
    let writer_task = tokio::spawn(write_responses(
        writer,
        rx,
        peer,
        broker.clone(),
        unanswered.clone(),
        mute.clone(),
    ));
    let max_idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let mut idle_deadline = tokio::time::Instant::now() + max_idle;
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let fetches = Arc::new(Semaphore::new(MAX_FETCHES_IN_FLIGHT));
    'conn: loop {
        loop {
            // Before authentication, frames are bounded by sasl.server.max.receive.size.
            let decoder = FrameDecoder::new(session.max_frame(
                broker.config.max_request_bytes,
                broker.security.pre_auth_max_frame,
            ));
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    // A throttled client's next request waits out its throttle time.
                    if let Some(until) = mute.until()
                        && until > tokio::time::Instant::now()
                    {
                        tokio::select! {
                            _ = crate::server::stopped(&mut stop) => break 'conn,
                            _ = tokio::time::sleep_until(until) => {}
                        }
                    }
                    let out = Out {
                        tx: &tx,
                        fetches: &fetches,
                        unanswered: &unanswered,
                        mute: &mute,
                    };
                    let next = if session.expects_raw_token() {
                        handle_raw_token(frame, &mut session, &broker, out).await
                    } else {
                        handle_frame(frame, &mut session, &broker, out).await
                    };
                    match next {
                        Next::Continue => {}
                        Next::Close => break 'conn,
                        Next::CloseAfterClient => {
                            linger_until_client_closes(&mut reader).await;
                            break 'conn;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) if !tls_listener && buf.starts_with(&[0x16, 0x03]) => {
                    tracing::warn!(
                        %peer,
                        listener = %session.identity().listener,
                        "TLS client on plaintext listener: closing (error: {e})"
                    );
                    break 'conn;
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection");
                    break 'conn;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_BUFFER);
        }
        let auth_deadline = session.auth_deadline();
        tokio::select! {
            _ = crate::server::stopped(&mut stop) => break,
            _ = tokio::time::sleep_until(auth_deadline.unwrap_or(idle_deadline)), if auth_deadline.is_some() => {
                tracing::warn!(%peer, "client did not authenticate within {:?}; closing", broker.security.auth_timeout);
                break;
            }
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => break,
                Ok(_) => idle_deadline = tokio::time::Instant::now() + max_idle,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "read failed");
                    break;
                }
            },
            _ = tokio::time::sleep_until(idle_deadline) => {
                // connections.max.idle.ms: idle means no request and no response owed
                // (a long-polling fetch keeps its connection).
                if unanswered.load(Ordering::Acquire) == 0 {
                    tracing::debug!(%peer, idle_ms = max_idle.as_millis(), "closing idle connection");
                    break;
                }
                idle_deadline = tokio::time::Instant::now() + max_idle;
            }
        }
    }
    drop(tx);
    let _ = writer_task.await;
}

/// Reads (and drops) what the client still sends until it closes its end, for at most
/// [`LINGER_AFTER_FAILED_AUTHENTICATION`]; the writer meanwhile sends what is queued.
async fn linger_until_client_closes<R: AsyncRead + Unpin>(reader: &mut R) {
    let mut scratch = [0u8; 512];
    let _ = tokio::time::timeout(LINGER_AFTER_FAILED_AUTHENTICATION, async {
        while let Ok(1..) = reader.read(&mut scratch).await {}
    })
    .await;
}

/// Where a request's response goes, and the fetch permits of its connection.
#[derive(Clone, Copy)]
struct Out<'a> {
    tx: &'a mpsc::Sender<Outgoing>,
    fetches: &'a Arc<Semaphore>,
    /// Responses queued for the writer and not yet written.
    unanswered: &'a AtomicUsize,
    /// Set when the client is throttled.
    mute: &'a Mute,
}

async fn handle_frame(
    frame: Bytes,
    session: &mut Session,
    broker: &Arc<Broker>,
    out: Out<'_>,
) -> Next {
    let received = Instant::now();
    let frame_len = frame.len();
    let peer = session.identity().peer;
    let metrics = &broker.metrics;
    let (raw_key, raw_version) = codec::peek_api(&frame).unwrap_or((-1, -1));
    let header = match codec::decode_header(frame) {
        Ok(h) => h,
        Err(e) => {
            metrics.request(raw_key, raw_version);
            metrics.request_errors(raw_key, raw_version, 1);
            tracing::warn!(%peer, error = %e, "undecodable request header; closing connection");
            return Next::Close;
        }
    };
    let RequestFrame {
        api_key,
        api_version,
        correlation_id,
        ..
    } = header;
    metrics.request(api_key as i16, api_version);
    let debug_client = broker
        .config
        .debug_client_id
        .as_deref()
        .filter(|id| header.client_id.as_deref() == Some(*id))
        .map(str::to_string);
    let request = RequestInfo {
        correlation_id,
        api_key,
        received,
        debug_client,
    };
    // The request ended without a response: count and log it here.
    let closed = |what: &str| {
        metrics.request_errors(api_key as i16, api_version, 1);
        request.finished(metrics, api_version, Some(what));
    };
    if let Err(refusal) = session.admit(api_key, Instant::now()) {
        match session.pending_refusal() {
            Some(why) => tracing::warn!(
                %peer,
                listener = %session.identity().listener,
                "{refusal} ({why}; the client did not answer the error challenge); closing connection"
            ),
            None => tracing::warn!(
                %peer,
                listener = %session.identity().listener,
                "{refusal}; closing connection"
            ),
        }
        closed("refused before authentication; connection closed");
        return Next::Close;
    }
    let is_legacy = legacy::is_legacy(api_key, api_version);
    if !is_legacy && !router::supports(api_key, api_version) {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer with v0 and our table so the client can retry.
            let response = router::unsupported_api_versions();
            return send(out, request, 0, Pending::Ready(response), None, None).await;
        }
        tracing::warn!(
            %peer,
            client_id = header.client_id.as_deref().unwrap_or(""),
            "unsupported request {api_key:?} v{api_version}; closing connection"
        );
        closed("unsupported version; connection closed");
        return Next::Close;
    }
    let (decoded_request, handler_version) = match decode_request(&header, is_legacy) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "undecodable request {api_key:?} v{api_version}; closing connection");
            closed("undecodable request; connection closed");
            return Next::Close;
        }
    };
    let decoded_request = match sasl_request(decoded_request, session, broker, api_version).await {
        Ok(outcome) => return finish_sasl(outcome, out, request, api_version, metrics).await,
        Err(other) => other,
    };
    let legacy_reply =
        is_legacy.then(|| LegacyReply::new(&decoded_request, broker.config.fetch_max_bytes));
    let ctx = RequestContext::new(
        RequestHeader {
            api_key,
            api_version: handler_version,
            correlation_id,
            client_id: header.client_id.unwrap_or_default(),
        },
        session.identity(),
    );
    tracing::trace!(%peer, client_id = ctx.client_id(), "{api_key:?} v{api_version} #{correlation_id}");
    let fetch_permit = if api_key == ApiKey::Fetch {
        match out.fetches.clone().acquire_owned().await {
            Ok(permit) => Some(permit),
            Err(_) => return Next::Close,
        }
    } else {
        None
    };
    let throttle = quota_throttle(broker, &ctx, frame_len);
    if let Throttle::Known(ms) = throttle {
        // Respond, then mute: the response goes out now with throttle_time_ms, and the
        // next request (pipelined ones included) waits, as Kafka's socket server does.
        out.mute.for_ms(ms);
    }
    let handling = Instant::now();
    let reply = router::dispatch(broker, &ctx, decoded_request).await;
    let throttle = match reply {
        Reply::Now(_) | Reply::Later(_) => {
            let ms = request_time_throttle(broker, &ctx, handling.elapsed());
            // Respond, then mute, as for byte rates.
            out.mute.for_ms(ms);
            throttle.at_least(ms)
        }
        // acks=0 is not held to the request time quota (Kafka records none for it).
        Reply::Nothing | Reply::Close => throttle,
    };
    let pending = match reply {
        Reply::Now(response) => Pending::Ready(response),
        Reply::Later(task) => Pending::Task(task),
        Reply::Nothing => {
            // acks=0: nothing carries the throttle time; the client is only muted.
            request.finished(metrics, api_version, None);
            return Next::Continue;
        }
        Reply::Close => {
            closed("acks=0 produce failed; connection closed");
            return Next::Close;
        }
    };
    send_throttled(
        out,
        request,
        api_version,
        pending,
        legacy_reply,
        fetch_permit,
        throttle,
    )
    .await
}

/// The quota a request counts against: Produce's request bytes now, Fetch's response bytes
/// when it is ready.
fn quota_throttle(broker: &Broker, ctx: &RequestContext, frame_len: usize) -> Throttle {
    let user = ctx.principal.name();
    match ctx.header.api_key {
        ApiKey::Produce => {
            let ms = broker.security.quotas.record(
                &broker.metadata.image(),
                QuotaKind::Produce,
                user,
                ctx.client_id(),
                frame_len,
                broker.clock.now_ms(),
            );
            if ms > 0 {
                Throttle::Known(ms)
            } else {
                Throttle::None
            }
        }
        ApiKey::Fetch if !broker.metadata.image().security.quotas().is_empty() => {
            Throttle::FetchBytes {
                user: user.to_string(),
                client_id: ctx.client_id().to_string(),
                at_least: 0,
            }
        }
        _ => Throttle::None,
    }
}

/// Records how long the handler of a request took against the client's
/// `request_percentage`; returns the throttle time it earns (0 without that quota).
fn request_time_throttle(broker: &Broker, ctx: &RequestContext, handling: Duration) -> i64 {
    broker.security.quotas.record_request_time(
        &broker.metadata.image(),
        ctx.principal.name(),
        ctx.client_id(),
        handling,
        broker.clock.now_ms(),
    )
}

/// Sets `throttle_time_ms` on every kind of response that has one (never lowering it;
/// versions without the field do not encode it).
fn set_throttle_time(response: &mut ResponseKind, ms: i64) {
    let ms = i32::try_from(ms).unwrap_or(i32::MAX);
    macro_rules! raise {
        ($($kind:ident),* $(,)?) => {
            match response {
                $(ResponseKind::$kind(r) => r.throttle_time_ms = r.throttle_time_ms.max(ms),)*
                _ => {}
            }
        };
    }
    raise!(
        AddOffsetsToTxn,
        AddPartitionsToTxn,
        AlterClientQuotas,
        AlterConfigs,
        AlterPartitionReassignments,
        AlterReplicaLogDirs,
        AlterUserScramCredentials,
        ApiVersions,
        ConsumerGroupDescribe,
        ConsumerGroupHeartbeat,
        CreateAcls,
        CreateDelegationToken,
        CreatePartitions,
        CreateTopics,
        DeleteAcls,
        DeleteGroups,
        DeleteRecords,
        DeleteTopics,
        DescribeAcls,
        DescribeClientQuotas,
        DescribeCluster,
        DescribeConfigs,
        DescribeDelegationToken,
        DescribeGroups,
        DescribeLogDirs,
        DescribeProducers,
        DescribeTopicPartitions,
        DescribeTransactions,
        DescribeUserScramCredentials,
        ElectLeaders,
        EndTxn,
        ExpireDelegationToken,
        Fetch,
        FindCoordinator,
        GetTelemetrySubscriptions,
        Heartbeat,
        IncrementalAlterConfigs,
        InitProducerId,
        JoinGroup,
        LeaveGroup,
        ListGroups,
        ListOffsets,
        ListPartitionReassignments,
        ListTransactions,
        Metadata,
        OffsetCommit,
        OffsetDelete,
        OffsetFetch,
        OffsetForLeaderEpoch,
        Produce,
        PushTelemetry,
        RenewDelegationToken,
        SyncGroup,
        TxnOffsetCommit,
        UnregisterBroker,
        UpdateFeatures,
    );
}

/// The record bytes of a Fetch response.
fn fetched_bytes(response: &ResponseKind) -> usize {
    match response {
        ResponseKind::Fetch(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.records.as_ref().map(Bytes::len))
            .sum(),
        _ => 0,
    }
}

/// Handles SaslHandshake and SaslAuthenticate on a SASL listener, where they change the
/// session; every other request (and these on other listeners) is handed back.
async fn sasl_request(
    request: RequestKind,
    session: &mut Session,
    broker: &Broker,
    version: i16,
) -> Result<sasl::SaslOutcome, RequestKind> {
    if !session.uses_sasl() {
        return Err(request);
    }
    match request {
        RequestKind::SaslHandshake(r) => Ok(sasl::handshake(session, broker, &r, version)),
        RequestKind::SaslAuthenticate(r) => {
            Ok(sasl::authenticate(session, broker, r, version).await)
        }
        other => Err(other),
    }
}

/// Queues the answer of a SASL request and says whether the connection goes on.
async fn finish_sasl(
    outcome: sasl::SaslOutcome,
    out: Out<'_>,
    request: RequestInfo,
    version: i16,
    metrics: &Metrics,
) -> Next {
    match outcome {
        sasl::SaslOutcome::Reply(response) => {
            send(out, request, version, Pending::Ready(response), None, None).await
        }
        sasl::SaslOutcome::RawReply(token) => {
            send(out, request, version, Pending::Raw(token), None, None).await
        }
        sasl::SaslOutcome::ReplyThenClose(response) => {
            send(out, request, version, Pending::Ready(response), None, None).await;
            Next::CloseAfterClient
        }
        sasl::SaslOutcome::Close => {
            metrics.request_errors(request.api_key as i16, version, 1);
            request.finished(
                metrics,
                version,
                Some("authentication failed; connection closed"),
            );
            Next::Close
        }
    }
}

/// Handles a frame that is a raw SASL token (after SaslHandshake v0): answered with a raw
/// token, or the connection closes.
async fn handle_raw_token(
    frame: Bytes,
    session: &mut Session,
    broker: &Arc<Broker>,
    out: Out<'_>,
) -> Next {
    let request = RequestInfo {
        correlation_id: 0,
        api_key: ApiKey::SaslAuthenticate,
        received: Instant::now(),
        debug_client: None,
    };
    match sasl::raw_token(session, broker, frame).await {
        sasl::SaslOutcome::RawReply(token) => {
            send(out, request, 0, Pending::Raw(token), None, None).await
        }
        _ => Next::Close,
    }
}

/// Decodes a request's body. Old versions (Kafka 0.9-0.11 clients) are translated to the
/// oldest version kafka-protocol decodes; the handler runs at that version (returned with
/// the request) and the response is encoded back in the client's layout.
fn decode_request(header: &RequestFrame, is_legacy: bool) -> Result<(RequestKind, i16), String> {
    if is_legacy {
        let mut body = header.body.clone();
        legacy::decode_request(header.api_key, header.api_version, &mut body)
            .map_err(|e| e.to_string())
    } else {
        codec::decode_body(header)
            .map(|r| (r, header.api_version))
            .map_err(|e| e.to_string())
    }
}

impl LegacyReply {
    /// What the response to a legacy `request` needs: for a Fetch, the offsets asked for and
    /// the response's byte limit.
    fn new(request: &RequestKind, broker_fetch_max_bytes: i32) -> Self {
        let RequestKind::Fetch(fetch) = request else {
            return LegacyReply {
                fetch_offsets: HashMap::new(),
                fetch_max_bytes: 0,
            };
        };
        let fetch_offsets = fetch
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    (
                        TopicPartition::new(t.topic.to_string(), p.partition),
                        p.fetch_offset,
                    )
                })
            })
            .collect();
        LegacyReply {
            fetch_offsets,
            fetch_max_bytes: response_limit(fetch.max_bytes, broker_fetch_max_bytes),
        }
    }
}

/// Counts a queued response as answered when the writer is done with it, however it ends.
struct Answered<'a>(&'a AtomicUsize);

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the writer needs to know of a request besides its response.
struct RequestInfo {
    correlation_id: i32,
    api_key: ApiKey,
    /// When the request's frame was complete (for the latency histogram).
    received: Instant,
    /// The client id, when requests of this client are logged one by one.
    debug_client: Option<String>,
}

impl RequestInfo {
    /// Records the request's latency and, for the debugged client, logs it.
    fn finished(&self, metrics: &Metrics, version: i16, errors: Option<&str>) {
        let elapsed = self.received.elapsed();
        metrics.request_duration(self.api_key as i16, elapsed);
        if let Some(client_id) = &self.debug_client {
            tracing::info!(
                client_id = %client_id,
                api = ?self.api_key,
                version,
                correlation_id = self.correlation_id,
                duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                errors = errors.unwrap_or("none"),
                "request"
            );
        }
    }
}

async fn send(
    out: Out<'_>,
    request: RequestInfo,
    version: i16,
    pending: Pending,
    legacy: Option<LegacyReply>,
    fetch_permit: Option<OwnedSemaphorePermit>,
) -> Next {
    send_throttled(
        out,
        request,
        version,
        pending,
        legacy,
        fetch_permit,
        Throttle::None,
    )
    .await
}

async fn send_throttled(
    out: Out<'_>,
    request: RequestInfo,
    version: i16,
    pending: Pending,
    legacy: Option<LegacyReply>,
    fetch_permit: Option<OwnedSemaphorePermit>,
    throttle: Throttle,
) -> Next {
    let outgoing = Outgoing {
        request,
        version,
        pending,
        legacy,
        _fetch_permit: fetch_permit,
        throttle,
    };
    out.unanswered.fetch_add(1, Ordering::AcqRel);
    match out.tx.send(outgoing).await {
        Ok(()) => Next::Continue,
        Err(_) => Next::Close,
    }
}

async fn write_responses<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
    broker: Arc<Broker>,
    unanswered: Arc<AtomicUsize>,
    mute: Arc<Mute>,
) {
    let metrics = broker.metrics.clone();
    while let Some(out) = rx.recv().await {
        let _answered = Answered(&unanswered);
        let Outgoing {
            request,
            version,
            pending,
            legacy,
            _fetch_permit,
            throttle,
        } = out;
        let api_key = request.api_key;
        let response = match pending {
            Pending::Raw(token) => {
                let prefix = Bytes::copy_from_slice(&frame_size_prefix(token.len()));
                let written = write_chunks(&mut writer, vec![prefix, token]).await;
                request.finished(&metrics, version, None);
                if written.is_err() {
                    return;
                }
                continue;
            }
            Pending::Ready(r) => r,
            Pending::Task(task) => match task.await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(%peer, error = %e, "request task failed; closing connection");
                    return;
                }
            },
        };
        let mut response = response;
        let throttle_ms = match throttle {
            Throttle::None => 0,
            Throttle::Known(ms) => ms,
            Throttle::FetchBytes {
                user,
                client_id,
                at_least,
            } => broker
                .security
                .quotas
                .record(
                    &broker.metadata.image(),
                    QuotaKind::Fetch,
                    &user,
                    &client_id,
                    fetched_bytes(&response),
                    broker.clock.now_ms(),
                )
                .max(at_least),
        };
        if throttle_ms > 0 {
            set_throttle_time(&mut response, throttle_ms);
            // A Produce's mute began when it was read; a Fetch's begins now.
            mute.for_ms(throttle_ms);
            broker.security.throttled(throttle_ms);
        }
        let errors = partition_errors(&response);
        metrics.request_errors(api_key as i16, version, errors);
        let summary = request
            .debug_client
            .as_ref()
            .and_then(|_| error_summary(&response));
        let chunks = encode(
            request.correlation_id,
            api_key,
            version,
            legacy.as_ref(),
            response,
        );
        let chunks = match chunks {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(%peer, error = %e, "closing connection");
                return;
            }
        };
        let written = write_chunks(&mut writer, chunks).await;
        request.finished(&metrics, version, summary.as_deref());
        if let Err(e) = written {
            tracing::debug!(%peer, error = %e, "write failed");
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Writes every chunk with vectored writes, resuming after partial writes, then flushes: a
/// TLS stream may keep the tail of what it accepted (encrypted, waiting for the socket)
/// until flushed, and the client would wait for it until the next response.
async fn write_chunks<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut chunks: Vec<Bytes>,
) -> std::io::Result<()> {
    /// Slices per writev call (well below IOV_MAX).
    const MAX_SLICES: usize = 64;
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<std::io::IoSlice<'_>> = chunks
            .iter()
            .skip(first)
            .take(MAX_SLICES)
            .map(|c| std::io::IoSlice::new(c))
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let Some(chunk) = chunks.get_mut(first) else {
                break;
            };
            if written >= chunk.len() {
                written -= chunk.len();
                first += 1;
            } else {
                bytes::Buf::advance(chunk, written);
                written = 0;
            }
        }
        while chunks.get(first).is_some_and(Bytes::is_empty) {
            first += 1;
        }
    }
    writer.flush().await
}

/// Encodes a response frame as chunks: legacy layouts for old versions,
/// record batches as separate chunks for Fetch, one buffer otherwise.
fn encode(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    legacy_reply: Option<&LegacyReply>,
    response: ResponseKind,
) -> Result<Vec<Bytes>, String> {
    if let Some(reply) = legacy_reply {
        let body = match &response {
            ResponseKind::Fetch(fetch) => {
                let fetch_offset = |topic: &str, partition| {
                    reply
                        .fetch_offsets
                        .get(&TopicPartition::new(topic, partition))
                        .copied()
                };
                legacy::encode_fetch_response(version, fetch, &fetch_offset, reply.fetch_max_bytes)
            }
            other => legacy::encode_response_body(api_key, version, other),
        }
        .map_err(|e| e.to_string())?;
        // Legacy responses use response header v0: the correlation id only.
        let mut head = BytesMut::with_capacity(8);
        head.put_slice(&frame_size_prefix(body.len() + 4));
        head.put_i32(correlation_id);
        return Ok(vec![head.freeze(), body]);
    }
    match response {
        // Record batches go out from the buffers the log read filled.
        ResponseKind::Fetch(fetch) => encode_fetch_response(correlation_id, version, fetch),
        other => codec::encode_response(correlation_id, api_key, version, &other).map(|f| vec![f]),
    }
    .map_err(|e| e.to_string())
}

/// Encodes a response of the current layout (not a legacy one) as the chunks of its frame,
/// the 4-byte length first: for requests that did not come over a client connection.
pub(crate) fn encode_response_chunks(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    response: ResponseKind,
) -> Result<Vec<Bytes>, String> {
    encode(correlation_id, api_key, version, None, response)
}

/// Produce and Fetch partitions answered with a non-zero error code (plus a
/// Fetch's top-level error): what `sluice_request_errors_total` counts for
/// requests that were answered.
fn partition_errors(response: &ResponseKind) -> u64 {
    let count = match response {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .filter(|p| p.error_code != 0)
            .count(),
        ResponseKind::Fetch(r) => {
            usize::from(r.error_code != 0)
                + r.responses
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .filter(|p| p.error_code != 0)
                    .count()
        }
        _ => 0,
    };
    u64::try_from(count).unwrap_or(u64::MAX)
}

/// The non-zero error codes of a response, by name with their counts, for
/// the per-client request log; `None` when the response carries no error
/// (or is of a kind whose errors are not summarised).
fn error_summary(response: &ResponseKind) -> Option<String> {
    let mut codes: Vec<i16> = Vec::new();
    match response {
        ResponseKind::Produce(r) => codes.extend(
            r.responses
                .iter()
                .flat_map(|t| &t.partition_responses)
                .map(|p| p.error_code),
        ),
        ResponseKind::Fetch(r) => {
            codes.push(r.error_code);
            codes.extend(
                r.responses
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .map(|p| p.error_code),
            );
        }
        ResponseKind::ListOffsets(r) => codes.extend(
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code),
        ),
        ResponseKind::Metadata(r) => codes.extend(r.topics.iter().map(|t| t.error_code)),
        ResponseKind::OffsetCommit(r) => codes.extend(
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code),
        ),
        ResponseKind::OffsetFetch(r) => {
            codes.push(r.error_code);
            codes.extend(
                r.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .map(|p| p.error_code),
            );
            codes.extend(r.groups.iter().map(|g| g.error_code));
        }
        ResponseKind::FindCoordinator(r) => {
            codes.push(r.error_code);
            codes.extend(r.coordinators.iter().map(|c| c.error_code));
        }
        ResponseKind::JoinGroup(r) => codes.push(r.error_code),
        ResponseKind::SyncGroup(r) => codes.push(r.error_code),
        ResponseKind::Heartbeat(r) => codes.push(r.error_code),
        ResponseKind::LeaveGroup(r) => codes.push(r.error_code),
        ResponseKind::ListGroups(r) => codes.push(r.error_code),
        ResponseKind::DescribeGroups(r) => codes.extend(r.groups.iter().map(|g| g.error_code)),
        ResponseKind::ApiVersions(r) => codes.push(r.error_code),
        ResponseKind::CreateTopics(r) => codes.extend(r.topics.iter().map(|t| t.error_code)),
        ResponseKind::DeleteTopics(r) => codes.extend(r.responses.iter().map(|t| t.error_code)),
        ResponseKind::InitProducerId(r) => codes.push(r.error_code),
        ResponseKind::AddOffsetsToTxn(r) => codes.push(r.error_code),
        ResponseKind::EndTxn(r) => codes.push(r.error_code),
        _ => {}
    }
    codes.retain(|&c| c != 0);
    if codes.is_empty() {
        return None;
    }
    codes.sort_unstable();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&code) = codes.get(i) {
        let n = codes.iter().skip(i).take_while(|&&c| c == code).count();
        let name = ResponseError::try_from_code(code)
            .map_or_else(|| format!("error {code}"), |e| format!("{e:?}"));
        parts.push(if n > 1 { format!("{name} x{n}") } else { name });
        i += n;
    }
    Some(parts.join(", "))
}

#[cfg(test)]
mod tests {
    //! The connection over an in-memory pipe: no socket involved.

    use bytes::Buf;
    use kafka_protocol::messages::{
        ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
        RequestHeader as WireHeader, ResponseHeader,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use tokio::io::DuplexStream;

    use super::*;
    use crate::request::{ConnectionId, SecurityProtocol};
    use crate::test_context::BrokerTestContext;

    /// A request frame: size prefix, header, body.
    fn frame<R: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &R) -> Vec<u8> {
        let mut buf = BytesMut::new();
        WireHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("pipe")))
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut out = frame_size_prefix(buf.len()).to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// Reads one response frame: its correlation id and body.
    async fn response(client: &mut DuplexStream, api: ApiKey, version: i16) -> (i32, Bytes) {
        let mut size = [0u8; 4];
        client.read_exact(&mut size).await.unwrap();
        let mut body = vec![0u8; usize::try_from(i32::from_be_bytes(size)).unwrap()];
        client.read_exact(&mut body).await.unwrap();
        let mut body = Bytes::from(body);
        let header =
            ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
        (header.correlation_id, body)
    }

    /// Serves a connection of `protocol` over an in-memory pipe; returns the client's end.
    fn connect(
        test: &BrokerTestContext,
        protocol: SecurityProtocol,
    ) -> (DuplexStream, watch::Sender<bool>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut identity =
            ConnectionIdentity::plaintext(ConnectionId::next(), "127.0.0.1:1".parse().unwrap());
        identity.security_protocol = protocol;
        let (stop, stop_rx) = watch::channel(false);
        let broker = test.broker().clone();
        tokio::spawn(serve_connection(
            SharedStream(server),
            identity,
            broker,
            stop_rx,
        ));
        (client, stop)
    }

    #[tokio::test]
    async fn serves_pipelined_requests_in_order_over_any_stream() {
        let test = BrokerTestContext::new().await;
        test.create_topic("t", 3).await;
        let (mut client, _stop) = connect(&test, SecurityProtocol::Plaintext);
        let mut pipelined = frame(ApiKey::ApiVersions, 3, 7, &ApiVersionsRequest::default());
        pipelined.extend(frame(
            ApiKey::Metadata,
            12,
            8,
            &MetadataRequest::default().with_topics(None),
        ));
        client.write_all(&pipelined).await.unwrap();

        let (correlation_id, mut body) = response(&mut client, ApiKey::ApiVersions, 3).await;
        let versions = ApiVersionsResponse::decode(&mut body, 3).unwrap();
        assert_eq!((correlation_id, versions.error_code), (7, 0));
        assert_eq!(versions.api_keys.len(), router::HANDLERS.len());
        let (correlation_id, mut body) = response(&mut client, ApiKey::Metadata, 12).await;
        let metadata = MetadataResponse::decode(&mut body, 12).unwrap();
        assert_eq!(correlation_id, 8);
        let topics: Vec<(String, usize)> = metadata
            .topics
            .iter()
            .map(|t| (t.name.as_ref().unwrap().to_string(), t.partitions.len()))
            .collect();
        assert_eq!(topics, vec![("t".to_string(), 3)]);
        assert!(!body.has_remaining());
    }

    #[tokio::test]
    async fn an_unauthenticated_sasl_connection_is_closed_at_its_first_other_request() {
        let test = BrokerTestContext::new().await;
        let (mut client, _stop) = connect(&test, SecurityProtocol::SaslPlaintext);
        client
            .write_all(&frame(
                ApiKey::ApiVersions,
                3,
                1,
                &ApiVersionsRequest::default(),
            ))
            .await
            .unwrap();
        let (correlation_id, _) = response(&mut client, ApiKey::ApiVersions, 3).await;
        assert_eq!(correlation_id, 1);
        client
            .write_all(&frame(ApiKey::Metadata, 12, 2, &MetadataRequest::default()))
            .await
            .unwrap();
        // Closed without a response, as Kafka does.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest));
        read.await
            .expect("the connection is closed at once")
            .unwrap();
        assert!(
            rest.is_empty(),
            "{} bytes after the refused request",
            rest.len()
        );
    }

    /// A writer that, like a TLS stream whose socket would block, keeps what it accepts
    /// until flushed.
    #[derive(Default)]
    struct HoldsUntilFlushed {
        held: Vec<u8>,
        wire: Vec<u8>,
    }

    impl AsyncWrite for HoldsUntilFlushed {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.held.extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let held = std::mem::take(&mut self.held);
            self.wire.extend_from_slice(&held);
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.poll_flush(cx)
        }
    }

    /// A response is on the wire once written, not left in the stream's buffer until the
    /// next one pushes it out.
    #[tokio::test]
    async fn written_chunks_are_flushed() {
        let mut writer = HoldsUntilFlushed::default();
        let chunks = vec![Bytes::from_static(b"head"), Bytes::from_static(b"body")];
        write_chunks(&mut writer, chunks).await.unwrap();
        assert_eq!(writer.wire, b"headbody");
        assert!(writer.held.is_empty());
    }
}
