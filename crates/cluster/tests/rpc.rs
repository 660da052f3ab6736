//! The cluster listener and the TCP transport on loopback: kinds reach their handlers, a
//! slow call does not hold up another, peers that are not what they claim or speak
//! something else are disconnected, restarts and timeouts are survived.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_cluster::rpc::{ClusterListener, LocalNode, RpcSettings, TcpTransport};
use sluice_cluster::{
    BoxFuture, Channel, Handlers, NodeId, RequestHandler, RpcKind, Transport, TransportError,
    Voters,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use uuid::Uuid;

/// Answers `<name>:<from>:<request>`.
struct Echo(&'static str);

impl RequestHandler for Echo {
    fn handle(&self, from: NodeId, request: Bytes) -> BoxFuture<'_, Bytes> {
        let answer = format!("{}:{from}:{}", self.0, String::from_utf8_lossy(&request));
        Box::pin(async move { Bytes::from(answer) })
    }
}

/// Answers only once released.
struct Held(Arc<Notify>);

impl RequestHandler for Held {
    fn handle(&self, _: NodeId, _: Bytes) -> BoxFuture<'_, Bytes> {
        Box::pin(async move {
            self.0.notified().await;
            Bytes::from_static(b"released")
        })
    }
}

/// Two nodes' listeners bound on free loopback ports, with their voters.
async fn bind_two() -> (TcpListener, TcpListener, Voters) {
    let a = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let voters = format!(
        "1@{},2@{}",
        a.local_addr().unwrap(),
        b.local_addr().unwrap()
    )
    .parse()
    .unwrap();
    (a, b, voters)
}

fn node(id: NodeId, voters: &Voters, cluster: Option<&str>) -> Arc<LocalNode> {
    LocalNode::new(
        id,
        Uuid::from_u128(id as u128),
        voters.clone(),
        cluster.map(String::from),
    )
}

fn serve(listener: TcpListener, local: Arc<LocalNode>, handlers: Arc<Handlers>) -> ClusterListener {
    ClusterListener::serve(listener, local, handlers, 1024 * 1024).unwrap()
}

fn settings() -> RpcSettings {
    RpcSettings {
        call_timeout: Duration::from_secs(5),
        ..RpcSettings::default()
    }
}

#[tokio::test]
async fn each_kind_reaches_its_handler_and_a_held_call_delays_no_other() {
    let (_a, b, voters) = bind_two().await;
    let handlers = Handlers::new();
    let release = Arc::new(Notify::new());
    handlers.register(RpcKind::Raft, Arc::new(Echo("raft")));
    handlers.register(RpcKind::Kafka, Arc::new(Held(release.clone())));
    let _server = serve(b, node(2, &voters, Some("c")), handlers);
    let transport: Arc<dyn Transport> =
        TcpTransport::new(node(1, &voters, None), &voters, settings());
    let raft = Channel::new(transport.clone(), RpcKind::Raft);
    let kafka = Channel::new(transport.clone(), RpcKind::Kafka);
    assert_eq!(raft.call(2, Bytes::from("x")).await.unwrap(), "raft:1:x");
    // A Kafka call waits on node 2; Raft calls meanwhile go through other connections.
    let held = tokio::spawn(async move { kafka.call(2, Bytes::from("fetch")).await });
    for i in 0..3 {
        let answer = raft.call(2, Bytes::from(format!("{i}"))).await.unwrap();
        assert_eq!(answer, format!("raft:1:{i}"));
    }
    assert!(!held.is_finished());
    release.notify_one();
    assert_eq!(held.await.unwrap().unwrap(), "released");
    // A kind node 2 does not serve: the connection is closed, the call lost.
    let forward = Channel::new(transport.clone(), RpcKind::Forward);
    assert_eq!(
        forward.call(2, Bytes::new()).await,
        Err(TransportError::Lost(2))
    );
    assert_eq!(
        transport.call(7, Bytes::from_static(&[1])).await,
        Err(TransportError::UnknownNode(7))
    );
}

/// Reads until the peer closes (or resets: it closed with our bytes unread); what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .unwrap();
    match read {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    got
}

#[tokio::test]
async fn a_peer_speaking_something_else_is_disconnected() {
    let (_a, b, voters) = bind_two().await;
    let addr = b.local_addr().unwrap();
    let handlers = Handlers::new();
    handlers.register(RpcKind::Raft, Arc::new(Echo("raft")));
    let _server = serve(b, node(2, &voters, None), handlers);
    // An HTTP request: closed without an answer.
    let mut http = TcpStream::connect(addr).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_to_close(&mut http).await.is_empty());
    // A length far over any handshake: closed before anything is allocated.
    let mut huge = TcpStream::connect(addr).await.unwrap();
    huge.write_all(&[0x7f, 0xff, 0xff, 0xff, 0]).await.unwrap();
    assert!(read_to_close(&mut huge).await.is_empty());
    // The real thing still works.
    let transport = TcpTransport::new(node(1, &voters, None), &voters, settings());
    let raft = Channel::new(transport, RpcKind::Raft);
    assert_eq!(raft.call(2, Bytes::from("ok")).await.unwrap(), "raft:1:ok");
}

