//! The bridge plan, pure: from the parsed config, the IPAM result and what the
//! host observed, the intents of an ADD, DEL or GC, the result skeleton, and the
//! CHECK verdict. The reference's netlink sequence (cni.md §2.2) becomes a list of
//! intents in the same order.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{BridgeConf, MasqBackend};
use crate::wasm_cni::plugin::types::{
    AddressSpec, AttachmentKey, BridgeSpec, CniDns, CniInterface, CniIp, CniResult, CniRoute,
    HostVethSpec, Intent, LinkFacts, LinkRef, MasqBackend as WitBackend, MasqueradeRule,
    MasqueradeSpec, Netns, PortSpec, RouteFacts, RouteSpec, SpoofCheckKey, SpoofCheckSpec,
    SysctlSpec, VethSpec, VlanSpec,
};

/// Index of the container interface in the result (bridge, host veth, container).
pub const CONTAINER_IFACE: u32 = 2;

/// Everything an ADD needs besides the config.
pub struct AddInputs<'a> {
    pub ifname: &'a str,
    pub container_id: &'a str,
    pub netns_path: Option<&'a str>,
    /// The host-side veth name the host handed out.
    pub host_veth: &'a str,
    /// The IPAM result (none in L2 mode).
    pub ipam: Option<&'a CniResult>,
    /// The bridge as it is now, if it exists.
    pub bridge: Option<&'a LinkFacts>,
    /// The container MAC to set: the configured one, or with `macspoofchk` one
    /// derived here (the rules need it before the kernel would pick one).
    pub container_mac: Option<String>,
    /// With `vlan` and `isGateway`: the `<bridge>.<vlan>` gateway veth as it is
    /// now, if it exists.
    pub vlan_gateway: Option<&'a LinkFacts>,
    /// With `vlan` and `isGateway`: a free name for that veth's bridge-side peer.
    pub vlan_gateway_peer: &'a str,
}

/// The intents of an ADD and the result to fill in after applying.
pub struct AddPlan {
    pub intents: Vec<Intent>,
    pub result: CniResult,
}

fn host(name: &str) -> LinkRef {
    LinkRef {
        ns: Netns::Host,
        name: name.to_string(),
    }
}

fn container(name: &str) -> LinkRef {
    LinkRef {
        ns: Netns::Container,
        name: name.to_string(),
    }
}

fn sysctl(ns: Netns, key: String, value: &str) -> Intent {
    Intent::SetSysctl(SysctlSpec {
        ns,
        key,
        value: value.to_string(),
    })
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse()
        .map_err(|_| format!("IPAM returned an invalid address {s:?}"))
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("IPAM returned an invalid gateway {s:?}"))
}

/// The network address + 1: the reference's default gateway.
fn first_host(net: &IpNet) -> IpAddr {
    match net.network() {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a).wrapping_add(1)).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a).wrapping_add(1)).into()),
    }
}

fn is_default(dst: &str, v4: bool) -> bool {
    dst.parse::<IpNet>()
        .map(|n| n.prefix_len() == 0 && n.addr().is_ipv4() == v4)
        .unwrap_or(false)
}

/// The IPs and routes of the result, and the gateway CIDRs for the bridge.
struct Gateways {
    ips: Vec<CniIp>,
    routes: Vec<CniRoute>,
    bridge_cidrs: Vec<IpNet>,
}

