//! The Kafka wire protocol as Sluice speaks it.
//!
//! This crate knows nothing about storage or sockets: it turns bytes into typed
//! requests and record-batch views, and typed responses back into bytes. It is
//! shared by the broker, the client and the tests, which also take their
//! wall-clock time in Kafka's unit from it ([`clock`]).

pub mod batch;
pub mod clock;
pub mod codec;
pub mod compression;
pub mod fetch_encoder;
pub mod frame;
pub mod legacy;
pub mod model;
pub mod records;
/// Kafka's internal-topic record schemas (`__consumer_offsets`,
/// `__transaction_state`), classic and flexible versions: one bounds-checked
/// [`schema_codec::Reader`] and [`schema_codec::Writer`] shared by the group
/// and transaction coordinators, decoding without panics and checking every
/// length against the bytes present before allocating.
pub mod schema_codec;

/// The generated Kafka message types, re-exported so every crate uses the same version.
pub use kafka_protocol;
