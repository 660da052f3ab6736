//! The authorizer: Kafka's `StandardAuthorizerData` rules over an index of the ACLs.
//!
//! A super user is allowed everything. Otherwise the ACLs that apply to the resource are
//! those of its type with the literal name, the literal `*`, or a prefix of the name. Of
//! those whose principal (or `User:*`) and host (or `*`) match: any DENY of the operation
//! (or ALL) denies; else any ALLOW of it (or ALL, or of READ/WRITE/DELETE/ALTER for
//! DESCRIBE, of ALTER_CONFIGS for DESCRIBE_CONFIGS) allows; else, if any ACL applies to the
//! resource at all, denied; else `allow.everyone.if.no.acl.found` decides.
//!
//! Lookups hash the name (and each prefix length that some PREFIXED ACL has) and allocate
//! nothing.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{
    AclBinding, AclOperation, AclPermissionType, PatternType, ResourceType, WILDCARD,
    WILDCARD_PRINCIPAL,
};
use crate::KafkaPrincipal;

/// The operations Kafka reports in authorized-operations fields for a resource type
/// (`AclEntry.supportedOperations`), as of Kafka 3.7: groups have no configs there (they
/// came with KIP-848 in 4.0, and Sluice has none), so no DESCRIBE_CONFIGS or ALTER_CONFIGS.
pub fn supported_operations(resource_type: ResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match resource_type {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write],
        ResourceType::DelegationToken => &[Describe],
        ResourceType::User => &[CreateTokens, DescribeTokens],
        _ => &[],
    }
}

/// One ACL as the index keeps it: principal and host pre-parsed.
#[derive(Debug, Clone)]
struct Entry {
    /// None: `User:*`.
    principal: Option<KafkaPrincipal>,
    /// None: `*`; hosts that are not IP addresses never match.
    host: Option<Option<IpAddr>>,
    operation: AclOperation,
    permission: AclPermissionType,
}

impl Entry {
    fn new(b: &AclBinding) -> Self {
        Entry {
            principal: (b.principal != WILDCARD_PRINCIPAL)
                .then(|| KafkaPrincipal::parse(&b.principal).ok())
                .map(|p| p.unwrap_or_else(|| KafkaPrincipal::new("", ""))),
            host: (b.host != WILDCARD).then(|| b.host.parse().ok()),
            operation: b.operation,
            permission: b.permission,
        }
    }

    fn applies_to(&self, principal: &KafkaPrincipal, host: IpAddr) -> bool {
        self.principal.as_ref().is_none_or(|p| p == principal)
            && self.host.is_none_or(|h| h == Some(host))
    }
}

