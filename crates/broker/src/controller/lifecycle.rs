//! A broker's side of the controller (Kafka's `BrokerLifecycleManager`): it heartbeats to
//! the quorum leader every `broker.heartbeat.interval.ms` with its broker epoch and how
//! far it has applied the metadata, learns whether it is fenced, and on shutdown asks to
//! stop, waits until the controller has moved its leaderships away, and at last asks to be
//! fenced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId};
use sluice_cluster::Transport;
use sluice_protocol::kafka_protocol;
use tokio::sync::{Notify, watch};

use crate::broker::Broker;
use crate::peer::call_peer;

/// The BrokerHeartbeat version brokers send.
pub const HEARTBEAT_VERSION: i16 = 1;

/// What the controller last said about this broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleState {
    /// Fenced: the broker leads nothing and is in no ISR.
    pub fenced: bool,
    /// The controller moved every leadership away: the broker may stop.
    pub should_shut_down: bool,
}

/// How a controlled shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownOutcome {
    /// The controller moved every leadership away.
    Released,
    /// The controller answered but had not moved every leadership within the limit.
    TimedOut,
    /// No controller answered for a broker session timeout.
    NoController,
}

/// This broker's heartbeats.
pub struct BrokerLifecycle {
    broker: Weak<Broker>,
    want_shut_down: AtomicBool,
    want_fence: AtomicBool,
    /// Sends the next heartbeat now rather than after the interval: a shutdown step
    /// waits for its answer.
    beat_now: Notify,
    state: watch::Sender<LifecycleState>,
    /// When the controller last answered a heartbeat (or when this lifecycle began).
    last_answer: Mutex<Instant>,
}

impl BrokerLifecycle {
    /// The lifecycle of `broker`; nothing is sent before [`Self::start`].
    pub fn new(broker: Weak<Broker>) -> Self {
        let (state, _) = watch::channel(LifecycleState {
            fenced: true,
            should_shut_down: false,
        });
        Self {
            broker,
            want_shut_down: AtomicBool::new(false),
            want_fence: AtomicBool::new(false),
            beat_now: Notify::new(),
            state,
            last_answer: Mutex::new(Instant::now()),
        }
    }

    /// Heartbeats over the broker's peers (or straight to this node's controller when it
    /// leads the quorum) until `stop`.
    pub fn start(self: &Arc<Self>, mut stop: watch::Receiver<bool>) {
        let lifecycle = self.clone();
        tokio::spawn(async move {
            loop {
                let Some(interval) = lifecycle.beat().await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = lifecycle.beat_now.notified() => {}
                    _ = crate::server::stopped(&mut stop) => return,
                }
            }
        });
    }

    /// What the controller last said.
    pub fn state(&self) -> LifecycleState {
        *self.state.borrow()
    }

    /// Waits until the controller has let this broker in (unfenced it), up to `limit`;
    /// returns whether it did.
    pub async fn wait_unfenced(&self, limit: Duration) -> bool {
        let mut rx = self.state.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|s| !s.fenced))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Controlled shutdown: asks the controller to move this broker's leaderships away and
    /// waits until it says the broker may stop, up to `limit`. Gives up earlier when no
    /// controller has answered for `unanswered` (no quorum: the rest of the cluster is
    /// stopping too, or this node is cut off), since then nobody can move the leaderships.
    pub async fn shut_down(&self, limit: Duration, unanswered: Duration) -> ShutdownOutcome {
        self.want_shut_down.store(true, Ordering::Release);
        self.beat_now.notify_one();
        let asked = Instant::now();
        let mut rx = self.state.subscribe();
        let released = rx.wait_for(|s| s.should_shut_down);
        let unreachable = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let last = (*self.last_answer.lock().unwrap_or_else(|e| e.into_inner())).max(asked);
                if last.elapsed() >= unanswered {
                    return;
                }
            }
        };
        tokio::select! {
            r = tokio::time::timeout(limit, released) => match r {
                Ok(Ok(_)) => ShutdownOutcome::Released,
                _ => ShutdownOutcome::TimedOut,
            },
            () = unreachable => ShutdownOutcome::NoController,
        }
    }

    /// The last step of a controlled shutdown, once the controller has released this
    /// broker and clients have had time to learn the new leaders: asks to be fenced, so
    /// that Metadata stops naming this node before it closes its listeners; waits up to
    /// `limit` for the controller's answer and returns whether it came.
    pub async fn fence_for_shutdown(&self, limit: Duration) -> bool {
        self.want_fence.store(true, Ordering::Release);
        self.beat_now.notify_one();
        let mut rx = self.state.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|s| s.fenced))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Sends one heartbeat and takes its answer; returns how long to wait before the
    /// next, or `None` when the broker is gone.
    async fn beat(&self) -> Option<Duration> {
        let broker = self.broker.upgrade()?;
        let interval = Duration::from_millis(broker.config.broker_heartbeat_interval_ms);
        let local = broker.node_id();
        let image = broker.metadata.image();
        let Some(registration) = image.broker(local) else {
            self.release_if_unregistered();
            return Some(interval);
        };
        let request = BrokerHeartbeatRequest::default()
            .with_broker_id(BrokerId(local))
            .with_broker_epoch(i64::try_from(registration.epoch).unwrap_or(i64::MAX))
            .with_current_metadata_offset(i64::try_from(image.offset).unwrap_or(i64::MAX))
            .with_want_fence(self.want_fence.load(Ordering::Acquire))
            .with_want_shut_down(self.want_shut_down.load(Ordering::Acquire));
        let response = match broker.metadata.leader() {
            None => return Some(interval),
            Some(leader) if leader == local => broker.controller.heartbeat(&request).await,
            Some(leader) => {
                let peers = broker.peers.get()?.clone();
                drop(broker);
                match send(&*peers, leader, &request, interval).await {
                    Some(response) => response,
                    None => return Some(interval),
                }
            }
        };
        *self.last_answer.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        match ResponseError::try_from_code(response.error_code) {
            None => {
                let state = LifecycleState {
                    fenced: response.is_fenced,
                    should_shut_down: response.should_shut_down,
                };
                self.state
                    .send_if_modified(|s| std::mem::replace(s, state) != state);
            }
            Some(ResponseError::BrokerIdNotRegistered) => self.release_if_unregistered(),
            Some(error) => tracing::debug!(?error, "the controller refused a heartbeat"),
        }
        Some(interval)
    }

    /// A broker that is not registered (it was unregistered after leaving the cluster, and
    /// may have stopped receiving the metadata log before it learnt so) leads nothing and
    /// is in no ISR: a controlled shutdown has nothing to wait for.
    fn release_if_unregistered(&self) {
        if self.want_shut_down.load(Ordering::Acquire) {
            let released = LifecycleState {
                fenced: true,
                should_shut_down: true,
            };
            if self
                .state
                .send_if_modified(|s| std::mem::replace(s, released) != released)
            {
                tracing::info!(
                    "controlled shutdown: this node is not a registered broker, so it has no leadership to hand over"
                );
            }
        }
    }
}

/// Sends a heartbeat to the quorum leader `leader` over the node-to-node transport.
async fn send(
    peers: &dyn Transport,
    leader: i32,
    request: &BrokerHeartbeatRequest,
    interval: Duration,
) -> Option<BrokerHeartbeatResponse> {
    match call_peer(peers, leader, HEARTBEAT_VERSION, request, interval * 4).await {
        Ok(response) => Some(response),
        Err(e) => {
            tracing::debug!(leader, error = %e, "heartbeat to the controller failed");
            None
        }
    }
}
