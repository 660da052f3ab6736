//! `sluice-chaos`: a Jepsen-style fault harness for a Sluice cluster. It starts real
//! `sluice serve` processes on loopback behind userspace fault proxies ([`proxy`]), runs
//! librdkafka producers and consumers against them ([`workload`]) while a nemesis kills,
//! pauses, partitions and restarts nodes ([`nemesis`]), heals everything, reads every
//! partition, and checks what the clients saw ([`checker`], the analysis of Jepsen's Kafka
//! queue workload), and can write the history for Jepsen's own checker ([`edn`]).
//! docs/RELIABILITY.md says how to run it.

pub mod checker;
pub mod edn;
pub mod history;
pub mod nemesis;
pub mod nodes;
pub mod proxy;
pub mod rng;
pub mod run;
pub mod transactions;
pub mod workload;