/// Whether an ALLOW of `granted` allows `wanted` (ALL, the same, or implied).
fn allow_covers(granted: AclOperation, wanted: AclOperation) -> bool {
    use AclOperation::*;
    granted == All
        || granted == wanted
        || (wanted == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (wanted == DescribeConfigs && granted == AlterConfigs)
}

/// Whether a DENY of `denied` denies `wanted` (ALL or the same only).
fn deny_covers(denied: AclOperation, wanted: AclOperation) -> bool {
    denied == AclOperation::All || denied == wanted
}

/// The ACLs of one resource type, indexed by name.
#[derive(Debug, Default, Clone)]
struct TypeIndex {
    literal: HashMap<String, Vec<Entry>>,
    prefixed: HashMap<String, Vec<Entry>>,
    /// The lengths of the PREFIXED names, ascending.
    prefix_lengths: Vec<usize>,
}

/// What the ACLs say about one request: deny, allow, or nothing applies.
#[derive(Debug, Default)]
struct Verdict {
    resource_has_acls: bool,
    allowed: bool,
    denied: bool,
}

impl Verdict {
    fn consider(
        &mut self,
        entries: &[Entry],
        principal: &KafkaPrincipal,
        host: IpAddr,
        op: AclOperation,
    ) {
        for e in entries {
            self.resource_has_acls = true;
            if !e.applies_to(principal, host) {
                continue;
            }
            match e.permission {
                AclPermissionType::Deny if deny_covers(e.operation, op) => self.denied = true,
                AclPermissionType::Allow if allow_covers(e.operation, op) => self.allowed = true,
                _ => {}
            }
        }
    }
}

/// The authorizer's view of the ACLs, super users and default.
#[derive(Debug, Default, Clone)]
pub struct AuthorizerData {
    types: HashMap<ResourceType, TypeIndex>,
    bindings: Vec<AclBinding>,
    super_users: Vec<KafkaPrincipal>,
    allow_if_no_acl: bool,
}

impl AuthorizerData {
    /// An authorizer over `bindings`.
    pub fn new(
        bindings: impl IntoIterator<Item = AclBinding>,
        super_users: Vec<KafkaPrincipal>,
        allow_if_no_acl: bool,
    ) -> Self {
        let bindings: Vec<AclBinding> = bindings.into_iter().collect();
        let mut types: HashMap<ResourceType, TypeIndex> = HashMap::new();
        for b in &bindings {
            let index = types.entry(b.resource_type).or_default();
            let map = match b.pattern_type {
                PatternType::Literal => &mut index.literal,
                PatternType::Prefixed => {
                    let len = b.resource_name.len();
                    if let Err(at) = index.prefix_lengths.binary_search(&len) {
                        index.prefix_lengths.insert(at, len);
                    }
                    &mut index.prefixed
                }
                _ => continue,
            };
            map.entry(b.resource_name.clone())
                .or_default()
                .push(Entry::new(b));
        }
        AuthorizerData {
            types,
            bindings,
            super_users,
            allow_if_no_acl,
        }
    }

    /// Every ACL.
    pub fn bindings(&self) -> &[AclBinding] {
        &self.bindings
    }

    /// Whether `principal` is a super user.
    pub fn is_super_user(&self, principal: &KafkaPrincipal) -> bool {
        self.super_users.contains(principal)
    }

    /// Whether `principal` from `host` may perform `op` on the resource `name` of `kind`.
    pub fn authorize(
        &self,
        principal: &KafkaPrincipal,
        host: IpAddr,
        op: AclOperation,
        kind: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let Some(index) = self.types.get(&kind) else {
            return self.allow_if_no_acl;
        };
        let mut verdict = Verdict::default();
        for key in [name, WILDCARD] {
            if let Some(entries) = index.literal.get(key) {
                verdict.consider(entries, principal, host, op);
            }
        }
        for &len in &index.prefix_lengths {
            let Some(prefix) = name.get(..len) else {
                if len > name.len() {
                    break;
                }
                continue;
            };
            if let Some(entries) = index.prefixed.get(prefix) {
                verdict.consider(entries, principal, host, op);
            }
        }
        if verdict.denied {
            false
        } else if verdict.allowed {
            true
        } else {
            !verdict.resource_has_acls && self.allow_if_no_acl
        }
    }

    /// Whether `principal` may perform `op` on some resource of `kind` (Kafka's
    /// `Authorizer.authorizeByResourceType`, KIP-679): an ALLOW pattern for it not
    /// dominated by a DENY one (a DENY of the literal `*` dominates all).
    pub fn authorize_by_resource_type(
        &self,
        principal: &KafkaPrincipal,
        host: IpAddr,
        op: AclOperation,
        kind: ResourceType,
    ) -> bool {
        if self.authorize(principal, host, op, kind, "hardcode") {
            return true;
        }
        let applies = |b: &&AclBinding, permission: AclPermissionType| {
            b.resource_type == kind
                && b.permission == permission
                && (b.operation == op || b.operation == AclOperation::All)
                && Entry::new(b).applies_to(principal, host)
        };
        let denied: Vec<&AclBinding> = self
            .bindings
            .iter()
            .filter(|b| applies(b, AclPermissionType::Deny))
            .collect();
        if denied
            .iter()
            .any(|d| d.pattern_type == PatternType::Literal && d.resource_name == WILDCARD)
        {
            return false;
        }
        let dominated = |name: &str, prefixed: bool| {
            denied.iter().any(|d| match d.pattern_type {
                PatternType::Literal => !prefixed && d.resource_name == name,
                PatternType::Prefixed => name.starts_with(&d.resource_name),
                _ => false,
            })
        };
        self.bindings
            .iter()
            .filter(|b| applies(b, AclPermissionType::Allow))
            .any(|a| match a.pattern_type {
                PatternType::Literal => {
                    a.resource_name == WILDCARD || !dominated(&a.resource_name, false)
                }
                PatternType::Prefixed => !dominated(&a.resource_name, true),
                _ => false,
            })
    }

    /// Kafka's authorized-operations bitfield (`1 << code` per allowed operation among
    /// those the resource type supports).
    pub fn authorized_operations(
        &self,
        principal: &KafkaPrincipal,
        host: IpAddr,
        kind: ResourceType,
        name: &str,
    ) -> i32 {
        supported_operations(kind)
            .iter()
            .filter(|&&op| self.authorize(principal, host, op, kind, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

#[cfg(test)]
#[path = "authorizer/tests.rs"]
mod tests;
