use super::*;
use crate::netlink::{BridgeVlanFlags, NetError, Netlink, RouteSpec};
use crate::netns::NetnsHandle;
use ipnet::IpNet;
use nix::errno::Errno;
use std::time::Duration;

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
