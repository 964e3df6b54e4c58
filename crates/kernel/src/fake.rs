//! [`RecordingNetlink`]: an in-memory [`Netlink`] that records every call and
//! answers like the kernel where callers care (`EEXIST`, `ENODEV`, `ESRCH`,
//! `EADDRNOTAVAIL`, ...), for unit and rollback tests of the applier.
//!
//! It is chosen by construction wherever a `Netlink` is injected, never by
//! `cfg(test)`. The model is deliberately small: it does not add the
//! kernel's own prefix routes, does not check that a gateway is reachable,
//! treats a link as operationally up whenever it is administratively up,
//! considers IPv6 addresses settled at once (no duplicate address detection),
//! and behaves like a kernel with bridge VLAN filtering built in.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use nix::errno::Errno;

use super::netlink::{
    validate_sysctl_path, BridgeVlanFlags, LinkFacts, NetError, Netlink, RouteFacts, RouteSpec,
};
use super::netns::NetnsHandle;

/// One recorded call, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // The variants mirror the `Netlink` verbs one to one.
pub enum Op {
    Link {
        name: String,
    },
    Links,
    CreateBridge {
        name: String,
        mtu: Option<u32>,
        vlan_filtering: bool,
    },
    CreateVeth {
        name: String,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        peer_name: String,
        peer_ns: PathBuf,
    },
    CreateDummy {
        name: String,
    },
    DeleteLink {
        name: String,
    },
    SetUp {
        name: String,
        up: bool,
    },
    SetMtu {
        name: String,
        mtu: u32,
    },
    SetMac {
        name: String,
        mac: [u8; 6],
    },
    SetPromisc {
        name: String,
        on: bool,
    },
    SetMaster {
        name: String,
        master: Option<String>,
    },
    SetAlias {
        name: String,
        alias: String,
    },
    SetHairpin {
        name: String,
        on: bool,
    },
    SetIsolated {
        name: String,
        on: bool,
    },
    BridgeVlanAdd {
        port: String,
        vid: u16,
        pvid: bool,
        untagged: bool,
    },
    BridgeVlanDel {
        port: String,
        vid: u16,
    },
    BridgeVlans {
        port: String,
    },
    MoveToNetns {
        name: String,
        ns: PathBuf,
    },
    AddAddress {
        name: String,
        addr: IpNet,
    },
    DelAddress {
        name: String,
        addr: IpNet,
    },
    AddRoute(RouteSpec),
    DelRoute(RouteSpec),
    Routes,
    SetSysctl {
        path: String,
        value: String,
    },
    Sysctl {
        path: String,
    },
    WaitAddressesSettled {
        name: String,
        timeout: Duration,
    },
    WaitOperUp {
        name: String,
        timeout: Duration,
    },
}

impl Op {
    /// Whether the call changes state (as opposed to reading it).
    pub fn is_mutation(&self) -> bool {
        !matches!(
            self,
            Op::Link { .. }
                | Op::Links
                | Op::BridgeVlans { .. }
                | Op::Routes
                | Op::Sysctl { .. }
                | Op::WaitAddressesSettled { .. }
                | Op::WaitOperUp { .. }
        )
    }
}

#[derive(Debug, Clone)]
struct FakeLink {
    facts: LinkFacts,
    vlans: BTreeMap<u16, BridgeVlanFlags>,
}

