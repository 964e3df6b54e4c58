//! The gateway side of an ADD: the result's IPs and routes with their
//! gateways, the bridge's gateway addresses, and the VLAN gateway interface.

use super::*;

/// The IPs and routes of the result, and the gateway CIDRs for the bridge.
pub(super) struct Gateways {
    pub(super) ips: Vec<CniIp>,
    pub(super) routes: Vec<CniRoute>,
    pub(super) bridge_cidrs: Vec<IpNet>,
}

/// The reference's `calcGateways`: every IP belongs to the container interface;
/// a missing gateway becomes network+1 when the bridge is the gateway; with
/// `isDefaultGateway`, a default route per family unless IPAM gave one with a gw.
pub(super) fn gateways(conf: &BridgeConf, ipam: &CniResult) -> Result<Gateways, String> {
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

/// `<bridge>.<vlan>`, the reference's name for a VLAN's gateway interface.
pub fn vlan_gateway_name(conf: &BridgeConf) -> String {
    format!("{}.{}", conf.bridge, conf.vlan)
}

/// Create (or adopt) the VLAN gateway veth; a new one's peer becomes an untagged
/// port of the VLAN, as the reference's `ensureVlanInterface` does.
pub(super) fn vlan_gateway(conf: &BridgeConf, inp: &AddInputs<'_>, gw_link: &str) -> Vec<Intent> {
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
pub(super) fn gateway_addresses(
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
