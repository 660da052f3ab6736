//! A userspace TCP fault proxy in front of every node's cluster listener; no root needed.
//!
//! Node `n` listens for its peers on `127.0.0.1:P`, and `--voters` names `127.0.0.2:P` for
//! it (the same port on another loopback address, which is all a node checks of its own
//! voter entry), where its proxy listens. Every node-to-node connection therefore passes
//! through the proxy of the node it reaches. A cluster connection opens with the dialing
//! node's handshake, which names it (`"from"`), so the proxy knows the link (from → to) of
//! every connection and applies that link's fault to each direction:
//!
//! - blackhole: bytes stop flowing (they wait in the proxy and the kernel buffers, as
//!   behind a cut cable TCP keeps retransmitting); calls time out; when the link heals,
//!   whatever is still open resumes;
//! - reset: open connections are reset and new ones are reset after their handshake;
//! - delay: each chunk is held back for a time (with seeded jitter) before it is passed on;
//! - throttle: bytes pass at a bounded rate (each chunk is followed by the pause its size
//!   takes at that rate), as over a slow or congested link.
//!
//! A node that is down has no proxy listener either, so a connect to it is refused as it
//! would be without the proxy (the controller fences a node whose cluster listener
//! refuses connections at once).
//!
//! Clients reach each node through a proxy of their own too: the node advertises
//! `127.0.0.2:P` for its Kafka listener `127.0.0.1:P`, so every client connection after the
//! bootstrap passes the node's client proxy, whose links run from [`CLIENTS`] to the node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::rng::Rng;

/// A node id.
pub type NodeId = i32;

/// The one end of every client link (node ids start at 1).
pub const CLIENTS: NodeId = 0;

/// Who dials a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialers {
    /// Other nodes: a connection opens with the dialing node's handshake, which names it.
    Nodes,
    /// Clients: every connection is a link from [`CLIENTS`].
    Clients,
}

/// What happens to the bytes going one way over a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    Blackhole,
    Reset,
    /// Each chunk waits `ms` plus up to `jitter_ms` more.
    Delay {
        ms: u64,
        jitter_ms: u64,
    },
    /// At most `bytes_per_sec` pass each second.
    Throttle {
        bytes_per_sec: u64,
    },
}

/// The fault of every directed link (from, to); links not listed are healthy. Changing it
/// wakes every connection, which re-reads the fault of its link.
pub struct Faults {
    links: Mutex<HashMap<(NodeId, NodeId), LinkFault>>,
    changed: watch::Sender<u64>,
    rng: Mutex<Rng>,
}

impl Faults {
    /// No faults; jitter drawn from `seed`.
    pub fn new(seed: u64) -> Arc<Faults> {
        Arc::new(Faults {
            links: Mutex::new(HashMap::new()),
            changed: watch::Sender::new(0),
            rng: Mutex::new(Rng::new(seed)),
        })
    }

    /// Sets the fault of the link from `from` to `to` (`None` heals it).
    pub fn set(&self, from: NodeId, to: NodeId, fault: Option<LinkFault>) {
        {
            let mut links = self.links.lock();
            match fault {
                Some(fault) => links.insert((from, to), fault),
                None => links.remove(&(from, to)),
            };
        }
        self.changed.send_modify(|v| *v += 1);
    }

    /// Sets the same fault on both directions between `a` and `b`.
    pub fn set_both(&self, a: NodeId, b: NodeId, fault: Option<LinkFault>) {
        self.set(a, b, fault);
        self.set(b, a, fault);
    }

    /// Heals every link.
    pub fn heal_all(&self) {
        self.links.lock().clear();
        self.changed.send_modify(|v| *v += 1);
    }

    /// The faulty links now, sorted.
    pub fn faulty_links(&self) -> Vec<((NodeId, NodeId), LinkFault)> {
        let mut links: Vec<_> = self.links.lock().iter().map(|(k, v)| (*k, *v)).collect();
        links.sort_by_key(|(k, _)| *k);
        links
    }

    fn get(&self, from: NodeId, to: NodeId) -> Option<LinkFault> {
        self.links.lock().get(&(from, to)).copied()
    }

    fn delay_of(&self, ms: u64, jitter_ms: u64) -> Duration {
        let jitter = if jitter_ms == 0 {
            0
        } else {
            self.rng.lock().below(jitter_ms + 1)
        };
        Duration::from_millis(ms + jitter)
    }
}

