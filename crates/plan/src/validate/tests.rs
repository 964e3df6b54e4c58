use super::*;
use crate::policy::builtin_grant;
use crate::RouteIntent;

fn grant() -> &'static Grant {
    static GRANT: std::sync::OnceLock<Grant> = std::sync::OnceLock::new();
    GRANT.get_or_init(|| builtin_grant("bridge").expect("bridge grant"))
}

fn ipam() -> &'static [CniResult] {
    static IPAM: std::sync::OnceLock<Vec<CniResult>> = std::sync::OnceLock::new();
    IPAM.get_or_init(|| {
        let r: CniResult = serde_json::from_value(serde_json::json!({
            "ips": [{"address": "10.22.0.5/16", "gateway": "10.22.0.1"}]
        }))
        .expect("result");
        vec![r]
    })
}

fn inv() -> Invocation<'static> {
    Invocation {
        ifname: "eth0",
        container: ContainerNs::Present,
        max_intents: 10,
        network: "net",
        container_id: "ctr",
        grant: grant(),
        ipam: ipam(),
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
    refused(&plan, &inv()).expect("accepted");
}

#[test]
fn foreign_host_links_are_refused() {
    let plan = vec![Intent::SetLinkUp {
        link: LinkRef::host("eth0"),
    }];
    let e = refused(&plan, &inv()).expect_err("refused");
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
    assert!(refused(&plan, &inv()).is_err());
    let plan = vec![Intent::SetLinkUp {
        link: LinkRef::container("lo"),
    }];
    refused(&plan, &inv()).expect("lo is fine");
    let no_ns = Invocation {
        container: ContainerNs::Absent,
        ..inv()
    };
    assert!(refused(&plan, &no_ns).is_err());
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
        let e = refused(&plan, &inv()).expect_err(bad);
        assert!(e.msg.contains("valid interface name"), "{bad}: {}", e.msg);
    }
    let plan = vec![veth(); 11];
    let e = refused(&plan, &inv()).expect_err("too many");
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
    assert!(refused(&[route], &inv()).is_err());
    let sysctl = Intent::SetSysctl {
        side: Side::Host,
        key: "net/ipv4/conf/eth0/rp_filter".into(),
        value: "0".into(),
    };
    assert!(refused(&[sysctl], &inv()).is_err());
    let escape = Intent::SetSysctl {
        side: Side::Container,
        key: "net/ipv4/conf/eth0/../../../kernel/core_pattern".into(),
        value: "x".into(),
    };
    assert!(refused(&[escape], &inv()).is_err());
}

fn addr(link: LinkRef, a: &str) -> Intent {
    Intent::AddAddress {
        link,
        address: a.parse().expect("cidr"),
        ensure: false,
    }
}

#[test]
fn addresses_come_from_ipam_or_grants() {
    refused(&[addr(LinkRef::container("eth0"), "10.22.0.5/16")], &inv()).expect("ipam ip");
    let e = refused(&[addr(LinkRef::container("eth0"), "10.22.0.6/16")], &inv())
        .expect_err("not ipam's");
    assert!(e.msg.contains("10.22.0.6/16"), "{}", e.msg);
    let bridge = Intent::EnsureBridge {
        name: "cni0".into(),
        mtu: None,
        vlan_filtering: false,
        promisc: false,
    };
    refused(
        &[bridge.clone(), addr(LinkRef::host("cni0"), "10.22.0.1/16")],
        &inv(),
    )
    .expect("gateway in ipam subnet");
    assert!(refused(
        &[bridge, addr(LinkRef::host("cni0"), "192.168.7.1/24")],
        &inv()
    )
    .is_err());
    let mut g = grant().clone();
    g.cidrs = vec!["192.168.7.0/24".parse().expect("cidr")];
    let granted = Invocation { grant: &g, ..inv() };
    refused(
        &[addr(LinkRef::container("eth0"), "192.168.7.9/24")],
        &granted,
    )
    .expect("granted");
}

