//! One client connection: frames in, responses out, in request order.
//!
//! The reader decodes and handles requests one at a time, so their effects
//! (appends, commits) happen in the order the client sent them. A handler may
//! hand back a task for the part that waits (fsync for acks=all, a long-poll
//! fetch, a rebalance); the writer awaits those in order, so responses leave in
//! request order while later requests are already being handled. The channel
//! between them is bounded: a client that pipelines more than
//! `MAX_IN_FLIGHT` requests waits for responses before more are read.

use std::net::SocketAddr;
use std::sync::Arc;

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use sluice_protocol::codec::{self, RequestFrame};
use sluice_protocol::fetch_encoder::encode_fetch_response;
use sluice_protocol::frame::FrameDecoder;
use sluice_protocol::frame::frame_size_prefix;
use sluice_protocol::kafka_protocol;
use sluice_protocol::legacy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::router::{self, Reply, RequestContext};

/// Requests whose responses may be outstanding on one connection.
const MAX_IN_FLIGHT: usize = 64;
const READ_BUFFER: usize = 64 * 1024;

// Moved once per request; boxing the ready response would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Pending {
    Ready(ResponseKind),
    Task(tokio::task::JoinHandle<ResponseKind>),
}

struct Outgoing {
    correlation_id: i32,
    api_key: ApiKey,
    /// The version the client used (the response is encoded at it).
    version: i16,
    pending: Pending,
    /// Set when the request used a version older than kafka-protocol decodes.
    legacy: Option<LegacyReply>,
}

/// What encoding a response to a legacy request needs beyond the response.
struct LegacyReply {
    /// Fetch offset per (topic, partition), so down-converted message sets
    /// start at the requested offset, as Kafka's do.
    fetch_offsets: HashMap<(String, i32), i64>,
}

/// What the reader does after a request.
enum Next {
    Continue,
    Close,
}

/// Serves one connection until the client closes it, sends something
/// undecodable, or the broker shuts down.
pub async fn serve_connection(
    socket: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) {
    let (mut reader, writer) = socket.into_split();
    let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
    let writer_task = tokio::spawn(write_responses(writer, rx, peer));
    let decoder = FrameDecoder::new(broker.config.max_request_bytes);
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    'conn: loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if let Next::Close = handle_frame(frame, peer, &broker, &tx).await {
                        break 'conn;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection");
                    break 'conn;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_BUFFER);
        }
        tokio::select! {
            _ = crate::server::stopped(&mut stop) => break,
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "read failed");
                    break;
                }
            },
        }
    }
    drop(tx);
    let _ = writer_task.await;
}

async fn handle_frame(
    frame: Bytes,
    peer: SocketAddr,
    broker: &Arc<Broker>,
    tx: &mpsc::Sender<Outgoing>,
) -> Next {
    let header = match codec::decode_header(frame) {
        Ok(h) => h,
        Err(e) => {
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
    let is_legacy = legacy::is_legacy(api_key, api_version);
    if !is_legacy && !router::supports(api_key, api_version) {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer with v0 and our table so the client can retry.
            let response = router::unsupported_api_versions();
            return send(
                tx,
                correlation_id,
                api_key,
                0,
                Pending::Ready(response),
                None,
            )
            .await;
        }
        tracing::warn!(
            %peer,
            client_id = header.client_id.as_deref().unwrap_or(""),
            "unsupported request {api_key:?} v{api_version}; closing connection"
        );
        return Next::Close;
    }
    let decoded = if is_legacy {
        // Old versions (Kafka 0.9-0.11 clients) are translated to the oldest
        // version kafka-protocol decodes; the handler runs at that version and
        // the response is encoded back in the client's layout.
        let mut body = header.body.clone();
        legacy::decode_request(api_key, api_version, &mut body).map_err(|e| e.to_string())
    } else {
        codec::decode_body(&header)
            .map(|r| (r, api_version))
            .map_err(|e| e.to_string())
    };
    let (request, handler_version) = match decoded {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "undecodable request {api_key:?} v{api_version}; closing connection");
            return Next::Close;
        }
    };
    let legacy_reply = is_legacy.then(|| LegacyReply {
        fetch_offsets: match &request {
            RequestKind::Fetch(f) => f
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| ((t.topic.to_string(), p.partition), p.fetch_offset))
                })
                .collect(),
            _ => HashMap::new(),
        },
    });
    let ctx = RequestContext {
        api_version: handler_version,
        client_id: header.client_id.as_deref().unwrap_or("").to_string(),
        peer,
    };
    tracing::trace!(%peer, client_id = %ctx.client_id, "{api_key:?} v{api_version} #{correlation_id}");
    match router::handle(broker, &ctx, request).await {
        Reply::Now(response) => {
            send(
                tx,
                correlation_id,
                api_key,
                api_version,
                Pending::Ready(response),
                legacy_reply,
            )
            .await
        }
        Reply::Later(task) => {
            send(
                tx,
                correlation_id,
                api_key,
                api_version,
                Pending::Task(task),
                legacy_reply,
            )
            .await
        }
        Reply::Nothing => Next::Continue,
        Reply::Close => Next::Close,
    }
}

async fn send(
    tx: &mpsc::Sender<Outgoing>,
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    pending: Pending,
    legacy: Option<LegacyReply>,
) -> Next {
    let out = Outgoing {
        correlation_id,
        api_key,
        version,
        pending,
        legacy,
    };
    match tx.send(out).await {
        Ok(()) => Next::Continue,
        Err(_) => Next::Close,
    }
}

async fn write_responses(
    mut writer: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
) {
    while let Some(out) = rx.recv().await {
        let Outgoing {
            correlation_id,
            api_key,
            version,
            pending,
            legacy,
        } = out;
        let response = match pending {
            Pending::Ready(r) => r,
            Pending::Task(task) => match task.await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(%peer, error = %e, "request task failed; closing connection");
                    return;
                }
            },
        };
        let chunks = encode(correlation_id, api_key, version, legacy.as_ref(), response);
        let chunks = match chunks {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(%peer, error = %e, "closing connection");
                return;
            }
        };
        if let Err(e) = write_chunks(&mut writer, chunks).await {
            tracing::debug!(%peer, error = %e, "write failed");
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Writes every chunk with vectored writes, resuming after partial writes.
async fn write_chunks(writer: &mut OwnedWriteHalf, mut chunks: Vec<Bytes>) -> std::io::Result<()> {
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
    Ok(())
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
                legacy::encode_fetch_response(version, fetch, &|topic, partition| {
                    reply
                        .fetch_offsets
                        .get(&(topic.to_string(), partition))
                        .copied()
                })
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