/// The reference's `calcGateways`: every IP belongs to the container interface;
/// a missing gateway becomes network+1 when the bridge is the gateway; with
/// `isDefaultGateway`, a default route per family unless IPAM gave one with a gw.
fn gateways(conf: &BridgeConf, ipam: &CniResult) -> Result<Gateways, String> {
    let mut ips = Vec::new();
    let mut routes = ipam.routes.clone();
    let mut gw_cidrs: Vec<IpNet> = Vec::new();
    let mut default_added = [false, false];
    for ip in &ipam.ips {
        let net = parse_net(&ip.address)?;
        let mut gateway = ip.gateway.as_deref().map(parse_ip).transpose()?;
        if gateway.is_none() && conf.is_gateway {
            gateway = Some(first_host(&net.trunc()));
        }
        if conf.is_gateway {
            if let Some(gw) = gateway {
                let cidr = IpNet::new(gw, net.prefix_len())
                    .map_err(|_| format!("gateway {gw} does not fit {net}"))?;
                if !gw_cidrs.contains(&cidr) {
                    gw_cidrs.push(cidr);
                }
            }
        }
        let v4 = net.addr().is_ipv4();
        let fam = usize::from(!v4);
        if conf.is_default_gateway && !default_added[fam] {
            let has_default_with_gw = routes
                .iter()
                .any(|r| is_default(&r.dst, v4) && r.gw.is_some());
            if !has_default_with_gw {
                if let Some(gw) = gateway {
                    routes.push(CniRoute {
                        dst: if v4 { "0.0.0.0/0" } else { "::/0" }.to_string(),
                        gw: Some(gw.to_string()),
                        mtu: None,
                        advmss: None,
                        priority: None,
                        table: None,
                        scope: None,
                    });
                }
            }
            default_added[fam] = true;
        }
        ips.push(CniIp {
            address: ip.address.clone(),
            gateway: gateway.map(|g| g.to_string()),
            interface: Some(CONTAINER_IFACE),
        });
    }
    Ok(Gateways {
        ips,
        routes,
        bridge_cidrs: gw_cidrs,
    })
}

