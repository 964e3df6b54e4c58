//! Domain types and the [`Netlink`] trait: the verbs the applier may use on
//! one network namespace, and the errors they report.
//!
//! Everything here is kernel-agnostic data; [`super::rtnl::RtNetlink`] speaks
//! to the kernel and [`super::fake::RecordingNetlink`] models it in memory.

pub use crate::error::NetError;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::netns::NetnsHandle;

/// `RT_SCOPE_UNIVERSE`: a route reaches beyond this host (via a gateway).
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// `RT_SCOPE_LINK`: the destination is directly on the link.
pub const RT_SCOPE_LINK: u8 = 253;
/// `RT_SCOPE_HOST`: the destination is this host.
pub const RT_SCOPE_HOST: u8 = 254;
/// `RT_TABLE_MAIN`, the table routes go to when none is named.
pub const RT_TABLE_MAIN: u32 = 254;

/// What the kernel says about one network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFacts {
    /// Interface name (`IFLA_IFNAME`).
    pub name: String,
    /// Interface index, unique within its namespace only.
    pub index: u32,
    /// `IFLA_INFO_KIND`: "bridge", "veth", "dummy", ...; `None` for devices
    /// without rtnl_link_ops such as `lo`.
    pub kind: Option<String>,
    /// Hardware address, when it is a 6-byte Ethernet address.
    pub mac: Option<[u8; 6]>,
    /// Current MTU.
    pub mtu: u32,
    /// `IFF_UP` as set by an administrator.
    pub admin_up: bool,
    /// Operationally up: `IF_OPER_UP`, or `IF_OPER_UNKNOWN` with
    /// `IFF_LOWER_UP` (what `lo` and other drivers without operstate report
    /// while they are up).
    pub oper_up: bool,
    /// `IFF_PROMISC` as requested by userspace. The kernel reports only the
    /// user-requested flag here, not the promiscuity a bridge imposes on its
    /// ports.
    pub promisc: bool,
    /// Index of the master device (`IFLA_MASTER`), e.g. the bridge of a port.
    pub master: Option<u32>,
    /// `IFLA_LINK`: for a veth, the peer's index. The index is in the peer's
    /// namespace, which may not be this one.
    pub peer_index: Option<u32>,
    /// `IFLA_IFALIAS`.
    pub alias: Option<String>,
    /// Addresses of every family, with their prefix lengths.
    pub addresses: Vec<IpNet>,
    /// For bridges: whether VLAN filtering is on.
    pub vlan_filtering: Option<bool>,
    /// For bridge ports: `IFLA_BRPORT_MODE` (hairpin).
    pub hairpin: Option<bool>,
    /// For bridge ports: `IFLA_BRPORT_ISOLATED`.
    pub isolated: Option<bool>,
}

impl LinkFacts {
    /// Facts for a link that has nothing set yet; used by the fake and tests.
    pub fn new(name: impl Into<String>, index: u32) -> Self {
        Self {
            name: name.into(),
            index,
            kind: None,
            mac: None,
            mtu: 1500,
            admin_up: false,
            oper_up: false,
            promisc: false,
            master: None,
            peer_index: None,
            alias: None,
            addresses: Vec::new(),
            vlan_filtering: None,
            hairpin: None,
            isolated: None,
        }
    }
}

/// One unicast route as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFacts {
    /// Destination prefix; `0.0.0.0/0` or `::/0` for a default route.
    pub dst: IpNet,
    /// Gateway, if any (single-nexthop routes only).
    pub gw: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Routing table id (e.g. 254 for main, 255 for local).
    pub table: u32,
    /// Metric (`RTA_PRIORITY`). IPv6 routes always carry one (default 1024).
    pub priority: Option<u32>,
    /// `RT_SCOPE_*` value.
    pub scope: u8,
}

