//! ACL binding filters (DescribeAcls, DeleteAcls) and the checks a new ACL passes
//! (CreateAcls), as Kafka's `AclBindingFilter` and `AclControlManager.validateNewAcl`.

use super::{AclBinding, AclOperation, AclPermissionType, PatternType, ResourceType, WILDCARD};
use crate::KafkaPrincipal;

/// A filter over ACL bindings: `None` strings match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    /// A type, or ANY.
    pub resource_type: ResourceType,
    /// A name, or any.
    pub resource_name: Option<String>,
    /// LITERAL, PREFIXED, ANY (any pattern with that exact name) or MATCH (every ACL that
    /// would apply to that name).
    pub pattern_type: PatternType,
    /// A principal, or any.
    pub principal: Option<String>,
    /// A host, or any.
    pub host: Option<String>,
    /// An operation, or ANY.
    pub operation: AclOperation,
    /// A permission, or ANY.
    pub permission: AclPermissionType,
}

impl AclBindingFilter {
    /// The filter matching every binding.
    pub fn any() -> Self {
        AclBindingFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermissionType::Any,
        }
    }

    /// Why the filter cannot be used: a field Kafka does not know.
    pub fn unknown_field(&self) -> Option<&'static str> {
        if self.resource_type == ResourceType::Unknown {
            Some("Unknown resource type")
        } else if self.pattern_type == PatternType::Unknown {
            Some("Unknown pattern type")
        } else if self.operation == AclOperation::Unknown {
            Some("Unknown operation")
        } else if self.permission == AclPermissionType::Unknown {
            Some("Unknown permission type")
        } else {
            None
        }
    }

    /// Whether `binding` passes the filter.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_resource(binding) && self.matches_entry(binding)
    }

    fn matches_resource(&self, b: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != b.resource_type {
            return false;
        }
        let any_pattern = matches!(self.pattern_type, PatternType::Any | PatternType::Match);
        if !any_pattern && self.pattern_type != b.pattern_type {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == b.pattern_type {
            return *name == b.resource_name;
        }
        match b.pattern_type {
            PatternType::Literal => *name == b.resource_name || b.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&b.resource_name),
            _ => false,
        }
    }

    fn matches_entry(&self, b: &AclBinding) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && (self.operation == AclOperation::Any || self.operation == b.operation)
            && (self.permission == AclPermissionType::Any || self.permission == b.permission)
    }
}

/// Checks an ACL to be created; the error is the message CreateAcls answers with
/// INVALID_REQUEST.
pub fn validate_new_binding(b: &AclBinding) -> Result<(), String> {
    if matches!(b.resource_type, ResourceType::Unknown | ResourceType::Any) {
        return Err("Invalid resourceType ".to_string() + b.resource_type.name());
    }
    if !matches!(b.pattern_type, PatternType::Literal | PatternType::Prefixed) {
        return Err("Invalid patternType ".to_string() + b.pattern_type.name());
    }
    if matches!(b.operation, AclOperation::Unknown | AclOperation::Any) {
        return Err("Invalid operation ".to_string() + b.operation.name());
    }
    if !matches!(
        b.permission,
        AclPermissionType::Allow | AclPermissionType::Deny
    ) {
        return Err("Invalid permissionType ".to_string() + b.permission.name());
    }
    if b.resource_name.is_empty() {
        return Err("Resource name should not be empty".to_string());
    }
    KafkaPrincipal::parse(&b.principal)
        .map_err(|_| format!("Could not parse principal from `{}`", b.principal))?;
    if b.host.is_empty() {
        return Err("Host should not be empty".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(kind: ResourceType, name: &str, pattern: PatternType) -> AclBinding {
        AclBinding {
            resource_type: kind,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermissionType::Allow,
        }
    }

    fn filter(name: Option<&str>, pattern: PatternType) -> AclBindingFilter {
        AclBindingFilter {
            resource_type: ResourceType::Topic,
            resource_name: name.map(String::from),
            pattern_type: pattern,
            ..AclBindingFilter::any()
        }
    }

    /// Cases after Kafka's `ResourcePatternFilterTest`.
    #[test]
    fn resource_filters_follow_kafka() {
        use PatternType::*;
        use ResourceType::*;
        let cases = [
            (
                filter(Some("Name"), Literal),
                acl(Topic, "Name", Literal),
                true,
            ),
            (
                filter(Some("Name"), Literal),
                acl(Topic, "Name", Prefixed),
                false,
            ),
            (
                filter(Some("Name"), Literal),
                acl(Group, "Name", Literal),
                false,
            ),
            (filter(None, Literal), acl(Topic, "Name", Literal), true),
            (filter(None, Prefixed), acl(Topic, "Name", Literal), false),
            (
                filter(Some("Name"), PatternType::Any),
                acl(Topic, "Name", Prefixed),
                true,
            ),
            (
                filter(Some("Name"), PatternType::Any),
                acl(Topic, "*", Literal),
                false,
            ),
            (
                filter(Some("Name"), Match),
                acl(Topic, "Name", Literal),
                true,
            ),
            (filter(Some("Name"), Match), acl(Topic, "*", Literal), true),
            (
                filter(Some("Name"), Match),
                acl(Topic, "Na", Prefixed),
                true,
            ),
            (
                filter(Some("Name"), Match),
                acl(Topic, "Name", Prefixed),
                true,
            ),
            (
                filter(Some("Name"), Match),
                acl(Topic, "Names", Prefixed),
                false,
            ),
            (
                filter(Some("Name"), Match),
                acl(Topic, "Other", Literal),
                false,
            ),
            (
                filter(Some("*"), Literal),
                acl(Topic, "Name", Literal),
                false,
            ),
            (filter(None, Match), acl(Topic, "Name", Prefixed), true),
        ];
        for (f, b, want) in cases {
            assert_eq!(f.matches(&b), want, "{f:?} on {b}");
        }
        let mut any = AclBindingFilter::any();
        assert!(any.matches(&acl(Cluster, "kafka-cluster", Literal)));
        any.principal = Some("User:bob".into());
        assert!(!any.matches(&acl(Cluster, "kafka-cluster", Literal)));
        any.principal = None;
        any.permission = AclPermissionType::Deny;
        assert!(!any.matches(&acl(Cluster, "kafka-cluster", Literal)));
    }

    #[test]
    fn new_acls_are_validated_as_kafka_does() {
        let good = acl(ResourceType::Topic, "t", PatternType::Literal);
        assert_eq!(validate_new_binding(&good), Ok(()));
        let bad = [
            AclBinding {
                resource_type: ResourceType::Any,
                ..good.clone()
            },
            AclBinding {
                pattern_type: PatternType::Match,
                ..good.clone()
            },
            AclBinding {
                operation: AclOperation::Any,
                ..good.clone()
            },
            AclBinding {
                permission: AclPermissionType::Any,
                ..good.clone()
            },
            AclBinding {
                resource_name: String::new(),
                ..good.clone()
            },
            AclBinding {
                principal: "alice".into(),
                ..good.clone()
            },
        ];
        for b in bad {
            assert!(validate_new_binding(&b).is_err(), "{b}");
        }
    }
}
