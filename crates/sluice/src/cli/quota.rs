//! `sluice quota alter|describe`: client quotas per user, client id, and their defaults
//! (`--user-default`, `--client-default`), as `kafka-configs --entity-type users|clients`.

use clap::{Args, Subcommand};
use serde_json::json;
use sluice_client::{QuotaEntity, QuotaMatch};

use super::{Common, one_line, out, out_json, out_table};

#[derive(Args, Debug)]
pub struct QuotaArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: QuotaCommand,
}

/// Which entity: a user and/or a client id, or their defaults.
#[derive(Args, Debug, Clone)]
struct Entity {
    /// A user (the principal's name, e.g. alice).
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// The default of every user.
    #[arg(long)]
    user_default: bool,
    /// A client id.
    #[arg(long, conflicts_with = "client_default")]
    client_id: Option<String>,
    /// The default of every client id.
    #[arg(long)]
    client_default: bool,
}

impl Entity {
    fn entity(&self) -> QuotaEntity {
        let mut e = Vec::new();
        if self.client_id.is_some() || self.client_default {
            e.push(("client-id".to_string(), self.client_id.clone()));
        }
        if self.user.is_some() || self.user_default {
            e.push(("user".to_string(), self.user.clone()));
        }
        e
    }

    fn components(&self) -> Vec<(String, QuotaMatch)> {
        let mut c = Vec::new();
        let part = |name: &Option<String>, default: bool| match (name, default) {
            (Some(n), _) => Some(QuotaMatch::Exact(n.clone())),
            (None, true) => Some(QuotaMatch::Default),
            (None, false) => None,
        };
        if let Some(m) = part(&self.user, self.user_default) {
            c.push(("user".to_string(), m));
        }
        if let Some(m) = part(&self.client_id, self.client_default) {
            c.push(("client-id".to_string(), m));
        }
        c
    }
}

#[derive(Subcommand, Debug)]
enum QuotaCommand {
    /// Set or remove quotas of an entity.
    Alter {
        #[command(flatten)]
        entity: Entity,
        /// Produced bytes per second.
        #[arg(long)]
        producer_byte_rate: Option<u64>,
        /// Fetched bytes per second.
        #[arg(long)]
        consumer_byte_rate: Option<u64>,
        /// Percentage of one request thread's time the client may keep busy (100 is a whole
        /// thread); over it, responses carry throttle_time_ms and the connection waits.
        #[arg(long)]
        request_percentage: Option<f64>,
        /// Remove a quota key (repeatable), e.g. producer_byte_rate.
        #[arg(long)]
        delete: Vec<String>,
    },
    /// Show the quotas of the matching entities (every entity without flags).
    Describe {
        #[command(flatten)]
        entity: Entity,
    },
}

fn name_of(name: &Option<String>) -> String {
    name.clone().unwrap_or_else(|| "<default>".to_string())
}

pub async fn run(args: QuotaArgs) -> Result<(), String> {
    let common = args.common;
    match args.command {
        QuotaCommand::Alter {
            entity,
            producer_byte_rate,
            consumer_byte_rate,
            request_percentage,
            delete,
        } => {
            let e = entity.entity();
            if e.is_empty() {
                return Err("give --user, --user-default, --client-id or --client-default".into());
            }
            let mut ops: Vec<(String, Option<f64>)> = Vec::new();
            if let Some(v) = producer_byte_rate {
                ops.push(("producer_byte_rate".into(), Some(v as f64)));
            }
            if let Some(v) = consumer_byte_rate {
                ops.push(("consumer_byte_rate".into(), Some(v as f64)));
            }
            if let Some(v) = request_percentage {
                ops.push(("request_percentage".into(), Some(v)));
            }
            ops.extend(delete.into_iter().map(|k| (k, None)));
            if ops.is_empty() {
                return Err("nothing to change: give a rate or --delete KEY".into());
            }
            let mut client = common.connect().await?;
            client
                .alter_client_quotas(&e, &ops)
                .await
                .map_err(one_line)?;
            let shown: Vec<String> = e
                .iter()
                .map(|(k, n)| format!("{k}={}", name_of(n)))
                .collect();
            if common.json {
                out_json(&json!({"entity": shown, "changed": ops.len()}))
            } else {
                out(&format!("quotas of {} altered", shown.join(",")))
            }
        }
        QuotaCommand::Describe { entity } => {
            let mut client = common.connect().await?;
            let entries = client
                .describe_client_quotas(&entity.components(), false)
                .await
                .map_err(one_line)?;
            if common.json {
                let list: Vec<_> = entries
                    .iter()
                    .map(|(e, values)| {
                        json!({
                            "entity": e.iter().map(|(k, n)| json!({"type": k, "name": n})).collect::<Vec<_>>(),
                            "values": values.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                        })
                    })
                    .collect();
                return out_json(&json!(list));
            }
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|(e, values)| {
                    let entity: Vec<String> = e
                        .iter()
                        .map(|(k, n)| format!("{k}={}", name_of(n)))
                        .collect();
                    let values: Vec<String> =
                        values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    vec![entity.join(","), values.join(", ")]
                })
                .collect();
            out_table(&["ENTITY", "QUOTAS"], &rows)
        }
    }
}
