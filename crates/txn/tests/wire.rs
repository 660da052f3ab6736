//! Every response the coordinator builds must encode at the version it was
//! asked for (kafka-protocol refuses fields a version does not have).

// Tests may unwrap and index: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use bytes::BytesMut;
use common::*;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, DescribeTransactionsRequest, ListTransactionsRequest,
    TransactionalId,
};
use kafka_protocol::protocol::Encodable;

fn encodes<T: Encodable>(message: &T, version: i16) {
    let mut buf = BytesMut::new();
    message
        .encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("version {version}: {e}"));
}

#[tokio::test(start_paused = true)]
async fn responses_encode_at_every_version() {
    let h = Harness::new();
    let c = h.coordinator();
    for version in 0..=6i16 {
        let ok = c
            .init_producer_id(init_req(&format!("i{version}")), version)
            .await;
        assert_eq!(ok.error_code, 0);
        encodes(&ok, version);
        let bad = c
            .init_producer_id(init_req("x").with_transaction_timeout_ms(-1), version)
            .await;
        encodes(&bad, version);
    }
    let (pid, epoch) = init(&c, "t").await;
    for version in 0..=5i16 {
        let (p, e) = (pid, epoch);
        if version <= 3 {
            encodes(
                &c.add_partitions_to_txn(add_req("t", p, e, &[("a", &[0, 1])]), version)
                    .await,
                version,
            );
            encodes(
                &c.add_partitions_to_txn(add_req("nobody", p, e, &[("a", &[0])]), version)
                    .await,
                version,
            );
        } else {
            let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
                batch_txn("t", p, e, false, &[("a", &[0])]),
                batch_txn("t", p, e, true, &[("a", &[0, 9])]),
                batch_txn("nobody", p, e, true, &[("a", &[0])]),
            ]);
            encodes(&c.add_partitions_to_txn(req, version).await, version);
        }
    }
    for version in 0..=4i16 {
        encodes(
            &c.add_offsets_to_txn(offsets_req("t", pid, epoch, "g"), version)
                .await,
            version,
        );
        encodes(
            &c.add_offsets_to_txn(offsets_req("t", pid, epoch - 1, "g"), version)
                .await,
            version,
        );
    }
    for version in 0..=5i16 {
        let tid = format!("e{version}");
        let (p, e) = init(&c, &tid).await;
        add(&c, &tid, p, e, &[("a", &[0])]).await;
        let ok = c.end_txn(end_req(&tid, p, e, true), version).await;
        assert_eq!(ok.error_code, 0);
        encodes(&ok, version);
        encodes(
            &c.end_txn(end_req("nobody", p, e, true), version).await,
            version,
        );
    }
    settle().await;
    let d = c
        .describe_transactions(
            DescribeTransactionsRequest::default().with_transactional_ids(vec![
                TransactionalId(s("t")),
                TransactionalId(s("nobody")),
            ]),
            0,
        )
        .await;
    encodes(&d, 0);
    for version in 0..=2i16 {
        let mut req =
            ListTransactionsRequest::default().with_state_filters(vec![s("Ongoing"), s("x")]);
        if version >= 1 {
            req = req.with_duration_filter(0);
        }
        if version >= 2 {
            req = req.with_transactional_id_pattern(Some(s(".*")));
        }
        encodes(&c.list_transactions(req, version).await, version);
    }
}