/// The intents and result skeleton of an ADD, in the reference's order.
pub fn add(conf: &BridgeConf, inp: &AddInputs<'_>) -> Result<AddPlan, String> {
    let vlans = conf.vlan != 0 || !conf.vlan_trunk.is_empty();
    if let Some(b) = inp.bridge {
        if b.kind.as_deref() != Some("bridge") {
            return Err(format!(
                "{:?} already exists but is not a bridge",
                conf.bridge
            ));
        }
    }
    let mut intents = vec![
        Intent::EnsureBridge(BridgeSpec {
            name: conf.bridge.clone(),
            mtu: conf.mtu,
            vlan_filtering: vlans,
            promisc: conf.promisc_mode,
        }),
        sysctl(
            Netns::Host,
            format!("net/ipv6/conf/{}/accept_ra", conf.bridge),
            "0",
        ),
        Intent::CreateVeth(VethSpec {
            name: inp.ifname.to_string(),
            peer: inp.host_veth.to_string(),
            mtu: conf.mtu,
            mac: inp.container_mac.clone(),
        }),
        Intent::SetLinkUp(host(inp.host_veth)),
        sysctl(
            Netns::Host,
            format!("net/ipv6/conf/{}/accept_ra", inp.host_veth),
            "0",
        ),
        Intent::AttachPort(PortSpec {
            port: inp.host_veth.to_string(),
            master: conf.bridge.clone(),
            hairpin: conf.hairpin_mode,
            isolated: conf.port_isolation,
        }),
    ];
    if vlans && !conf.preserve_default_vlan {
        intents.push(Intent::FlushPortVlans(inp.host_veth.to_string()));
    }
    if conf.vlan != 0 {
        intents.push(Intent::AddPortVlan(VlanSpec {
            port: inp.host_veth.to_string(),
            vid: conf.vlan,
            pvid: true,
            untagged: true,
        }));
    }
    for range in &conf.vlan_trunk {
        for vid in range.min..=range.max {
            intents.push(Intent::AddPortVlan(VlanSpec {
                port: inp.host_veth.to_string(),
                vid,
                pvid: false,
                untagged: false,
            }));
        }
    }
    if conf.vlan == 0 && !conf.vlan_trunk.is_empty() {
        intents.push(Intent::AddPortVlan(VlanSpec {
            port: inp.host_veth.to_string(),
            vid: 1,
            pvid: true,
            untagged: true,
        }));
    }

    if conf.macspoofchk {
        let mac = inp
            .container_mac
            .clone()
            .ok_or("macspoofchk needs the container MAC")?;
        intents.push(Intent::SpoofCheck(SpoofCheckSpec {
            port: inp.host_veth.to_string(),
            mac,
            container_id: inp.container_id.to_string(),
            ifname: inp.ifname.to_string(),
        }));
    }

    let mut result = CniResult {
        interfaces: vec![
            iface(&conf.bridge, None),
            iface(inp.host_veth, None),
            iface(inp.ifname, inp.netns_path.map(str::to_string)),
        ],
        ips: vec![],
        routes: vec![],
        dns: None,
    };

    match inp.ipam {
        Some(ipam) => {
            let Gateways {
                ips,
                routes,
                bridge_cidrs: gw_cidrs,
            } = gateways(conf, ipam)?;
            let if_v4 = format!("net/ipv4/conf/{}", inp.ifname);
            let if_v6 = format!("net/ipv6/conf/{}", inp.ifname);
            if conf.enable_dad {
                intents.push(sysctl(
                    Netns::Container,
                    format!("{if_v6}/enhanced_dad"),
                    "1",
                ));
                intents.push(sysctl(Netns::Container, format!("{if_v6}/accept_dad"), "1"));
            } else {
                intents.push(sysctl(Netns::Container, format!("{if_v6}/accept_dad"), "0"));
            }
            intents.push(sysctl(Netns::Container, format!("{if_v4}/arp_notify"), "1"));
            let nets: Vec<IpNet> = ips
                .iter()
                .map(|ip| parse_net(&ip.address))
                .collect::<Result<_, _>>()?;
            if nets.iter().any(|n| n.addr().is_ipv6()) {
                intents.push(sysctl(
                    Netns::Container,
                    "net/ipv6/conf/lo/disable_ipv6".into(),
                    "0",
                ));
                intents.push(sysctl(
                    Netns::Container,
                    format!("{if_v6}/disable_ipv6"),
                    "0",
                ));
                intents.push(sysctl(
                    Netns::Container,
                    format!("{if_v6}/keep_addr_on_down"),
                    "1",
                ));
            }
            for net in &nets {
                intents.push(Intent::AddAddress(AddressSpec {
                    link: container(inp.ifname),
                    address: net.to_string(),
                    ensure: false,
                }));
            }
            intents.push(Intent::SetLinkUp(container(inp.ifname)));
            if conf.enable_dad && nets.iter().any(|n| n.addr().is_ipv6()) {
                // The reference polls every 50 ms until DAD is done; the host asks
                // the kernel the same question without fixed sleeps.
                intents.push(Intent::WaitAddressesSettled(container(inp.ifname)));
            }
            for route in &routes {
                let dst = parse_net(&route.dst)?;
                let gw = match &route.gw {
                    Some(gw) => Some(gw.clone()),
                    None => ips
                        .iter()
                        .zip(&nets)
                        .find(|(_, n)| n.addr().is_ipv4() == dst.addr().is_ipv4())
                        .and_then(|(ip, _)| ip.gateway.clone()),
                };
                intents.push(Intent::AddRoute(RouteSpec {
                    ns: Netns::Container,
                    dst: route.dst.clone(),
                    gw,
                    dev: Some(inp.ifname.to_string()),
                    priority: route.priority,
                    table: route.table,
                    scope: route.scope.and_then(|s| u8::try_from(s).ok()),
                }));
            }
            if conf.is_gateway && conf.vlan != 0 {
                // The reference's `<bridge>.<vlan>`: a host veth whose peer is a
                // port of the VLAN, carrying the gateway addresses.
                let gw_link = vlan_gateway_name(conf);
                intents.extend(vlan_gateway(conf, inp, &gw_link));
                intents.extend(gateway_addresses(
                    conf,
                    &gw_link,
                    inp.vlan_gateway,
                    &gw_cidrs,
                )?);
                result.interfaces.push(iface(&gw_link, None));
            } else if conf.is_gateway {
                intents.extend(gateway_addresses(
                    conf,
                    &conf.bridge,
                    inp.bridge,
                    &gw_cidrs,
                )?);
            }
            if conf.is_gateway {
                if gw_cidrs.iter().any(|c| c.addr().is_ipv4()) {
                    intents.push(sysctl(Netns::Host, "net/ipv4/ip_forward".into(), "1"));
                }
                if gw_cidrs.iter().any(|c| c.addr().is_ipv6()) {
                    intents.push(sysctl(
                        Netns::Host,
                        "net/ipv6/conf/all/forwarding".into(),
                        "1",
                    ));
                }
            }
            if conf.ip_masq {
                for net in &nets {
                    intents.push(Intent::Masquerade(MasqueradeSpec {
                        source: net.to_string(),
                        network: conf.network.clone(),
                        container_id: inp.container_id.to_string(),
                        ifname: inp.ifname.to_string(),
                        backend: match conf.ip_masq_backend {
                            MasqBackend::Nftables => WitBackend::Nftables,
                            MasqBackend::Iptables => WitBackend::Iptables,
                        },
                    }));
                }
            }
            result.ips = ips;
            result.routes = routes;
            result.dns = ipam.dns.clone();
        }
        None if !conf.disable_container_interface => {
            intents.push(Intent::SetLinkUp(container(inp.ifname)));
        }
        None => {}
    }
    if !conf.disable_container_interface {
        // The reference sleeps 0/50/500/1000/1000 ms polling the port
        // (plugins#468); the host asks the kernel instead.
        intents.push(Intent::WaitOperUp(host(inp.host_veth)));
    }
    if let Some(dns) = &conf.dns {
        result.dns = Some(CniDns {
            nameservers: dns.nameservers.clone(),
            domain: dns.domain.clone(),
            search: dns.search.clone(),
            options: dns.options.clone(),
        });
    }
    Ok(AddPlan { intents, result })
}

