//! The Kafka wire protocol as Sluice speaks it.
//!
//! This crate knows nothing about storage or sockets: it turns bytes into typed
//! requests and record-batch views, and typed responses back into bytes. It is
//! shared by the broker, the client and the tests.

pub mod batch;
pub mod compression;
pub mod records;
pub mod codec;
pub mod frame;

/// The generated Kafka message types, re-exported so every crate uses the same version.
pub use kafka_protocol;
