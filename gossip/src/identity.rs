//! Who a member is on the wire: node id + advertised address + incarnation.
//!
//! foca keys members by [`foca::Identity::addr`]; we use the advertised
//! socket address, so a peer that restarts on the same address with a
//! newer incarnation replaces its previous self everywhere ("address
//! conflicts resolve to the newer incarnation"). A seed can be contacted by
//! address alone: [`PeerIdentity::seed`] builds a placeholder identity whose
//! address is enough for foca to accept an `Announce`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use shoal_crdt_state::node::NodeId;

/// One incarnation of one peer. Two values are the same member only if all
/// three fields are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PeerIdentity {
    /// Permanent node id (kept in the node's data dir).
    pub node: NodeId,
    /// Where the peer receives SWIM datagrams (its QUIC endpoint).
    pub addr: SocketAddr,
    /// Bumped on every restart and every [`foca::Identity::renew`]. The
    /// shell must start with a value larger than any it used before (a
    /// persisted counter, or wall-clock milliseconds at start).
    pub incarnation: u64,
}

impl PeerIdentity {
    pub fn new(node: NodeId, addr: SocketAddr, incarnation: u64) -> Self {
        Self {
            node,
            addr,
            incarnation,
        }
    }

    /// Placeholder for a member known only by address (`--join ADDR`).
    /// foca accepts an `Announce` whose destination has the right address,
    /// whatever the node id, so this is enough to join through it.
    pub fn seed(addr: SocketAddr) -> Self {
        Self::new(NodeId(0), addr, 0)
    }
}

impl std::fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}#{}", self.node, self.addr, self.incarnation)
    }
}

impl foca::Identity for PeerIdentity {
    type Addr = SocketAddr;

    /// A peer wrongly declared down comes back as the next incarnation,
    /// which wins the address conflict against the declared-down one.
    fn renew(&self) -> Option<Self> {
        let incarnation = self.incarnation.checked_add(1)?;
        Some(Self {
            incarnation,
            ..*self
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Newer incarnation wins; the node id breaks a tie so that every peer
    /// keeps the same one (a tie means two nodes were misconfigured to share
    /// an address and an incarnation).
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.incarnation, self.node) > (adversary.incarnation, adversary.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn peer(inc: u64) -> PeerIdentity {
        PeerIdentity::new(NodeId(7), "10.0.0.7:7000".parse().unwrap(), inc)
    }

    #[test]
    fn renewed_identity_wins_over_the_declared_down_one() {
        let old = peer(3);
        let new = old.renew().expect("renewable");
        assert_eq!(new.incarnation, 4);
        assert_eq!(new.addr(), old.addr());
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
    }

    #[test]
    fn renew_refuses_to_wrap_around() {
        assert_eq!(peer(u64::MAX).renew(), None);
    }

    #[test]
    fn equal_incarnations_break_ties_by_node_id_the_same_way_everywhere() {
        let a = PeerIdentity::new(NodeId(1), "10.0.0.1:1".parse().unwrap(), 5);
        let b = PeerIdentity::new(NodeId(2), "10.0.0.1:1".parse().unwrap(), 5);
        assert!(b.win_addr_conflict(&a));
        assert!(!a.win_addr_conflict(&b));
    }
}
