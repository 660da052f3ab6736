//! Produce: validate each partition's record batches, append them, and answer
//! when the requested acknowledgement level is reached.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::{self, BatchError, Compression};
use sluice_protocol::kafka_protocol;
use sluice_protocol::model::{LeaderEpoch, ProducerIdAndEpoch, TopicPartition};
use sluice_protocol::records::{MAX_DECOMPRESSED_BYTES, recompress};

use crate::broker::Broker;
use crate::handlers::leader_discovery::{LeaderHints, produce_names_leader};
use crate::handlers::record_checks::RecordChecks;
use crate::handlers::{request_topic, unknown_topic_error};
use crate::metadata::TopicImage;
use crate::partition::Partition;
use crate::replica_manager::{AppendOrigin, Appended, ReplicaError, RequiredAcks};
use crate::request::{Reply, RequestContext};
use crate::txn_verification::{Verified, verify_remotely};

/// Why a partition's records were refused.
struct Refusal {
    code: ResponseError,
    message: Option<String>,
    /// The records that caused the refusal (ProduceResponse v8+ `record_errors`).
    record_errors: Vec<BatchIndexAndErrorMessage>,
}

impl Refusal {
    fn new(code: ResponseError, message: Option<String>) -> Self {
        Refusal {
            code,
            message,
            record_errors: Vec::new(),
        }
    }
}

impl From<ReplicaError> for Refusal {
    fn from(e: ReplicaError) -> Self {
        Refusal::new(e.code, e.message)
    }
}

/// The outcome for one partition, before its acknowledgement is awaited.
struct PartitionOutcome {
    index: i32,
    result: Result<Appended, Refusal>,
}

struct TopicOutcome {
    name: TopicName,
    topic_id: uuid::Uuid,
    partitions: Vec<PartitionOutcome>,
}

/// Handles a Produce request.
pub async fn produce(broker: &Arc<Broker>, ctx: &RequestContext, req: ProduceRequest) -> Reply {
    let version = ctx.api_version();
    let Some(acks) = RequiredAcks::from_wire(req.acks) else {
        return Reply::Now(ResponseKind::Produce(error_response(
            &req,
            ResponseError::InvalidRequiredAcks,
            version,
        )));
    };
    let timeout_ms = req.timeout_ms;
    let listener = ctx.listener.clone();
    let broker = broker.clone();
    let verified = verify_remotely(&broker, &req, version).await;
    let image = broker.metadata.image();
    let mut outcomes = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let resolved = request_topic(&image, version, &topic.name, &topic.topic_id);
        let unknown = unknown_topic_error(version);
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let result = match resolved {
                None => Err(Refusal::new(unknown, None)),
                Some(t) => append(&broker, t, data.index, data.records, acks, &verified),
            };
            partitions.push(PartitionOutcome {
                index: data.index,
                result,
            });
        }
        outcomes.push(TopicOutcome {
            name: topic.name,
            topic_id: topic.topic_id,
            partitions,
        });
    }
    match acks {
        RequiredAcks::None => {
            // Kafka closes the connection so an acks=0 producer learns of the
            // failure the only way it can.
            let failed = outcomes
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| p.result.is_err());
            if failed { Reply::Close } else { Reply::Nothing }
        }
        RequiredAcks::Leader => Reply::Now(ResponseKind::Produce(build_response(
            outcomes,
            Vec::new(),
            version,
            LeaderHints::new(&image, &ctx.listener),
        ))),
        RequiredAcks::All => Reply::Later(tokio::spawn(async move {
            // The request's timeout bounds the wait for every partition together (Kafka's
            // delayed produce). A timeout of 0 or less waits without limit: clients send
            // one, and an immediate REQUEST_TIMED_OUT would help nobody.
            let deadline = (timeout_ms > 0).then(|| {
                tokio::time::Instant::now()
                    + Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0))
            });
            let mut sync_errors = Vec::new();
            for (t, topic) in outcomes.iter().enumerate() {
                for (p, outcome) in topic.partitions.iter().enumerate() {
                    let left =
                        deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
                    if let Ok(appended) = &outcome.result
                        && let Err(e) = appended.acknowledged(left).await
                    {
                        sync_errors.push(((t, p), e.code));
                    }
                }
            }
            // The leaders as they are when the answer goes out (one may have moved).
            let image = broker.metadata.image();
            let hints = LeaderHints::new(&image, &listener);
            ResponseKind::Produce(build_response(outcomes, sync_errors, version, hints))
        })),
    }
}

/// Appends `records` to partition `index` of `topic` as a client's acks=all produce
/// would (the same checks), for the admin facade; the error is Kafka's code and message.
pub(crate) fn append_as_client(
    broker: &Broker,
    topic: &TopicImage,
    index: i32,
    records: Bytes,
) -> Result<Appended, (ResponseError, Option<String>)> {
    // Not transactional: nothing to verify with a transaction coordinator.
    let verified = Verified::new();
    append(
        broker,
        topic,
        index,
        Some(records),
        RequiredAcks::All,
        &verified,
    )
    .map_err(|r| (r.code, r.message))
}

