//! DEL and CHECK: what to take away, and what must still be there.

use super::*;

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
