//! Every intent of a plan is checked before the first one is applied. A rejected
//! plan changes nothing, and the error names the intent, the rule and the value.
//!
//! The rules here are the ones that hold for every plugin, whatever it is granted:
//! the container side is only `CNI_IFNAME` (and `lo`) in the invocation's own
//! namespace; the host side is only links this plan creates, plus the bridges it
//! ensures; names are valid for the kernel; sysctls come from a fixed allow-list.

use std::collections::BTreeSet;

use crate::cni::{CniError, ErrorCode};
use crate::plan::{Intent, LinkRef, Side};

/// Linux's IFNAMSIZ minus the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;

/// What the validator needs to know about the invocation.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// The state of the invocation's container namespace.
    pub container: ContainerNs,
    /// Largest number of intents accepted.
    pub max_intents: usize,
    /// The network's `name`.
    pub network: &'a str,
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
}

/// The invocation's container namespace, as far as validation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerNs {
    /// `CNI_NETNS` is open.
    Present,
    /// DEL for a namespace that is already gone: container-side intents are
    /// checked, then skipped when applying.
    Gone,
    /// The verb has no container (GC, STATUS): container-side intents are refused.
    Absent,
}

/// A rule that refused an intent.
fn reject(index: usize, intent: &Intent, rule: &str, value: &str) -> CniError {
    CniError::new(
        ErrorCode::PolicyRejected,
        format!(
            "intent #{index} ({}) rejected: {rule}: {value:?}",
            intent.kind()
        ),
    )
    .with_details(format!("intent: {intent}; nothing was applied"))
}

