//! Who sent a request: Kafka's `KafkaPrincipal`, printed `Type:name` (`User:alice`).

use std::fmt;
use std::sync::Arc;

/// A principal: its type (`User`) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaPrincipal {
    principal_type: Arc<str>,
    name: Arc<str>,
}

impl KafkaPrincipal {
    /// The type of every principal Kafka's own authenticators produce.
    pub const USER_TYPE: &'static str = "User";

    /// A principal of type `principal_type` called `name`.
    pub fn new(principal_type: &str, name: &str) -> Self {
        KafkaPrincipal {
            principal_type: principal_type.into(),
            name: name.into(),
        }
    }

    /// `User:<name>`: what SASL and TLS authentication produce.
    pub fn user(name: &str) -> Self {
        Self::new(Self::USER_TYPE, name)
    }

    /// `User:ANONYMOUS`: the principal of a connection that did not authenticate.
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }

    /// Parses `Type:name` (Kafka's `SecurityUtils.parseKafkaPrincipal`): the type is what
    /// comes before the first `:`, and neither part may be empty.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(Self::new(kind, name)),
            _ => Err(format!(
                "'{text}' is not a principal: expected Type:name, e.g. User:alice"
            )),
        }
    }

    /// The type, e.g. `User`.
    pub fn principal_type(&self) -> &str {
        &self.principal_type
    }

    /// The name, e.g. `alice`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn principals_print_and_parse_as_type_colon_name() {
        assert_eq!(KafkaPrincipal::anonymous().to_string(), "User:ANONYMOUS");
        let p = KafkaPrincipal::parse("User:CN=alice,OU=eng").unwrap();
        assert_eq!((p.principal_type(), p.name()), ("User", "CN=alice,OU=eng"));
        for bad in ["alice", ":alice", "User:", ""] {
            assert!(KafkaPrincipal::parse(bad).is_err(), "{bad}");
        }
    }
}
