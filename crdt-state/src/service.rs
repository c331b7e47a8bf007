//! Services: a stable name and ports for the pods a selector matches.
//!
//! A [`ServiceSpec`] is replicated like an RC (see [`crate::desired`]): one
//! [`ServiceRecord`] per name with two last-writer-wins registers, the body
//! (selector, ports, type) and the deleted flag. The body is one register,
//! not one per field, because its fields are only valid together: ports and
//! node ports are checked against each other and against every other
//! service when they are written, and a merge of two concurrent writes field
//! by field could produce a combination nobody checked.
//!
//! **Delete vs. apply** follows the RC rule: a delete writes the tombstone,
//! only `apply` writes `deleted = false`, and of a concurrent apply and
//! delete the later stamp wins everywhere. Tombstones are collected with the
//! RCs' (same rule, [`crate::gc`]).

use serde::{Deserialize, Serialize};

use crate::desired::DesiredDelta;
use crate::error::StateError;
use crate::hlc::Hlc;
use crate::register::{self, Reg};
use crate::spec::{Labels, Protocol};
use crate::summarized::Summarized;

/// The default range node ports are taken from, as in Kubernetes
/// (`--service-node-port-range`).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

/// "Give the pods matching `selector` one name and these ports."
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// DNS-1123 label, unique among services.
    pub name: String,
    pub body: ServiceBody,
}

/// A service without its name: what one `apply` writes, as one register.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceBody {
    /// Pods of RCs whose template labels carry all of these. May match nothing.
    pub selector: Labels,
    /// At least one; ports and node ports are distinct.
    pub ports: Vec<ServicePort>,
    pub service_type: ServiceType,
    /// The manifest text `kubectl apply` last sent (see
    /// [`crate::desired::RcBody::last_applied`]); `None` from a manifest.
    pub last_applied: Option<String>,
    /// Whether connections reach the endpoints behind a PROXY protocol
    /// header (`shoal.io/proxy-protocol`).
    pub proxy_protocol: ProxyProtocol,
}

/// How the load balancer tells an endpoint who the client is: HAProxy's
/// PROXY protocol header, sent before the client's first byte. Off unless
/// the service asks: an endpoint that does not expect the header would
/// read it as the client's data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProxyProtocol {
    #[default]
    Off,
    /// The text header (`PROXY TCP4 client server cport sport\r\n`).
    V1,
    /// The binary header.
    V2,
}

impl ProxyProtocol {
    /// The annotation's value for it (`None` when off).
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            ProxyProtocol::Off => None,
            ProxyProtocol::V1 => Some("v1"),
            ProxyProtocol::V2 => Some("v2"),
        }
    }
}

/// One port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServicePort {
    /// Required when the service has several ports; names SRV records.
    pub name: Option<String>,
    /// Where the service is reached from pods (`NAME:port`).
    pub port: u16,
    /// The container port connections go to.
    pub target_port: TargetPort,
    /// Only TCP is served; the manifest refuses anything else.
    pub protocol: Protocol,
    /// Where the service is reached at any peer's address (type NodePort).
    /// `None` in a manifest means "allocate one" at apply time.
    pub node_port: Option<u16>,
}

/// A container port, by number or by the name a container gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

impl std::fmt::Display for TargetPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetPort::Number(n) => write!(f, "{n}"),
            TargetPort::Name(name) => f.write_str(name),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceType {
    /// Reached on its port from pods (through every peer's load balancer).
    #[default]
    ClusterIP,
    /// Also reached on a node port at every peer's advertised address.
    NodePort,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
        }
    }
}

impl ServiceBody {
    /// Every port the service listens on (service ports, then node ports).
    pub fn listen_ports(&self) -> impl Iterator<Item = u16> + '_ {
        let ports = self.ports.iter().map(|p| p.port);
        ports.chain(self.ports.iter().filter_map(|p| p.node_port))
    }

    /// True when a pod with `labels` belongs to the service. An empty
    /// selector matches nothing (Kubernetes: a service without selector
    /// has no automatic endpoints).
    pub fn selects(&self, labels: &Labels) -> bool {
        !self.selector.is_empty() && self.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// One service's replicated record. A register never written is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub body: Option<Reg<ServiceBody>>,
    /// Tombstone. `None` counts as not deleted.
    pub deleted: Option<Reg<bool>>,
}

impl ServiceRecord {
    pub fn merge(&mut self, other: ServiceRecord) {
        register::join(&mut self.body, other.body);
        register::join(&mut self.deleted, other.deleted);
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.as_ref().is_some_and(|r| r.val)
    }

    pub fn is_live(&self) -> bool {
        self.body.is_some() && !self.is_deleted()
    }