/// Whether `name` is a valid Linux interface name.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// Check a whole plan; the first violation is returned.
pub fn validate_plan(intents: &[Intent], inv: &Invocation<'_>) -> Result<(), CniError> {
    if intents.len() > inv.max_intents {
        return Err(CniError::new(
            ErrorCode::LimitExceeded,
            format!(
                "plan has {} intents, more than the limit of {}",
                intents.len(),
                inv.max_intents
            ),
        ));
    }
    // Host links the plan itself creates (and may therefore configure), gathered
    // first so that order inside the plan does not matter for ownership.
    let mut owned_host: BTreeSet<&str> = BTreeSet::new();
    for intent in intents {
        match intent {
            Intent::EnsureBridge { name, .. } => {
                owned_host.insert(name);
            }
            Intent::CreateVeth { peer, .. } => {
                owned_host.insert(peer);
            }
            _ => {}
        }
    }
    for (index, intent) in intents.iter().enumerate() {
        for link in intent.links() {
            check_link(index, intent, &link, inv, &owned_host)?;
        }
        match intent {
            Intent::SetSysctl { side, key, .. } => {
                check_sysctl(index, intent, *side, key, inv, &owned_host)?;
            }
            Intent::AddRoute(r) if r.side == Side::Host => {
                return Err(reject(
                    index,
                    intent,
                    "routes in the host namespace are not granted",
                    &r.dst.to_string(),
                ));
            }
            Intent::CreateVeth { name, .. } if name != inv.ifname => {
                return Err(reject(
                    index,
                    intent,
                    "the container end of a veth must be CNI_IFNAME",
                    name,
                ));
            }
            Intent::Masquerade { key, .. } | Intent::Unmasquerade { key }
                if key.network != inv.network
                    || key.container_id != inv.container_id
                    || key.ifname != inv.ifname =>
            {
                return Err(reject(
                    index,
                    intent,
                    "masquerade rules belong to this network and attachment only",
                    &format!("{}/{}/{}", key.network, key.container_id, key.ifname),
                ));
            }
            Intent::GcMasquerade { network } if network != inv.network => {
                return Err(reject(
                    index,
                    intent,
                    "GC may only touch this network's rules",
                    network,
                ));
            }
            Intent::DeleteLink { link } if link.side == Side::Container && link.name == "lo" => {
                return Err(reject(index, intent, "lo cannot be deleted", &link.name));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_link(
    index: usize,
    intent: &Intent,
    link: &LinkRef,
    inv: &Invocation<'_>,
    owned_host: &BTreeSet<&str>,
) -> Result<(), CniError> {
    if !valid_ifname(&link.name) {
        return Err(reject(
            index,
            intent,
            "not a valid interface name (1-15 bytes, no '/', ':' or whitespace)",
            &link.name,
        ));
    }
    match link.side {
        Side::Container => {
            if inv.container == ContainerNs::Absent {
                return Err(reject(
                    index,
                    intent,
                    "the request has no container namespace",
                    &link.name,
                ));
            }
            if link.name != inv.ifname && link.name != "lo" {
                return Err(reject(
                    index,
                    intent,
                    "only CNI_IFNAME and lo may be touched in the container",
                    &link.name,
                ));
            }
        }
        Side::Host => {
            if !owned_host.contains(link.name.as_str()) {
                return Err(reject(
                    index,
                    intent,
                    "host link is not created by this plan",
                    &link.name,
                ));
            }
        }
    }
    Ok(())
}

/// The sysctls a plugin may set: per-interface keys of links it may touch, and the
/// forwarding switches a gateway needs.
fn check_sysctl(
    index: usize,
    intent: &Intent,
    side: Side,
    key: &str,
    inv: &Invocation<'_>,
    owned_host: &BTreeSet<&str>,
) -> Result<(), CniError> {
    const GLOBAL: &[&str] = &["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"];
    const PER_IF_V4: &[&str] = &["arp_notify", "proxy_arp", "rp_filter"];
    const PER_IF_V6: &[&str] = &[
        "accept_ra",
        "accept_dad",
        "enhanced_dad",
        "disable_ipv6",
        "keep_addr_on_down",
    ];
    if GLOBAL.contains(&key) {
        return Ok(());
    }
    let parts: Vec<&str> = key.split('/').collect();
    let allowed_if = |name: &str| match side {
        Side::Container => {
            inv.container != ContainerNs::Absent && (name == inv.ifname || name == "lo")
        }
        Side::Host => owned_host.contains(name),
    };
    let ok = match parts.as_slice() {
        ["net", "ipv4", "conf", ifname, leaf] => PER_IF_V4.contains(leaf) && allowed_if(ifname),
        ["net", "ipv6", "conf", ifname, leaf] => PER_IF_V6.contains(leaf) && allowed_if(ifname),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(reject(
            index,
            intent,
            "sysctl is not on the allow-list for this namespace and link",
            key,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RouteIntent;

    fn inv() -> Invocation<'static> {
        Invocation {
            ifname: "eth0",
            container: ContainerNs::Present,
            max_intents: 10,
            network: "net",
            container_id: "ctr",
        }
    }

    fn veth() -> Intent {
        Intent::CreateVeth {
            name: "eth0".into(),
            peer: "veth0badc0de".into(),
            mtu: None,
            mac: None,
        }
    }

    #[test]
    fn bridge_like_plan_passes() {
        let plan = vec![
            Intent::EnsureBridge {
                name: "cni0".into(),
                mtu: None,
                vlan_filtering: false,
                promisc: false,
            },
            veth(),
            Intent::AttachPort {
                port: "veth0badc0de".into(),
                master: "cni0".into(),
                hairpin: false,
                isolated: false,
            },
            Intent::SetLinkUp {
                link: LinkRef::host("veth0badc0de"),
            },
            Intent::SetSysctl {
                side: Side::Container,
                key: "net/ipv4/conf/eth0/arp_notify".into(),
                value: "1".into(),
            },
            Intent::SetLinkUp {
                link: LinkRef::container("eth0"),
            },
        ];
        validate_plan(&plan, &inv()).expect("accepted");
    }

    #[test]
    fn foreign_host_links_are_refused() {
        let plan = vec![Intent::SetLinkDown {
            link: LinkRef::host("eth0"),
        }];
        let e = validate_plan(&plan, &inv()).expect_err("refused");
        assert_eq!(e.code, ErrorCode::PolicyRejected);
        assert!(
            e.msg.contains("#0") && e.msg.contains("\"eth0\""),
            "{}",
            e.msg
        );
    }

    #[test]
    fn container_side_is_only_ifname_and_lo() {
        let plan = vec![Intent::SetLinkUp {
            link: LinkRef::container("eth1"),
        }];
        assert!(validate_plan(&plan, &inv()).is_err());
        let plan = vec![Intent::SetLinkUp {
            link: LinkRef::container("lo"),
        }];
        validate_plan(&plan, &inv()).expect("lo is fine");
        let no_ns = Invocation {
            container: ContainerNs::Absent,
            ..inv()
        };
        assert!(validate_plan(&plan, &no_ns).is_err());
    }

    #[test]
    fn bad_names_and_counts() {
        for bad in ["", "sixteen-chars-xx", "a/b", "a:b", "a b", ".", ".."] {
            let plan = vec![Intent::EnsureBridge {
                name: bad.into(),
                mtu: None,
                vlan_filtering: false,
                promisc: false,
            }];
            let e = validate_plan(&plan, &inv()).expect_err(bad);
            assert!(e.msg.contains("valid interface name"), "{bad}: {}", e.msg);
        }
        let plan = vec![veth(); 11];
        let e = validate_plan(&plan, &inv()).expect_err("too many");
        assert_eq!(e.code, ErrorCode::LimitExceeded);
    }

    #[test]
    fn host_routes_and_foreign_sysctls_are_refused() {
        let route = Intent::AddRoute(RouteIntent {
            side: Side::Host,
            dst: "0.0.0.0/0".parse().expect("cidr"),
            gw: None,
            dev: None,
            priority: None,
            table: None,
            scope: None,
        });
        assert!(validate_plan(&[route], &inv()).is_err());
        let sysctl = Intent::SetSysctl {
            side: Side::Host,
            key: "net/ipv4/conf/eth0/rp_filter".into(),
            value: "0".into(),
        };
        assert!(validate_plan(&[sysctl], &inv()).is_err());
        let escape = Intent::SetSysctl {
            side: Side::Container,
            key: "net/ipv4/conf/eth0/../../../kernel/core_pattern".into(),
            value: "x".into(),
        };
        assert!(validate_plan(&[escape], &inv()).is_err());
    }
}