/// A route to add or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination prefix; `0.0.0.0/0` or `::/0` for a default route.
    pub dst: IpNet,
    /// Gateway.
    pub gw: Option<IpAddr>,
    /// Output interface by name.
    pub oif_name: Option<String>,
    /// Table id; main (254) when `None`.
    pub table: Option<u32>,
    /// Metric.
    pub priority: Option<u32>,
    /// `RT_SCOPE_*`. When `None`, adding picks link scope for IPv4 routes
    /// without a gateway and universe otherwise (as `ip route` does), and
    /// deleting matches any scope.
    pub scope: Option<u8>,
}

impl RouteSpec {
    /// A route to `dst` with nothing else set.
    pub fn new(dst: IpNet) -> Self {
        Self {
            dst,
            gw: None,
            oif_name: None,
            table: None,
            priority: None,
            scope: None,
        }
    }

    /// Sets the gateway.
    pub fn via(mut self, gw: IpAddr) -> Self {
        self.gw = Some(gw);
        self
    }

    /// Sets the output interface.
    pub fn dev(mut self, name: impl Into<String>) -> Self {
        self.oif_name = Some(name.into());
        self
    }

    /// The scope to use when adding this route.
    pub fn effective_add_scope(&self) -> u8 {
        match self.scope {
            Some(scope) => scope,
            None if self.gw.is_none() && self.dst.addr().is_ipv4() => RT_SCOPE_LINK,
            None => RT_SCOPE_UNIVERSE,
        }
    }

    /// The table this route lives in.
    pub fn effective_table(&self) -> u32 {
        self.table.unwrap_or(RT_TABLE_MAIN)
    }
}

/// Per-VLAN flags of a bridge port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BridgeVlanFlags {
    /// Untagged ingress frames are classified into this VLAN.
    pub pvid: bool,
    /// Egress frames of this VLAN leave untagged.
    pub untagged: bool,
}

/// Checks a sysctl path relative to `/proc/sys`: slash-separated (dots are
/// legal in interface names, so `net.ipv4.x` is not accepted), under `net/`,
/// with no empty, `.` or `..` component.
pub fn validate_sysctl_path(path: &str) -> Result<(), NetError> {
    let bad = |why: &str| Err(NetError::Invalid(format!("sysctl path {path:?}: {why}")));
    if path.contains('\0') {
        return bad("contains NUL");
    }
    let mut parts = path.split('/');
    if parts.next() != Some("net") {
        return bad("must be relative and start with net/");
    }
    let mut rest = 0;
    for part in parts {
        if part.is_empty() || part == "." || part == ".." {
            return bad("empty, '.' or '..' component");
        }
        rest += 1;
    }
    if rest == 0 {
        return bad("names no file under net/");
    }
    Ok(())
}

/// Prefix of the names of retired links (see [`Netlink::retire_link`]).
pub const RETIRED_PREFIX: &str = "wcnidel";

/// The name a link with index `index` gets when retired: `wcnidel` and eight
/// hex digits, 15 characters (`IFNAMSIZ` - 1), unique in its namespace.
pub fn retired_name(index: u32) -> String {
    format!("{RETIRED_PREFIX}{index:08x}")
}

/// A link taken out of service whose deletion is left to the reaper: an
/// rtnetlink socket in its namespace and its index there.
#[derive(Debug)]
pub struct RetiredLink {
    /// `NETLINK_ROUTE` socket bound to the link's namespace.
    pub socket: std::os::fd::OwnedFd,
    /// The link's index in that namespace.
    pub index: u32,
}

/// The verbs the applier may use on one network namespace. An instance is
/// bound to the namespace it was opened for; every verb acts there only.
///
/// Every verb fails with [`NetError::Kernel`] carrying the kernel's errno when
/// the kernel refuses, so that callers can treat e.g. `EEXIST` on create as
/// "already done".
pub trait Netlink: Send {
    /// Facts about one link, `None` if there is no link of that name.
    fn link(&mut self, name: &str) -> Result<Option<LinkFacts>, NetError>;

