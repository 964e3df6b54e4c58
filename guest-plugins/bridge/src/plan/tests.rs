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
    assert!(
        !kinds(&add(&conf2, &inputs(None)).expect("plan").intents).contains(&"flush-port-vlans")
    );
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
    assert!(plan
        .intents
        .iter()
        .any(|i| matches!(i, Intent::SpoofCheck(s) if s.mac == mac && s.port == "veth0a1b2c3d")));
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
    assert!(plan.intents.iter().any(
        |i| matches!(i, Intent::AddPortVlan(v) if v.port == "veth99999999" && v.vid == 42 && v.pvid)
    ));
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