#[test]
fn masquerade_only_own_addresses_and_when_granted() {
    let key = crate::AttachmentKey {
        network: "net".into(),
        container_id: "ctr".into(),
        ifname: "eth0".into(),
    };
    let masq = |src: &str| Intent::Masquerade {
        source: src.parse().expect("cidr"),
        key: key.clone(),
        backend: crate::MasqBackend::Nftables,
    };
    refused(&[masq("10.22.0.5/16")], &inv()).expect("own address");
    let e = refused(&[masq("10.99.0.0/16")], &inv()).expect_err("foreign subnet");
    assert!(e.msg.contains("10.99.0.0/16"), "{}", e.msg);
    let mut g = grant().clone();
    g.masquerade = false;
    let e = refused(&[masq("10.22.0.5/16")], &Invocation { grant: &g, ..inv() })
        .expect_err("not granted");
    assert!(e.msg.contains("not granted"), "{}", e.msg);
}

#[test]
fn ungranted_kinds_and_uplinks() {
    let none = Grant::default();
    let e = refused(
        &[Intent::SetLinkUp {
            link: LinkRef::container("lo"),
        }],
        &Invocation {
            grant: &none,
            ..inv()
        },
    )
    .expect_err("nothing granted");
    assert!(e.msg.contains("not granted to this plugin"), "{}", e.msg);
    let attach = |master: &str| {
        vec![
            veth(),
            Intent::AttachPort {
                port: "veth0badc0de".into(),
                master: master.into(),
                hairpin: false,
                isolated: false,
            },
        ]
    };
    assert!(
        refused(&attach("eth0"), &inv()).is_err(),
        "host uplink not granted"
    );
    let mut g = grant().clone();
    g.uplinks = vec![crate::policy::NamePattern("eth*".into())];
    refused(&attach("eth0"), &Invocation { grant: &g, ..inv() }).expect("uplink granted");
    let mut g = grant().clone();
    g.bridges = vec![crate::policy::NamePattern("cni*".into())];
    let br = |n: &str| Intent::EnsureBridge {
        name: n.into(),
        mtu: None,
        vlan_filtering: false,
        promisc: false,
    };
    refused(&[br("cni0")], &Invocation { grant: &g, ..inv() }).expect("granted bridge");
    assert!(refused(&[br("docker0")], &Invocation { grant: &g, ..inv() }).is_err());
}

#[test]
fn granted_uplink_names_are_still_checked() {
    let mut g = grant().clone();
    g.uplinks = vec![crate::policy::NamePattern("*".into())];
    for bad in ["", "eth0/../../kernel", "a name with spaces"] {
        let plan = vec![
            veth(),
            Intent::AttachPort {
                port: "veth0badc0de".into(),
                master: bad.into(),
                hairpin: false,
                isolated: false,
            },
        ];
        let e = refused(&plan, &Invocation { grant: &g, ..inv() }).expect_err(bad);
        assert!(e.msg.contains("valid interface name"), "{bad}: {}", e.msg);
    }
}

/// The plan's refusal as the runtime will see it.
fn refused(intents: &[Intent], inv: &Invocation<'_>) -> Result<(), CniError> {
    validate_plan(intents, inv).map_err(CniError::from)
}

#[test]
fn namespace_wide_sysctls_are_never_a_links() {
    let grant = Grant {
        bridges: vec![crate::policy::NamePattern("*".into())],
        sysctls: vec![crate::policy::SysctlPattern(
            "net/ipv4/conf/<if>/proxy_arp".into(),
        )],
        ..grant().clone()
    };
    for name in ["all", "default"] {
        let plan = [
            Intent::EnsureBridge {
                name: name.into(),
                mtu: None,
                vlan_filtering: false,
                promisc: false,
            },
            Intent::SetSysctl {
                side: Side::Host,
                key: format!("net/ipv4/conf/{name}/proxy_arp"),
                value: "1".into(),
            },
        ];
        let e = refused(
            &plan,
            &Invocation {
                grant: &grant,
                ..inv()
            },
        )
        .expect_err(name);
        assert!(e.msg.contains("sysctl is not granted"), "{name}: {}", e.msg);
    }
}

