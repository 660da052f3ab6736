//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and
//! this broker.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ResponseKind,
    alter_configs_response, incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;

use crate::broker::Broker;
use crate::config::{BrokerConfig, KafkaValue, SETTINGS, Setting};
use crate::fd_budget::FdBudget;
use crate::request::{Reply, RequestContext};
use crate::topic_admin::{AdminError, set_broker_configs, set_topic_configs};
use crate::topic_config::{
    ConfigSource, ConfigType, ResolvedConfig, TOPIC_CONFIGS, resolve_topic_configs,
    topic_config_def,
};

/// Kafka's ConfigResource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Handles DescribeConfigs.
pub async fn describe_configs(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> Reply {
    Reply::Now(ResponseKind::DescribeConfigs(describe(
        broker,
        req,
        ctx.api_version(),
    )))
}

/// Handles the legacy AlterConfigs: the given set replaces all overrides.
pub async fn alter_configs(
    broker: &Arc<Broker>,
    _: &RequestContext,
    req: AlterConfigsRequest,
) -> Reply {
    Reply::Now(ResponseKind::AlterConfigs(alter(broker, req).await))
}

/// Handles IncrementalAlterConfigs (SET, DELETE, APPEND, SUBTRACT).
pub async fn incremental_alter_configs(
    broker: &Arc<Broker>,
    _: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> Reply {
    Reply::Now(ResponseKind::IncrementalAlterConfigs(
        incremental_alter(broker, req).await,
    ))
}

/// The configs of the resources a DescribeConfigs request names.
fn describe(
    broker: &Arc<Broker>,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let image = broker.metadata.image();
    let results = req
        .resources
        .into_iter()
        .map(|resource| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let configs = match resource.resource_type {
                RESOURCE_TOPIC => match image.topic(&resource.resource_name) {
                    Some(t) => Ok(resolve_topic_configs(
                        &t.configs,
                        &broker.config,
                        &image.broker_configs,
                    )
                    .into_iter()
                    .map(|c| (c, false))
                    .collect::<Vec<_>>()),
                    None => Err(AdminError::new(
                        ResponseError::UnknownTopicOrPartition,
                        format!("Topic {} does not exist.", &*resource.resource_name),
                    )),
                },
                RESOURCE_BROKER => check_broker_name(broker, &resource.resource_name)
                    .map(|()| broker_configs(broker, &image.broker_configs)),
                RESOURCE_BROKER_LOGGER => {
                    check_broker_name(broker, &resource.resource_name).map(|()| Vec::new())
                }
                other => Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            match configs {
                Err(e) => base
                    .with_error_code(e.code.code())
                    .with_error_message(Some(StrBytes::from_string(e.message))),
                Ok(configs) => base.with_configs(
                    configs
                        .into_iter()
                        .filter(|(c, _)| {
                            resource
                                .configuration_keys
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|k| &**k == c.name))
                        })
                        .map(|(c, read_only)| {
                            describe_entry(c, read_only, version, req.include_synonyms)
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe_entry(
    c: ResolvedConfig,
    read_only: bool,
    version: i16,
    include_synonyms: bool,
) -> DescribeConfigsResourceResult {
    let synonyms = if include_synonyms {
        c.synonyms
            .iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(name.clone()))
                    .with_value(Some(StrBytes::from_string(value.clone())))
                    .with_source(*source as i8)
            })
            .collect()
    } else {
        Vec::new()
    };
    let entry = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(c.name))
        .with_value(Some(StrBytes::from_string(c.value)))
        .with_read_only(read_only)
        .with_config_source(c.source as i8)
        .with_is_sensitive(false)
        .with_synonyms(synonyms);
    // config_type exists from v3; earlier versions must keep the default.
    if version >= 3 {
        entry.with_config_type(c.kind as i8)
    } else {
        entry
    }
}

fn check_broker_name(broker: &Broker, name: &str) -> Result<(), AdminError> {
    if name.is_empty() || name == broker.node_id().to_string() {
        Ok(())
    } else {
        Err(AdminError::new(
            ResponseError::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                broker.node_id()
            ),
        ))
    }
}

/// The broker's own configs: its settings that need a restart, under each of their Kafka
/// names (read-only), a constant replication factor, and the broker-level defaults of every
/// topic config (dynamically alterable).
fn broker_configs(
    broker: &Broker,
    dynamic: &BTreeMap<String, String>,
) -> Vec<(ResolvedConfig, bool)> {
    let statics: Vec<(&'static str, String, String, ConfigType)> = SETTINGS
        .iter()
        .filter(|s| s.options.needs_restart)
        .flat_map(|setting| {
            let (value, default) = kafka_value(broker, setting);
            setting
                .options
                .kafka_names
                .iter()
                .map(move |&name| (name, value.clone(), default.clone(), setting.kafka_type()))
        })
        .collect();
    let mut out: Vec<(ResolvedConfig, bool)> = statics
        .into_iter()
        .map(|(name, value, default, kind)| {
            let source = if value == default {
                ConfigSource::Default
            } else {
                ConfigSource::StaticBroker
            };
            (
                ResolvedConfig {
                    name,
                    synonyms: vec![(name.to_string(), value.clone(), source)],
                    value,
                    source,
                    kind,
                },
                true,
            )
        })
        .collect();
    // Broker-level names of topic configs, resolved through the same layers.
    let no_overrides = BTreeMap::new();
    for resolved in resolve_topic_configs(&no_overrides, &broker.config, dynamic) {
        let Some(def) = topic_config_def(resolved.name) else {
            continue;
        };
        let Some(syn) = def.broker_synonym else {
            continue;
        };
        if out.iter().any(|(r, _)| r.name == syn) {
            continue;
        }
        out.push((
            ResolvedConfig {
                name: syn,
                value: resolved.value,
                source: resolved.source,
                kind: resolved.kind,
                synonyms: resolved.synonyms,
            },
            false,
        ));
    }
    out.sort_by(|a, b| a.0.name.cmp(b.0.name));
    out
}

/// `Double.MAX_VALUE` as Java prints it: Kafka's "no limit" for a DOUBLE setting.
const JAVA_DOUBLE_MAX: &str = "1.7976931348623157E308";

/// A setting's value and default as DescribeConfigs shows them under its Kafka name.
fn kafka_value(broker: &Broker, setting: &Setting) -> (String, String) {
    let configured = |config: &BrokerConfig| setting.value(config).unwrap_or_default();
    let (running, defaults) = (&broker.config, BrokerConfig::defaults());
    match setting.options.kafka_value {
        KafkaValue::Configured => (configured(running), configured(defaults)),
        KafkaValue::UnsetIsIntMax => {
            let or_max = |c| setting.value(c).unwrap_or_else(|| i32::MAX.to_string());
            (or_max(running), or_max(defaults))
        }
        KafkaValue::UnsetIsDoubleMax => {
            let or_max = |c| {
                setting
                    .value(c)
                    .unwrap_or_else(|| JAVA_DOUBLE_MAX.to_string())
            };
            (or_max(running), or_max(defaults))
        }
        KafkaValue::PlaintextListener => {
            let listeners = |c: &BrokerConfig| {
                c.listener_specs()
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            (listeners(running), listeners(defaults))
        }
        // Worked out at start-up: reported as the default, as before any override existed.
        KafkaValue::Advertised => {
            let advertised = broker
                .endpoints
                .iter()
                .map(|e| format!("{}://{}:{}", e.listener, e.host, e.port))
                .collect::<Vec<_>>()
                .join(",");
            (advertised.clone(), advertised)
        }
        KafkaValue::EffectiveConnections => {
            let fds = broker.fd_budget;
            let default = FdBudget::split(fds.limit_before, fds.limit, None).connections;
            (fds.connections.to_string(), default.to_string())
        }
        KafkaValue::EffectiveReplicationFactor => {
            let image = broker.metadata.image();
            let effective = crate::topic_admin::default_replication_factor(broker, &image);
            let unset = crate::topic_admin::live_replication_cap(broker, &image);
            (effective.to_string(), unset.to_string())
        }
    }
}

/// Replaces each resource's overrides with the given set.
async fn alter(broker: &Arc<Broker>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for resource in req.resources {
        responses.push({
            let mut next = BTreeMap::new();
            let mut result = Ok(());
            for c in &resource.configs {
                match &c.value {
                    Some(v) => {
                        next.insert(c.name.to_string(), v.to_string());
                    }
                    None => {
                        result = Err(AdminError::new(
                            ResponseError::InvalidRequest,
                            format!("Null value not supported for : {}", &*c.name),
                        ));
                    }
                }
            }
            let result = match result {
                Ok(()) => {
                    apply(
                        broker,
                        resource.resource_type,
                        &resource.resource_name,
                        req.validate_only,
                        |_| Ok(next),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            let (code, message) = split(result);
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(code)
                .with_error_message(message)
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Applies each resource's operations to its overrides.
async fn incremental_alter(
    broker: &Arc<Broker>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for resource in req.resources {
        responses.push({
            let ops: Vec<(String, i8, Option<String>)> = resource
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect();
            let is_topic = resource.resource_type == RESOURCE_TOPIC;
            let result = apply(
                broker,
                resource.resource_type,
                &resource.resource_name,
                req.validate_only,
                |current| apply_ops(current, &ops, is_topic),
            )
            .await;
            let (code, message) = split(result);
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(code)
                .with_error_message(message)
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

async fn apply(
    broker: &Arc<Broker>,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AdminError>,
) -> Result<(), AdminError> {
    match resource_type {
        RESOURCE_TOPIC => set_topic_configs(broker, name, change, validate_only).await,
        RESOURCE_BROKER => {
            check_broker_name(broker, name)?;
            set_broker_configs(broker, change, validate_only).await
        }
        other => Err(AdminError::new(
            ResponseError::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

fn apply_ops(
    current: &BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
    is_topic: bool,
) -> Result<BTreeMap<String, String>, AdminError> {
    let mut next = current.clone();
    for (name, op, value) in ops {
        let def = if is_topic {
            topic_config_def(name)
        } else {
            TOPIC_CONFIGS
                .iter()
                .find(|d| d.broker_synonym == Some(name.as_str()))
        };
        let invalid = |m: String| Err(AdminError::new(ResponseError::InvalidConfig, m));
        let Some(def) = def else {
            return invalid(format!("Unknown config name: {name}"));
        };
        match *op {
            OP_SET => match value {
                Some(v) => {
                    next.insert(name.clone(), v.clone());
                }
                None => return invalid(format!("Null value not supported for : {name}")),
            },
            OP_DELETE => {
                next.remove(name);
            }
            OP_APPEND | OP_SUBTRACT => {
                if def.kind != ConfigType::List {
                    return invalid(format!(
                        "Config value append is not allowed for config key: {name}"
                    ));
                }
                let existing = next
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| def.default.to_string());
                let mut items: Vec<String> = existing
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                let given: Vec<String> = value
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if *op == OP_APPEND {
                    for g in given {
                        if !items.contains(&g) {
                            items.push(g);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                next.insert(name.clone(), items.join(","));
            }
            other => {
                return Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("Unknown config operation {other}"),
                ));
            }
        }
    }
    Ok(next)
}

fn split(result: Result<(), AdminError>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err(e) => (e.code.code(), Some(StrBytes::from_string(e.message))),
    }
}