    /// Facts about one link without its addresses: one small request, where
    /// [`Netlink::link`] also dumps the namespace's addresses.
    fn link_brief(&mut self, name: &str) -> Result<Option<LinkFacts>, NetError> {
        self.link(name)
    }

    /// Facts (without addresses) about the link with this index.
    fn link_by_index(&mut self, index: u32) -> Result<Option<LinkFacts>, NetError> {
        Ok(self.links()?.into_iter().find(|l| l.index == index))
    }

    /// Facts about every link.
    fn links(&mut self) -> Result<Vec<LinkFacts>, NetError>;

    /// Creates a bridge, administratively down.
    fn create_bridge(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), NetError>;

    /// Creates a veth pair, both ends down: `name` here and `peer_name`
    /// directly in `peer_ns` (which may be this namespace). The pair is
    /// created atomically, so no end ever appears in a third namespace.
    fn create_veth(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        peer_name: &str,
        peer_ns: &NetnsHandle,
    ) -> Result<(), NetError>;

    /// Creates a dummy link (for tests; needs `CONFIG_DUMMY`).
    fn create_dummy(&mut self, name: &str) -> Result<(), NetError>;

    /// Deletes a link. Deleting one end of a veth deletes both.
    fn delete_link(&mut self, name: &str) -> Result<(), NetError>;

    /// Takes link `name` out of service now and leaves its deletion for later:
    /// down, renamed to [`retired_name`] (so `name` is free at once), with a
    /// socket in this namespace that deletes it by index ([`RetiredLink`]).
    /// `None` when the link was deleted right away instead, which is what
    /// implementations without deferred deletion do.
    fn retire_link(&mut self, name: &str) -> Result<Option<RetiredLink>, NetError> {
        self.delete_link(name).map(|()| None)
    }

    /// Links retired earlier whose deletion never happened (a process killed
    /// in between): their names.
    fn retired_links(&mut self) -> Result<Vec<String>, NetError> {
        Ok(Vec::new())
    }

    /// Sets `IFF_UP` on or off.
    fn set_up(&mut self, name: &str, up: bool) -> Result<(), NetError>;

    /// Sets the MTU.
    fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<(), NetError>;

    /// Sets the hardware address.
    fn set_mac(&mut self, name: &str, mac: [u8; 6]) -> Result<(), NetError>;

    /// Sets or clears the user-requested `IFF_PROMISC`.
    fn set_promisc(&mut self, name: &str, on: bool) -> Result<(), NetError>;

    /// Enslaves `name` to `master`, or releases it with `None`.
    fn set_master(&mut self, name: &str, master: Option<&str>) -> Result<(), NetError>;

    /// Sets `IFLA_IFALIAS`; an empty string removes it.
    fn set_alias(&mut self, name: &str, alias: &str) -> Result<(), NetError>;

    /// Sets hairpin mode on a bridge port.
    fn set_hairpin(&mut self, name: &str, on: bool) -> Result<(), NetError>;

    /// Sets port isolation on a bridge port.
    fn set_isolated(&mut self, name: &str, on: bool) -> Result<(), NetError>;

    /// Adds VLAN `vid` to a bridge port, or to the bridge device itself when
    /// `port` names a bridge.
    fn bridge_vlan_add(
        &mut self,
        port: &str,
        vid: u16,
        pvid: bool,
        untagged: bool,
    ) -> Result<(), NetError>;

    /// Removes VLAN `vid` from a bridge port (or the bridge itself).
    fn bridge_vlan_del(&mut self, port: &str, vid: u16) -> Result<(), NetError>;

    /// VLANs configured on a bridge port (or the bridge itself).
    fn bridge_vlans(&mut self, port: &str) -> Result<Vec<(u16, BridgeVlanFlags)>, NetError>;

    /// Moves a link to another namespace. Its addresses, routes and master
    /// are lost on the way, as the kernel does.
    fn move_to_netns(&mut self, name: &str, ns: &NetnsHandle) -> Result<(), NetError>;