/// A proxy in front of one of a node's listeners: listens while the node is up.
pub struct Proxy {
    node: NodeId,
    dialers: Dialers,
    listen: SocketAddr,
    upstream: SocketAddr,
    faults: Arc<Faults>,
    runtime: tokio::runtime::Handle,
    /// The accept loop while listening.
    acceptor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    /// The proxy of node `node` for `dialers`, listening on `listen` (once [`Proxy::open`])
    /// and passing connections to `upstream`.
    pub fn new(
        node: NodeId,
        dialers: Dialers,
        listen: SocketAddr,
        upstream: SocketAddr,
        faults: Arc<Faults>,
        runtime: tokio::runtime::Handle,
    ) -> Proxy {
        Proxy {
            node,
            dialers,
            listen,
            upstream,
            faults,
            runtime,
            acceptor: Mutex::new(None),
        }
    }

    /// Starts listening (a no-op when it does); fails when the address cannot be bound.
    pub fn open(&self) -> std::io::Result<()> {
        let mut acceptor = self.acceptor.lock();
        if acceptor.as_ref().is_some_and(|task| !task.is_finished()) {
            return Ok(());
        }
        let listener = self.runtime.block_on(TcpListener::bind(self.listen))?;
        let link = LinkEnd {
            to: self.node,
            dialers: self.dialers,
            upstream: self.upstream,
            faults: self.faults.clone(),
        };
        *acceptor = Some(self.runtime.spawn(accept_loop(listener, Arc::new(link))));
        Ok(())
    }

    /// Stops listening: connects are refused as by a node that is down. Connections
    /// already open stay (they end when the node's side closes).
    pub fn close(&self) {
        if let Some(task) = self.acceptor.lock().take() {
            task.abort();
            // The listener is closed once the aborted task is dropped, which its join
            // handle waits for: the port is free for the next open.
            let _ = self.runtime.block_on(task);
        }
    }
}

/// Where a proxy's connections go and which faults they obey.
struct LinkEnd {
    to: NodeId,
    dialers: Dialers,
    upstream: SocketAddr,
    faults: Arc<Faults>,
}

