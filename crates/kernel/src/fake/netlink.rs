//! The recording model of one namespace's links, addresses, routes and sysctls.

use std::collections::BTreeMap;

use ipnet::IpNet;
use nix::errno::Errno;

use super::{Op, SharedNetlink};
use crate::netlink::{BridgeVlanFlags, LinkFacts, NetError, RouteFacts, RouteSpec};
use crate::netns::NetnsHandle;

#[derive(Debug, Clone)]
pub(super) struct FakeLink {
    pub(super) facts: LinkFacts,
    pub(super) vlans: BTreeMap<u16, BridgeVlanFlags>,
}

/// An in-memory [`Netlink`] that records calls; see the module docs.
#[derive(Debug)]
pub struct RecordingNetlink {
    pub(super) ops: Vec<Op>,
    pub(super) failures: BTreeMap<usize, Errno>,
    pub(super) ns: Option<NetnsHandle>,
    pub(super) links: BTreeMap<u32, FakeLink>,
    pub(super) next_index: u32,
    pub(super) routes: Vec<RouteFacts>,
    pub(super) sysctls: BTreeMap<String, String>,
    /// Where the peer of a veth goes when its namespace is not this one.
    pub(super) peer_namespace: Option<SharedNetlink>,
}

impl Default for RecordingNetlink {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordingNetlink {
    /// A model of a fresh namespace: only `lo` (index 1), down.
    pub fn new() -> Self {
        let mut lo = LinkFacts::new("lo", 1);
        lo.mtu = 65536;
        lo.mac = Some([0; 6]);
        let mut links = BTreeMap::new();
        links.insert(
            1,
            FakeLink {
                facts: lo,
                vlans: BTreeMap::new(),
            },
        );
        Self {
            ops: Vec::new(),
            failures: BTreeMap::new(),
            ns: None,
            links,
            next_index: 2,
            routes: Vec::new(),
            sysctls: BTreeMap::new(),
            peer_namespace: None,
        }
    }

    /// Says which namespace this model stands for, so that a veth whose
    /// peer namespace is the same one gets both ends here.
    pub fn bound_to(mut self, ns: NetnsHandle) -> Self {
        self.ns = Some(ns);
        self
    }

    /// Makes a veth created here whose peer goes to another namespace put
    /// that peer in `other` (for a container's model, the host's), and
    /// deleting it here delete the peer there, as the kernel does; without it
    /// the peer is dropped. (The link is one way: deleting the peer in
    /// `other` leaves this end.)
    pub fn with_peer_namespace(mut self, other: SharedNetlink) -> Self {
        self.peer_namespace = Some(other);
        self
    }

    /// Makes the `n`-th call from now on (counting every call, reads
    /// included, from 1) fail with `errno` without changing the model. The
    /// failed call is still recorded.
    pub fn fail_at(&mut self, n: usize, errno: Errno) -> &mut Self {
        self.failures.insert(self.ops.len() + n, errno);
        self
    }

    /// Pre-sets a sysctl value, as if the kernel had it.
    pub fn with_sysctl(mut self, path: &str, value: &str) -> Self {
        self.sysctls.insert(path.to_string(), value.to_string());
        self
    }

    /// Every call so far, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The calls that change state, in order.
    pub fn mutations(&self) -> Vec<&Op> {
        self.ops.iter().filter(|op| op.is_mutation()).collect()
    }

    /// Returns and forgets the recorded calls (the model and pending
    /// failures stay; `fail_at` counts relative to the recorded calls).
    pub fn take_ops(&mut self) -> Vec<Op> {
        let taken = self.ops.len();
        self.failures = std::mem::take(&mut self.failures)
            .into_iter()
            .filter(|(n, _)| *n > taken)
            .map(|(n, errno)| (n - taken, errno))
            .collect();
        std::mem::take(&mut self.ops)
    }

    /// Records `op` and returns the injected failure for this call, if any.
    pub(super) fn record(
        &mut self,
        op: Op,
        name: &'static str,
        target: &str,
    ) -> Result<(), NetError> {
        self.ops.push(op);
        match self.failures.remove(&self.ops.len()) {
            Some(errno) => Err(NetError::kernel(name, target, errno)),
            None => Ok(()),
        }
    }

    pub(super) fn index_of(&self, name: &str) -> Option<u32> {
        self.links
            .values()
            .find(|l| l.facts.name == name)
            .map(|l| l.facts.index)
    }

    pub(super) fn get_mut(
        &mut self,
        op: &'static str,
        name: &str,
    ) -> Result<&mut FakeLink, NetError> {
        let index = self
            .index_of(name)
            .ok_or_else(|| NetError::kernel(op, name, Errno::ENODEV))?;
        self.links
            .get_mut(&index)
            .ok_or_else(|| NetError::kernel(op, name, Errno::ENODEV))
    }

    pub(super) fn check_new_name(&self, op: &'static str, name: &str) -> Result<(), NetError> {
        check_name_len(op, name)?;
        // dev_valid_name(): not empty, "." or "..", no '/', ':' or whitespace.
        let valid = !name.is_empty()
            && name != "."
            && name != ".."
            && !name
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace());
        if !valid {
            return Err(NetError::kernel(op, name, Errno::EINVAL));
        }
        if self.index_of(name).is_some() {
            return Err(NetError::kernel(op, name, Errno::EEXIST));
        }
        Ok(())
    }

