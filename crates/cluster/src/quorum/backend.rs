//! Committing metadata through the quorum ([`RaftBackend`], the `MetadataBackend` of a
//! cluster): the quorum leader writes a batch to the Raft log itself; any other node
//! forwards it to the leader (the FORWARD kind, answered by [`ForwardHandler`]) and then
//! waits until its own state machine has applied the entry, so that what a node answered
//! is visible in its own metadata. A leader change is retried until the deadline.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use sluice_metadata::{BoxFuture, CommitError, MetadataBackend, MetadataRecord};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::types::{Batch, BatchOutcome, Raft, current_leader, node_id, raft_id};
use crate::transport::{NodeId, RequestHandler, Transport};

/// The pause between two attempts (a leader being elected, a peer restarting).
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The leader's answer to a forwarded batch.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ForwardReply {
    /// Committed at log index `index`, with this outcome.
    Committed { index: u64, outcome: BatchOutcome },
    /// This node does not lead (it names the leader it knows of).
    NotLeader { leader: Option<u64> },
    /// The leader could not commit it now.
    Unavailable(String),
}

/// What one attempt to commit gave.
enum Attempt {
    /// Committed at this log index.
    Committed(u64, BatchOutcome),
    /// Not committed; worth another try (why, for the final error).
    Retry(String),
}

/// Commits metadata through the quorum.
pub struct RaftBackend {
    raft: Raft,
    local: NodeId,
    forward: Arc<dyn Transport>,
    applied: watch::Receiver<Option<u64>>,
    timeout: Duration,
}

impl RaftBackend {
    /// A backend for this node's `raft`, forwarding over `forward` (of the FORWARD kind),
    /// seeing what is applied here through `applied`, and giving up after `timeout`.
    pub fn new(
        raft: Raft,
        local: NodeId,
        forward: Arc<dyn Transport>,
        applied: watch::Receiver<Option<u64>>,
        timeout: Duration,
    ) -> Self {
        Self {
            raft,
            local,
            forward,
            applied,
            timeout,
        }
    }

    /// Commits `batch` through whichever node leads, retrying across leader changes until
    /// the deadline; resolves once the batch is applied here.
    pub async fn commit_batch(&self, batch: Batch) -> Result<(), CommitError> {
        let deadline = Instant::now() + self.timeout;
        let request = Bytes::from(
            serde_json::to_vec(&batch).map_err(|e| CommitError::Unavailable(e.to_string()))?,
        );
        loop {
            let leader = current_leader(&self.raft.metrics().borrow());
            let attempt = match leader {
                Some(leader) if leader == raft_id(self.local) => {
                    self.write_here(batch.clone(), deadline).await
                }
                Some(leader) => self.forward_to(leader, request.clone(), deadline).await,
                None => Attempt::Retry("no quorum leader is elected".into()),
            };
            let why = match attempt {
                Attempt::Committed(index, outcome) => {
                    self.wait_applied(index, deadline).await?;
                    return outcome.0.map_err(CommitError::Conflict);
                }
                Attempt::Retry(why) => why,
            };
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(CommitError::Unavailable(format!(
                    "not committed within {:?}: {why}",
                    self.timeout
                )));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Writes `batch` to the log as the leader.
    async fn write_here(&self, batch: Batch, deadline: Instant) -> Attempt {
        match tokio::time::timeout_at(deadline, self.raft.client_write(batch)).await {
            Err(_) => Attempt::Retry("the quorum did not acknowledge it in time".into()),
            Ok(Ok(written)) => Attempt::Committed(written.log_id.index, written.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Attempt::Retry("the leadership moved".into())
            }
            Ok(Err(e)) => Attempt::Retry(e.to_string()),
        }
    }

    /// Hands the batch to `leader` to commit.
    async fn forward_to(&self, leader: u64, request: Bytes, deadline: Instant) -> Attempt {
        let call = self.forward.call(node_id(leader), request);
        let answer = match tokio::time::timeout_at(deadline, call).await {
            Err(_) => return Attempt::Retry(format!("node {leader} did not answer in time")),
            Ok(Err(e)) => return Attempt::Retry(e.to_string()),
            Ok(Ok(answer)) => answer,
        };
        match serde_json::from_slice(&answer) {
            Ok(ForwardReply::Committed { index, outcome }) => Attempt::Committed(index, outcome),
            Ok(ForwardReply::NotLeader { .. }) => {
                Attempt::Retry(format!("node {leader} no longer leads"))
            }
            Ok(ForwardReply::Unavailable(why)) => Attempt::Retry(why),
            Err(e) => Attempt::Retry(format!("node {leader} answered garbage: {e}")),
        }
    }

    /// Waits until this node's state machine has applied entry `index`.
    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), CommitError> {
        let mut applied = self.applied.clone();
        let caught_up = applied.wait_for(|a| a.is_some_and(|a| a >= index));
        match tokio::time::timeout_at(deadline, caught_up).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(CommitError::Unavailable(format!(
                "committed at index {index} but not applied on this node in time"
            ))),
        }
    }
}

