//! The simulated network: latency, loss, duplication, reordering, a
//! datagram size limit, partitions and one-way cuts. Decides only the fate
//! of one datagram; the world schedules the deliveries.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use rand::RngExt;

use crate::queue::Micros;

/// Knobs of the network model.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// One-way latency, uniform in [min, max] microseconds.
    pub latency_min: Micros,
    pub latency_max: Micros,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram arrives twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back by up to `reorder_delay`,
    /// overtaken by later ones.
    pub reorder: f64,
    pub reorder_delay: Micros,
    /// Datagrams larger than this are dropped (like a QUIC datagram limit).
    pub max_datagram: usize,
}

impl Default for NetConfig {
    /// A LAN: 1–5 ms, 1% loss, a little duplication and reordering.
    fn default() -> Self {
        Self {
            latency_min: 1_000,
            latency_max: 5_000,
            loss: 0.01,
            duplicate: 0.001,
            reorder: 0.01,
            reorder_delay: 20_000,
            max_datagram: 1_200,
        }
    }
}

/// What happened to one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Arrives after each of these delays (two entries when duplicated).
    Delivered(Vec<Micros>),
    Lost,
    Partitioned,
    TooBig,
}

/// Network state: configuration plus current partitions.
#[derive(Debug, Clone, Default)]
pub struct Network {
    pub config: NetConfig,
    /// Partition group per address; absent means group 0. Datagrams only
    /// pass between addresses of the same group.
    groups: BTreeMap<SocketAddr, u32>,
    /// One-way cuts: (from, to) pairs that drop everything.
    cuts: BTreeSet<(SocketAddr, SocketAddr)>,
}

impl Network {
    pub fn new(config: NetConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Splits the network: each address goes to the given group.
    pub fn partition(&mut self, groups: impl IntoIterator<Item = (SocketAddr, u32)>) {
        self.groups = groups.into_iter().collect();
    }

    pub fn cut_one_way(&mut self, from: SocketAddr, to: SocketAddr) {
        self.cuts.insert((from, to));
    }

    /// Removes every partition and cut.
    pub fn heal(&mut self) {
        self.groups.clear();
        self.cuts.clear();
    }

    /// True when nothing (partition or cut) separates `from` from `to`:
    /// what a reliable message needs, at the moment it is sent.
    pub fn connected(&self, from: SocketAddr, to: SocketAddr) -> bool {
        self.group(&from) == self.group(&to) && !self.cuts.contains(&(from, to))
    }

    /// One-way latency of one reliable message (no loss, no duplication).
    pub fn latency(&self, rng: &mut impl RngExt) -> Micros {
        rng.random_range(self.config.latency_min..=self.config.latency_max)
    }

    fn group(&self, addr: &SocketAddr) -> u32 {
        self.groups.get(addr).copied().unwrap_or(0)
    }

    /// Decides the fate of one datagram.
    pub fn route(
        &self,
        rng: &mut impl RngExt,
        from: SocketAddr,
        to: SocketAddr,
        len: usize,
    ) -> Fate {
        if len > self.config.max_datagram {
            return Fate::TooBig;
        }
        if self.group(&from) != self.group(&to) || self.cuts.contains(&(from, to)) {
            return Fate::Partitioned;
        }
        if self.config.loss > 0.0 && rng.random_bool(self.config.loss.min(1.0)) {
            return Fate::Lost;
        }
        let copies = if self.config.duplicate > 0.0 && rng.random_bool(self.config.duplicate) {
            2
        } else {
            1
        };
        let mut delays = Vec::with_capacity(copies);
        for _ in 0..copies {
            let mut d = rng.random_range(self.config.latency_min..=self.config.latency_max);
            if self.config.reorder > 0.0 && rng.random_bool(self.config.reorder) {
                d += rng.random_range(0..=self.config.reorder_delay);
            }
            delays.push(d);
        }
        Fate::Delivered(delays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    fn a(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 1))
    }

    #[test]
    fn partitions_and_one_way_cuts_drop_and_heal_restores() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut net = Network::new(NetConfig {
            loss: 0.0,
            ..NetConfig::default()
        });
        net.partition([(a(1), 1), (a(2), 2)]);
        assert_eq!(net.route(&mut rng, a(1), a(2), 10), Fate::Partitioned);
        net.heal();
        net.cut_one_way(a(1), a(2));
        assert_eq!(net.route(&mut rng, a(1), a(2), 10), Fate::Partitioned);
        assert!(matches!(
            net.route(&mut rng, a(2), a(1), 10),
            Fate::Delivered(_)
        ));
        assert_eq!(net.route(&mut rng, a(2), a(1), 5000), Fate::TooBig);
    }

    #[test]
    fn loss_rate_is_close_to_the_configured_one() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let net = Network::new(NetConfig {
            loss: 0.2,
            ..NetConfig::default()
        });
        let lost = (0..10_000)
            .filter(|_| net.route(&mut rng, a(1), a(2), 10) == Fate::Lost)
            .count();
        assert!((1_800..2_200).contains(&lost), "lost {lost}");
    }
}