async fn accept_loop(listener: TcpListener, link: Arc<LinkEnd>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(proxy_connection(stream, link.clone()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The largest handshake frame read (a node's own limit is the same).
const MAX_HELLO: usize = 64 * 1024;
/// How long a new connection may take to send its handshake, and the proxy to reach the
/// node.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the dialing node's handshake (on a cluster listener), then passes bytes both ways
/// under the link's faults until either side closes or the link is reset.
async fn proxy_connection(mut down: TcpStream, link: Arc<LinkEnd>) {
    let _ = down.set_nodelay(true);
    let (from, hello) = match link.dialers {
        Dialers::Clients => (Some(CLIENTS), Vec::new()),
        Dialers::Nodes => {
            let Ok(Ok(Some(hello))) =
                tokio::time::timeout(OPEN_TIMEOUT, read_frame(&mut down)).await
            else {
                return;
            };
            // A connection that does not open with a handshake naming its node is passed
            // on without faults (the node itself will refuse it).
            (dialing_node(&hello), hello)
        }
    };
    if let Some(from) = from
        && !wait_passable(&link.faults, from, link.to).await
    {
        let _ = down.set_zero_linger();
        return;
    }
    let Ok(Ok(mut up)) =
        tokio::time::timeout(OPEN_TIMEOUT, TcpStream::connect(link.upstream)).await
    else {
        return;
    };
    let _ = up.set_nodelay(true);
    if !hello.is_empty() && up.write_all(&hello).await.is_err() {
        return;
    }
    let (down_read, down_write) = down.into_split();
    let (up_read, up_write) = up.into_split();
    let (reset_tx, reset_rx) = watch::channel(false);
    let reset_tx = Arc::new(reset_tx);
    let requests = Pump {
        from: from.unwrap_or(-1),
        to: link.to,
        faults: link.faults.clone(),
        reset: reset_tx.clone(),
        reset_rx: reset_rx.clone(),
    };
    let responses = Pump {
        from: link.to,
        to: from.unwrap_or(-1),
        faults: link.faults.clone(),
        reset: reset_tx,
        reset_rx,
    };
    tokio::join!(
        requests.run(down_read, up_write),
        responses.run(up_read, down_write)
    );
}

/// Reads one `[u32 length][body]` frame and returns it whole (length included).
async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut length = [0u8; 4];
    if stream.read(&mut length[..1]).await? == 0 {
        return Ok(None);
    }
    stream.read_exact(&mut length[1..]).await?;
    let body_len = u32::from_be_bytes(length) as usize;
    if body_len > MAX_HELLO {
        return Ok(None);
    }
    let mut frame = length.to_vec();
    frame.resize(4 + body_len, 0);
    stream
        .read_exact(frame.get_mut(4..).unwrap_or_default())
        .await?;
    Ok(Some(frame))
}

/// The node a cluster handshake frame says it comes from: `[len][kind 0]SLUICE\0\x01{json}`.
fn dialing_node(frame: &[u8]) -> Option<NodeId> {
    let json = frame.get(4..)?.strip_prefix(&[0u8])?.get(8..)?;
    let hello: serde_json::Value = serde_json::from_slice(json).ok()?;
    hello.get("from")?.as_i64()?.try_into().ok()
}

/// Waits while the link from `from` to `to` is blackholed; false when it is reset.
async fn wait_passable(faults: &Faults, from: NodeId, to: NodeId) -> bool {
    let mut changed = faults.changed.subscribe();
    loop {
        match (faults.get(from, to), faults.get(to, from)) {
            (Some(LinkFault::Reset), _) | (_, Some(LinkFault::Reset)) => return false,
            (Some(LinkFault::Blackhole), _) => {
                if changed.changed().await.is_err() {
                    return false;
                }
            }
            _ => return true,
        }
    }
}

/// How long `bytes` take at `bytes_per_sec` (a rate of 0 counts as 1 byte a second).
fn time_at_rate(bytes: usize, bytes_per_sec: u64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / bytes_per_sec.max(1) as f64)
}

/// One direction of a proxied connection.
struct Pump {
    from: NodeId,
    to: NodeId,
    faults: Arc<Faults>,
    /// Set by either direction when the link is reset: both end.
    reset: Arc<watch::Sender<bool>>,
    reset_rx: watch::Receiver<bool>,
}

impl Pump {
    /// Passes bytes from `reader` to `writer` until EOF, an error or a reset.
    async fn run(mut self, mut reader: OwnedReadHalf, mut writer: OwnedWriteHalf) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut changed = self.faults.changed.subscribe();
        loop {
            if !wait_passable(&self.faults, self.from, self.to).await || *self.reset_rx.borrow() {
                self.reset_both(&writer);
                return;
            }
            let n = tokio::select! {
                read = reader.read(&mut buf) => match read {
                    Ok(0) | Err(_) => {
                        let _ = writer.shutdown().await;
                        return;
                    }
                    Ok(n) => n,
                },
                _ = changed.changed() => continue,
                _ = self.reset_rx.changed() => {
                    self.reset_both(&writer);
                    return;
                }
            };
            match self.faults.get(self.from, self.to) {
                Some(LinkFault::Delay { ms, jitter_ms }) => {
                    tokio::time::sleep(self.faults.delay_of(ms, jitter_ms)).await;
                }
                Some(LinkFault::Throttle { bytes_per_sec }) => {
                    tokio::time::sleep(time_at_rate(n, bytes_per_sec)).await;
                }
                _ => {}
            }
            // Bytes read before a blackhole began are held until it heals.
            if !wait_passable(&self.faults, self.from, self.to).await {
                self.reset_both(&writer);
                return;
            }
            let Some(chunk) = buf.get(..n) else {
                return;
            };
            if writer.write_all(chunk).await.is_err() {
                self.reset.send_replace(true);
                return;
            }
        }
    }

    fn reset_both(&mut self, writer: &OwnedWriteHalf) {
        let _ = writer.as_ref().set_zero_linger();
        self.reset.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello_frame(from: NodeId) -> Vec<u8> {
        let mut body = vec![0u8];
        body.extend_from_slice(b"SLUICE\x00\x01");
        body.extend_from_slice(format!("{{\"from\":{from},\"to\":2}}").as_bytes());
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend(body);
        frame
    }

    use std::io::{Read, Write};
    use std::net::{TcpListener as StdListener, TcpStream as StdStream};

    /// An echo server on 127.0.0.1 and a proxy for node 2 in front of it on 127.0.0.2 at
    /// the same port.
    fn echo_behind_proxy(
        runtime: &tokio::runtime::Runtime,
        faults: &Arc<Faults>,
        dialers: Dialers,
    ) -> Proxy {
        let server = StdListener::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in server.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let listen = SocketAddr::from(([127, 0, 0, 2], upstream.port()));
        let proxy = Proxy::new(
            2,
            dialers,
            listen,
            upstream,
            faults.clone(),
            runtime.handle().clone(),
        );
        proxy.open().unwrap();
        proxy
    }

    /// A connection from node 1 through the proxy: its handshake sent (and echoed back).
    fn dial_as_node_1(proxy: &Proxy) -> StdStream {
        let mut s = StdStream::connect(proxy.listen).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let hello = hello_frame(1);
        s.write_all(&hello).unwrap();
        let mut echoed = vec![0u8; hello.len()];
        s.read_exact(&mut echoed).unwrap();
        assert_eq!(echoed, hello);
        s
    }

    fn echo(s: &mut StdStream, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(bytes)?;
        let mut got = vec![0u8; bytes.len()];
        s.read_exact(&mut got)?;
        Ok(got)
    }

    #[test]
    fn links_pass_bytes_and_obey_blackhole_reset_delay_throttle_and_closing() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let faults = Faults::new(1);
        let proxy = echo_behind_proxy(&runtime, &faults, Dialers::Nodes);
        let mut s = dial_as_node_1(&proxy);
        assert_eq!(echo(&mut s, b"ping").unwrap(), b"ping");

        // Blackhole 1 -> 2: nothing comes back; after healing, the held bytes flow.
        faults.set(1, 2, Some(LinkFault::Blackhole));
        s.write_all(b"held").unwrap();
        let mut got = [0u8; 4];
        let err = s.read_exact(&mut got).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        faults.set(1, 2, None);
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"held");

        // Delay: the echo takes at least the delay (both directions are delayed).
        faults.set_both(
            1,
            2,
            Some(LinkFault::Delay {
                ms: 100,
                jitter_ms: 0,
            }),
        );
        let start = std::time::Instant::now();
        assert_eq!(echo(&mut s, b"slow").unwrap(), b"slow");
        assert!(start.elapsed() >= Duration::from_millis(200));
        faults.heal_all();

        // Throttle: 200 bytes at 1,000 bytes a second take at least 200 ms one way.
        faults.set(
            1,
            2,
            Some(LinkFault::Throttle {
                bytes_per_sec: 1_000,
            }),
        );
        let start = std::time::Instant::now();
        assert_eq!(echo(&mut s, &[7u8; 200]).unwrap(), vec![7u8; 200]);
        assert!(start.elapsed() >= Duration::from_millis(200));
        faults.heal_all();

        // Reset: the open connection is reset, and a new one too once it says who it is.
        faults.set_both(1, 2, Some(LinkFault::Reset));
        let mut buf = [0u8; 1];
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
        let mut fresh = StdStream::connect(proxy.listen).unwrap();
        fresh
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        fresh.write_all(&hello_frame(1)).unwrap();
        assert!(matches!(fresh.read(&mut buf), Ok(0) | Err(_)));
        assert_eq!(faults.faulty_links().len(), 2);
        faults.heal_all();
        let mut healed = dial_as_node_1(&proxy);
        assert_eq!(echo(&mut healed, b"back").unwrap(), b"back");

        // A closed proxy refuses connections, as a node that is down does.
        proxy.close();
        std::thread::sleep(Duration::from_millis(50));
        let refused = StdStream::connect(proxy.listen).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        proxy.open().unwrap();
        let mut reopened = dial_as_node_1(&proxy);
        assert_eq!(echo(&mut reopened, b"open").unwrap(), b"open");
    }

    #[test]
    fn client_links_need_no_handshake_and_obey_their_faults() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let faults = Faults::new(1);
        let proxy = echo_behind_proxy(&runtime, &faults, Dialers::Clients);
        let dial = || {
            let s = StdStream::connect(proxy.listen).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            s
        };
        let mut s = dial();
        assert_eq!(echo(&mut s, b"ping").unwrap(), b"ping");

        // A fault between node 1 and node 2 leaves clients alone.
        faults.set_both(1, 2, Some(LinkFault::Blackhole));
        assert_eq!(echo(&mut s, b"free").unwrap(), b"free");
        faults.heal_all();

        // Clients blackholed from node 2: held until healed.
        faults.set_both(CLIENTS, 2, Some(LinkFault::Blackhole));
        s.write_all(b"held").unwrap();
        let mut got = [0u8; 4];
        let err = s.read_exact(&mut got).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        faults.heal_all();
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"held");

        // Reset: the open connection and every new one.
        faults.set_both(CLIENTS, 2, Some(LinkFault::Reset));
        let mut buf = [0u8; 1];
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
        let mut fresh = dial();
        let _ = fresh.write_all(b"x");
        assert!(matches!(fresh.read(&mut buf), Ok(0) | Err(_)));
        faults.heal_all();
        let mut healed = dial();
        assert_eq!(echo(&mut healed, b"back").unwrap(), b"back");
    }

    #[test]
    fn the_dialing_node_is_read_from_the_handshake() {
        assert_eq!(dialing_node(&hello_frame(3)), Some(3));
        assert_eq!(dialing_node(&[0, 0, 0, 2, 1, 2]), None);
        assert_eq!(dialing_node(b""), None);
    }
}
