//! SWIM timing presets, scaled with the cluster size.
//!
//! foca's own `Config::new_lan` copies memberlist (1 s probes, a suspicion
//! window of 4·log10(n) s: 12 s at 1,000 peers). Shoal's LAN preset probes
//! faster and suspects for less, so that a crash is known cluster-wide in a
//! few seconds; the simulator (`shoal-sim`) is where these numbers are
//! checked for false positives under loss. The WAN preset is foca's, with
//! our packet size.

use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::time::Duration;

use foca::{Config, PeriodicParams};

use crate::codec::MAX_PACKET_SIZE;

/// Which family of timings to use. Selectable at start-up; the cluster
/// size part is applied automatically as the membership grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preset {
    /// One site, round trips of a few milliseconds.
    #[default]
    Lan,
    /// Sites across the internet: slower probes, longer suspicion.
    Wan,
}

/// foca's packet budget: our datagrams carry one envelope byte before it.
pub(crate) const FOCA_PACKET_SIZE: usize = MAX_PACKET_SIZE - 1;

/// LAN probe period: one random member pinged per period by every peer.
pub const LAN_PROBE_PERIOD: Duration = Duration::from_millis(300);
/// LAN direct-ack wait before asking others to probe indirectly.
pub const LAN_PROBE_RTT: Duration = Duration::from_millis(100);

/// LAN anti-entropy period: each peer compares member digests with one
/// random member this often (a converged cluster pays ~260 bytes a round).
pub const LAN_SYNC_PERIOD: Duration = Duration::from_secs(1);
/// Longest wait between two join attempts (the first waits
/// [`Preset::join_retry`], then it doubles).
pub const MAX_JOIN_RETRY: Duration = Duration::from_secs(8);

impl Preset {
    /// Period of the member-list anti-entropy round (see `sync.rs`).
    pub fn sync_period(self) -> Duration {
        match self {
            Preset::Lan => LAN_SYNC_PERIOD,
            Preset::Wan => Duration::from_secs(5),
        }
    }

    /// Wait before repeating a join whose announce or roster went
    /// unanswered (a lost datagram, or a seed not up yet).
    pub fn join_retry(self) -> Duration {
        match self {
            Preset::Lan => Duration::from_secs(1),
            Preset::Wan => Duration::from_secs(3),
        }
    }

    /// The foca configuration for an expected cluster of `cluster_size`
    /// peers. Probe period and rtt do not depend on the size, so the result
    /// is always accepted by `Foca::set_config`.
    pub fn config(self, cluster_size: usize) -> Config {
        let n = NonZeroU32::new(u32::try_from(cluster_size.max(1)).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        let mut config = match self {
            Preset::Lan => lan(n),
            Preset::Wan => {
                let mut c = Config::new_wan(n);
                c.periodic_announce_to_down_members = Some(PeriodicParams {
                    frequency: Duration::from_secs(30),
                    num_members: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
                });
                c
            }
        };
        config.max_packet_size = NonZeroUsize::new(FOCA_PACKET_SIZE).unwrap_or(NonZeroUsize::MIN);
        config
    }
}

fn log10_at_least_1(n: NonZeroU32) -> f64 {
    f64::from(n.get()).log10().max(1.0)
}

fn lan(n: NonZeroU32) -> Config {
    let log_n = log10_at_least_1(n);
    // Each update is piggybacked this many times: enough for infection-style
    // spread to reach everyone with high probability (memberlist uses
    // 4·log10(n+1)); never fewer than 6 so small clusters are robust to loss.
    let max_tx = (4.0 * f64::from(n.get().saturating_add(1)).log10()).clamp(6.0, 255.0) as u8;
    Config {
        probe_period: LAN_PROBE_PERIOD,
        probe_rtt: LAN_PROBE_RTT,
        num_indirect_probes: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
        max_transmissions: NonZeroU8::new(max_tx).unwrap_or(NonZeroU8::MIN),
        // Long enough for the suspicion to reach the suspect and its
        // refutation to come back under loss; grows with log(n) like the
        // dissemination time does. The prober also tells the suspect
        // directly (three notices, see `membership/exchange.rs`), so a live
        // suspect refutes within a round trip: 1.8 s at 1,000 peers gives
        // no false down at 5% loss in the simulator.
        suspect_to_down_after: Duration::from_secs_f64(0.6 * log_n),
        remove_down_after: Some(Duration::from_secs(24 * 60 * 60)),
        max_packet_size: NonZeroUsize::new(FOCA_PACKET_SIZE).unwrap_or(NonZeroUsize::MIN),
        // A peer wrongly declared down learns it and renews its identity.
        notify_down_members: true,
        periodic_announce: Some(PeriodicParams {
            frequency: Duration::from_secs(30),
            num_members: NonZeroUsize::MIN,
        }),
        // How fast the two sides of a healed partition find each other.
        periodic_announce_to_down_members: Some(PeriodicParams {
            frequency: Duration::from_secs(5),
            num_members: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
        }),
        periodic_gossip: Some(PeriodicParams {
            frequency: Duration::from_millis(200),
            num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspicion_and_transmissions_grow_with_the_cluster() {
        let small = Preset::Lan.config(5);
        let big = Preset::Lan.config(1000);
        assert!(big.suspect_to_down_after > small.suspect_to_down_after);
        assert!(big.max_transmissions > small.max_transmissions);
        assert_eq!(small.probe_period, big.probe_period);
    }

    #[test]
    fn every_preset_keeps_packets_below_the_quic_datagram_size() {
        for preset in [Preset::Lan, Preset::Wan] {
            for n in [1, 10, 10_000] {
                assert!(preset.config(n).max_packet_size.get() < MAX_PACKET_SIZE);
            }
        }
    }

    #[test]
    fn wan_probes_slower_than_lan() {
        assert!(Preset::Wan.config(100).probe_period > Preset::Lan.config(100).probe_period);
    }
}
