//! The bridge plan, pure: from the parsed config, the IPAM result and what the
//! host observed, the intents of an ADD, DEL or GC, the result skeleton, and the
//! CHECK verdict. The reference's netlink sequence (cni.md §2.2) becomes a list of
//! intents in the same order.

use std::net::IpAddr;

use ipnet::IpNet;

mod check;
mod gateway;

pub use check::{check, del, Observed};
pub use gateway::vlan_gateway_name;
use gateway::{gateway_addresses, gateways, vlan_gateway, Gateways};

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

#[cfg(test)]
mod tests;
