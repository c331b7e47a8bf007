//! Per-client limits, by source IP: a rate (token bucket) and a number of
//! open connections. An IPv4 client reaching a dual-stack socket (a
//! v4-mapped IPv6 address) is the same client as over IPv4 (`client_of`).
//! An IPv6 client is its full address: grouping by /64 would stop a host
//! that takes a new address per connection, but would also make every host
//! of a /64 server subnet (a cloud VPC's) one client. Shared by the API (`api::limits`: requests, answered
//! with 429) and the load balancer (`service_plane::listener`: new
//! connections, refused with a reset).
//!
//! Memory stays bounded: a client leaves the connection table with its
//! last connection, and buckets that are full again (a client idle for
//! `burst / rate` seconds) are dropped once there are many (a full bucket
//! is the same as none).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Above this many clients with a bucket, full buckets are dropped.
const PRUNE_ABOVE: usize = 4096;

/// Limits per client IP; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Requests (API) or new connections (load balancer) per second a
    /// client may sustain.
    pub rate_per_sec: u32,
    /// How many a client may send at once above the rate.
    pub burst: u32,
    /// Connections one client may hold open.
    pub max_connections: u32,
}

impl LimitSettings {
    /// The API's defaults: generous for people, scripts and kubectl (a
    /// `get -w`, the dashboard and a polling loop stay far below), small
    /// enough that one client cannot take the whole peer.
    pub const API_DEFAULT: LimitSettings = LimitSettings {
        rate_per_sec: 100,
        burst: 200,
        max_connections: 64,
    };

    /// The load balancer's defaults: off. Behind an ingress, a front proxy
    /// or a client that opens a connection per request, every request comes
    /// from one address, and a per-address cap would refuse the service's
    /// real load; kube-proxy and Swarm's mesh have none either. Operators
    /// turn them on (`--lb-*`) where clients are individual machines.
    pub const LB_DEFAULT: LimitSettings = LimitSettings {
        rate_per_sec: 0,
        // Used once a rate is set.
        burst: 400,
        max_connections: 0,
    };

    pub const UNLIMITED: LimitSettings = LimitSettings {
        rate_per_sec: 0,
        burst: 0,
        max_connections: 0,
    };
}

/// Why a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It holds `max_connections` open already.
    Connections,
    /// Its bucket is empty; one token is there again after this.
    Rate(Duration),
}

impl Refusal {
    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Connections => "connections",
            Refusal::Rate(_) => "rate",
        }
    }
}

/// The limits and what each client has used of them.
#[derive(Debug)]
pub struct ClientLimits {
    settings: LimitSettings,
    connections: Mutex<HashMap<IpAddr, u32>>,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    by_ip: HashMap<IpAddr, Bucket>,
    /// The next prune happens above this many: twice what the last one
    /// kept, so a table of many busy clients is not scanned at every take.
    prune_above: usize,
}

impl ClientLimits {
    pub fn new(settings: LimitSettings) -> Arc<ClientLimits> {
        Arc::new(ClientLimits {
            settings,
            connections: Mutex::new(HashMap::new()),
            buckets: Mutex::new(Buckets {
                by_ip: HashMap::new(),
                prune_above: PRUNE_ABOVE,
            }),
        })
    }

    pub fn settings(&self) -> LimitSettings {
        self.settings
    }

    /// A connection from `ip` was accepted: counted until the returned
    /// slot is dropped, unless it is over the cap (then marked so, and the
    /// caller answers it as it sees fit).
    pub fn open(self: &Arc<ClientLimits>, ip: IpAddr) -> ConnectionSlot {
        let ip = client_of(ip);
        let cap = self.settings.max_connections;
        let mut open = lock(&self.connections);
        let count = open.entry(ip).or_default();
        let over = cap > 0 && *count >= cap;
        if !over {
            *count += 1;
        }
        ConnectionSlot {
            limits: self.clone(),
            ip,
            over,
        }
    }