fn iface(name: &str, sandbox: Option<String>) -> CniInterface {
    CniInterface {
        name: name.to_string(),
        mac: None,
        mtu: None,
        sandbox,
        socket_path: None,
        pci_id: None,
    }
}

/// `<bridge>.<vlan>`, the reference's name for a VLAN's gateway interface.
pub fn vlan_gateway_name(conf: &BridgeConf) -> String {
    format!("{}.{}", conf.bridge, conf.vlan)
}

/// Create (or adopt) the VLAN gateway veth; a new one's peer becomes an untagged
/// port of the VLAN, as the reference's `ensureVlanInterface` does.
fn vlan_gateway(conf: &BridgeConf, inp: &AddInputs<'_>, gw_link: &str) -> Vec<Intent> {
    let mut intents = vec![Intent::EnsureHostVeth(HostVethSpec {
        name: gw_link.to_string(),
        peer: inp.vlan_gateway_peer.to_string(),
        mtu: conf.mtu,
    })];
    if inp.vlan_gateway.is_none() {
        let peer = inp.vlan_gateway_peer;
        intents.push(Intent::SetLinkUp(host(peer)));
        intents.push(Intent::AttachPort(PortSpec {
            port: peer.to_string(),
            master: conf.bridge.clone(),
            hairpin: false,
            isolated: false,
        }));
        if !conf.preserve_default_vlan {
            intents.push(Intent::FlushPortVlans(peer.to_string()));
        }
        intents.push(Intent::AddPortVlan(VlanSpec {
            port: peer.to_string(),
            vid: conf.vlan,
            pvid: true,
            untagged: true,
        }));
    }
    intents.push(Intent::SetLinkUp(host(gw_link)));
    intents
}

/// The reference's `ensureAddr` for each gateway: keep an identical address;
/// another IPv4 address (or an overlapping IPv6 one) is an error unless
/// `forceAddress`, in which case it is replaced.
fn gateway_addresses(
    conf: &BridgeConf,
    link: &str,
    facts: Option<&LinkFacts>,
    gw_cidrs: &[IpNet],
) -> Result<Vec<Intent>, String> {
    let existing: Vec<IpNet> = facts
        .map(|b| b.addresses.iter().filter_map(|a| a.parse().ok()).collect())
        .unwrap_or_default();
    let mut intents = Vec::new();
    for gw in gw_cidrs {
        if existing.contains(gw) {
            continue;
        }
        for other in &existing {
            let clash = match (gw, other) {
                (IpNet::V4(_), IpNet::V4(_)) => true,
                (IpNet::V6(g), IpNet::V6(o)) => {
                    g.contains(&o.network()) || o.contains(&g.network())
                }
                _ => false,
            };
            // Link-local IPv6 addresses are the kernel's, not a configuration.
            let link_local =
                matches!(other, IpNet::V6(o) if o.addr().segments()[0] & 0xffc0 == 0xfe80);
            if !clash || link_local {
                continue;
            }
            if !conf.force_address {
                return Err(format!(
                    "{link:?} already has an IP address different from {gw}"
                ));
            }
            intents.push(Intent::DeleteAddress(AddressSpec {
                link: host(link),
                address: other.to_string(),
                ensure: false,
            }));
        }
        intents.push(Intent::AddAddress(AddressSpec {
            link: host(link),
            address: gw.to_string(),
            // Concurrent ADDs race to put the same gateway on a shared bridge.
            ensure: true,
        }));
    }
    Ok(intents)
}

