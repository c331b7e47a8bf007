//! What this peer's DNS server answers for a name, from the service table
//! alone: no sockets here, so every rule is tested without a server.
//!
//! - `NAME.svc.shoal.` and a bare `NAME.` of a service: A/AAAA with the
//!   address the query came to first, then the other live peers.
//! - `_PORTNAME._tcp.NAME.svc.shoal.`: SRV with the service port, target
//!   `NAME.svc.shoal.` (its addresses in the additional section).
//! - `_cluster.svc.shoal.`: TXT with the cluster id, so a peer that finds
//!   its DNS address taken can tell a peer of its own cluster (sharing its
//!   Docker engine, hence the bridge address) from anything else.
//! - Any other name under `svc.shoal.`: NXDOMAIN. Other names: forwarded.

use std::net::IpAddr;

use hickory_server::proto::rr::rdata::{A, AAAA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use crate::services::{ServiceEntry, ServiceTable};

/// The cluster domain: the search domain pods get.
pub const CLUSTER_DOMAIN: &str = "svc.shoal";

/// Answers live this long in caches: endpoints move, peers come and go.
pub const TTL_SECS: u32 = 5;

/// The name whose TXT record is the cluster id (no service can be named
/// `_cluster`: service names are DNS labels without underscores).
pub const IDENTITY_NAME: &str = "_cluster.svc.shoal.";

/// The answer for the identity name, `None` for any other name.
pub fn identity(cluster: &str, name: &Name, kind: RecordType) -> Option<Answer> {
    if !name.to_ascii().eq_ignore_ascii_case(IDENTITY_NAME) {
        return None;
    }
    let answers = if kind == RecordType::TXT {
        let data = RData::TXT(TXT::new(vec![cluster.to_owned()]));
        vec![Record::from_rdata(name.clone(), TTL_SECS, data)]
    } else {
        Vec::new()
    };
    Some(records(answers, Vec::new()))
}

/// What to send back for one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name is ours: these records (none: it has no data of that type).
    Records {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// A name in the cluster domain that does not exist.
    NxDomain,
    /// Not ours: ask the host's resolvers.
    Forward,
}

/// The answer for `name` (any case, fully qualified) of type `kind`, for a
/// query that arrived at `local`.
pub fn answer(table: &ServiceTable, local: IpAddr, name: &Name, kind: RecordType) -> Answer {
    let text = name.to_ascii().to_ascii_lowercase();
    let text = text.trim_end_matches('.');
    let labels: Vec<&str> = text.split('.').collect();
    let in_domain = text == CLUSTER_DOMAIN || text.ends_with(&format!(".{CLUSTER_DOMAIN}"));
    let domain_labels = CLUSTER_DOMAIN.split('.').count();
    let own = if in_domain {
        &labels[..labels.len() - domain_labels]
    } else {
        &labels[..]
    };
    match (in_domain, own) {
        (true, []) => records(Vec::new(), Vec::new()),
        (_, [service]) => match table.services.get(*service) {
            Some(_) => records(address_records(table, local, name, kind), Vec::new()),
            None if in_domain => Answer::NxDomain,
            None => Answer::Forward,
        },
        (true, [port, proto, service]) => {
            match srv_port(table.services.get(*service), port, proto) {
                Some(port) if kind == RecordType::SRV => srv(table, local, name, service, port),
                Some(_) => records(Vec::new(), Vec::new()),
                None => Answer::NxDomain,
            }
        }
        (true, _) => Answer::NxDomain,
        (false, _) => Answer::Forward,
    }
}

fn records(answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
    Answer::Records {
        answers,
        additionals,
    }
}

/// Where the service is reached: the address the question came to first,
/// then the other live peers, once each.
fn service_addrs(table: &ServiceTable, local: IpAddr) -> Vec<IpAddr> {
    let mut addrs = vec![local];
    for addr in &table.peer_addrs {
        if !addrs.contains(addr) {
            addrs.push(*addr);
        }
    }
    addrs
}

fn address_records(
    table: &ServiceTable,
    local: IpAddr,
    name: &Name,
    kind: RecordType,
) -> Vec<Record> {
    service_addrs(table, local)
        .into_iter()
        .filter_map(|ip| match (ip, kind) {
            (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(v4))),
            (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(v6))),
            _ => None,
        })
        .map(|data| Record::from_rdata(name.clone(), TTL_SECS, data))
        .collect()
}

/// The service port named by `_PORTNAME._tcp` (`_PORT._tcp` for an unnamed
/// port).
fn srv_port(service: Option<&ServiceEntry>, port: &str, proto: &str) -> Option<u16> {
    let service = service?;
    if proto != "_tcp" {
        return None;
    }
    let wanted = port.strip_prefix('_')?;
    service
        .ports
        .iter()
        .find(|p| match &p.name {
            Some(name) => name.eq_ignore_ascii_case(wanted),
            None => p.port.to_string() == wanted,
        })
        .map(|p| p.port)
}

fn srv(table: &ServiceTable, local: IpAddr, name: &Name, service: &str, port: u16) -> Answer {
    let Ok(target) = Name::from_ascii(format!("{service}.{CLUSTER_DOMAIN}.")) else {
        return Answer::NxDomain;
    };
    let data = RData::SRV(SRV::new(0, 10, port, target.clone()));
    let mut additionals = address_records(table, local, &target, RecordType::A);
    additionals.extend(address_records(table, local, &target, RecordType::AAAA));
    records(
        vec![Record::from_rdata(name.clone(), TTL_SECS, data)],
        additionals,
    )
}