/// Validates and appends one partition's records through the replica manager.
fn append(
    broker: &Broker,
    topic: &TopicImage,
    index: i32,
    records: Option<Bytes>,
    acks: RequiredAcks,
    verified: &Verified,
) -> Result<Appended, Refusal> {
    let partition = broker
        .replicas
        .leader_partition(topic, index, LeaderEpoch::UNKNOWN)?;
    let verification = verified.get(&TopicPartition::new(topic.name.as_str(), index));
    let mut traffic = (0, 0);
    let appended =
        broker
            .replicas
            .append_records(&partition, AppendOrigin::Client, acks, |partition| {
                let valid = validate(broker, partition, records, verification)?;
                traffic = (valid.bytes_in, valid.records_in);
                Ok::<_, Refusal>(valid.batches)
            })?;
    partition.traffic.produced(traffic.0, traffic.1);
    Ok(appended)
}

/// A client's batches once checked, as they are to be stored.
struct ValidBatches {
    batches: Bytes,
    bytes_in: u64,
    records_in: u64,
}

/// Checks a client's record batches against the topic's settings (Kafka's
/// `LogValidator`), recompressing them if the topic names another codec.
fn validate(
    broker: &Broker,
    partition: &Partition,
    records: Option<Bytes>,
    verification: Option<&Result<(), ResponseError>>,
) -> Result<ValidBatches, Refusal> {
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err(Refusal::new(
            ResponseError::CorruptMessage,
            Some("empty record set".into()),
        ));
    };
    let settings = partition.settings();
    let record_checks = RecordChecks::new(
        &settings,
        &partition.topic,
        partition.index,
        broker.clock.now_ms(),
    );
    let (mut bytes_in, mut records_in) = (0u64, 0u64);
    // The topic's compression.type, once some batch is in another codec.
    let mut recompress_to = None;
    for item in batch::split_batches(&records) {
        let (header, range) = item.map_err(batch_error)?;
        bytes_in += header.total_len() as u64;
        records_in += u64::try_from(header.records_count.max(0)).unwrap_or(0);
        let bytes = records
            .get(range.clone())
            .ok_or(Refusal::new(ResponseError::CorruptMessage, None))?;
        if header.total_len() > settings.max_message_bytes {
            return Err(too_large(header.total_len(), settings.max_message_bytes));
        }
        batch::validate(bytes).map_err(batch_error)?;
        if let Some(codec) = settings.compression
            && header.compression().map_err(batch_error)? != codec
        {
            recompress_to = Some(codec);
        }
        if header.is_control() {
            return Err(Refusal::new(
                ResponseError::InvalidRecord,
                Some("Client produce requests must not contain control batches".into()),
            ));
        }
        if header.is_transactional() {
            // KIP-890: a transactional write is accepted only for a partition
            // already added to the producer's ongoing transaction, so a late
            // write cannot slip into the next transaction (see `txn_verification`).
            let producer = ProducerIdAndEpoch::new(header.producer_id, header.producer_epoch);
            let tp = TopicPartition::new(partition.topic.as_str(), partition.index);
            match verification {
                Some(remote) => *remote,
                None if broker.txn.coordinates_producer(producer.producer_id) => {
                    broker.txn.verify_partition(producer, &tp)
                }
                // Coordinated elsewhere and already verified for this transaction.
                None if producer_has_ongoing_txn(partition, producer) => Ok(()),
                None => broker.txn.verify_partition(producer, &tp),
            }
            .map_err(|code| Refusal::new(code, None))?;
        }
        record_checks
            .check(&header, &records.slice(range))
            .map_err(|refused| Refusal {
                code: refused.code,
                message: Some(refused.message),
                record_errors: refused.record_errors,
            })?;
    }
    let batches = match recompress_to {
        Some(codec) => recompressed(&records, codec, settings.max_message_bytes)?,
        // No copy: the log writes stamped headers and the request's own bytes.
        None => records,
    };
    Ok(ValidBatches {
        batches,
        bytes_in,
        records_in,
    })
}

/// Whether `producer` has an ongoing transaction with batches in `partition` (verified
/// with its coordinator when its first batch came).
fn producer_has_ongoing_txn(partition: &Partition, producer: ProducerIdAndEpoch) -> bool {
    partition
        .producers()
        .iter()
        .any(|s| s.producer == producer && s.ongoing_txn_first_offset.is_some())
}

fn too_large(size: usize, max_message_bytes: usize) -> Refusal {
    Refusal::new(
        ResponseError::MessageTooLarge,
        Some(format!(
            "The record batch is {size} bytes, larger than max.message.bytes ({max_message_bytes})"
        )),
    )
}