/// An in-memory [`Netlink`] that records calls; see the module docs.
#[derive(Debug)]
pub struct RecordingNetlink {
    ops: Vec<Op>,
    failures: BTreeMap<usize, Errno>,
    ns: Option<NetnsHandle>,
    links: BTreeMap<u32, FakeLink>,
    next_index: u32,
    routes: Vec<RouteFacts>,
    sysctls: BTreeMap<String, String>,
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
        }
    }

    /// Says which namespace this model stands for, so that a veth whose
    /// peer namespace is the same one gets both ends here.
    pub fn bound_to(mut self, ns: NetnsHandle) -> Self {
        self.ns = Some(ns);
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
    fn record(&mut self, op: Op, name: &'static str, target: &str) -> Result<(), NetError> {
        self.ops.push(op);
        match self.failures.remove(&self.ops.len()) {
            Some(errno) => Err(NetError::kernel(name, target, errno)),
            None => Ok(()),
        }
    }

    fn index_of(&self, name: &str) -> Option<u32> {
        self.links
            .values()
            .find(|l| l.facts.name == name)
            .map(|l| l.facts.index)
    }

    fn get_mut(&mut self, op: &'static str, name: &str) -> Result<&mut FakeLink, NetError> {
        let index = self
            .index_of(name)
            .ok_or_else(|| NetError::kernel(op, name, Errno::ENODEV))?;
        self.links
            .get_mut(&index)
            .ok_or_else(|| NetError::kernel(op, name, Errno::ENODEV))
    }

    fn check_new_name(&self, op: &'static str, name: &str) -> Result<(), NetError> {
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

    fn insert(&mut self, name: &str, kind: &str, mtu: Option<u32>, mac: Option<[u8; 6]>) -> u32 {
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
    fn remove(&mut self, index: u32) {
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
                }
            }
        }
    }

    fn bridge_port(&mut self, op: &'static str, name: &str) -> Result<&mut FakeLink, NetError> {
        let master = self.get_mut(op, name)?.facts.master;
        let master_is_bridge = master
            .and_then(|m| self.links.get(&m))
            .is_some_and(|m| m.facts.kind.as_deref() == Some("bridge"));
        if !master_is_bridge {
            return Err(NetError::kernel(op, name, Errno::EOPNOTSUPP));
        }
        self.get_mut(op, name)
    }

    fn vlan_target(
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

    fn same_route(a: &RouteFacts, b: &RouteFacts) -> bool {
        // The kernel's EEXIST key: destination, table and metric.
        a.dst == b.dst && a.table == b.table && a.priority == b.priority
    }

    fn route_facts(&self, op: &'static str, spec: &RouteSpec) -> Result<RouteFacts, NetError> {
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
fn check_name_len(op: &'static str, name: &str) -> Result<(), NetError> {
    if name.len() > 15 {
        return Err(NetError::kernel(op, name, Errno::ERANGE));
    }
    Ok(())
}

fn same_address(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        // IPv4 allows the same address with another prefix length.
        (IpNet::V4(_), IpNet::V4(_)) => a == b,
        (IpNet::V6(x), IpNet::V6(y)) => x.addr() == y.addr(),
        _ => false,
    }
}

impl Netlink for RecordingNetlink {
    fn link(&mut self, name: &str) -> Result<Option<LinkFacts>, NetError> {
        self.record(Op::Link { name: name.into() }, "link", name)?;
        check_name_len("link", name)?;
        Ok(self
            .index_of(name)
            .and_then(|i| self.links.get(&i))
            .map(|l| l.facts.clone()))
    }

    fn links(&mut self) -> Result<Vec<LinkFacts>, NetError> {
        self.record(Op::Links, "links", "")?;
        Ok(self.links.values().map(|l| l.facts.clone()).collect())
    }

    fn create_bridge(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), NetError> {
        let op = Op::CreateBridge {
            name: name.into(),
            mtu,
            vlan_filtering,
        };
        self.record(op, "create_bridge", name)?;
        self.check_new_name("create_bridge", name)?;
        let index = self.insert(name, "bridge", mtu, None);
        if let Some(bridge) = self.links.get_mut(&index) {
            bridge.facts.vlan_filtering = Some(vlan_filtering);
        }
        Ok(())
    }

    fn create_veth(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        peer_name: &str,
        peer_ns: &NetnsHandle,
    ) -> Result<(), NetError> {
        let op = Op::CreateVeth {
            name: name.into(),
            mtu,
            mac,
            peer_name: peer_name.into(),
            peer_ns: peer_ns.path().to_path_buf(),
        };
        self.record(op, "create_veth", name)?;
        self.check_new_name("create_veth", name)?;
        let local_peer = match &self.ns {
            Some(ns) => ns.same_as(peer_ns)?,
            None => false,
        };
        if local_peer {
            if name == peer_name {
                return Err(NetError::kernel("create_veth", peer_name, Errno::EEXIST));
            }
            self.check_new_name("create_veth", peer_name)?;
        }
        let index = self.insert(name, "veth", mtu, mac);
        // A remote peer's index is unknown here; the kernel would report
        // the index it has in the other namespace.
        if local_peer {
            let peer = self.insert(peer_name, "veth", mtu, None);
            for (this, other) in [(index, peer), (peer, index)] {
                if let Some(link) = self.links.get_mut(&this) {
                    link.facts.peer_index = Some(other);
                }
            }
        }
        Ok(())
    }

    fn create_dummy(&mut self, name: &str) -> Result<(), NetError> {
        self.record(Op::CreateDummy { name: name.into() }, "create_dummy", name)?;
        self.check_new_name("create_dummy", name)?;
        self.insert(name, "dummy", None, None);
        Ok(())
    }

    fn delete_link(&mut self, name: &str) -> Result<(), NetError> {
        self.record(Op::DeleteLink { name: name.into() }, "delete_link", name)?;
        let index = self.get_mut("delete_link", name)?.facts.index;
        if index == 1 {
            // lo cannot be deleted.
            return Err(NetError::kernel("delete_link", name, Errno::EOPNOTSUPP));
        }
        self.remove(index);
        Ok(())
    }

    fn set_up(&mut self, name: &str, up: bool) -> Result<(), NetError> {
        self.record(
            Op::SetUp {
                name: name.into(),
                up,
            },
            "set_up",
            name,
        )?;
        let link = self.get_mut("set_up", name)?;
        link.facts.admin_up = up;
        link.facts.oper_up = up;
        Ok(())
    }

    fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<(), NetError> {
        self.record(
            Op::SetMtu {
                name: name.into(),
                mtu,
            },
            "set_mtu",
            name,
        )?;
        let link = self.get_mut("set_mtu", name)?;
        // Ethernet-like devices: ETH_MIN_MTU..=ETH_MAX_MTU.
        if link.facts.index != 1 && !(68..=65535).contains(&mtu) {
            return Err(NetError::kernel("set_mtu", name, Errno::EINVAL));
        }
        link.facts.mtu = mtu;
        Ok(())
    }

    fn set_mac(&mut self, name: &str, mac: [u8; 6]) -> Result<(), NetError> {
        self.record(
            Op::SetMac {
                name: name.into(),
                mac,
            },
            "set_mac",
            name,
        )?;
        let link = self.get_mut("set_mac", name)?;
        // eth_validate_addr(): no multicast, no all-zero address.
        if mac[0] & 1 == 1 || mac == [0; 6] {
            return Err(NetError::kernel("set_mac", name, Errno::EADDRNOTAVAIL));
        }
        link.facts.mac = Some(mac);
        Ok(())
    }

    fn set_promisc(&mut self, name: &str, on: bool) -> Result<(), NetError> {
        self.record(
            Op::SetPromisc {
                name: name.into(),
                on,
            },
            "set_promisc",
            name,
        )?;
        self.get_mut("set_promisc", name)?.facts.promisc = on;
        Ok(())
    }

    fn set_master(&mut self, name: &str, master: Option<&str>) -> Result<(), NetError> {
        let op = Op::SetMaster {
            name: name.into(),
            master: master.map(str::to_string),
        };
        self.record(op, "set_master", name)?;
        let master_index = match master {
            Some(m) => {
                let index = self
                    .index_of(m)
                    .ok_or_else(|| NetError::kernel("set_master", m, Errno::ENODEV))?;
                let is_bridge = self
                    .links
                    .get(&index)
                    .is_some_and(|l| l.facts.kind.as_deref() == Some("bridge"));
                if !is_bridge {
                    return Err(NetError::kernel("set_master", name, Errno::EOPNOTSUPP));
                }
                Some(index)
            }
            None => None,
        };
        let link = self.get_mut("set_master", name)?;
        if master_index == Some(link.facts.index) {
            return Err(NetError::kernel("set_master", name, Errno::ELOOP));
        }
        if link.facts.master != master_index {
            link.facts.master = master_index;
            link.vlans.clear();
            let port = master_index.map(|_| false);
            link.facts.hairpin = port;
            link.facts.isolated = port;
        }
        Ok(())
    }

    fn set_alias(&mut self, name: &str, alias: &str) -> Result<(), NetError> {
        self.record(
            Op::SetAlias {
                name: name.into(),
                alias: alias.into(),
            },
            "set_alias",
            name,
        )?;
        let link = self.get_mut("set_alias", name)?;
        link.facts.alias = (!alias.is_empty()).then(|| alias.to_string());
        Ok(())
    }

    fn set_hairpin(&mut self, name: &str, on: bool) -> Result<(), NetError> {
        self.record(
            Op::SetHairpin {
                name: name.into(),
                on,
            },
            "set_hairpin",
            name,
        )?;
        self.bridge_port("set_hairpin", name)?.facts.hairpin = Some(on);
        Ok(())
    }

    fn set_isolated(&mut self, name: &str, on: bool) -> Result<(), NetError> {
        self.record(
            Op::SetIsolated {
                name: name.into(),
                on,
            },
            "set_isolated",
            name,
        )?;
        self.bridge_port("set_isolated", name)?.facts.isolated = Some(on);
        Ok(())
    }

    fn bridge_vlan_add(
        &mut self,
        port: &str,
        vid: u16,
        pvid: bool,
        untagged: bool,
    ) -> Result<(), NetError> {
        let op = Op::BridgeVlanAdd {
            port: port.into(),
            vid,
            pvid,
            untagged,
        };
        self.record(op, "bridge_vlan_add", port)?;
        let link = self.vlan_target("bridge_vlan_add", port, vid)?;
        // Re-adding updates the flags, and only one VLAN can be the PVID.
        if pvid {
            for flags in link.vlans.values_mut() {
                flags.pvid = false;
            }
        }
        link.vlans.insert(vid, BridgeVlanFlags { pvid, untagged });
        Ok(())
    }

    fn bridge_vlan_del(&mut self, port: &str, vid: u16) -> Result<(), NetError> {
        self.record(
            Op::BridgeVlanDel {
                port: port.into(),
                vid,
            },
            "bridge_vlan_del",
            port,
        )?;
        let link = self.vlan_target("bridge_vlan_del", port, vid)?;
        match link.vlans.remove(&vid) {
            Some(_) => Ok(()),
            None => Err(NetError::kernel("bridge_vlan_del", port, Errno::ENOENT)),
        }
    }

    fn bridge_vlans(&mut self, port: &str) -> Result<Vec<(u16, BridgeVlanFlags)>, NetError> {
        self.record(Op::BridgeVlans { port: port.into() }, "bridge_vlans", port)?;
        let link = self.get_mut("bridge_vlans", port)?;
        Ok(link
            .vlans
            .iter()
            .map(|(vid, flags)| (*vid, *flags))
            .collect())
    }

    fn move_to_netns(&mut self, name: &str, ns: &NetnsHandle) -> Result<(), NetError> {
        let op = Op::MoveToNetns {
            name: name.into(),
            ns: ns.path().to_path_buf(),
        };
        self.record(op, "move_to_netns", name)?;
        let index = self.get_mut("move_to_netns", name)?.facts.index;
        if let Some(bound) = &self.ns {
            if bound.same_as(ns)? {
                return Ok(());
            }
        }
        let kind = self.links.get(&index).and_then(|l| l.facts.kind.clone());
        // lo and bridges are NETIF_F_NETNS_LOCAL.
        if index == 1 || kind.as_deref() == Some("bridge") {
            return Err(NetError::kernel("move_to_netns", name, Errno::EINVAL));
        }
        // Unlike delete, a moved veth end leaves its peer here.
        if let Some(peer) = self.links.get(&index).and_then(|l| l.facts.peer_index) {
            if let Some(peer) = self.links.get_mut(&peer) {
                if peer.facts.peer_index == Some(index) {
                    peer.facts.peer_index = None;
                }
            }
        }
        if let Some(link) = self.links.get_mut(&index) {
            link.facts.peer_index = None;
        }
        self.remove(index);
        Ok(())
    }

    fn add_address(&mut self, name: &str, addr: IpNet) -> Result<(), NetError> {
        self.record(
            Op::AddAddress {
                name: name.into(),
                addr,
            },
            "add_address",
            name,
        )?;
        let target = format!("{addr} dev {name}");
        let link = self.get_mut("add_address", name)?;
        if link.facts.addresses.iter().any(|a| same_address(a, &addr)) {
            return Err(NetError::kernel("add_address", target, Errno::EEXIST));
        }
        link.facts.addresses.push(addr);
        Ok(())
    }

    fn del_address(&mut self, name: &str, addr: IpNet) -> Result<(), NetError> {
        self.record(
            Op::DelAddress {
                name: name.into(),
                addr,
            },
            "del_address",
            name,
        )?;
        let target = format!("{addr} dev {name}");
        let link = self.get_mut("del_address", name)?;
        let before = link.facts.addresses.len();
        link.facts.addresses.retain(|a| *a != addr);
        if link.facts.addresses.len() == before {
            return Err(NetError::kernel(
                "del_address",
                target,
                Errno::EADDRNOTAVAIL,
            ));
        }
        Ok(())
    }

    fn add_route(&mut self, route: &RouteSpec) -> Result<(), NetError> {
        self.record(
            Op::AddRoute(route.clone()),
            "add_route",
            &route.dst.to_string(),
        )?;
        let facts = self.route_facts("add_route", route)?;
        if self.routes.iter().any(|r| Self::same_route(r, &facts)) {
            return Err(NetError::kernel(
                "add_route",
                route.dst.to_string(),
                Errno::EEXIST,
            ));
        }
        self.routes.push(facts);
        Ok(())
    }

    fn del_route(&mut self, route: &RouteSpec) -> Result<(), NetError> {
        self.record(
            Op::DelRoute(route.clone()),
            "del_route",
            &route.dst.to_string(),
        )?;
        let want = self.route_facts("del_route", route)?;
        // Unset fields are wildcards, as for the kernel.
        let found = self.routes.iter().position(|r| {
            r.dst == want.dst
                && r.table == want.table
                && (route.gw.is_none() || r.gw == want.gw)
                && (want.oif.is_none() || r.oif == want.oif)
                && (route.priority.is_none() || r.priority == want.priority)
                && (route.scope.is_none() || Some(r.scope) == route.scope)
        });
        match found {
            Some(i) => {
                self.routes.remove(i);
                Ok(())
            }
            None => Err(NetError::kernel(
                "del_route",
                route.dst.to_string(),
                Errno::ESRCH,
            )),
        }
    }

    fn routes(&mut self) -> Result<Vec<RouteFacts>, NetError> {
        self.record(Op::Routes, "routes", "")?;
        let mut routes = self.routes.clone();
        routes.sort_by_key(|r| matches!(r.dst.addr(), IpAddr::V6(_)));
        Ok(routes)
    }

    fn set_sysctl(&mut self, path: &str, value: &str) -> Result<(), NetError> {
        let op = Op::SetSysctl {
            path: path.into(),
            value: value.into(),
        };
        self.record(op, "sysctl", path)?;
        validate_sysctl_path(path)?;
        self.sysctls.insert(path.to_string(), value.to_string());
        Ok(())
    }

    fn sysctl(&mut self, path: &str) -> Result<String, NetError> {
        self.record(Op::Sysctl { path: path.into() }, "sysctl", path)?;
        validate_sysctl_path(path)?;
        self.sysctls
            .get(path)
            .cloned()
            .ok_or_else(|| NetError::kernel("sysctl", path, Errno::ENOENT))
    }

    fn wait_addresses_settled(&mut self, name: &str, timeout: Duration) -> Result<(), NetError> {
        self.record(
            Op::WaitAddressesSettled {
                name: name.into(),
                timeout,
            },
            "wait_addresses_settled",
            name,
        )?;
        // The model runs no DAD: every address is usable once added.
        self.get_mut("wait_addresses_settled", name)?;
        Ok(())
    }

    fn wait_oper_up(&mut self, name: &str, timeout: Duration) -> Result<(), NetError> {
        self.record(
            Op::WaitOperUp {
                name: name.into(),
                timeout,
            },
            "wait_oper_up",
            name,
        )?;
        // Nothing changes while the fake waits, so it answers at once.
        if self.get_mut("wait_oper_up", name)?.facts.oper_up {
            Ok(())
        } else {
            Err(NetError::Timeout {
                what: format!("{name} to be operationally up"),
                waited: Duration::ZERO,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("prefix")
    }

    fn errno(r: Result<impl std::fmt::Debug, NetError>) -> Errno {
        r.expect_err("expected an error")
            .errno()
            .expect("kernel error")
    }

    #[test]
    fn starts_with_lo_down() {
        let mut nl = RecordingNetlink::new();
        let links = nl.links().expect("links");
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].name, "lo");
        assert!(!links[0].admin_up);
        assert_eq!(nl.ops(), &[Op::Links]);
    }

    #[test]
    fn records_calls_and_models_links() {
        let mut nl = RecordingNetlink::new();
        nl.create_bridge("br0", Some(9000), true).expect("bridge");
        nl.set_up("br0", true).expect("up");
        let br = nl.link("br0").expect("get").expect("exists");
        assert_eq!(br.kind.as_deref(), Some("bridge"));
        assert_eq!(br.mtu, 9000);
        assert!(br.admin_up);
        assert_eq!(br.vlan_filtering, Some(true));
        assert_eq!(
            nl.mutations(),
            vec![
                &Op::CreateBridge {
                    name: "br0".into(),
                    mtu: Some(9000),
                    vlan_filtering: true
                },
                &Op::SetUp {
                    name: "br0".into(),
                    up: true
                },
            ]
        );
        assert_eq!(nl.ops().len(), 3);
        assert!(nl.link("nope").expect("get").is_none());
    }

    #[test]
    fn kernel_like_errnos() {
        let mut nl = RecordingNetlink::new();
        nl.create_bridge("br0", None, false).expect("bridge");
        let e = nl.create_bridge("br0", None, false).expect_err("dup");
        assert!(e.is_exists());
        assert_eq!(
            errno(nl.create_bridge("way-too-long-name", None, false)),
            Errno::ERANGE
        );
        assert_eq!(errno(nl.link("way-too-long-name")), Errno::ERANGE);
        assert_eq!(errno(nl.create_bridge("a/b", None, false)), Errno::EINVAL);
        assert_eq!(errno(nl.delete_link("lo")), Errno::EOPNOTSUPP);
        assert_eq!(errno(nl.delete_link("nope")), Errno::ENODEV);
        assert_eq!(errno(nl.set_mtu("nope", 1400)), Errno::ENODEV);
        assert_eq!(errno(nl.set_mtu("br0", 10)), Errno::EINVAL);
        assert_eq!(
            errno(nl.set_mac("br0", [1, 0, 0, 0, 0, 1])),
            Errno::EADDRNOTAVAIL
        );
        assert_eq!(errno(nl.set_master("br0", Some("nope"))), Errno::ENODEV);
        assert_eq!(errno(nl.set_hairpin("br0", true)), Errno::EOPNOTSUPP);
        assert!(nl.delete_link("nope").expect_err("gone").is_not_found());
    }

    #[test]
    fn ports_vlans_and_master() {
        let mut nl = RecordingNetlink::new();
        let here = NetnsHandle::current().expect("netns");
        nl.create_bridge("br0", None, true).expect("bridge");
        nl.create_veth("veth0", None, None, "eth0", &here)
            .expect("veth");
        assert_eq!(
            errno(nl.set_master("br0", Some("veth0"))),
            Errno::EOPNOTSUPP
        );
        nl.set_master("veth0", Some("br0")).expect("master");
        let br = nl.link("br0").expect("get").expect("br0").index;
        let port = nl.link("veth0").expect("get").expect("veth0");
        assert_eq!(port.master, Some(br));
        assert_eq!(port.hairpin, Some(false));
        nl.set_hairpin("veth0", true).expect("hairpin");
        nl.set_isolated("veth0", true).expect("isolated");
        nl.bridge_vlan_add("veth0", 10, true, true).expect("vlan");
        nl.bridge_vlan_add("veth0", 20, false, false).expect("vlan");
        assert!(matches!(
            nl.bridge_vlan_add("veth0", 4095, false, false),
            Err(NetError::Invalid(_))
        ));
        assert_eq!(
            nl.bridge_vlans("veth0").expect("vlans"),
            vec![
                (
                    10,
                    BridgeVlanFlags {
                        pvid: true,
                        untagged: true
                    }
                ),
                (20, BridgeVlanFlags::default())
            ]
        );
        nl.bridge_vlan_del("veth0", 10).expect("del");
        assert!(nl
            .bridge_vlan_del("veth0", 10)
            .expect_err("gone")
            .is_not_found());
        let port = nl.link("veth0").expect("get").expect("veth0");
        assert_eq!((port.hairpin, port.isolated), (Some(true), Some(true)));
        nl.delete_link("br0").expect("delete bridge");
        let port = nl.link("veth0").expect("get").expect("veth0");
        assert_eq!(port.master, None);
        assert_eq!(port.hairpin, None);
    }

    #[test]
    fn veth_peer_in_same_namespace_and_delete_takes_both() {
        let here = NetnsHandle::current().expect("netns");
        let mut nl = RecordingNetlink::new().bound_to(here.try_clone().expect("dup"));
        nl.create_veth("a", Some(1400), Some([2, 0, 0, 0, 0, 1]), "b", &here)
            .expect("veth");
        let a = nl.link("a").expect("get").expect("a");
        let b = nl.link("b").expect("get").expect("b");
        assert_eq!(a.peer_index, Some(b.index));
        assert_eq!(b.peer_index, Some(a.index));
        assert_eq!((a.mtu, b.mtu), (1400, 1400));
        assert_eq!(a.mac, Some([2, 0, 0, 0, 0, 1]));
        assert!(nl
            .create_veth("c", None, None, "a", &here)
            .expect_err("dup")
            .is_exists());
        assert!(nl.link("c").expect("get").is_none());
        nl.delete_link("b").expect("delete");
        assert!(nl.link("a").expect("get").is_none());
    }

    #[test]
    fn addresses_are_idempotence_friendly() {
        let mut nl = RecordingNetlink::new();
        let here = NetnsHandle::current().expect("netns");
        nl.create_veth("v", None, None, "p", &here).expect("veth");
        nl.add_address("v", net("10.0.0.2/24")).expect("add");
        nl.add_address("v", net("10.0.0.2/16"))
            .expect("v4 other prefix");
        nl.add_address("v", net("fd00::2/64")).expect("add6");
        assert!(nl
            .add_address("v", net("10.0.0.2/24"))
            .expect_err("dup")
            .is_exists());
        assert!(nl
            .add_address("v", net("fd00::2/80"))
            .expect_err("dup6")
            .is_exists());
        let facts = nl.link("v").expect("get").expect("v");
        assert_eq!(facts.addresses.len(), 3);
        nl.del_address("v", net("10.0.0.2/24")).expect("del");
        let e = nl.del_address("v", net("10.0.0.2/24")).expect_err("gone");
        assert_eq!(e.errno(), Some(Errno::EADDRNOTAVAIL));
        assert!(e.is_not_found());
    }

    #[test]
    fn routes_match_like_the_kernel() {
        let mut nl = RecordingNetlink::new();
        let here = NetnsHandle::current().expect("netns");
        nl.create_veth("v", None, None, "p", &here).expect("veth");
        let default = RouteSpec::new(net("0.0.0.0/0")).via("10.0.0.1".parse().expect("ip"));
        nl.add_route(&default).expect("add");
        assert!(nl.add_route(&default).expect_err("dup").is_exists());
        let mut other_metric = default.clone();
        other_metric.priority = Some(100);
        nl.add_route(&other_metric)
            .expect("other metric is another route");
        nl.add_route(&RouteSpec::new(net("10.1.0.0/24")).dev("v"))
            .expect("dev route");
        assert_eq!(
            errno(nl.add_route(&RouteSpec::new(net("10.2.0.0/24")).dev("x"))),
            Errno::ENODEV
        );
        let routes = nl.routes().expect("routes");
        assert_eq!(routes.len(), 3);
        let dev_route = routes
            .iter()
            .find(|r| r.dst == net("10.1.0.0/24"))
            .expect("dev route");
        assert_eq!(dev_route.scope, crate::netlink::RT_SCOPE_LINK);
        // A wildcard delete removes one match at a time.
        nl.del_route(&RouteSpec::new(net("0.0.0.0/0")))
            .expect("del");
        nl.del_route(&RouteSpec::new(net("0.0.0.0/0")))
            .expect("del");
        let e = nl
            .del_route(&RouteSpec::new(net("0.0.0.0/0")))
            .expect_err("gone");
        assert_eq!(e.errno(), Some(Errno::ESRCH));
        // Deleting the link drops its routes.
        nl.delete_link("v").expect("delete");
        assert!(nl.routes().expect("routes").is_empty());
    }

    #[test]
    fn sysctls() {
        let mut nl = RecordingNetlink::new().with_sysctl("net/ipv4/ip_forward", "0");
        assert_eq!(nl.sysctl("net/ipv4/ip_forward").expect("read"), "0");
        nl.set_sysctl("net/ipv4/ip_forward", "1").expect("write");
        assert_eq!(nl.sysctl("net/ipv4/ip_forward").expect("read"), "1");
        assert!(nl
            .sysctl("net/ipv4/nope")
            .expect_err("missing")
            .is_not_found());
        assert!(matches!(
            nl.set_sysctl("net/../kernel/x", "1"),
            Err(NetError::Invalid(_))
        ));
    }

    #[test]
    fn addresses_settle_at_once() {
        let mut nl = RecordingNetlink::new();
        nl.create_dummy("d0").expect("dummy");
        nl.add_address("d0", net("fd00::1/64")).expect("address");
        nl.take_ops();
        let timeout = Duration::from_secs(5);
        nl.wait_addresses_settled("d0", timeout).expect("settled");
        assert_eq!(
            nl.ops(),
            &[Op::WaitAddressesSettled {
                name: "d0".into(),
                timeout
            }]
        );
        assert!(nl.mutations().is_empty(), "waiting changes nothing");
        assert_eq!(
            errno(nl.wait_addresses_settled("nope", timeout)),
            Errno::ENODEV
        );
    }

    #[test]
    fn fail_at_injects_errno_without_changing_the_model() {
        let mut nl = RecordingNetlink::new();
        nl.create_bridge("br0", None, false).expect("bridge");
        nl.fail_at(2, Errno::ENOBUFS);
        nl.set_up("br0", true).expect("first call passes");
        let e = nl.set_mtu("br0", 1400).expect_err("second call fails");
        assert_eq!(e.errno(), Some(Errno::ENOBUFS));
        assert_eq!(nl.link("br0").expect("get").expect("br0").mtu, 1500);
        nl.set_mtu("br0", 1400).expect("later calls pass");
        assert_eq!(nl.mutations().len(), 4);

        // Counting survives take_ops.
        nl.fail_at(2, Errno::EBUSY);
        assert_eq!(nl.take_ops().len(), 5);
        nl.set_up("br0", false).expect("first");
        assert_eq!(errno(nl.delete_link("br0")), Errno::EBUSY);
        assert!(nl.link("br0").expect("get").is_some());
    }

    #[test]
    fn move_to_netns_removes_link_and_keeps_peer() {
        let here = NetnsHandle::current().expect("netns");
        let mut nl = RecordingNetlink::new().bound_to(here.try_clone().expect("dup"));
        nl.create_veth("a", None, None, "b", &here).expect("veth");
        // Moving into the namespace it is already in changes nothing.
        nl.move_to_netns("a", &here).expect("same ns");
        assert!(nl.link("a").expect("get").is_some());
        // An unbound fake treats every namespace as another one.
        let mut unbound = RecordingNetlink::new();
        unbound
            .create_veth("a", None, None, "b", &here)
            .expect("veth");
        unbound.create_bridge("br0", None, false).expect("bridge");
        unbound
            .add_route(&RouteSpec::new(net("10.1.0.0/24")).dev("a"))
            .expect("route");
        assert_eq!(errno(unbound.move_to_netns("br0", &here)), Errno::EINVAL);
        unbound.move_to_netns("a", &here).expect("move");
        assert!(unbound.link("a").expect("get").is_none());
        assert!(unbound.routes().expect("routes").is_empty());
        assert!(unbound
            .move_to_netns("a", &here)
            .expect_err("gone")
            .is_not_found());
    }
}
