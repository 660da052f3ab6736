//! Kafka's ACL model, exactly: `Principal P is Allowed/Denied Operation O From Host H On
//! Resource R`, with Kafka's codes for resource types, pattern types, operations and
//! permissions, binding filters with ANY and MATCH, and the authorizer of
//! `StandardAuthorizerData` (deny wins, implied DESCRIBE, `*` and prefixed patterns, super
//! users, `allow.everyone.if.no.acl.found`).

mod authorizer;
mod filter;

pub use authorizer::{AuthorizerData, supported_operations};
pub use filter::{AclBindingFilter, validate_new_binding};

use std::fmt;

macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant = $code),*
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// Kafka's code.
            pub fn code(self) -> i8 {
                self as i8
            }

            /// The value of Kafka's `code` (UNKNOWN for codes it does not know).
            pub fn from_code(code: i8) -> $name {
                Self::ALL.iter().copied().find(|v| v.code() == code).unwrap_or($name::Unknown)
            }

            /// Kafka's name, e.g. `TOPIC`.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            /// The value called `name` (case-insensitive, `-` or `_`).
            pub fn parse(name: &str) -> Option<$name> {
                let wanted = name.trim().replace('-', "_").to_ascii_uppercase();
                Self::ALL.iter().copied().find(|v| v.name() == wanted)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_enum! {
    /// What kind of resource an ACL is about.
    ResourceType {
        /// Not known.
        Unknown = 0 => "UNKNOWN",
        /// Any type (filters only).
        Any = 1 => "ANY",
        /// A topic.
        Topic = 2 => "TOPIC",
        /// A consumer group.
        Group = 3 => "GROUP",
        /// The cluster (`kafka-cluster`).
        Cluster = 4 => "CLUSTER",
        /// A transactional id.
        TransactionalId = 5 => "TRANSACTIONAL_ID",
        /// A delegation token.
        DelegationToken = 6 => "DELEGATION_TOKEN",
        /// A user.
        User = 7 => "USER",
    }
}

kafka_enum! {
    /// How an ACL's resource name matches resources.
    PatternType {
        /// Not known.
        Unknown = 0 => "UNKNOWN",
        /// Any pattern type (filters only).
        Any = 1 => "ANY",
        /// Whatever would apply to the name (filters only).
        Match = 2 => "MATCH",
        /// The exact name, or `*` for every name.
        Literal = 3 => "LITERAL",
        /// Every name starting with it.
        Prefixed = 4 => "PREFIXED",
    }
}

kafka_enum! {
    /// An operation on a resource.
    AclOperation {
        /// Not known.
        Unknown = 0 => "UNKNOWN",
        /// Any operation (filters only).
        Any = 1 => "ANY",
        /// Every operation.
        All = 2 => "ALL",
        /// Read.
        Read = 3 => "READ",
        /// Write.
        Write = 4 => "WRITE",
        /// Create.
        Create = 5 => "CREATE",
        /// Delete.
        Delete = 6 => "DELETE",
        /// Alter.
        Alter = 7 => "ALTER",
        /// Describe.
        Describe = 8 => "DESCRIBE",
        /// Inter-broker actions.
        ClusterAction = 9 => "CLUSTER_ACTION",
        /// Describe configs.
        DescribeConfigs = 10 => "DESCRIBE_CONFIGS",
        /// Alter configs.
        AlterConfigs = 11 => "ALTER_CONFIGS",
        /// Idempotent produce.
        IdempotentWrite = 12 => "IDEMPOTENT_WRITE",
        /// Create delegation tokens.
        CreateTokens = 13 => "CREATE_TOKENS",
        /// Describe delegation tokens.
        DescribeTokens = 14 => "DESCRIBE_TOKENS",
    }
}

kafka_enum! {
    /// Whether an ACL allows or denies.
    AclPermissionType {
        /// Not known.
        Unknown = 0 => "UNKNOWN",
        /// Either (filters only).
        Any = 1 => "ANY",
        /// Denies.
        Deny = 2 => "DENY",
        /// Allows.
        Allow = 3 => "ALLOW",
    }
}

/// The name of the cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The literal resource name and host matching every name and host.
pub const WILDCARD: &str = "*";
/// The principal matching every user.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    /// The resource type.
    pub resource_type: ResourceType,
    /// The resource name (or prefix).
    pub resource_name: String,
    /// LITERAL or PREFIXED.
    pub pattern_type: PatternType,
    /// `Type:name`, or `User:*`.
    pub principal: String,
    /// The client host (IP), or `*`.
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// ALLOW or DENY.
    pub permission: AclPermissionType,
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {} {} from {} on {}:{}:{}",
            self.principal,
            self.permission,
            self.operation,
            self.host,
            self.resource_type,
            self.pattern_type,
            self.resource_name
        )
    }
}
