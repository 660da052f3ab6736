//! An in-process broker for handler tests: the broker state opened on a temporary data
//! directory, with no listener, no HTTP server and no background tasks. Requests go straight
//! to the handler table with a [`RequestContext`], so a handler's behaviour is testable
//! without a socket or a spawned process. Its clock is a [`ManualClock`] that stands still
//! until a test moves it, so times computed from it are exact.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::clock::{Clock, ManualClock, SystemClock};
use sluice_protocol::kafka_protocol;

use crate::broker::{Broker, open_broker};
use crate::config::BrokerConfig;
use crate::fd_budget::FdBudget;
use crate::request::{ConnectionId, ConnectionIdentity, Reply, RequestContext, RequestHeader};
use crate::router;
use crate::topic_admin::{NewTopic, create_topic};

/// What the connection would do with a handler's reply.
// A test helper: the size of the response is of no concern.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// Write this response.
    Response(ResponseKind),
    /// Write nothing (acks=0 produce).
    NoResponse,
    /// Close the connection.
    Closed,
}

/// A broker opened on its own temporary directory.
pub struct BrokerTestContext {
    broker: Arc<Broker>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

impl BrokerTestContext {
    /// A broker with the default configuration, except for small internal topics and no
    /// initial rebalance delay.
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    /// A broker whose configuration `adjust` changes first.
    pub async fn with_config(adjust: impl FnOnce(&mut BrokerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temporary data dir");
        let mut config = BrokerConfig {
            http_listen: None,
            data_dir: dir.path().to_path_buf(),
            offsets_topic_partitions: 2,
            transaction_state_partitions: 2,
            group_initial_rebalance_delay_ms: 0,
            ..BrokerConfig::default()
        };
        adjust(&mut config);
        config.validate().expect("a valid test configuration");
        std::fs::create_dir_all(config.data_dir.join("meta")).expect("meta dir");
        let bound = config.listen;
        // Starts at the wall clock's time, as Kafka's MockTime does.
        let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
        let fd_budget = FdBudget::split(1024, 1024, None);
        let (broker, _) = open_broker(config, bound, false, fd_budget, clock.clone())
            .await
            .expect("broker opens");
        BrokerTestContext {
            broker,
            clock,
            _dir: dir,
        }
    }

    /// The broker state.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The broker's clock, which moves only when the test moves it.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// Creates `name` with `partitions` partitions and returns its id.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> uuid::Uuid {
        self.create_topic_with(name, partitions, &[]).await
    }

    /// Creates `name` with `partitions` partitions and the topic configs `configs`, and
    /// returns its id.
    pub async fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> uuid::Uuid {
        let configs: BTreeMap<String, String> = configs
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let topic = NewTopic {
            name: name.into(),
            partitions,
            replication_factor: 1,
            assignments: None,
            configs,
            internal: false,
        };
        create_topic(&self.broker, topic, false)
            .await
            .expect("topic created")
            .id
    }

    /// The context of a request of `api_key` at `version` from an anonymous PLAINTEXT client.
    pub fn context(api_key: ApiKey, version: i16) -> RequestContext {
        let identity =
            ConnectionIdentity::plaintext(ConnectionId(0), "127.0.0.1:50000".parse().unwrap());
        let header = RequestHeader {
            api_key,
            api_version: version,
            correlation_id: 1,
            client_id: StrBytes::from_static_str("handler-test"),
        };
        RequestContext::new(header, &identity)
    }

    /// Sends `request` at `version` through the handler table and waits for the outcome.
    pub async fn send(&self, version: i16, request: RequestKind) -> Outcome {
        let api_key = router::request_api(&request).expect("an API the table lists");
        let ctx = Self::context(api_key, version);
        match router::dispatch(&self.broker, &ctx, request).await {
            Reply::Now(response) => Outcome::Response(response),
            Reply::Later(task) => Outcome::Response(task.await.expect("handler task")),
            Reply::Nothing => Outcome::NoResponse,
            Reply::Close => Outcome::Closed,
        }
    }

    /// Sends `request` at `version` and returns its response.
    pub async fn call(&self, version: i16, request: RequestKind) -> ResponseKind {
        match self.send(version, request).await {
            Outcome::Response(response) => response,
            other => panic!("expected a response, got {other:?}"),
        }
    }
}