/// A stable, locally administered unicast MAC for an attachment (used with
/// `macspoofchk` when the runtime gave none): the anti-spoofing rules are
/// installed with the MAC before the link exists.
pub fn derived_mac(network: &str, container_id: &str, ifname: &str) -> String {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same attachment always gets the same MAC.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (network, container_id, ifname).hash(&mut h);
    let b = h.finish().to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        (b[0] & 0xfe) | 0x02,
        b[1],
        b[2],
        b[3],
        b[4],
        b[5]
    )
}

/// Fill in what only the kernel knew: MACs of the three interfaces.
pub fn finish_result(mut result: CniResult, applied: &[LinkFacts]) -> CniResult {
    for (i, iface) in result.interfaces.iter_mut().enumerate() {
        let ns = if i == CONTAINER_IFACE as usize {
            Netns::Container
        } else {
            Netns::Host
        };
        if iface.mac.is_none() {
            iface.mac = applied
                .iter()
                .find(|l| l.ns == ns && l.name == iface.name)
                .and_then(|l| l.mac.clone());
        }
    }
    result
}

/// The intents of a DEL: the container interface (its peer goes with it) and the
/// masquerade rules, which the host finds by network and attachment, so they go
/// even when the interface or the namespace is already gone (plugins#810).
pub fn del(conf: &BridgeConf, ifname: &str, container_id: &str, has_netns: bool) -> Vec<Intent> {
    let mut intents = Vec::new();
    if has_netns {
        intents.push(Intent::DeleteLink(container(ifname)));
    }
    if conf.macspoofchk {
        intents.push(Intent::UnspoofCheck(SpoofCheckKey {
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
        }));
    }
    if conf.ip_masq {
        intents.push(Intent::Unmasquerade(AttachmentKey {
            network: conf.network.clone(),
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
        }));
    }
    intents
}

/// What CHECK looks at: the links, routes and masquerade rules the host observed.
pub struct Observed<'a> {
    pub bridge: Option<&'a LinkFacts>,
    pub container: Option<&'a LinkFacts>,
    /// Host links named in prevResult, with their facts.
    pub host_links: &'a [LinkFacts],
    pub container_routes: &'a [RouteFacts],
    pub masquerade: &'a [MasqueradeRule],
}

