//! `sluice-security`: the parts of authentication and authorization that need no broker:
//! principals, listeners, TLS configurations and certificate names, the SASL mechanisms
//! (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER), the ACL authorizer and quota rates. The
//! broker wires them to connections and metadata; the CLI uses the client side of TLS and
//! SASL. Everything here is synchronous and unit-testable, and the parsers are fuzzed.

pub mod acl;
pub mod listener;
pub mod principal;
pub mod quota;
pub mod sasl;
pub mod tls;

pub use listener::{ListenerName, SecurityProtocol};
pub use principal::KafkaPrincipal;
pub use rustls;
