//! KIP-951 leader discovery: a partition refused with NOT_LEADER_OR_FOLLOWER (Produce v10+,
//! Fetch v16+; Fetch also with FENCED_LEADER_EPOCH) carries the leader and leader epoch
//! this node knows, and the response carries those leaders' endpoints on the request's
//! listener. A client (librdkafka since 2.5) then moves the partition to its new leader at
//! once instead of refreshing its metadata first, which shortens every leadership change
//! a producer or consumer lives through: a controlled shutdown, a rolling restart, a
//! preferred-leader election. As Kafka's `KafkaApis.getCurrentLeader`.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;

use crate::handlers::metadata::client_endpoint;
use crate::metadata::{MetadataImage, TopicImage};
use crate::request::ListenerName;

/// A partition's leader as the metadata image says: (leader id, leader epoch), both -1
/// when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentLeader {
    pub id: i32,
    pub epoch: i32,
}

/// A leader's address for clients of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderEndpoint {
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// The leaders one response names, and their endpoints.
pub struct LeaderHints<'a> {
    image: &'a MetadataImage,
    listener: &'a ListenerName,
    endpoints: BTreeMap<i32, LeaderEndpoint>,
}

impl<'a> LeaderHints<'a> {
    /// Hints for a response to a request that came in on `listener`.
    pub fn new(image: &'a MetadataImage, listener: &'a ListenerName) -> Self {
        LeaderHints {
            image,
            listener,
            endpoints: BTreeMap::new(),
        }
    }

    /// The metadata image the hints come from.
    pub fn image(&self) -> &'a MetadataImage {
        self.image
    }

    /// The current leader of partition `index` of `topic` (`None`: a topic this node does
    /// not know), noting the leader's endpoint when it is a live broker with one on this
    /// listener (Kafka's `getAliveBrokerNode`).
    pub fn leader_of(&mut self, topic: Option<&TopicImage>, index: i32) -> CurrentLeader {
        let registration = topic.and_then(|t| {
            usize::try_from(index)
                .ok()
                .and_then(|i| t.partitions.get(i))
        });
        let Some(registration) = registration else {
            return CurrentLeader { id: -1, epoch: -1 };
        };
        let leader = CurrentLeader {
            id: registration.leader,
            epoch: registration.leader_epoch.0,
        };
        let live = self.image.broker(leader.id).filter(|b| !b.fenced);
        if let Some(endpoint) = live.and_then(|b| {
            client_endpoint(b, self.listener).map(|e| LeaderEndpoint {
                host: e.host.clone(),
                port: e.port,
                rack: b.rack.clone(),
            })
        }) {
            self.endpoints.insert(leader.id, endpoint);
        }
        leader
    }
}

/// The same hints in the types of one response (Produce and Fetch have their own).
macro_rules! hints_for {
    ($response:ident, $leader:ident, $endpoints:ident) => {
        impl CurrentLeader {
            /// As this response's `CurrentLeader` field.
            pub fn $leader(self) -> kafka_protocol::messages::$response::LeaderIdAndEpoch {
                kafka_protocol::messages::$response::LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(self.id))
                    .with_leader_epoch(self.epoch)
            }
        }

        impl LeaderHints<'_> {
            /// The endpoints of the leaders named, as this response's `NodeEndpoints`.
            pub fn $endpoints(self) -> Vec<kafka_protocol::messages::$response::NodeEndpoint> {
                self.endpoints
                    .into_iter()
                    .map(|(id, e)| {
                        kafka_protocol::messages::$response::NodeEndpoint::default()
                            .with_node_id(BrokerId(id))
                            .with_host(StrBytes::from_string(e.host))
                            .with_port(e.port)
                            .with_rack(e.rack.map(StrBytes::from_string))
                    })
                    .collect()
            }
        }
    };
}

hints_for!(produce_response, for_produce, produce_endpoints);
hints_for!(fetch_response, for_fetch, fetch_endpoints);

/// Whether a Produce response of `version` names the current leader with `code`.
pub fn produce_names_leader(version: i16, code: ResponseError) -> bool {
    version >= 10 && code == ResponseError::NotLeaderOrFollower
}

/// Whether a Fetch response of `version` names the current leader with `code`.
pub fn fetch_names_leader(version: i16, code: ResponseError) -> bool {
    version >= 16
        && matches!(
            code,
            ResponseError::NotLeaderOrFollower | ResponseError::FencedLeaderEpoch
        )
}