#[tokio::test]
async fn nodes_with_other_voters_another_cluster_or_the_wrong_id_are_refused() {
    let (_a, b, voters) = bind_two().await;
    let addr = b.local_addr().unwrap();
    let handlers = Handlers::new();
    handlers.register(RpcKind::Raft, Arc::new(Echo("raft")));
    let _server = serve(b, node(2, &voters, Some("cluster-a")), handlers);
    let call = |local: Arc<LocalNode>, voters: Voters| async move {
        let refusals = local.refusals();
        let transport = TcpTransport::new(local, &voters, settings());
        let raft = Channel::new(transport, RpcKind::Raft);
        let result = raft.call(2, Bytes::from("x")).await;
        let refusal = refusals.borrow().clone().map(|r| (r.peer, r.reason));
        (result, refusal)
    };
    // Another cluster.
    let (result, refusal) = call(node(1, &voters, Some("cluster-b")), voters.clone()).await;
    assert_eq!(result, Err(TransportError::Lost(2)));
    assert_eq!(
        refusal,
        Some((
            2,
            "node 2 is in cluster cluster-a but node 1 is in cluster cluster-b: a data directory \
             of another cluster"
                .to_string()
        ))
    );
    // Other voters (node 1 lists a third node).
    let more: Voters = format!("{voters},3@127.0.0.1:9").parse().unwrap();
    let (_, refusal) = call(node(1, &more, None), more.clone()).await;
    assert!(refusal.unwrap().1.ends_with(&format!(
        "but node 1 with --voters {more}: every node needs the same --voters"
    )));
    // Node 1 believes node 3 listens where node 2 does.
    let wrong: Voters = format!("1@127.0.0.1:9,3@{addr}").parse().unwrap();
    let confused = node(1, &wrong, None);
    let refusals = confused.refusals();
    let transport = TcpTransport::new(confused, &wrong, settings());
    let raft = Channel::new(transport, RpcKind::Raft);
    assert_eq!(
        raft.call(3, Bytes::from("x")).await,
        Err(TransportError::Lost(3))
    );
    assert_eq!(
        refusals.borrow().clone().map(|r| r.reason),
        Some(
            "node 1 reached node 2 while trying to reach node 3: the addresses in --voters are \
             wrong"
                .to_string()
        )
    );
    // The same node with the right id and cluster gets through.
    let (result, refusal) = call(node(1, &voters, Some("cluster-a")), voters.clone()).await;
    assert_eq!((result.unwrap(), refusal), (Bytes::from("raft:1:x"), None));
}

#[tokio::test]
async fn calls_survive_the_peer_restarting_and_time_out_when_it_hangs() {
    let (_a, b, voters) = bind_two().await;
    let addr = b.local_addr().unwrap();
    let handlers = Handlers::new();
    handlers.register(RpcKind::Raft, Arc::new(Echo("raft")));
    let server = serve(b, node(2, &voters, None), handlers.clone());
    let transport = TcpTransport::new(
        node(1, &voters, None),
        &voters,
        RpcSettings {
            call_timeout: Duration::from_millis(300),
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            ..RpcSettings::default()
        },
    );
    let raft = Channel::new(transport.clone(), RpcKind::Raft);
    assert_eq!(raft.call(2, Bytes::from("1")).await.unwrap(), "raft:1:1");
    // Node 2 goes away: calls fail; it comes back on the same port: calls work again on
    // new connections (the pooled one went stale).
    server.shutdown().await;
    assert_eq!(
        raft.call(2, Bytes::from("2")).await,
        Err(TransportError::Lost(2))
    );
    let again = TcpListener::bind(addr).await.unwrap();
    let _server = serve(again, node(2, &voters, None), handlers.clone());
    let mut answer = Err(TransportError::Lost(2));
    for _ in 0..100 {
        answer = raft.call(2, Bytes::from("3")).await;
        if answer.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer.unwrap(), "raft:1:3");
    // A handler that never answers: the call times out.
    handlers.register(RpcKind::Kafka, Arc::new(Held(Arc::new(Notify::new()))));
    let kafka = Channel::new(transport, RpcKind::Kafka);
    assert_eq!(
        kafka.call(2, Bytes::new()).await,
        Err(TransportError::Timeout(2))
    );
}