    pub(super) fn set_peer_index(&mut self, index: u32, peer: u32) {
        if let Some(link) = self.links.get_mut(&index) {
            link.facts.peer_index = Some(peer);
        }
    }

    pub(super) fn insert(
        &mut self,
        name: &str,
        kind: &str,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
    ) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        let mut facts = LinkFacts::new(name, index);
        facts.kind = Some(kind.to_string());
        facts.mtu = mtu.unwrap_or(1500);
        // Locally administered, derived from the index so tests are stable.
        let [a, b, c, d] = index.to_be_bytes();
        facts.mac = Some(mac.unwrap_or([0x02, 0xfa, a, b, c, d]));
        if kind == "bridge" {
            facts.vlan_filtering = Some(false);
        }
        self.links.insert(
            index,
            FakeLink {
                facts,
                vlans: BTreeMap::new(),
            },
        );
        index
    }

    /// Removes a link and what the kernel drops with it.
    pub(super) fn remove(&mut self, index: u32) {
        let Some(gone) = self.links.remove(&index) else {
            return;
        };
        self.routes.retain(|r| r.oif != Some(index));
        for link in self.links.values_mut() {
            if link.facts.master == Some(index) {
                link.facts.master = None;
                link.facts.hairpin = None;
                link.facts.isolated = None;
                link.vlans.clear();
            }
        }
        // A veth takes its peer with it when both ends are here.
        if gone.facts.kind.as_deref() == Some("veth") {
            if let Some(peer) = gone.facts.peer_index {
                let is_our_peer = self
                    .links
                    .get(&peer)
                    .is_some_and(|p| p.facts.peer_index == Some(index));
                if is_our_peer {
                    self.remove(peer);
                } else if let Some(other) = &self.peer_namespace {
                    // ...and when its peer is in the other namespace.
                    let mut other = other.lock();
                    let remote_peer = other.links.get(&peer).is_some_and(|p| {
                        p.facts.kind.as_deref() == Some("veth") && p.facts.peer_index == Some(index)
                    });
                    if remote_peer {
                        other.remove(peer);
                    }
                }
            }
        }
    }

    pub(super) fn bridge_port(
        &mut self,
        op: &'static str,
        name: &str,
    ) -> Result<&mut FakeLink, NetError> {
        let master = self.get_mut(op, name)?.facts.master;
        let master_is_bridge = master
            .and_then(|m| self.links.get(&m))
            .is_some_and(|m| m.facts.kind.as_deref() == Some("bridge"));
        if !master_is_bridge {
            return Err(NetError::kernel(op, name, Errno::EOPNOTSUPP));
        }
        self.get_mut(op, name)
    }

    pub(super) fn vlan_target(
        &mut self,
        op: &'static str,
        port: &str,
        vid: u16,
    ) -> Result<&mut FakeLink, NetError> {
        if !(1..=4094).contains(&vid) {
            return Err(NetError::Invalid(format!(
                "VLAN id {vid} is not in 1..=4094"
            )));
        }
        if self.get_mut(op, port)?.facts.kind.as_deref() == Some("bridge") {
            return self.get_mut(op, port);
        }
        self.bridge_port(op, port)
    }

    pub(super) fn same_route(a: &RouteFacts, b: &RouteFacts) -> bool {
        // The kernel's EEXIST key: destination, table and metric.
        a.dst == b.dst && a.table == b.table && a.priority == b.priority
    }

    pub(super) fn route_facts(
        &self,
        op: &'static str,
        spec: &RouteSpec,
    ) -> Result<RouteFacts, NetError> {
        let oif = match &spec.oif_name {
            Some(name) => Some(
                self.index_of(name)
                    .ok_or_else(|| NetError::kernel(op, name, Errno::ENODEV))?,
            ),
            None => None,
        };
        if spec
            .gw
            .is_some_and(|gw| gw.is_ipv4() != spec.dst.addr().is_ipv4())
            && spec.dst.addr().is_ipv6()
        {
            return Err(NetError::kernel(op, spec.dst.to_string(), Errno::EINVAL));
        }
        Ok(RouteFacts {
            dst: spec.dst.trunc(),
            gw: spec.gw,
            oif,
            table: spec.effective_table(),
            // IPv6 routes always get a metric; 1024 is the kernel default.
            priority: spec.priority.or(spec.dst.addr().is_ipv6().then_some(1024)),
            scope: spec.effective_add_scope(),
        })
    }
}

/// IFLA_IFNAME's netlink policy caps names at IFNAMSIZ - 1 bytes and
/// answers ERANGE, before any lookup.
pub(super) fn check_name_len(op: &'static str, name: &str) -> Result<(), NetError> {
    if name.len() > 15 {
        return Err(NetError::kernel(op, name, Errno::ERANGE));
    }
    Ok(())
}

pub(super) fn same_address(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        // IPv4 allows the same address with another prefix length.
        (IpNet::V4(_), IpNet::V4(_)) => a == b,
        (IpNet::V6(x), IpNet::V6(y)) => x.addr() == y.addr(),
        _ => false,
    }
}