/// A host link is the plan's only from the intent that creates it on: a
/// deletion placed before that intent deleted a node link of the same name.
#[test]
fn host_links_are_owned_from_their_creation_on() {
    let mut g = grant().clone();
    g.intents.push(IntentKind::EnsureHostVeth);
    let mut i = inv();
    i.grant = &g;
    let create = Intent::EnsureHostVeth {
        name: "uplink0".into(),
        peer: "uplink0p".into(),
        mtu: None,
    };
    let delete = Intent::DeleteLink {
        link: LinkRef::host("uplink0"),
    };
    let e = refused(&[delete.clone(), create.clone()], &i).expect_err("refused");
    assert!(
        e.msg.contains("intent #0") && e.msg.contains("not created by this plan"),
        "{}",
        e.msg
    );
    refused(&[create, delete], &i).expect("deleting what it created is fine");
}

fn ipam_result(address: &str, gateway: &str) -> Vec<CniResult> {
    vec![serde_json::from_value(serde_json::json!({
        "ips": [{"address": address, "gateway": gateway}]
    }))
    .expect("result")]
}

/// A tenant chooses IPAM's subnet: public space (which the node would route
/// to the tenant's bridge) is refused unless the administrator opened it.
#[test]
fn address_space_bounds_ipam_and_every_address() {
    let public = ipam_result("8.8.8.2/24", "8.8.8.1");
    let mut i = inv();
    i.ipam = &public;
    let e = validate_plan(&[veth()], &i).expect_err("public space");
    assert!(
        matches!(&e, Refusal::OutsideAddressSpace { value, .. } if value == "8.8.8.2/24"),
        "{e}"
    );
    assert_eq!(CniError::from(e).code, ErrorCode::PolicyRejected);

    // The administrator narrows the space: private space outside it is refused too.
    let mut narrow = grant().clone();
    narrow.address_space = Some(vec!["10.22.0.0/16".parse().expect("net")]);
    narrow.cidrs = vec!["10.0.0.0/8".parse().expect("net")];
    let mut i = inv();
    i.grant = &narrow;
    refused(&[veth()], &i).expect("IPAM's result is inside");
    let outside = Intent::AddAddress {
        link: LinkRef::container("eth0"),
        address: "10.99.0.5/24".parse().expect("net"),
        ensure: false,
    };
    let e = refused(&[veth(), outside], &i).expect_err("granted CIDR, outside the space");
    assert!(
        e.msg.contains("outside the address space") && e.msg.contains("10.99.0.5/24"),
        "{}",
        e.msg
    );
    let masq = Intent::Masquerade {
        source: "10.99.0.5/24".parse().expect("net"),
        key: crate::AttachmentKey {
            network: "net".into(),
            container_id: "ctr".into(),
            ifname: "eth0".into(),
        },
        backend: crate::MasqBackend::Nftables,
    };
    let e = refused(&[masq], &i).expect_err("masquerade outside");
    assert!(e.msg.contains("masquerade source is outside"), "{}", e.msg);
    // An IPAM gateway outside the space counts as well.
    let gw = ipam_result("10.22.0.5/16", "10.23.0.1");
    i.ipam = &gw;
    let e = validate_plan(&[veth()], &i).expect_err("gateway");
    assert!(e.to_string().contains("gateway 10.23.0.1"), "{e}");
}

/// Loopback addresses on the container's `lo` are outside the address space
/// and need no room in it; on any other link they do.
#[test]
fn loopback_on_lo_needs_no_address_space() {
    let mut g = grant().clone();
    g.cidrs = vec!["127.0.0.0/8".parse().expect("net")];
    let mut i = inv();
    i.grant = &g;
    let on = |name: &str| Intent::AddAddress {
        link: LinkRef::container(name),
        address: "127.0.0.1/8".parse().expect("net"),
        ensure: true,
    };
    refused(&[on("lo")], &i).expect("lo's own loopback");
    let e = refused(&[veth(), on("eth0")], &i).expect_err("on eth0");
    assert!(e.msg.contains("outside the address space"), "{}", e.msg);
}
