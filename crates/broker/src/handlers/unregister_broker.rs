//! UnregisterBroker (KIP-631, Kafka's `kafka-cluster.sh unregister`): a broker that left
//! the cluster for good stops being listed. Its registration is removed, and so is its
//! place as a learner of the metadata quorum. Only a broker that joined as a learner can
//! leave: the voters are fixed when the cluster forms. Its replicas are moved off it first
//! (`sluice cluster decommission`); a broker that is still a replica of a partition is
//! refused (Kafka would drop it from the ISRs instead, which can leave partitions short of
//! replicas without anyone having decided so).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ResponseKind, UnregisterBrokerRequest, UnregisterBrokerResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_cluster::quorum::MembershipError;
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

/// Removes broker `id`'s registration, then its place in the quorum. Each step is done
/// only if still needed, so a request repeated after a failure finishes the job.
async fn unregister(broker: &Broker, id: i32) -> Result<(), AdminError> {
    let invalid = |message: String| AdminError::new(ResponseError::InvalidRequest, message);
    let node = broker.cluster.get();
    let is_voter = match node {
        Some(node) => node.is_voter(id),
        // A single node is its own quorum.
        None => id == broker.node_id(),
    };
    if is_voter {
        return Err(invalid(format!(
            "broker {id} is a voter of the metadata quorum (--voters): voters are fixed when \
             the cluster forms and cannot be unregistered; only a broker that joined as a \
             learner can"
        )));
    }
    let is_learner = node.is_some_and(|node| node.learners().contains(&id));
    let image = broker.metadata.image();
    if image.broker(id).is_some() {
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
        broker
            .metadata
            .propose(|_| Ok::<_, AdminError>((vec![MetadataRecord::BrokerUnregistered { id }], ())))
            .await?;
        tracing::info!(broker = id, "broker unregistered");
    } else if !is_learner {
        return Err(AdminError::new(
            ResponseError::BrokerIdNotRegistered,
            format!("Broker ID {id} is not currently registered"),
        ));
    }
    let Some(node) = node else {
        return Ok(());
    };
    node.remove_learner(id).await.map_err(|e| match e {
        MembershipError::Refused(refusal) => invalid(refusal.to_string()),
        MembershipError::Unavailable(why) => AdminError::new(ResponseError::NotController, why),
    })?;
    Ok(())
}
