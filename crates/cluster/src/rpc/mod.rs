//! Node-to-node requests over TCP: the cluster listener ([`ClusterListener`]) and the
//! transport that calls it ([`TcpTransport`]). A connection starts with a handshake
//! ([`hello`]); then each request is a frame `[u32 length][u8 kind][payload]` answered by
//! a frame of the same kind.

mod client;
mod frame;
pub mod hello;
mod server;

pub use client::{RpcSettings, TcpTransport};
pub use hello::{LocalNode, PeerCheck, Refusal};
pub use server::ClusterListener;
