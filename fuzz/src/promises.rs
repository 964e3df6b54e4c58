//! What `validate_plan` promises about a plan it accepts (its module doc, and each
//! rule it states), written down a second time without its code: the links an
//! intent names, the sysctl allow-list, the name rules, pattern matching and where
//! addresses may come from are spelled out here again, so that a slip in
//! `Intent::links`, the validator or the grant's helpers shows up as a broken
//! promise instead of being agreed with.
//!
//! Everything is in [`check_accepted_plan`], so that new rules go in one place. Its
//! matches over [`Intent`] have no catch-all arm: a new kind of intent does not build
//! here until someone has said what it touches and what it needs granted.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::plan::{Intent, Side};
use crate::policy::NamePattern;
use crate::validate::{ContainerNs, Invocation};

/// The sysctls that are not per interface.
const GLOBAL_SYSCTLS: &[&str] = &["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"];
/// `net/ipv4/conf/<link>/<leaf>` leaves that can be granted.
const IPV4_LINK_SYSCTLS: &[&str] = &["arp_notify", "proxy_arp", "rp_filter"];
/// `net/ipv6/conf/<link>/<leaf>` leaves that can be granted.
const IPV6_LINK_SYSCTLS: &[&str] = &[
    "accept_ra",
    "accept_dad",
    "enhanced_dad",
    "disable_ipv6",
    "keep_addr_on_down",
];

/// A name the kernel takes for a link: 1 to 15 bytes (IFNAMSIZ less the NUL), not
/// `.` or `..`, no '/', ':' or whitespace. The reference `ValidateInterfaceName`.
pub fn is_link_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// Host links the plan creates.
struct Created<'p> {
    bridges: BTreeSet<&'p str>,
    veth_peers: BTreeSet<&'p str>,
}

/// Checks an accepted plan against the validator's promises; `Err` says which one
/// broke, for which intent (a validator bug).
///
/// The validator trusts the invocation: `CNI_IFNAME` was checked by `parse_invocation`
/// for every verb that has a container namespace, and the grant comes from a policy
/// file that parsed. So the name rules apply to the names the plan brings, and
/// `inv.ifname` itself is taken as it is.
pub fn check_accepted_plan(intents: &[Intent], inv: &Invocation<'_>) -> Result<(), String> {
    if intents.len() > inv.max_intents {
        return Err(format!(
            "{} intents, over the limit of {}",
            intents.len(),
            inv.max_intents
        ));
    }
    let mut created = Created {
        bridges: BTreeSet::new(),
        veth_peers: BTreeSet::new(),
    };
    for intent in intents {
        match intent {
            Intent::EnsureBridge { name, .. } => {
                created.bridges.insert(name);
            }
            Intent::CreateVeth { peer, .. } => {
                created.veth_peers.insert(peer);
            }
            Intent::EnsureHostVeth { name, peer, .. } => {
                created.veth_peers.insert(name);
                created.veth_peers.insert(peer);
            }
            _ => {}
        }
    }
    for (index, intent) in intents.iter().enumerate() {
        check_intent(intent, inv, &created)
            .map_err(|broken| format!("intent #{index} ({}) {broken}: {intent}", intent.kind()))?;
    }
    Ok(())
}

