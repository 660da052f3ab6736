//! DescribeLogDirs: the broker's one data directory, the size of each partition
//! in it and, from v4, the file system's total and usable bytes — what admin
//! tools and web consoles show as disk usage per topic. A compacted partition also
//! carries its dirty ratio in Sluice's own tagged field
//! ([`sluice_protocol::model::DIRTY_RATIO_TAG`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::DIRTY_RATIO_TAG;

use crate::broker::Broker;
use crate::request::{Reply, RequestContext};

/// Kafka's value for a size it cannot tell.
const UNKNOWN_BYTES: i64 = -1;

/// Handles DescribeLogDirs.
pub async fn describe_log_dirs(
    broker: &Arc<Broker>,
    _: &RequestContext,
    req: DescribeLogDirsRequest,
) -> Reply {
    Reply::Now(ResponseKind::DescribeLogDirs(describe(broker, req)))
}

/// The sizes of the partitions a DescribeLogDirs request asks for. As in Kafka, requested partitions this
/// broker does not hold are left out rather than reported as errors, and a
/// null topic list means every partition, internal topics included.
fn describe(broker: &Broker, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let wanted: Option<BTreeMap<&str, &[i32]>> = req.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.topic.0.as_str(), t.partitions.as_slice()))
            .collect()
    });
    let mut sizes: BTreeMap<String, Vec<(i32, i64, Option<f64>)>> = BTreeMap::new();
    for partition in broker.replicas.logs().all() {
        let included = wanted.as_ref().is_none_or(|w| {
            w.get(partition.topic.as_str())
                .is_some_and(|ids| ids.contains(&partition.index))
        });
        if included {
            let size = i64::try_from(partition.size_bytes()).unwrap_or(i64::MAX);
            let dirty_ratio = partition.dirty_stats().map(|s| s.dirty_ratio);
            sizes.entry(partition.topic.clone()).or_default().push((
                partition.index,
                size,
                dirty_ratio,
            ));
        }
    }
    let topics = sizes
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_unstable_by_key(|(index, _, _)| *index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, size, dirty_ratio)| {
                            // The leader is the only replica: nothing to catch up.
                            let mut partition = DescribeLogDirsPartition::default()
                                .with_partition_index(index)
                                .with_partition_size(size)
                                .with_offset_lag(0)
                                .with_is_future_key(false);
                            if let Some(ratio) = dirty_ratio {
                                partition.unknown_tagged_fields.insert(
                                    DIRTY_RATIO_TAG,
                                    Bytes::copy_from_slice(&ratio.to_be_bytes()),
                                );
                            }
                            partition
                        })
                        .collect(),
                )
        })
        .collect();
    let dir = std::path::absolute(&broker.config.data_dir)
        .unwrap_or_else(|_| broker.config.data_dir.clone());
    let (total_bytes, usable_bytes) = disk_space(&dir);
    // Error codes stay 0 (NONE): the directory is online and there are no ACLs.
    DescribeLogDirsResponse::default().with_results(vec![
        DescribeLogDirsResult::default()
            .with_log_dir(StrBytes::from_string(dir.display().to_string()))
            .with_topics(topics)
            .with_total_bytes(total_bytes)
            .with_usable_bytes(usable_bytes),
    ])
}

/// Total and usable (available to this unprivileged process) bytes of the
/// file system holding `dir`, as Java's `FileStore` reports them to Kafka.
pub(crate) fn disk_space(dir: &Path) -> (i64, i64) {
    match rustix::fs::statvfs(dir) {
        Ok(s) => {
            let bytes =
                |blocks: u64| i64::try_from(blocks.saturating_mul(s.f_frsize)).unwrap_or(i64::MAX);
            (bytes(s.f_blocks), bytes(s.f_bavail))
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the data directory's disk space");
            (UNKNOWN_BYTES, UNKNOWN_BYTES)
        }
    }
}