    pub fn max_stamp(&self) -> Option<Hlc> {
        [register::stamp(&self.body), register::stamp(&self.deleted)]
            .into_iter()
            .flatten()
            .max()
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_none() && self.deleted.is_none()
    }
}

/// A live service as the rest of Shoal reads it.
#[derive(Debug, Clone, Copy)]
pub struct ServiceView<'a> {
    pub name: &'a str,
    pub body: &'a ServiceBody,
    /// When its body was written: of two services that ended up with one
    /// port (concurrent applies on two peers), the older write keeps it.
    pub written: Hlc,
    /// When it was created (or recreated after a delete): `apply` writes
    /// `deleted = false` only then. `None` for a record built without it.
    pub created: Option<Hlc>,
}

impl ServiceView<'_> {
    pub fn to_spec(&self) -> ServiceSpec {
        ServiceSpec {
            name: self.name.to_owned(),
            body: self.body.clone(),
        }
    }
}

pub(crate) fn view<'a>(name: &'a str, record: &'a ServiceRecord) -> Option<ServiceView<'a>> {
    if record.is_deleted() {
        return None;
    }
    let body = record.body.as_ref()?;
    Some(ServiceView {
        name,
        body: &body.val,
        written: body.marker,
        created: record.deleted.as_ref().map(|reg| reg.marker),
    })
}

impl crate::desired::DesiredState {
    /// The live service called `name`.
    pub fn service(&self, name: &str) -> Option<ServiceView<'_>> {
        self.services
            .get_key_value(name)
            .and_then(|(name, record)| view(name, record.get()))
    }

    /// Live services, sorted by name.
    pub fn live_services(&self) -> impl Iterator<Item = ServiceView<'_>> {
        self.services
            .iter()
            .filter_map(|(name, record)| view(name, record.get()))
    }

    /// Every service record, tombstones included, sorted by name.
    pub fn service_records(&self) -> impl Iterator<Item = (&str, &ServiceRecord)> {
        self.services
            .iter()
            .map(|(name, record)| (name.as_str(), record.get()))
    }

    /// The record of service `name`, tombstone or partial record included.
    pub fn service_record(&self, name: &str) -> Option<&ServiceRecord> {
        self.services.get(name).map(Summarized::get)
    }

    /// Create or update a service like `kubectl apply`: the body is written
    /// only when it differs, and a deleted or absent service is recreated.
    /// The caller has validated the spec and allocated its node ports.
    /// Keeps the last-applied text.
    pub fn apply_service(&mut self, spec: &ServiceSpec, stamp: Hlc) -> DesiredDelta {
        self.apply_service_with(spec, &crate::desired::LastApplied::Keep, stamp)
    }

    /// [`Self::apply_service`], with what becomes of the stored
    /// last-applied text (the spec's own is not read).
    pub fn apply_service_with(
        &mut self,
        spec: &ServiceSpec,
        last_applied: &crate::desired::LastApplied,
        stamp: Hlc,
    ) -> DesiredDelta {
        let current = self.services.get(&spec.name).map(Summarized::get);
        let current_body = current.and_then(|r| r.body.as_ref());
        let mut body = spec.body.clone();
        body.last_applied =
            last_applied.resolve(current_body.and_then(|reg| reg.val.last_applied.as_ref()));
        let mut write = ServiceRecord::default();
        if current_body.is_none_or(|reg| reg.val != body) {
            write.body = Some(register::write(body, stamp));
        }
        if current.is_none_or(|r| r.is_deleted() || r.deleted.is_none()) {
            write.deleted = Some(register::write(false, stamp));
        }
        self.commit_service(&spec.name, write)
    }

    /// Delete a live service: writes the tombstone.
    pub fn delete_service(&mut self, name: &str, stamp: Hlc) -> Result<DesiredDelta, StateError> {
        match self.services.get(name).map(Summarized::get) {
            Some(r) if r.is_live() => {}
            _ => {
                return Err(StateError::UnknownService {
                    name: name.to_owned(),
                });
            }
        }
        let write = ServiceRecord {
            deleted: Some(register::write(true, stamp)),
            body: None,
        };
        Ok(self.commit_service(name, write))
    }

    fn commit_service(&mut self, name: &str, write: ServiceRecord) -> DesiredDelta {
        if write.is_empty() {
            return DesiredDelta::default();
        }
        self.services
            .entry(name.to_owned())
            .or_default()
            .get_mut()
            .merge(write.clone());
        DesiredDelta {
            services: std::collections::BTreeMap::from([(name.to_owned(), write)]),
            ..DesiredDelta::default()
        }
    }

    /// Every service record with its digest entry, sorted by name.
    pub(crate) fn summarized_services(
        &self,
    ) -> impl Iterator<Item = (&str, &Summarized<ServiceRecord>)> {
        self.services
            .iter()
            .map(|(name, record)| (name.as_str(), record))
    }
}