    /// A new connection from `ip` at `now`, under both limits: counted
    /// until the slot is dropped and one token taken; or why not (then
    /// nothing is taken or counted).
    pub fn admit(
        self: &Arc<ClientLimits>,
        ip: IpAddr,
        now: Instant,
    ) -> Result<ConnectionSlot, Refusal> {
        let ip = client_of(ip);
        let cap = self.settings.max_connections;
        // Held across the take, so two connections racing for the last
        // slot cannot both pass.
        let mut open = lock(&self.connections);
        if cap > 0 && open.get(&ip).is_some_and(|&n| n >= cap) {
            return Err(Refusal::Connections);
        }
        self.take(ip, now).map_err(Refusal::Rate)?;
        *open.entry(ip).or_default() += 1;
        Ok(ConnectionSlot {
            limits: self.clone(),
            ip,
            over: false,
        })
    }

    /// Takes one token from `ip`'s bucket at `now`, or says how long
    /// until one is there.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let LimitSettings {
            rate_per_sec: rate,
            burst,
            ..
        } = self.settings;
        if rate == 0 {
            return Ok(());
        }
        let ip = client_of(ip);
        let mut buckets = lock(&self.buckets);
        if buckets.by_ip.len() > buckets.prune_above {
            buckets.by_ip.retain(|_, b| !b.is_full(now, rate, burst));
            buckets.prune_above = PRUNE_ABOVE.max(2 * buckets.by_ip.len());
        }
        buckets
            .by_ip
            .entry(ip)
            .or_insert_with(|| Bucket::full(now, burst))
            .take(now, rate, burst)
    }

    /// Clients with an open connection, and with a bucket (for tests).
    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        (
            lock(&self.connections).len(),
            lock(&self.buckets).by_ip.len(),
        )
    }
}

/// The client `ip` counts as: an IPv4 address itself, also when mapped
/// into IPv6; any other IPv6 address itself.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere leaves counts that are still counts.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One client's tokens left as of `at`, refilled at the rate up to `burst`
/// (at least 1, so a rate without a burst still serves).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(now: Instant, burst: u32) -> Bucket {
        Bucket {
            tokens: f64::from(burst.max(1)),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: u32, burst: u32) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(f64::from(burst.max(1)));
        self.at = now;
    }

    fn take(&mut self, now: Instant, rate: u32, burst: u32) -> Result<(), Duration> {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / f64::from(rate),
            ))
        }
    }

    fn is_full(&self, now: Instant, rate: u32, burst: u32) -> bool {
        let mut copy = *self;
        copy.refill(now, rate, burst);
        copy.tokens >= f64::from(burst.max(1))
    }
}

/// A connection's place in its client's count; given back on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<ClientLimits>,
    ip: IpAddr,
    over: bool,
}

