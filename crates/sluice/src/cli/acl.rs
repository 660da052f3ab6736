//! `sluice acl create|list|delete`: Kafka ACLs, with the flags of `kafka-acls.sh` in short
//! form (`--allow User:alice --operation WRITE --topic orders --pattern prefixed`).

use clap::{Args, Subcommand};
use serde_json::json;
use sluice_client::sluice_security::acl::{
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, CLUSTER_NAME, PatternType,
    ResourceType, WILDCARD,
};

use super::{Common, one_line, out, out_json, out_table};

#[derive(Args, Debug)]
pub struct AclArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: AclCommand,
}

/// The resource an ACL is about: exactly one of these.
#[derive(Args, Debug, Clone, Default)]
struct Resource {
    /// A topic (or prefix with --pattern prefixed; `*` for all topics).
    #[arg(long)]
    topic: Option<String>,
    /// A consumer group.
    #[arg(long)]
    group: Option<String>,
    /// A transactional id.
    #[arg(long)]
    transactional_id: Option<String>,
    /// The cluster.
    #[arg(long)]
    cluster: bool,
}

impl Resource {
    fn given(&self) -> Vec<(ResourceType, String)> {
        let mut out = Vec::new();
        if let Some(t) = &self.topic {
            out.push((ResourceType::Topic, t.clone()));
        }
        if let Some(g) = &self.group {
            out.push((ResourceType::Group, g.clone()));
        }
        if let Some(t) = &self.transactional_id {
            out.push((ResourceType::TransactionalId, t.clone()));
        }
        if self.cluster {
            out.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
        }
        out
    }
}