fn check_intent(
    intent: &Intent,
    inv: &Invocation<'_>,
    created: &Created<'_>,
) -> Result<(), String> {
    let grant = inv.grant;
    if !grant.intents.contains(&intent.kind()) {
        return Err("is of a kind the grant does not give".to_string());
    }
    let uplink_master = match intent {
        Intent::AttachPort { master, .. } if matches_any(&grant.uplinks, master) => Some(master),
        _ => None,
    };
    for (side, name) in links(intent) {
        if !is_link_name(name) {
            return Err(format!("names {side} link {name:?}, not a valid link name"));
        }
        if side == Side::Host && uplink_master.is_some_and(|m| m == name) {
            continue;
        }
        check_reach(side, name, inv, created)?;
    }
    let attachment = |what: &str, network: &str, container_id: &str, ifname: &str| {
        if network == inv.network && container_id == inv.container_id && ifname == inv.ifname {
            Ok(())
        } else {
            Err(format!(
                "has {what} of {network:?}/{container_id:?}/{ifname:?}, not of this attachment"
            ))
        }
    };
    let addresses = Addresses { inv };
    match intent {
        Intent::EnsureBridge { name, .. } if !matches_any(&grant.bridges, name) => Err(format!(
            "ensures bridge {name:?}, which the grant does not name"
        )),
        Intent::CreateVeth { name, .. } if name != inv.ifname => Err(format!(
            "puts the container end of a veth on {name:?}, not CNI_IFNAME"
        )),
        Intent::AttachPort { port, .. } if !created.veth_peers.contains(port.as_str()) => Err(
            format!("enslaves {port:?}, which is not a veth peer the plan creates"),
        ),
        Intent::DeleteLink { link } if link.side == Side::Container && link.name == "lo" => {
            Err("deletes the container's lo".to_string())
        }
        Intent::SetSysctl { side, key, .. } => check_sysctl(*side, key, inv, created),
        Intent::AddAddress { link, address, .. } | Intent::DeleteAddress { link, address } => {
            let ok = match link.side {
                Side::Container => addresses.for_container(address),
                Side::Host => addresses.for_host(address),
            };
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "uses {} address {address}, neither from IPAM nor granted",
                    link.side
                ))
            }
        }
        Intent::AddRoute(r) => {
            if r.side == Side::Host && !(grant.host_routes && addresses.granted_subnet(&r.dst)) {
                Err(format!("adds host route {}, which is not granted", r.dst))
            } else if r.gw.is_some_and(|gw| !addresses.for_gateway(&gw)) {
                Err("routes via a gateway outside IPAM's subnets and the grant".to_string())
            } else {
                Ok(())
            }
        }
        Intent::Masquerade { source, key, .. } => {
            if !grant.masquerade {
                Err("masquerades without the grant".to_string())
            } else if !addresses.for_container(source) {
                Err(format!(
                    "masquerades {source}, neither from IPAM nor granted"
                ))
            } else {
                attachment(
                    "masquerade rules",
                    &key.network,
                    &key.container_id,
                    &key.ifname,
                )
            }
        }
        Intent::Unmasquerade { key } => attachment(
            "masquerade rules",
            &key.network,
            &key.container_id,
            &key.ifname,
        ),
        Intent::GcMasquerade { network } if network != inv.network => Err(format!(
            "collects masquerade rules of network {network:?}, not {:?}",
            inv.network
        )),
        Intent::SpoofCheck {
            container_id,
            ifname,
            ..
        }
        | Intent::UnspoofCheck {
            container_id,
            ifname,
        } => attachment("anti-spoofing rules", inv.network, container_id, ifname),
        Intent::EnsureBridge { .. }
        | Intent::CreateVeth { .. }
        | Intent::EnsureHostVeth { .. }
        | Intent::AttachPort { .. }
        | Intent::DeleteLink { .. }
        | Intent::SetLinkUp { .. }
        | Intent::SetLinkDown { .. }
        | Intent::SetMtu { .. }
        | Intent::SetMac { .. }
        | Intent::FlushPortVlans { .. }
        | Intent::AddPortVlan { .. }
        | Intent::GcMasquerade { .. }
        | Intent::WaitOperUp { .. }
        | Intent::WaitAddressesSettled { .. } => Ok(()),
    }
}

/// Every link an intent touches, with its namespace: written out again rather than
/// taken from `Intent::links`, which the validator itself relies on.
fn links(intent: &Intent) -> Vec<(Side, &str)> {
    match intent {
        Intent::EnsureBridge { name, .. } => vec![(Side::Host, name)],
        Intent::CreateVeth { name, peer, .. } => vec![(Side::Container, name), (Side::Host, peer)],
        Intent::EnsureHostVeth { name, peer, .. } => vec![(Side::Host, name), (Side::Host, peer)],
        Intent::DeleteLink { link }
        | Intent::SetLinkUp { link }
        | Intent::SetLinkDown { link }
        | Intent::SetMtu { link, .. }
        | Intent::SetMac { link, .. }
        | Intent::AddAddress { link, .. }
        | Intent::DeleteAddress { link, .. }
        | Intent::WaitOperUp { link }
        | Intent::WaitAddressesSettled { link } => vec![(link.side, &link.name)],
        Intent::AttachPort { port, master, .. } => vec![(Side::Host, port), (Side::Host, master)],
        Intent::FlushPortVlans { port }
        | Intent::AddPortVlan { port, .. }
        | Intent::SpoofCheck { port, .. } => vec![(Side::Host, port)],
        Intent::AddRoute(r) => r.dev.iter().map(|dev| (r.side, dev.as_str())).collect(),
        Intent::SetSysctl { .. }
        | Intent::Masquerade { .. }
        | Intent::Unmasquerade { .. }
        | Intent::GcMasquerade { .. }
        | Intent::UnspoofCheck { .. } => vec![],
    }
}

/// A link-name pattern: a literal, or one `*` standing for any text (maybe none).
fn matches_any(patterns: &[NamePattern], name: &str) -> bool {
    patterns.iter().any(|p| match p.0.split_once('*') {
        None => p.0 == name,
        Some((head, tail)) => name
            .strip_prefix(head)
            .is_some_and(|rest| rest.ends_with(tail)),
    })
}

