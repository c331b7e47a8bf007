//! What the world needs from a simulated node: membership-only nodes and
//! whole peer cores implement it.

use std::net::SocketAddr;

use crate::queue::Micros;

/// An output of a node, in the order it was produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeOutput<E> {
    Send {
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    /// A reliable message (a QUIC stream in the real shell): delivered in
    /// order per pair of nodes, with latency, never lost, duplicated or too
    /// big, but dropped by a partition or when either end restarts.
    Message {
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    /// Something for the scenario to observe (not sent anywhere).
    Event(E),
}

/// A sans-IO state machine the world can drive. The world calls one
/// `handle_*`, then `drain` once, then `poll_timeout`, after every input.
pub trait SimNode {
    type Event;
    fn handle_datagram(&mut self, now: Micros, from: SocketAddr, bytes: &[u8]);
    /// Fires every timer due at `now` (none that is not due yet).
    fn handle_timeout(&mut self, now: Micros);
    /// When the node's next timer is due, never before its deadline (round
    /// up a deadline finer than a microsecond).
    fn poll_timeout(&self) -> Option<Micros>;
    /// One reliable message (see [`NodeOutput::Message`]). Nodes that send
    /// none keep the default, which ignores it.
    fn handle_message(&mut self, _now: Micros, _from: SocketAddr, _bytes: &[u8]) {}
    /// Moves every pending output into `out`.
    fn drain(&mut self, out: &mut Vec<NodeOutput<Self::Event>>);
}
