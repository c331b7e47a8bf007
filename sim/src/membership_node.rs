//! A simulated node that is only a `Membership` (real foca, real codec).

use std::net::SocketAddr;
use std::time::Duration;

use shoal_gossip::{Membership, MembershipEvent, Output};

use crate::node::{NodeOutput, SimNode};
use crate::queue::Micros;

/// `Membership` as a [`SimNode`]; counts the inputs it rejected.
#[derive(Debug)]
pub struct MembershipNode {
    pub membership: Membership,
    /// Inputs foca or the codec rejected (normal in small numbers: stale
    /// probes, packets from a peer that changed identity).
    pub errors: u64,
    /// Bytes this node handed to the network, by datagram kind (the
    /// envelope's first byte): tells SWIM traffic from rosters, digests
    /// and suspect notices.
    pub bytes_by_kind: [u64; 8],
}

impl MembershipNode {
    pub fn new(membership: Membership) -> Self {
        Self {
            membership,
            errors: 0,
            bytes_by_kind: [0; 8],
        }
    }
}

pub(crate) fn duration(now: Micros) -> Duration {
    Duration::from_micros(now)
}

/// The first whole microsecond at or after `at`: a timer is never woken
/// before its deadline (a deadline with nanoseconds, such as the suspicion
/// window's or the jittered anti-entropy period's, would otherwise come due
/// a few ns early and fire nothing).
pub fn micros_at_or_after(at: Duration) -> Micros {
    let whole = u64::try_from(at.as_micros()).unwrap_or(u64::MAX);
    if at.subsec_nanos().is_multiple_of(1000) {
        whole
    } else {
        whole.saturating_add(1)
    }
}

impl SimNode for MembershipNode {
    type Event = MembershipEvent;

    fn handle_datagram(&mut self, now: Micros, from: SocketAddr, bytes: &[u8]) {
        if self
            .membership
            .handle_datagram(duration(now), from, bytes)
            .is_err()
        {
            self.errors += 1;
        }
    }

    fn handle_timeout(&mut self, now: Micros) {
        if self.membership.handle_timeout(duration(now)).is_err() {
            self.errors += 1;
        }
    }

    fn poll_timeout(&self) -> Option<Micros> {
        self.membership.poll_timeout().map(micros_at_or_after)
    }

    fn drain(&mut self, out: &mut Vec<NodeOutput<MembershipEvent>>) {
        while let Some(o) = self.membership.poll_output() {
            out.push(match o {
                Output::Send { to, bytes } => {
                    let kind = usize::from(bytes.first().copied().unwrap_or(0)).min(7);
                    self.bytes_by_kind[kind] += bytes.len() as u64;
                    NodeOutput::Send { to, bytes }
                }
                Output::Event(e) => NodeOutput::Event(e),
            });
        }
    }
}