    /// Adds an address (the host bits of `addr` are the address).
    fn add_address(&mut self, name: &str, addr: IpNet) -> Result<(), NetError>;

    /// Deletes an address.
    fn del_address(&mut self, name: &str, addr: IpNet) -> Result<(), NetError>;

    /// Adds a route; `EEXIST` if an equal route is there.
    fn add_route(&mut self, route: &RouteSpec) -> Result<(), NetError>;

    /// Deletes a route; `ESRCH` if there is none matching.
    fn del_route(&mut self, route: &RouteSpec) -> Result<(), NetError>;

    /// Unicast routes of every table, IPv4 then IPv6.
    fn routes(&mut self) -> Result<Vec<RouteFacts>, NetError>;

    /// Writes `/proc/sys/<path>` as seen from this namespace.
    fn set_sysctl(&mut self, path: &str, value: &str) -> Result<(), NetError>;

    /// Reads `/proc/sys/<path>` as seen from this namespace, without the
    /// trailing newline.
    fn sysctl(&mut self, path: &str) -> Result<String, NetError>;

    /// Waits until no IPv6 address of `name` is tentative, i.e. duplicate
    /// address detection has finished on all of them (the reference's
    /// `SettleAddresses`). Fails at once with [`NetError::Conflict`] naming
    /// the address if DAD failed on one, and with [`NetError::Timeout`] if
    /// some are still tentative after `timeout`. A link without IPv6
    /// addresses is settled.
    fn wait_addresses_settled(&mut self, name: &str, timeout: Duration) -> Result<(), NetError>;

    /// Waits until the link is operationally up, or fails with
    /// [`NetError::Timeout`]. A bridge is only up once a port is.
    fn wait_oper_up(&mut self, name: &str, timeout: Duration) -> Result<(), NetError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    #[test]
    fn sysctl_paths() {
        for ok in [
            "net/ipv4/ip_forward",
            "net/ipv4/conf/eth0.100/forwarding",
            "net/ipv6/conf/all/disable_ipv6",
        ] {
            assert!(validate_sysctl_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "net",
            "net/",
            "/net/ipv4/ip_forward",
            "kernel/hostname",
            "net/../kernel/hostname",
            "net/ipv4/./ip_forward",
            "net//ipv4",
            "net.ipv4.ip_forward",
            "net/ipv4/\0",
        ] {
            assert!(
                matches!(validate_sysctl_path(bad), Err(NetError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn error_classes() {
        let e = NetError::kernel("create_bridge", "br0", Errno::EEXIST);
        assert!(e.is_exists() && !e.is_not_found());
        assert_eq!(e.to_string(), "create_bridge br0: EEXIST: File exists");
        for errno in [
            Errno::ENOENT,
            Errno::ENODEV,
            Errno::ESRCH,
            Errno::EADDRNOTAVAIL,
        ] {
            assert!(NetError::kernel("x", "y", errno).is_not_found());
        }
        assert!(NetError::NotANetns("/x".into()).is_netns_gone());
        assert!(NetError::NetnsMissing("/x".into()).is_netns_gone());
        assert!(NetError::kernel("x", "y", Errno::EOPNOTSUPP).is_unsupported());
    }

    #[test]
    fn route_spec_defaults() {
        let net = |s: &str| s.parse::<IpNet>().expect("net");
        assert_eq!(
            RouteSpec::new(net("10.0.0.0/24")).effective_add_scope(),
            RT_SCOPE_LINK
        );
        let via = RouteSpec::new(net("0.0.0.0/0")).via("10.0.0.1".parse().expect("ip"));
        assert_eq!(via.effective_add_scope(), RT_SCOPE_UNIVERSE);
        assert_eq!(
            RouteSpec::new(net("fd00::/64")).effective_add_scope(),
            RT_SCOPE_UNIVERSE
        );
        assert_eq!(via.effective_table(), RT_TABLE_MAIN);
    }
}