impl ConnectionSlot {
    /// Over the client's cap: not counted, to be refused.
    pub fn over_cap(&self) -> bool {
        self.over
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if self.over {
            return;
        }
        let mut open = lock(&self.limits.connections);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn a_v4_mapped_address_is_its_ipv4_client_and_ipv6_addresses_are_apart() {
        let limits = ClientLimits::new(LimitSettings {
            rate_per_sec: 1,
            burst: 2,
            max_connections: 1,
        });
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let t0 = Instant::now();
        assert!(limits.take(v6("::ffff:10.0.0.1"), t0).is_ok());
        assert!(limits.take(IpAddr::from([10, 0, 0, 1]), t0).is_ok());
        assert!(
            limits.take(v6("::ffff:10.0.0.1"), t0).is_err(),
            "one client, burst 2"
        );
        let held = limits.open(IpAddr::from([10, 0, 0, 2]));
        assert!(
            limits.open(v6("::ffff:10.0.0.2")).over_cap(),
            "the same client"
        );
        drop(held);
        let a = limits.open(v6("2001:db8::1"));
        assert!(
            !limits.open(v6("2001:db8::2")).over_cap(),
            "another address"
        );
        assert!(limits.open(v6("2001:db8::1")).over_cap());
        drop(a);
    }

    #[test]
    fn a_bucket_serves_the_burst_then_the_rate() {
        let limits = ClientLimits::new(LimitSettings {
            rate_per_sec: 10,
            burst: 5,
            max_connections: 0,
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limits.take(ip(1), t0).is_ok());
        }
        let wait = limits.take(ip(1), t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another client has its own bucket.
        assert!(limits.take(ip(2), t0).is_ok());
        // A tenth of a second later, one more.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limits.take(ip(1), t1).is_ok());
        assert!(limits.take(ip(1), t1).is_err());
        // Long after, a full burst again, not more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(limits.take(ip(1), t2).is_ok());
        }
        assert!(limits.take(ip(1), t2).is_err());
    }

    #[test]
    fn connections_over_the_cap_are_marked_and_slots_come_back() {
        let limits = ClientLimits::new(LimitSettings {
            rate_per_sec: 0,
            burst: 0,
            max_connections: 2,
        });
        let a = limits.open(ip(1));
        let b = limits.open(ip(1));
        let c = limits.open(ip(1));
        assert!(!a.over_cap() && !b.over_cap() && c.over_cap());
        drop(a);
        drop(c);
        let d = limits.open(ip(1));
        assert!(!d.over_cap());
        assert!(limits.open(ip(1)).over_cap());
        // Another client is not affected.
        assert!(!limits.open(ip(2)).over_cap());
        drop((b, d));
        assert_eq!(limits.tracked(), (0, 0));
    }

    #[test]
    fn admit_refuses_past_the_cap_without_taking_a_token() {
        let limits = ClientLimits::new(LimitSettings {
            rate_per_sec: 1,
            burst: 3,
            max_connections: 2,
        });
        let t0 = Instant::now();
        let a = limits.admit(ip(1), t0).unwrap();
        let b = limits.admit(ip(1), t0).unwrap();
        assert_eq!(limits.admit(ip(1), t0).unwrap_err(), Refusal::Connections);
        assert_eq!(limits.admit(ip(1), t0).unwrap_err().reason(), "connections");
        drop(a);
        // The refusals took nothing: the third token is still there.
        let c = limits.admit(ip(1), t0).unwrap();
        drop((b, c));
        // Now the bucket is empty: refused for the rate, for about a second.
        match limits.admit(ip(1), t0) {
            Err(Refusal::Rate(wait)) => {
                assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1))
            }
            other => panic!("expected a rate refusal, got {other:?}"),
        }
        // A rate refusal counts no connection.
        assert_eq!(limits.tracked().0, 0);
        // Another client has its own bucket and its own count.
        assert!(limits.admit(ip(2), t0).is_ok());
        // A second later, one more.
        assert!(limits.admit(ip(1), t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = ClientLimits::new(LimitSettings::UNLIMITED);
        let t0 = Instant::now();
        let held: Vec<_> = (0..10_000)
            .map(|_| limits.admit(ip(1), t0).unwrap())
            .collect();
        assert_eq!(held.len(), 10_000);
        // No bucket is kept when there is no rate.
        assert_eq!(limits.tracked(), (1, 0));
    }

    #[test]
    fn buckets_of_idle_clients_are_dropped_when_there_are_many() {
        let limits = ClientLimits::new(LimitSettings {
            rate_per_sec: 10,
            burst: 10,
            max_connections: 0,
        });
        let t0 = Instant::now();
        let many = |n: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
        for n in 0..=PRUNE_ABOVE as u32 {
            limits.take(many(n), t0).unwrap();
        }
        assert_eq!(limits.tracked().1, PRUNE_ABOVE + 1);
        // Two seconds on, every bucket is full again: the next take prunes.
        limits.take(ip(1), t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(limits.tracked().1, 1);
        // Busy clients are kept, and the table is not scanned again before
        // it doubles.
        let t1 = t0 + Duration::from_secs(3);
        for n in 0..=(2 * PRUNE_ABOVE) as u32 {
            limits.take(many(n), t1).unwrap();
        }
        // The prune at 4097 dropped the one full bucket (127.0.0.1).
        assert_eq!(limits.tracked().1, 2 * PRUNE_ABOVE + 1);
    }
}
