//! Client quota administration: DescribeClientQuotas, AlterClientQuotas.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

use crate::Client;
use crate::error::{Result, check};

/// A quota entity: types with a name, `None` for the default.
pub type QuotaEntity = Vec<(String, Option<String>)>;

/// A filter component: the entity type and what its name must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaMatch {
    /// Exactly this name.
    Exact(String),
    /// The default entity.
    Default,
    /// Any name, the default included.
    Any,
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Client {
    /// AlterClientQuotas for one entity: each key set (`Some`) or removed (`None`).
    pub async fn alter_client_quotas(
        &mut self,
        entity: &QuotaEntity,
        ops: &[(String, Option<f64>)],
    ) -> Result<()> {
        let conn = self.admin_conn().await?;
        let request = AlterClientQuotasRequest::default().with_entries(vec![
            EntryData::default()
                .with_entity(
                    entity
                        .iter()
                        .map(|(kind, name)| {
                            EntityData::default()
                                .with_entity_type(text(kind))
                                .with_entity_name(name.as_deref().map(text))
                        })
                        .collect(),
                )
                .with_ops(
                    ops.iter()
                        .map(|(key, value)| {
                            OpData::default()
                                .with_key(text(key))
                                .with_value(value.unwrap_or(0.0))
                                .with_remove(value.is_none())
                        })
                        .collect(),
                ),
        ]);
        let response = conn.request(&request).await?;
        for e in &response.entries {
            check(
                "AlterClientQuotas",
                || "quota".to_string(),
                e.error_code,
                e.error_message.as_deref(),
            )?;
        }
        Ok(())
    }

    /// DescribeClientQuotas: the quotas of the entities matching every component.
    pub async fn describe_client_quotas(
        &mut self,
        components: &[(String, QuotaMatch)],
        strict: bool,
    ) -> Result<Vec<(QuotaEntity, Vec<(String, f64)>)>> {
        let conn = self.admin_conn().await?;
        let request = DescribeClientQuotasRequest::default()
            .with_strict(strict)
            .with_components(
                components
                    .iter()
                    .map(|(kind, m)| {
                        let c = ComponentData::default().with_entity_type(text(kind));
                        match m {
                            QuotaMatch::Exact(name) => {
                                c.with_match_type(0).with_match(Some(text(name)))
                            }
                            QuotaMatch::Default => c.with_match_type(1),
                            QuotaMatch::Any => c.with_match_type(2),
                        }
                    })
                    .collect(),
            );
        let response = conn.request(&request).await?;
        check(
            "DescribeClientQuotas",
            || "quotas".to_string(),
            response.error_code,
            response.error_message.as_deref(),
        )?;
        Ok(response
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                (
                    e.entity
                        .iter()
                        .map(|x| {
                            (
                                x.entity_type.to_string(),
                                x.entity_name.as_ref().map(|n| n.to_string()),
                            )
                        })
                        .collect(),
                    e.values
                        .iter()
                        .map(|v| (v.key.to_string(), v.value))
                        .collect(),
                )
            })
            .collect())
    }
}
