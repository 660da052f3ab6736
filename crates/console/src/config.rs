//! What the console is allowed to do and how much it may read.

use std::time::Duration;

use sluice_broker::config::{BrokerConfig, ConsoleMode};

/// The console's settings, from the broker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// Every change is refused and no form to make one is rendered.
    pub read_only: bool,
    /// `Host` names accepted besides localhost and loopback addresses.
    pub extra_hosts: Vec<String>,
    /// Bounds on what one request may read.
    pub limits: Limits,
}

/// Bounds on reads, so that no request can make the broker read without end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Records shown on one page of messages.
    pub page_records: usize,
    /// Records one browse may ask for.
    pub max_records: usize,
    /// Bytes one filtered scan may read from the logs.
    pub scan_bytes: u64,
    /// How long one filtered scan may run.
    pub scan_time: Duration,
    /// Records one export may write.
    pub export_records: usize,
    /// Scans and exports running at once; more get 429.
    pub concurrent_scans: usize,
    /// Server-sent event streams open at once; more get 429.
    pub streams: usize,
    /// Bytes of a value shown in full; longer ones are cut.
    pub value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            page_records: 50,
            max_records: 10_000,
            scan_bytes: 1 << 30,
            scan_time: Duration::from_secs(60),
            export_records: 100_000,
            concurrent_scans: 4,
            streams: 32,
            value_bytes: 64 * 1024,
        }
    }
}

impl ConsoleConfig {
    /// The console the broker's settings ask for; `None` when it is off.
    pub fn from_broker(config: &BrokerConfig) -> Option<Self> {
        let read_only = match config.console {
            ConsoleMode::Off => return None,
            ConsoleMode::ReadOnly => true,
            ConsoleMode::ReadWrite => false,
        };
        let mut extra_hosts: Vec<String> = config
            .console_hosts
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if let Some(advertised) = config.advertise.as_deref()
            && let Ok((host, _)) = sluice_broker::config::parse_advertised(advertised)
        {
            extra_hosts.push(host.to_ascii_lowercase());
        }
        Some(Self {
            read_only,
            extra_hosts,
            limits: Limits::default(),
        })
    }
}