/// The container side is CNI_IFNAME and lo in a namespace the request has; the host
/// side is what the plan creates.
fn check_reach(
    side: Side,
    name: &str,
    inv: &Invocation<'_>,
    created: &Created<'_>,
) -> Result<(), String> {
    match side {
        Side::Container if inv.container == ContainerNs::Absent => Err(format!(
            "touches container link {name:?} in a request without a container namespace"
        )),
        Side::Container if name != inv.ifname && name != "lo" => Err(format!(
            "touches container link {name:?}, neither CNI_IFNAME {:?} nor lo",
            inv.ifname
        )),
        Side::Host if !created.bridges.contains(name) && !created.veth_peers.contains(name) => Err(
            format!("touches host link {name:?}, which the plan does not create"),
        ),
        Side::Container | Side::Host => Ok(()),
    }
}

/// A sysctl is on the allow-list, granted, and (per link) about a link the plan may
/// touch on that side.
fn check_sysctl(
    side: Side,
    key: &str,
    inv: &Invocation<'_>,
    created: &Created<'_>,
) -> Result<(), String> {
    let granted = |pattern: &str| inv.grant.sysctls.iter().any(|s| s.0 == pattern);
    if GLOBAL_SYSCTLS.contains(&key) {
        return if granted(key) {
            Ok(())
        } else {
            Err(format!(
                "sets sysctl {key:?}, which the grant does not name"
            ))
        };
    }
    let per_link = [("ipv4", IPV4_LINK_SYSCTLS), ("ipv6", IPV6_LINK_SYSCTLS)]
        .into_iter()
        .find_map(|(family, leaves)| {
            let rest = key
                .strip_prefix("net/")?
                .strip_prefix(family)?
                .strip_prefix("/conf/")?;
            let (link, leaf) = rest.split_once('/')?;
            Some((family, link, leaf, leaves))
        });
    let Some((family, link, leaf, leaves)) = per_link else {
        return Err(format!("sets sysctl {key:?}, not on the allow-list"));
    };
    if !leaves.contains(&leaf) {
        return Err(format!(
            "sets sysctl {key:?}: {leaf:?} is not on the allow-list"
        ));
    }
    if !granted(&format!("net/{family}/conf/<if>/{leaf}")) {
        return Err(format!(
            "sets sysctl {key:?}, which the grant does not name"
        ));
    }
    let trusted = side == Side::Container && link == inv.ifname;
    if !trusted && !is_link_name(link) {
        return Err(format!(
            "sets sysctl {key:?} of {link:?}, not a valid link name"
        ));
    }
    check_reach(side, link, inv, created).map_err(|e| format!("sets sysctl {key:?}: {e}"))
}

/// Where addresses may come from: what IPAM returned to this invocation, and the
/// grant's CIDRs.
struct Addresses<'i, 'a> {
    inv: &'i Invocation<'a>,
}

impl Addresses<'_, '_> {
    fn ipam(&self) -> impl Iterator<Item = &IpNet> {
        self.inv
            .ipam
            .iter()
            .flat_map(|r| r.ips.iter().map(|ip| &ip.address))
    }

    /// `net` lies wholly inside one granted CIDR.
    fn granted_subnet(&self, net: &IpNet) -> bool {
        self.inv
            .grant
            .cidrs
            .iter()
            .any(|g| g.prefix_len() <= net.prefix_len() && g.contains(&net.addr()))
    }

    /// A container's address is one IPAM returned (with its prefix), or granted.
    fn for_container(&self, a: &IpNet) -> bool {
        self.ipam().any(|ip| ip == a) || self.granted_subnet(a)
    }

    /// A host address (a gateway on a bridge) is in one of IPAM's subnets with that
    /// subnet's prefix, or granted.
    fn for_host(&self, a: &IpNet) -> bool {
        self.ipam()
            .any(|ip| ip.prefix_len() == a.prefix_len() && ip.contains(&a.addr()))
            || self.granted_subnet(a)
    }

    /// A next hop is in one of IPAM's subnets, or in a granted CIDR.
    fn for_gateway(&self, gw: &IpAddr) -> bool {
        self.ipam().any(|ip| ip.contains(gw)) || self.inv.grant.cidrs.iter().any(|g| g.contains(gw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::CniResult;
    use crate::plan::{AttachmentKey, LinkRef, Mac, RouteIntent};
    use crate::policy::{builtin_grant, Grant};

    fn grant() -> &'static Grant {
        static GRANT: std::sync::OnceLock<Grant> = std::sync::OnceLock::new();
        GRANT.get_or_init(|| builtin_grant("bridge").expect("bridge grant"))
    }

    fn ipam() -> &'static [CniResult] {
        static IPAM: std::sync::OnceLock<Vec<CniResult>> = std::sync::OnceLock::new();
        IPAM.get_or_init(|| {
            let r = serde_json::json!({"ips": [{"address": "10.22.0.5/16"}]});
            vec![serde_json::from_value(r).expect("result")]
        })
    }

    fn inv() -> Invocation<'static> {
        Invocation {
            ifname: "eth0",
            container: ContainerNs::Present,
            max_intents: 4,
            network: "net",
            container_id: "ctr",
            grant: grant(),
            ipam: ipam(),
        }
    }