/// The partition's batches as a topic with `compression.type` set to `codec` stores them:
/// every batch in another codec recompressed (Kafka's log validator does the same).
fn recompressed(
    records: &Bytes,
    codec: Compression,
    max_message_bytes: usize,
) -> Result<Bytes, Refusal> {
    let mut out = BytesMut::with_capacity(records.len());
    for item in batch::split_batches(records) {
        let (header, range) = item.map_err(batch_error)?;
        let bytes = records
            .get(range)
            .ok_or(Refusal::new(ResponseError::CorruptMessage, None))?;
        if header.compression().map_err(batch_error)? == codec {
            out.extend_from_slice(bytes);
            continue;
        }
        let stored = recompress(bytes, codec, MAX_DECOMPRESSED_BYTES)
            .map_err(|e| Refusal::new(ResponseError::CorruptMessage, Some(e.to_string())))?;
        if stored.len() > max_message_bytes {
            return Err(too_large(stored.len(), max_message_bytes));
        }
        out.extend_from_slice(&stored);
    }
    Ok(out.freeze())
}

fn batch_error(e: BatchError) -> Refusal {
    let code = match e {
        BatchError::UnsupportedMagic(_) | BatchError::InvalidProducerState(_) => {
            ResponseError::InvalidRecord
        }
        _ => ResponseError::CorruptMessage,
    };
    Refusal::new(code, Some(e.to_string()))
}

/// The response: each partition's offsets or error; with NOT_LEADER_OR_FOLLOWER from v10,
/// its current leader, and the leaders' endpoints (KIP-951, see [`LeaderHints`]).
fn build_response(
    outcomes: Vec<TopicOutcome>,
    sync_errors: Vec<((usize, usize), ResponseError)>,
    version: i16,
    mut hints: LeaderHints<'_>,
) -> ProduceResponse {
    let responses = outcomes
        .into_iter()
        .enumerate()
        .map(|(t, topic)| {
            // Looked up only for a partition that names its leader.
            let image = hints.image();
            let (name, id) = (&topic.name, &topic.topic_id);
            let resolve = || request_topic(image, version, name, id);
            let partition_responses = topic
                .partitions
                .into_iter()
                .enumerate()
                .map(|(p, outcome)| {
                    let base = PartitionProduceResponse::default().with_index(outcome.index);
                    let sync_error = sync_errors
                        .iter()
                        .find(|(at, _)| *at == (t, p))
                        .map(|(_, e)| *e);
                    let code = match (&outcome.result, sync_error) {
                        (Ok(_), Some(code)) => Some(code),
                        (Err(refusal), _) => Some(refusal.code),
                        (Ok(_), None) => None,
                    };
                    let base = match code {
                        Some(code) if produce_names_leader(version, code) => base
                            .with_current_leader(
                                hints.leader_of(resolve(), outcome.index).for_produce(),
                            ),
                        _ => base,
                    };
                    match (outcome.result, sync_error) {
                        (Ok(_), Some(code)) => {
                            base.with_error_code(code.code()).with_base_offset(-1)
                        }
                        (Ok(appended), None) => {
                            let info = appended.info();
                            let base = base
                                .with_base_offset(info.base_offset)
                                .with_log_append_time_ms(info.log_append_time.unwrap_or(-1));
                            if version >= 5 {
                                base.with_log_start_offset(
                                    appended.partition().offsets().log_start_offset,
                                )
                            } else {
                                base
                            }
                        }
                        (Err(refusal), _) => {
                            let base = base
                                .with_error_code(refusal.code.code())
                                .with_base_offset(-1);
                            if version >= 8 {
                                base.with_error_message(refusal.message.map(StrBytes::from_string))
                                    .with_record_errors(refusal.record_errors)
                            } else {
                                base
                            }
                        }
                    }
                })
                .collect();
            topic_response(topic.name, topic.topic_id, version)
                .with_partition_responses(partition_responses)
        })
        .collect();
    ProduceResponse::default()
        .with_responses(responses)
        .with_node_endpoints(hints.produce_endpoints())
}

/// v13 names topics by id, earlier versions by name; only one may be set.
fn topic_response(name: TopicName, topic_id: uuid::Uuid, version: i16) -> TopicProduceResponse {
    if version >= 13 {
        TopicProduceResponse::default().with_topic_id(topic_id)
    } else {
        TopicProduceResponse::default().with_name(name)
    }
}

fn error_response(req: &ProduceRequest, code: ResponseError, version: i16) -> ProduceResponse {
    let responses = req
        .topic_data
        .iter()
        .map(|t| {
            topic_response(t.name.clone(), t.topic_id, version).with_partition_responses(
                t.partition_data
                    .iter()
                    .map(|p| {
                        PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_error_code(code.code())
                            .with_base_offset(-1)
                    })
                    .collect(),
            )
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}
