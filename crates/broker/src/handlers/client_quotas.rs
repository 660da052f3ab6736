//! DescribeClientQuotas and AlterClientQuotas (KIP-546): quotas per user, client id, their
//! defaults and combinations, kept in the metadata.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse, ResponseKind, alter_client_quotas_response,
    describe_client_quotas_response,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;
use sluice_security::quota::{QuotaEntity, validate_entity, validate_key};

use crate::broker::Broker;
use crate::metadata::{CommitError, MetadataRecord};
use crate::request::{Reply, RequestContext};

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// One component of a DescribeClientQuotas filter.
struct Component {
    entity_type: String,
    match_type: i8,
    name: Option<String>,
}

impl Component {
    fn matches(&self, entity: &QuotaEntity) -> bool {
        entity.iter().any(|(kind, name)| {
            *kind == self.entity_type
                && match self.match_type {
                    MATCH_EXACT => name.is_some() && *name == self.name,
                    MATCH_DEFAULT => name.is_none(),
                    _ => true,
                }
        })
    }
}

/// Handles DescribeClientQuotas.
pub async fn describe_client_quotas(
    broker: &Arc<Broker>,
    _: &RequestContext,
    req: DescribeClientQuotasRequest,
) -> Reply {
    let invalid = |message: String| {
        Reply::Now(ResponseKind::DescribeClientQuotas(
            DescribeClientQuotasResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(text(&message)))
                .with_entries(None),
        ))
    };
    let mut components = Vec::new();
    for c in &req.components {
        let entity_type = c.entity_type.to_string();
        if components
            .iter()
            .any(|x: &Component| x.entity_type == entity_type)
        {
            return invalid(format!("Duplicate {entity_type} entity type in the filter"));
        }
        if c.match_type == MATCH_EXACT && c._match.is_none() {
            return invalid("An exact match needs a name".into());
        }
        if !(MATCH_EXACT..=MATCH_ANY).contains(&c.match_type) {
            return invalid(format!("Unknown match type {}", c.match_type));
        }
        components.push(Component {
            entity_type,
            match_type: c.match_type,
            name: c._match.as_ref().map(|m| m.to_string()),
        });
    }
    let image = broker.metadata.image();
    let entries = image
        .security
        .quotas()
        .iter()
        .filter(|(entity, _)| {
            components.iter().all(|c| c.matches(entity))
                && (!req.strict
                    || entity
                        .iter()
                        .all(|(kind, _)| components.iter().any(|c| c.entity_type == *kind)))
        })
        .map(|(entity, values)| {
            describe_client_quotas_response::EntryData::default()
                .with_entity(
                    entity
                        .iter()
                        .map(|(kind, name)| {
                            describe_client_quotas_response::EntityData::default()
                                .with_entity_type(text(kind))
                                .with_entity_name(name.as_deref().map(text))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| {
                            describe_client_quotas_response::ValueData::default()
                                .with_key(text(k))
                                .with_value(*v)
                        })
                        .collect(),
                )
        })
        .collect();
    Reply::Now(ResponseKind::DescribeClientQuotas(
        DescribeClientQuotasResponse::default().with_entries(Some(entries)),
    ))
}

/// The entity of a request entry, sorted by type.
fn entity_of(
    parts: &[kafka_protocol::messages::alter_client_quotas_request::EntityData],
) -> QuotaEntity {
    let mut entity: QuotaEntity = parts
        .iter()
        .map(|p| {
            (
                p.entity_type.to_string(),
                p.entity_name.as_ref().map(|n| n.to_string()),
            )
        })
        .collect();
    entity.sort();
    entity
}

/// Handles AlterClientQuotas: each entry is checked and applied on its own.
pub async fn alter_client_quotas(
    broker: &Arc<Broker>,
    _: &RequestContext,
    req: AlterClientQuotasRequest,
) -> Reply {
    let checked: Vec<Result<Vec<MetadataRecord>, String>> = req
        .entries
        .iter()
        .map(|e| {
            let entity = entity_of(&e.entity);
            validate_entity(&entity)?;
            e.ops
                .iter()
                .map(|op| {
                    let key = op.key.to_string();
                    if !op.remove {
                        validate_key(&entity, &key, op.value)?;
                    }
                    Ok(MetadataRecord::ClientQuotaChanged {
                        entity: entity.clone(),
                        key,
                        value: (!op.remove).then_some(op.value),
                    })
                })
                .collect()
        })
        .collect();
    let records: Vec<MetadataRecord> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    let committed = if req.validate_only || records.is_empty() {
        Ok(())
    } else {
        broker
            .metadata
            .propose(|_| Ok::<_, CommitError>((records, ())))
            .await
    };
    let entries = req
        .entries
        .iter()
        .zip(checked)
        .map(|(e, c)| {
            let entry = alter_client_quotas_response::EntryData::default().with_entity(
                e.entity
                    .iter()
                    .map(|p| {
                        alter_client_quotas_response::EntityData::default()
                            .with_entity_type(p.entity_type.clone())
                            .with_entity_name(p.entity_name.clone())
                    })
                    .collect(),
            );
            match (c, &committed) {
                (Err(message), _) => entry
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(text(&message))),
                (Ok(_), Err(e)) => entry
                    .with_error_code(ResponseError::UnknownServerError.code())
                    .with_error_message(Some(text(&e.to_string()))),
                (Ok(_), Ok(())) => entry,
            }
        })
        .collect();
    Reply::Now(ResponseKind::AlterClientQuotas(
        AlterClientQuotasResponse::default().with_entries(entries),
    ))
}
