//! DescribeConfigs for the broker: every setting under each of its Kafka names.

use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;

use super::*;
use crate::config::SETTINGS;

/// `(name, value, source, read-only)` of every config DescribeConfigs v4 reports for broker 1.
async fn broker_configs(test: &BrokerTestContext) -> Vec<(String, String, i8, bool)> {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1"))
            .with_configuration_keys(None),
    ]);
    let ResponseKind::DescribeConfigs(response) =
        test.call(4, RequestKind::DescribeConfigs(req)).await
    else {
        panic!("not a DescribeConfigs response");
    };
    assert_eq!(response.results[0].error_code, 0);
    response.results[0]
        .configs
        .iter()
        .map(|c| {
            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (c.name.to_string(), value, c.config_source, c.read_only)
        })
        .collect()
}

#[tokio::test]
async fn every_setting_is_described_under_each_kafka_name() {
    let test = BrokerTestContext::with_config(|c| {
        c.default_partitions = 3;
        c.transaction_max_timeout_ms = 60_000;
        c.log_retention_ms = 1_000;
    })
    .await;
    let configs = broker_configs(&test).await;
    let find = |name: &str| configs.iter().find(|c| c.0 == name).cloned();
    for setting in SETTINGS {
        for name in setting.options.kafka_names {
            let (_, _, _, read_only) =
                find(name).unwrap_or_else(|| panic!("{name} missing from {configs:?}"));
            assert_eq!(read_only, setting.options.needs_restart, "{name}");
        }
    }
    let (static_broker, default) = (4, 5);
    let entry = |name: &str, value: &str, source: i8, read_only: bool| {
        Some((name.to_string(), value.to_string(), source, read_only))
    };
    assert_eq!(
        find("num.partitions"),
        entry("num.partitions", "3", static_broker, true)
    );
    assert_eq!(
        find("transaction.max.timeout.ms"),
        entry("transaction.max.timeout.ms", "60000", static_broker, true)
    );
    assert_eq!(find("broker.id"), entry("broker.id", "1", default, true));
    assert_eq!(find("node.id"), entry("node.id", "1", default, true));
    assert_eq!(
        find("listeners"),
        entry("listeners", "PLAINTEXT://127.0.0.1:9092", default, true)
    );
    assert_eq!(
        find("max.connections.per.ip"),
        entry("max.connections.per.ip", "2147483647", default, true)
    );
    assert_eq!(
        find("default.replication.factor"),
        entry("default.replication.factor", "1", default, true)
    );
    // The broker default of a topic config: alterable, and set here at start-up.
    assert_eq!(
        find("log.retention.ms"),
        entry("log.retention.ms", "1000", static_broker, false)
    );
    // Settings without a Kafka name are not configs.
    assert_eq!(find("http-listen"), None);
    let mut names: Vec<&str> = configs.iter().map(|c| c.0.as_str()).collect();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "sorted, each once");
}