/// The reference's CHECK against prevResult, plus the masquerade rules. L2 mode
/// (no IPAM) is checked too, which the reference cannot do.
pub fn check(
    conf: &BridgeConf,
    prev: &CniResult,
    ifname: &str,
    container_id: &str,
    netns_path: Option<&str>,
    seen: &Observed<'_>,
) -> Result<(), String> {
    let bridge_entry = prev.interfaces.iter().find(|i| i.name == conf.bridge);
    let container_entry = prev
        .interfaces
        .iter()
        .position(|i| i.name == ifname && i.sandbox.as_deref() == netns_path);
    let Some(bridge_entry) = bridge_entry else {
        return Err(format!(
            "CNI created bridge {} in host namespace was not found",
            conf.bridge
        ));
    };
    let Some(container_idx) = container_entry else {
        return Err(format!(
            "CNI created interface in container {ifname} not found"
        ));
    };
    let bridge = seen
        .bridge
        .ok_or_else(|| format!("bridge {} does not exist", conf.bridge))?;
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(format!("{} is not a bridge", conf.bridge));
    }
    if let (Some(want), Some(have)) = (&bridge_entry.mac, &bridge.mac) {
        if !want.eq_ignore_ascii_case(have) {
            return Err(format!(
                "bridge {} has MAC {have}, prevResult says {want}",
                conf.bridge
            ));
        }
    }
    if bridge.promisc != conf.promisc_mode {
        return Err(format!(
            "bridge {} promiscuous mode is {}, the config wants {}",
            conf.bridge, bridge.promisc, conf.promisc_mode
        ));
    }
    let ctr = seen
        .container
        .ok_or_else(|| format!("container interface {ifname} does not exist"))?;
    if ctr.kind.as_deref() != Some("veth") {
        return Err(format!("container interface {ifname} is not a veth"));
    }
    let ctr_entry = &prev.interfaces[container_idx];
    if let (Some(want), Some(have)) = (&ctr_entry.mac, &ctr.mac) {
        if !want.eq_ignore_ascii_case(have) {
            return Err(format!(
                "interface {ifname} has MAC {have}, prevResult says {want}"
            ));
        }
    }
    let peer = seen
        .host_links
        .iter()
        .find(|l| Some(l.index) == ctr.peer_index && l.master.as_deref() == Some(&conf.bridge))
        .ok_or_else(|| format!("CNI veth created for bridge {} was not found", conf.bridge))?;
    if let Some(entry) = prev.interfaces.iter().find(|i| i.name == peer.name) {
        if let (Some(want), Some(have)) = (&entry.mac, &peer.mac) {
            if !want.eq_ignore_ascii_case(have) {
                return Err(format!(
                    "host veth {} has MAC {have}, prevResult says {want}",
                    peer.name
                ));
            }
        }
    }
    for ip in &prev.ips {
        if ip.interface != Some(container_idx as u32) {
            continue;
        }
        let want = parse_net(&ip.address)?;
        if !ctr
            .addresses
            .iter()
            .any(|a| a.parse::<IpNet>().ok() == Some(want))
        {
            return Err(format!("Failed to find IP {} on {ifname}", ip.address));
        }
    }
    for route in &prev.routes {
        let dst = parse_net(&route.dst)?;
        let found = seen.container_routes.iter().any(|r| {
            r.dst.parse::<IpNet>().ok().map(|d| d.trunc()) == Some(dst.trunc())
                && match &route.gw {
                    Some(gw) => r.gw.as_deref() == Some(gw.as_str()),
                    None => true,
                }
        });
        if !found {
            return Err(format!(
                "Failed to find route {} via {:?} in the container",
                route.dst, route.gw
            ));
        }
    }
    if conf.ip_masq {
        for ip in prev
            .ips
            .iter()
            .filter(|i| i.interface == Some(container_idx as u32))
        {
            let want = parse_net(&ip.address)?.addr();
            // iptables rules are per (network, container), without the ifname, as
            // the reference's chains are.
            let found = seen.masquerade.iter().any(|r| {
                r.container_id == container_id
                    && (r.ifname == ifname || r.ifname.is_empty())
                    && r.source.parse::<IpNet>().map(|n| n.addr()) == Ok(want)
            });
            if !found {
                return Err(format!("masquerade rule for {} is missing", ip.address));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn conf(extra: &str) -> BridgeConf {
        config::parse(
            &format!(r#"{{"cniVersion":"1.0.0","name":"net","type":"bridge"{extra}}}"#),
            &[],
        )
        .expect("config")
    }

    fn ipam(addresses: &[(&str, Option<&str>)]) -> CniResult {
        CniResult {
            interfaces: vec![],
            ips: addresses
                .iter()
                .map(|(a, g)| CniIp {
                    address: a.to_string(),
                    gateway: g.map(str::to_string),
                    interface: None,
                })
                .collect(),
            routes: vec![],
            dns: None,
        }
    }

    fn inputs<'a>(ipam: Option<&'a CniResult>) -> AddInputs<'a> {
        AddInputs {
            ifname: "eth0",
            container_id: "ctr",
            netns_path: Some("/var/run/netns/x"),
            host_veth: "veth0a1b2c3d",
            ipam,
            bridge: None,
            container_mac: None,
            vlan_gateway: None,
            vlan_gateway_peer: "veth99999999",
        }
    }

    fn kinds(intents: &[Intent]) -> Vec<&'static str> {
        intents
            .iter()
            .map(|i| match i {
                Intent::EnsureBridge(_) => "ensure-bridge",
                Intent::CreateVeth(_) => "create-veth",
                Intent::SetLinkUp(_) => "set-link-up",
                Intent::AttachPort(_) => "attach-port",
                Intent::SetSysctl(_) => "set-sysctl",
                Intent::AddAddress(_) => "add-address",
                Intent::AddRoute(_) => "add-route",
                Intent::Masquerade(_) => "masquerade",
                Intent::WaitOperUp(_) => "wait-oper-up",
                Intent::FlushPortVlans(_) => "flush-port-vlans",
                Intent::AddPortVlan(_) => "add-port-vlan",
                Intent::DeleteAddress(_) => "delete-address",
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn l3_gateway_masquerade_plan_and_result() {
        let conf = conf(r#","isDefaultGateway":true,"ipMasq":true,"ipam":{"type":"host-local"}"#);
        let ipam = ipam(&[("10.22.0.5/16", None)]);
        let plan = add(&conf, &inputs(Some(&ipam))).expect("plan");
        let k = kinds(&plan.intents);
        assert_eq!(
            &k[..6],
            [
                "ensure-bridge",
                "set-sysctl",
                "create-veth",
                "set-link-up",
                "set-sysctl",
                "attach-port"
            ]
        );
        assert!(k.contains(&"masquerade") && k.ends_with(&["wait-oper-up"]));
        assert_eq!(plan.result.ips[0].gateway.as_deref(), Some("10.22.0.1"));
        assert_eq!(plan.result.ips[0].interface, Some(2));
        assert_eq!(plan.result.routes[0].dst, "0.0.0.0/0");
        assert_eq!(
            plan.result.interfaces[2].sandbox.as_deref(),
            Some("/var/run/netns/x")
        );
        let gw = plan.intents.iter().find_map(|i| match i {
            Intent::AddAddress(a) if a.link.ns == Netns::Host => Some(a.address.clone()),
            _ => None,
        });
        assert_eq!(gw.as_deref(), Some("10.22.0.1/16"));
        let default_route = plan.intents.iter().find_map(|i| match i {
            Intent::AddRoute(r) => Some((r.dst.clone(), r.gw.clone())),
            _ => None,
        });
        assert_eq!(
            default_route,
            Some(("0.0.0.0/0".into(), Some("10.22.0.1".into())))
        );
    }

    #[test]
    fn dual_stack_enables_ipv6_and_two_gateways() {
        let conf = conf(r#","isGateway":true,"ipam":{"type":"host-local"}"#);
        let ipam = ipam(&[
            ("10.22.0.5/16", Some("10.22.0.1")),
            ("fd00::5/64", Some("fd00::1")),
        ]);
        let plan = add(&conf, &inputs(Some(&ipam))).expect("plan");
        let sysctls: Vec<String> = plan
            .intents
            .iter()
            .filter_map(|i| match i {
                Intent::SetSysctl(s) => Some(s.key.clone()),
                _ => None,
            })
            .collect();
        assert!(sysctls.contains(&"net/ipv6/conf/eth0/disable_ipv6".to_string()));
        assert!(sysctls.contains(&"net/ipv6/conf/all/forwarding".to_string()));
        assert!(sysctls.contains(&"net/ipv4/ip_forward".to_string()));
        assert!(
            plan.result.routes.is_empty(),
            "isGateway alone adds no default route"
        );
    }

    #[test]
    fn l2_mode_sets_the_link_up_without_addresses() {
        let conf = conf("");
        let plan = add(&conf, &inputs(None)).expect("plan");
        let k = kinds(&plan.intents);
        assert!(!k.contains(&"add-address"));
        assert_eq!(k.iter().filter(|k| **k == "set-link-up").count(), 2);
        assert!(plan.result.ips.is_empty());
    }

    #[test]
    fn vlan_and_trunk_port_settings() {
        let conf = conf(r#","vlan":100,"vlanTrunk":[{"minID":200,"maxID":201}]"#);
        let plan = add(&conf, &inputs(None)).expect("plan");
        let k = kinds(&plan.intents);
        assert_eq!(k.iter().filter(|k| **k == "add-port-vlan").count(), 3);
        assert!(k.contains(&"flush-port-vlans"));
        let conf2 = self::conf(r#","vlan":100,"preserveDefaultVlan":true"#);
        assert!(!kinds(&add(&conf2, &inputs(None)).expect("plan").intents)
            .contains(&"flush-port-vlans"));
    }

    #[test]
    fn existing_bridge_address_conflicts_unless_forced() {
        let ipam = ipam(&[("10.22.0.5/16", None)]);
        let mut bridge = LinkFacts {
            ns: Netns::Host,
            name: "cni0".into(),
            index: 3,
            kind: Some("bridge".into()),
            mac: None,
            mtu: 1500,
            admin_up: true,
            oper_up: true,
            promisc: false,
            master: None,
            peer_index: None,
            addresses: vec!["10.99.0.1/16".into()],
        };
        let conf = conf(r#","isGateway":true,"ipam":{"type":"host-local"}"#);
        let mut inp = inputs(Some(&ipam));
        inp.bridge = Some(&bridge);
        let e = add(&conf, &inp).err().expect("conflict");
        assert!(
            e.contains("already has an IP address different from 10.22.0.1/16"),
            "{e}"
        );
        let forced =
            self::conf(r#","isGateway":true,"forceAddress":true,"ipam":{"type":"host-local"}"#);
        let plan = add(&forced, &inp).expect("forced");
        assert!(kinds(&plan.intents).contains(&"delete-address"));
        bridge.kind = Some("veth".into());
        let mut inp = inputs(Some(&ipam));
        inp.bridge = Some(&bridge);
        assert!(add(&conf, &inp)
            .err()
            .expect("not a bridge")
            .contains("not a bridge"));
    }

    #[test]
    fn macspoofchk_installs_rules_with_a_stable_mac() {
        let conf = conf(r#","macspoofchk":true"#);
        let mac = derived_mac("net", "ctr", "eth0");
        assert_eq!(mac, derived_mac("net", "ctr", "eth0"));
        assert_ne!(mac, derived_mac("net", "ctr2", "eth0"));
        let first = u8::from_str_radix(&mac[..2], 16).expect("hex");
        assert_eq!(first & 0x03, 0x02, "locally administered unicast");
        let mut inp = inputs(None);
        inp.container_mac = Some(mac.clone());
        let plan = add(&conf, &inp).expect("plan");
        assert!(plan.intents.iter().any(
            |i| matches!(i, Intent::SpoofCheck(s) if s.mac == mac && s.port == "veth0a1b2c3d")
        ));
        assert!(del(&conf, "eth0", "ctr", false)
            .iter()
            .any(|i| matches!(i, Intent::UnspoofCheck(_))));
    }

    #[test]
    fn vlan_gateway_goes_on_bridge_dot_vlan() {
        let conf = conf(r#","vlan":42,"isGateway":true,"ipam":{"type":"host-local"}"#);
        let ipam = ipam(&[("10.22.0.5/16", None)]);
        let plan = add(&conf, &inputs(Some(&ipam))).expect("plan");
        assert_eq!(plan.result.interfaces.len(), 4);
        assert_eq!(plan.result.interfaces[3].name, "cni0.42");
        assert!(plan.intents.iter().any(|i| matches!(i, Intent::EnsureHostVeth(v) if v.name == "cni0.42" && v.peer == "veth99999999")));
        assert!(plan.intents.iter().any(|i| matches!(i, Intent::AddPortVlan(v) if v.port == "veth99999999" && v.vid == 42 && v.pvid)));
        let gw = plan.intents.iter().find_map(|i| match i {
            Intent::AddAddress(a) if a.link.ns == Netns::Host => {
                Some((a.link.name.clone(), a.address.clone()))
            }
            _ => None,
        });
        assert_eq!(gw, Some(("cni0.42".into(), "10.22.0.1/16".into())));
        // An existing gateway veth is adopted: no new port.
        let existing = LinkFacts {
            ns: Netns::Host,
            name: "cni0.42".into(),
            index: 9,
            kind: Some("veth".into()),
            mac: None,
            mtu: 1500,
            admin_up: true,
            oper_up: true,
            promisc: false,
            master: None,
            peer_index: None,
            addresses: vec!["10.22.0.1/16".into()],
        };
        let mut inp = inputs(Some(&ipam));
        inp.vlan_gateway = Some(&existing);
        let plan = add(&conf, &inp).expect("plan");
        assert!(!plan
            .intents
            .iter()
            .any(|i| matches!(i, Intent::AddPortVlan(v) if v.port == "veth99999999")));
        assert!(!plan
            .intents
            .iter()
            .any(|i| matches!(i, Intent::AddAddress(a) if a.link.name == "cni0.42")));
    }

    #[test]
    fn del_always_removes_masquerade_rules() {
        let conf = conf(r#","ipMasq":true,"ipam":{"type":"host-local"}"#);
        let intents = del(&conf, "eth0", "ctr", false);
        assert_eq!(intents.len(), 1);
        assert!(matches!(&intents[0], Intent::Unmasquerade(k) if k.container_id == "ctr"));
        assert_eq!(del(&conf, "eth0", "ctr", true).len(), 2);
    }
}
