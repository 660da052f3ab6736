//! Cluster nodes over real sockets in one process: started in any order they form one
//! quorum, commit from any node, and a node that is not part of the cluster is refused
//! with its reason at start-up.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use sluice_cluster::{ClusterConfig, ClusterError, ClusterNode, NodeId, Voters};
use sluice_metadata::{CommitError, MetadataRecord, PartitionAssignment};
use uuid::Uuid;

/// Free loopback addresses (bound and released; the nodes bind them right after).
fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let held: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter().map(|l| l.local_addr().unwrap()).collect()
}

fn config(id: NodeId, addr: SocketAddr, voters: &Voters, dir: &Path) -> ClusterConfig {
    ClusterConfig {
        node_id: id,
        listen: addr,
        voters: voters.clone(),
        incarnation: Uuid::new_v4(),
        cluster_id: None,
        meta_dir: dir.join(format!("node{id}")),
        max_frame_bytes: 1 << 20,
    }
}

fn topic(name: &str) -> MetadataRecord {
    MetadataRecord::TopicCreated {
        name: name.into(),
        id: Uuid::new_v4(),
        partitions: 1,
        configs: BTreeMap::new(),
        internal: false,
        replicas: vec![PartitionAssignment(vec![1])],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_started_in_any_order_form_one_quorum_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let addrs = free_addrs(4);
    let voters: Voters = format!("1@{},2@{},3@{}", addrs[0], addrs[1], addrs[2])
        .parse()
        .unwrap();
    // Highest id first: the others wait until node 1 (the lowest) forms the quorum.
    let mut nodes = BTreeMap::new();
    for id in [3, 2, 1] {
        let node = ClusterNode::start(config(id, addrs[id as usize - 1], &voters, dir.path()))
            .await
            .unwrap();
        nodes.insert(id, node);
    }
    let joins = nodes.values().map(ClusterNode::join);
    for joined in futures::future::join_all(joins).await {
        joined.unwrap();
    }
    let leader = nodes[&1].quorum_leader().unwrap();
    for node in nodes.values() {
        assert_eq!(node.quorum_leader(), Some(leader));
    }
    // A commit from a follower is visible there when it returns, and everywhere soon.
    let follower = nodes.keys().copied().find(|id| *id != leader).unwrap();
    let store = nodes[&follower].metadata();
    store
        .propose(|_| Ok::<_, CommitError>((vec![topic("t")], ())))
        .await
        .unwrap();
    assert!(store.image().topic("t").is_some());
    for node in nodes.values() {
        node.join().await.unwrap();
        assert!(node.metadata().image().topic("t").is_some());
    }

    // A node listing other voters is refused by the voters it reaches.
    let stranger_voters: Voters = format!("1@{},2@{},4@{}", addrs[0], addrs[1], addrs[3])
        .parse()
        .unwrap();
    let stranger = ClusterNode::start(config(4, addrs[3], &stranger_voters, dir.path()))
        .await
        .unwrap();
    let refused = stranger.join().await.unwrap_err();
    let ClusterError::Refused { peer, reason, .. } = &refused else {
        panic!("{refused}");
    };
    assert!([1, 2].contains(peer));
    assert_eq!(
        *reason,
        format!(
            "node {peer} runs with --voters {voters} but node 4 with --voters \
             {stranger_voters}: every node needs the same --voters"
        )
    );
    stranger.shutdown().await;
    for node in nodes.values() {
        node.shutdown().await;
    }
}