#[derive(Subcommand, Debug)]
enum AclCommand {
    /// Create ACLs: every principal × operation on the resource.
    Create {
        /// Principals allowed (repeatable), e.g. User:alice.
        #[arg(long)]
        allow: Vec<String>,
        /// Principals denied (repeatable).
        #[arg(long)]
        deny: Vec<String>,
        /// Operations (repeatable): ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
        /// CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
        #[arg(long, required = true)]
        operation: Vec<String>,
        /// The client host (IP) the ACL applies to.
        #[arg(long, default_value = WILDCARD)]
        host: String,
        /// literal or prefixed.
        #[arg(long, default_value = "literal")]
        pattern: String,
        #[command(flatten)]
        resource: Resource,
    },
    /// List the ACLs a filter matches (every ACL without one).
    List {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Delete the ACLs a filter matches.
    Delete {
        #[command(flatten)]
        filter: FilterArgs,
    },
}

/// A filter over ACLs; what is not given matches anything.
#[derive(Args, Debug, Clone)]
struct FilterArgs {
    /// Only this principal.
    #[arg(long)]
    principal: Option<String>,
    /// Only this operation.
    #[arg(long)]
    operation: Option<String>,
    /// Only ALLOW or DENY.
    #[arg(long)]
    permission: Option<String>,
    /// Only this host.
    #[arg(long)]
    host: Option<String>,
    /// any (that exact name), match (every ACL that applies to the name), literal or
    /// prefixed.
    #[arg(long, default_value = "any")]
    pattern: String,
    #[command(flatten)]
    resource: Resource,
}

fn parse_op(name: &str) -> Result<AclOperation, String> {
    AclOperation::parse(name)
        .filter(|op| !matches!(op, AclOperation::Unknown))
        .ok_or_else(|| format!("'{name}' is not an ACL operation"))
}

fn parse_pattern(name: &str) -> Result<PatternType, String> {
    PatternType::parse(name)
        .filter(|p| !matches!(p, PatternType::Unknown))
        .ok_or_else(|| format!("'{name}' is not one of any, match, literal, prefixed"))
}

impl FilterArgs {
    fn filter(&self) -> Result<AclBindingFilter, String> {
        let resources = self.resource.given();
        let (resource_type, resource_name) = match resources.as_slice() {
            [] => (ResourceType::Any, None),
            [(kind, name)] => (*kind, Some(name.clone())),
            _ => {
                return Err(
                    "give at most one of --topic, --group, --transactional-id, --cluster".into(),
                );
            }
        };
        Ok(AclBindingFilter {
            resource_type,
            resource_name,
            pattern_type: parse_pattern(&self.pattern)?,
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: match &self.operation {
                Some(op) => parse_op(op)?,
                None => AclOperation::Any,
            },
            permission: match &self.permission {
                Some(p) => AclPermissionType::parse(p)
                    .filter(|p| matches!(p, AclPermissionType::Allow | AclPermissionType::Deny))
                    .ok_or_else(|| format!("'{p}' is neither ALLOW nor DENY"))?,
                None => AclPermissionType::Any,
            },
        })
    }
}

fn bindings_to_create(
    allow: &[String],
    deny: &[String],
    operations: &[String],
    host: &str,
    pattern: &str,
    resource: &Resource,
) -> Result<Vec<AclBinding>, String> {
    let given = resource.given();
    let [(resource_type, resource_name)] = given.as_slice() else {
        return Err("give exactly one of --topic, --group, --transactional-id, --cluster".into());
    };
    let resource_type = *resource_type;
    let pattern_type = parse_pattern(pattern)?;
    if !matches!(pattern_type, PatternType::Literal | PatternType::Prefixed) {
        return Err("--pattern must be literal or prefixed to create ACLs".into());
    }
    if allow.is_empty() && deny.is_empty() {
        return Err("give --allow or --deny with a principal, e.g. --allow User:alice".into());
    }
    let principals = allow
        .iter()
        .map(|p| (p, AclPermissionType::Allow))
        .chain(deny.iter().map(|p| (p, AclPermissionType::Deny)));
    let mut out = Vec::new();
    for (principal, permission) in principals {
        for op in operations {
            out.push(AclBinding {
                resource_type,
                resource_name: resource_name.clone(),
                pattern_type,
                principal: principal.clone(),
                host: host.to_string(),
                operation: parse_op(op)?,
                permission,
            });
        }
    }
    Ok(out)
}

fn print(acls: &[AclBinding], as_json: bool) -> Result<(), String> {
    if as_json {
        let list: Vec<_> = acls
            .iter()
            .map(|b| {
                json!({
                    "resource_type": b.resource_type.name(),
                    "resource_name": b.resource_name,
                    "pattern_type": b.pattern_type.name(),
                    "principal": b.principal,
                    "host": b.host,
                    "operation": b.operation.name(),
                    "permission": b.permission.name(),
                })
            })
            .collect();
        return out_json(&json!(list));
    }
    let rows: Vec<Vec<String>> = acls
        .iter()
        .map(|b| {
            vec![
                b.principal.clone(),
                b.permission.name().to_string(),
                b.operation.name().to_string(),
                b.host.clone(),
                b.resource_type.name().to_string(),
                b.pattern_type.name().to_string(),
                b.resource_name.clone(),
            ]
        })
        .collect();
    out_table(
        &[
            "PRINCIPAL",
            "PERMISSION",
            "OPERATION",
            "HOST",
            "RESOURCE",
            "PATTERN",
            "NAME",
        ],
        &rows,
    )
}

pub async fn run(args: AclArgs) -> Result<(), String> {
    let common = args.common;
    match args.command {
        AclCommand::Create {
            allow,
            deny,
            operation,
            host,
            pattern,
            resource,
        } => {
            let acls = bindings_to_create(&allow, &deny, &operation, &host, &pattern, &resource)?;
            let mut client = common.connect().await?;
            client.create_acls(&acls).await.map_err(one_line)?;
            if common.json {
                print(&acls, true)
            } else {
                for b in &acls {
                    out(&format!("created: {b}"))?;
                }
                Ok(())
            }
        }
        AclCommand::List { filter } => {
            let filter = filter.filter()?;
            let mut client = common.connect().await?;
            let acls = client.describe_acls(&filter).await.map_err(one_line)?;
            print(&acls, common.json)
        }
        AclCommand::Delete { filter } => {
            let filter = filter.filter()?;
            let mut client = common.connect().await?;
            let acls = client.delete_acls(&filter).await.map_err(one_line)?;
            if common.json {
                print(&acls, true)
            } else {
                for b in &acls {
                    out(&format!("deleted: {b}"))?;
                }
                Ok(())
            }
        }
    }
}
