//! The cluster listener (`--cluster-listen`): accepts other nodes' connections, checks
//! their handshake, then answers each request frame with the handler registered for its
//! kind. A connection that does not start with a Sluice handshake, or whose node is not
//! one this node talks to, is closed with one WARN line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::frame::{read_frame, write_frame};
use super::hello::{self, Hello, HelloReply, LocalNode, MAX_HELLO_BYTES};
use crate::kinds::Handlers;

/// How long a new connection has to send its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A running cluster listener.
pub struct ClusterListener {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// What a serving connection needs.
struct Serving {
    local: Arc<LocalNode>,
    handlers: Arc<Handlers>,
    max_frame_bytes: usize,
}

impl ClusterListener {
    /// Serves `listener` for `local`, answering with `handlers`; frames are at most
    /// `max_frame_bytes`.
    pub fn serve(
        listener: TcpListener,
        local: Arc<LocalNode>,
        handlers: Arc<Handlers>,
        max_frame_bytes: usize,
    ) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let serving = Arc::new(Serving {
            local,
            handlers,
            max_frame_bytes,
        });
        let task = tokio::spawn(accept_loop(listener, serving, stopped));
        Ok(Self {
            local_addr,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    serving: Arc<Serving>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, peer, serving.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster listener: accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// Resolves once the listener is told to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Shakes hands, then answers requests until the peer closes.
async fn serve_connection(mut stream: TcpStream, addr: SocketAddr, serving: Arc<Serving>) {
    let Some(peer) = handshake(&mut stream, addr, &serving.local).await else {
        return;
    };
    loop {
        let body = match read_frame(&mut stream, serving.max_frame_bytes).await {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%addr, node = peer.from, "closed a cluster connection: {e}");
                return;
            }
        };
        let Some((handler, payload)) = serving.handlers.route(&body) else {
            let kind = body.first().copied().unwrap_or_default();
            if crate::kinds::RpcKind::from_byte(kind).is_some() {
                // A kind this node serves once it has started (a peer asked early; it
                // reconnects and asks again).
                tracing::debug!(
                    %addr,
                    node = peer.from,
                    "closed a cluster connection: request kind {kind} is not served yet"
                );
            } else {
                tracing::warn!(
                    %addr,
                    node = peer.from,
                    "closed a cluster connection: request kind {kind} is unknown"
                );
            }
            return;
        };
        let kind = body.first().copied().unwrap_or_default();
        let answer = handler.handle(peer.from, payload).await;
        if write_frame(&mut stream, kind, &answer).await.is_err() {
            return;
        }
    }
}

/// Reads and checks the caller's handshake and answers it; `None` (the connection is to
/// be closed) when it is not one this node accepts.
async fn handshake(stream: &mut TcpStream, addr: SocketAddr, local: &LocalNode) -> Option<Hello> {
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(stream, MAX_HELLO_BYTES)).await;
    let body = match first {
        Ok(Ok(Some(body))) => body,
        // Connected and closed without a byte: a port check, nothing to say.
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            tracing::warn!(%addr, "closed a cluster connection: not a Sluice node ({e})");
            return None;
        }
        Err(_) => {
            tracing::warn!(%addr, "closed a cluster connection: no handshake within {HANDSHAKE_TIMEOUT:?}");
            return None;
        }
    };
    let caller = match hello::decode::<Hello>(&body) {
        Ok(caller) => caller,
        Err(e) => {
            tracing::warn!(%addr, "closed a cluster connection: {e}");
            return None;
        }
    };
    let reply = match local.check_caller(&caller) {
        Ok(()) => HelloReply::Accepted(local.hello(caller.from)),
        Err(reason) => {
            // While this node starts, it may itself be the one that does not belong (its
            // start then fails with a voter's refusal as its one error line): a note, not
            // a warning, until it has joined.
            if local.is_joined() {
                tracing::warn!(%addr, node = caller.from, "refused a cluster connection: {reason}");
            } else {
                tracing::info!(%addr, node = caller.from, "refused a cluster connection: {reason}");
            }
            HelloReply::Refused(reason)
        }
    };
    let accepted = matches!(reply, HelloReply::Accepted(_));
    let sent = write_frame(stream, hello::HELLO_KIND, &hello::encode(&reply)).await;
    (accepted && sent.is_ok()).then_some(caller)
}
