//! UnregisterBroker (KIP-631, Kafka's `kafka-cluster.sh unregister`): a broker that left
//! the cluster for good stops being listed. Its registration is removed, and so is its
//! place in the metadata quorum: as a learner, or as a voter (what Kafka does with
//! RemoveRaftVoter, KIP-853, `kafka-metadata-quorum.sh remove-controller`; here one request
//! does both, since every node is a broker and a controller alike). Its replicas are moved
//! off it first (`sluice cluster decommission`); a broker that is still a replica of a
//! partition is refused (Kafka would drop it from the ISRs instead, which can leave
//! partitions short of replicas without anyone having decided so). So is the last voter,
//! a voter whose removal the remaining voters could not commit now, and a voter asked to
//! remove itself.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ResponseKind, UnregisterBrokerRequest, UnregisterBrokerResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_cluster::quorum::{MembershipError, MembershipRefusal};
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;
use crate::metadata::{MetadataRecord, RecordConflict};
use crate::request::{Reply, RequestContext};
use crate::topic_admin::AdminError;

/// Handles UnregisterBroker.
pub async fn unregister_broker(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: UnregisterBrokerRequest,
) -> Reply {
    let broker = broker.clone();
    let id = req.broker_id.0;
    Reply::Later(tokio::spawn(async move {
        // No message unless there is an error (the default is an empty one).
        let answer = UnregisterBrokerResponse::default().with_error_message(None);
        let answer = match unregister(&broker, id).await {
            Ok(()) => answer,
            Err(e) => {
                tracing::warn!(broker = id, error = %e.message, "UnregisterBroker refused");
                answer
                    .with_error_code(e.code.code())
                    .with_error_message(Some(StrBytes::from_string(e.message)))
            }
        };
        ResponseKind::UnregisterBroker(answer)
    }))
}

/// Removes broker `id`'s place in the quorum as a voter, then its registration, then its
/// place as a learner. Each step is done only if still needed, so a request repeated after
/// a failure finishes the job. The voter goes first: a removal the quorum refuses (the last
/// voter, or one the remaining voters could not commit without) then changes nothing.
async fn unregister(broker: &Broker, id: i32) -> Result<(), AdminError> {
    let invalid = |message: String| AdminError::new(ResponseError::InvalidRequest, message);
    let membership = |e: MembershipError| match e {
        MembershipError::Refused(refusal) => invalid(refusal.to_string()),
        MembershipError::Unavailable(why) => AdminError::new(ResponseError::NotController, why),
    };
    let node = broker.cluster.get();
    // A single node is its own quorum.
    if node.is_none() && id == broker.node_id() {
        return Err(invalid(MembershipRefusal::LastVoter(id).to_string()));
    }
    let is_voter = node.is_some_and(|node| node.is_voter(id));
    let is_learner = node.is_some_and(|node| node.learners().contains(&id));
    let image = broker.metadata.image();
    let registered = image.broker(id).is_some();
    if !registered && !is_voter && !is_learner {
        return Err(AdminError::new(
            ResponseError::BrokerIdNotRegistered,
            format!("Broker ID {id} is not currently registered"),
        ));
    }
    if registered {
        // The replicas are checked again when the record commits (a reassignment onto the
        // broker may come first).
        let partitions = image.partitions_hosted_by(id);
        if partitions > 0 {
            return Err(AdminError::from(crate::metadata::CommitError::Conflict(
                RecordConflict::BrokerHostsReplicas {
                    broker: id,
                    partitions,
                },
            )));
        }
    }
    if is_voter && id == broker.node_id() {
        return Err(invalid(format!(
            "node {id} cannot take itself out of the metadata quorum's voters: once removed it \
             receives no more of the metadata log, so it could not see its unregistration \
             through; ask another node"
        )));
    }
    if let Some(node) = node
        && is_voter
    {
        node.remove_voter(id).await.map_err(membership)?;
        tracing::info!(
            broker = id,
            "removed from the voters of the metadata quorum"
        );
    }
    if registered {
        broker
            .metadata
            .propose(|_| Ok::<_, AdminError>((vec![MetadataRecord::BrokerUnregistered { id }], ())))
            .await?;
        tracing::info!(broker = id, "broker unregistered");
    }
    if let Some(node) = node {
        node.remove_learner(id).await.map_err(membership)?;
    }
    Ok(())
}