impl MetadataBackend for RaftBackend {
    fn leader(&self) -> Option<i32> {
        current_leader(&self.raft.metrics().borrow()).map(node_id)
    }

    /// The controller runs on the quorum leader: brokers register fenced and are let in by
    /// it.
    fn has_controller(&self) -> bool {
        true
    }

    fn commit(&self, records: Vec<MetadataRecord>) -> BoxFuture<'_, Result<(), CommitError>> {
        Box::pin(self.commit_batch(Batch {
            id: Uuid::new_v4(),
            records,
            controller_term: None,
        }))
    }

    /// Only while this node leads the quorum, fenced by the term it leads in.
    fn commit_as_controller(
        &self,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'_, Result<(), CommitError>> {
        let (leader, term) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            (current_leader(&m), m.current_term)
        };
        Box::pin(async move {
            if leader != Some(raft_id(self.local)) {
                return Err(CommitError::Unavailable(
                    "this node no longer leads the metadata quorum".into(),
                ));
            }
            self.commit_batch(Batch {
                id: Uuid::new_v4(),
                records,
                controller_term: Some(term),
            })
            .await
        })
    }
}

/// Commits the batches other nodes forward, when this node leads.
pub struct ForwardHandler {
    raft: Raft,
    timeout: Duration,
}

impl ForwardHandler {
    /// Commits with `raft`, answering within `timeout`.
    pub fn new(raft: Raft, timeout: Duration) -> Arc<Self> {
        Arc::new(Self { raft, timeout })
    }

    async fn commit(&self, batch: Batch) -> ForwardReply {
        match tokio::time::timeout(self.timeout, self.raft.client_write(batch)).await {
            Err(_) => ForwardReply::Unavailable("the quorum did not acknowledge it in time".into()),
            Ok(Ok(written)) => ForwardReply::Committed {
                index: written.log_id.index,
                outcome: written.data,
            },
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to)))) => {
                ForwardReply::NotLeader {
                    leader: to.leader_id,
                }
            }
            Ok(Err(e)) => ForwardReply::Unavailable(e.to_string()),
        }
    }
}

impl RequestHandler for ForwardHandler {
    fn handle(&self, from: NodeId, request: Bytes) -> BoxFuture<'_, Bytes> {
        Box::pin(async move {
            let reply = match serde_json::from_slice::<Batch>(&request) {
                Ok(batch) => self.commit(batch).await,
                Err(e) => {
                    tracing::warn!(from, error = %e, "undecodable forwarded metadata batch");
                    ForwardReply::Unavailable(format!("undecodable batch: {e}"))
                }
            };
            serde_json::to_vec(&reply).map_or_else(|_| Bytes::new(), Bytes::from)
        })
    }
}