    fn sysctl(side: Side, key: &str) -> Intent {
        Intent::SetSysctl {
            side,
            key: key.into(),
            value: "1".into(),
        }
    }

    fn address(link: LinkRef, address: &str) -> Intent {
        Intent::AddAddress {
            link,
            address: address.parse().expect("cidr"),
            ensure: false,
        }
    }

    #[test]
    fn promises_hold_for_a_bridge_plan() {
        let plan = [
            Intent::EnsureBridge {
                name: "cni0".into(),
                mtu: None,
                vlan_filtering: false,
                promisc: false,
            },
            Intent::CreateVeth {
                name: "eth0".into(),
                peer: "veth1".into(),
                mtu: None,
                mac: None,
            },
            sysctl(Side::Host, "net/ipv6/conf/veth1/accept_ra"),
            address(LinkRef::host("cni0"), "10.22.0.1/16"),
        ];
        check_accepted_plan(&plan, &inv()).expect("kept");
        let lo = [
            sysctl(Side::Container, "net/ipv4/conf/lo/rp_filter"),
            address(LinkRef::container("eth0"), "10.22.0.5/16"),
        ];
        check_accepted_plan(&lo, &inv()).expect("kept");
    }

    #[test]
    fn each_broken_promise_is_caught() {
        let route = |side| {
            Intent::AddRoute(RouteIntent {
                side,
                dst: "0.0.0.0/0".parse().expect("cidr"),
                gw: None,
                dev: None,
                priority: None,
                table: None,
                scope: None,
            })
        };
        let key = |network: &str| AttachmentKey {
            network: network.into(),
            container_id: "ctr".into(),
            ifname: "eth0".into(),
        };
        let broken = [
            route(Side::Host),
            Intent::SetLinkUp {
                link: LinkRef::host("eth0"),
            },
            Intent::SetLinkUp {
                link: LinkRef::container("eth1"),
            },
            Intent::SetLinkUp {
                link: LinkRef::container("eth0 "),
            },
            Intent::SetLinkDown {
                link: LinkRef::container("eth0"),
            },
            Intent::DeleteLink {
                link: LinkRef::container("lo"),
            },
            Intent::SpoofCheck {
                port: "veth1".into(),
                mac: Mac([0; 6]),
                container_id: "ctr".into(),
                ifname: "eth0".into(),
            },
            Intent::Unmasquerade { key: key("other") },
            Intent::GcMasquerade {
                network: "other".into(),
            },
            address(LinkRef::container("eth0"), "10.22.0.6/16"),
            address(LinkRef::container("eth0"), "10.22.0.5/24"),
            sysctl(Side::Container, "kernel/core_pattern"),
            sysctl(Side::Container, "net/ipv4/conf/eth0/forwarding"),
            sysctl(Side::Container, "net/ipv4/conf/eth1/rp_filter"),
            sysctl(Side::Container, "net/ipv4/conf/eth0/../rp_filter"),
            sysctl(Side::Host, "net/ipv4/conf/eth0/rp_filter"),
        ];
        for intent in broken {
            assert!(
                check_accepted_plan(std::slice::from_ref(&intent), &inv()).is_err(),
                "{intent}"
            );
        }
        let no_ns = Invocation {
            container: ContainerNs::Absent,
            ..inv()
        };
        let lo_up = [Intent::SetLinkUp {
            link: LinkRef::container("lo"),
        }];
        check_accepted_plan(&lo_up, &inv()).expect("lo is CNI_IFNAME's neighbour");
        assert!(check_accepted_plan(&lo_up, &no_ns).is_err());
        let five: Vec<Intent> = (0..5).map(|_| route(Side::Container)).collect();
        assert!(check_accepted_plan(&five, &inv()).is_err());
        check_accepted_plan(&[Intent::Unmasquerade { key: key("net") }], &inv()).expect("own");
    }

    #[test]
    fn patterns() {
        let p = |s: &str| vec![NamePattern(s.into())];
        assert!(matches_any(&p("cni*"), "cni0") && matches_any(&p("cni*"), "cni"));
        assert!(matches_any(&p("e*0"), "e0"));
        assert!(!matches_any(&p("ab*ba"), "aba"));
        assert!(matches_any(&p("*"), ""));
        assert!(!matches_any(&p("br0"), "br01"));
    }
}
