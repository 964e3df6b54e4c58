use super::super::error::ErrorCode;
use super::*;
use serde_json::json;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A bridge-like ADD result: bridge, host veth, container veth (with
/// sandbox), one v4 and one v6 address on interface 2, a default route
/// per family, one route using every optional field, and DNS. The
/// container interface also carries the 1.1-only mtu/socketPath/pciID
/// so the down-converters' dropping shows.
fn rich() -> CniResult {
    CniResult {
        interfaces: vec![
            Interface {
                name: "cni0".into(),
                mac: Some("0a:58:0a:58:00:01".into()),
                mtu: Some(1500),
                ..Interface::default()
            },
            Interface {
                name: "veth3243a1b2".into(),
                mac: Some("be:ef:12:34:56:78".into()),
                ..Interface::default()
            },
            Interface {
                name: "eth0".into(),
                mac: Some("0a:58:0a:58:00:05".into()),
                mtu: Some(1450),
                sandbox: Some("/var/run/netns/test-ns".into()),
                socket_path: Some("/run/vhost/eth0.sock".into()),
                pci_id: Some("0000:00:1f.6".into()),
            },
        ],
        ips: vec![
            IpConfig {
                interface: Some(2),
                address: net("10.88.0.5/16"),
                gateway: Some(ip("10.88.0.1")),
            },
            IpConfig {
                interface: Some(2),
                address: net("2001:4860:4860::5/64"),
                gateway: Some(ip("2001:4860:4860::1")),
            },
        ],
        routes: vec![
            Route::new(net("0.0.0.0/0"), Some(ip("10.88.0.1"))),
            Route::new(net("::/0"), Some(ip("2001:4860:4860::1"))),
            Route {
                dst: net("192.168.100.0/24"),
                gw: Some(ip("10.88.0.254")),
                mtu: Some(1400),
                advmss: Some(1360),
                priority: Some(100),
                table: Some(0),
                scope: Some(0),
            },
        ],
        dns: Dns {
            nameservers: vec!["10.88.0.1".into(), "2001:4860:4860::8888".into()],
            domain: Some("cluster.local".into()),
            search: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        },
    }
}

fn golden(v: CniVersion) -> Value {
    let text = match v {
        CniVersion::V010 => include_str!("../testdata/rich-0.1.0.json"),
        CniVersion::V020 => include_str!("../testdata/rich-0.2.0.json"),
        CniVersion::V030 => include_str!("../testdata/rich-0.3.0.json"),
        CniVersion::V031 => include_str!("../testdata/rich-0.3.1.json"),
        CniVersion::V040 => include_str!("../testdata/rich-0.4.0.json"),
        CniVersion::V100 => include_str!("../testdata/rich-1.0.0.json"),
        CniVersion::V110 => include_str!("../testdata/rich-1.1.0.json"),
    };
    serde_json::from_str(text).unwrap()
}

#[test]
fn golden_render_every_version() {
    for v in CniVersion::ALL {
        assert_eq!(render_result(&rich(), v).unwrap(), golden(v), "version {v}");
    }
}

#[test]
fn golden_string_is_pretty_with_newline() {
    for v in CniVersion::ALL {
        let s = render_result_string(&rich(), v).unwrap();
        assert!(s.ends_with("}\n"), "{v}");
        assert!(s.contains("\n    \"cniVersion\": "), "{v}");
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, golden(v));
    }
}

#[test]
fn golden_parse_round_trips() {
    for v in CniVersion::ALL {
        let g = golden(v);
        // Parsed with a different default: the result's own version wins.
        let other = if v == CniVersion::V110 {
            CniVersion::V010
        } else {
            CniVersion::V110
        };
        let parsed = parse_result(&g, other).unwrap();
        assert_eq!(render_result(&parsed, v).unwrap(), g, "version {v}");
    }
    // 1.x loses nothing.
    assert_eq!(
        parse_result(&golden(CniVersion::V110), CniVersion::V110).unwrap(),
        rich()
    );
    // 0.4.0 loses the 1.1-only interface fields.
    let mut expect = rich();
    for i in &mut expect.interfaces {
        i.mtu = None;
        i.socket_path = None;
        i.pci_id = None;
    }
    assert_eq!(
        parse_result(&golden(CniVersion::V040), CniVersion::V040).unwrap(),
        expect
    );
    // 0.2.0 keeps one address per family and reduced routes.
    let expect = CniResult {
        interfaces: vec![],
        ips: rich()
            .ips
            .into_iter()
            .map(|i| IpConfig {
                interface: None,
                ..i
            })
            .collect(),
        routes: rich()
            .routes
            .into_iter()
            .map(|r| Route::new(r.dst, r.gw))
            .collect(),
        dns: rich().dns,
    };
    // ip4's routes come before ip6's on the way up.
    let mut expect = expect;
    expect.routes = vec![
        expect.routes[0].clone(),
        expect.routes[2].clone(),
        expect.routes[1].clone(),
    ];
    assert_eq!(
        parse_result(&golden(CniVersion::V020), CniVersion::V020).unwrap(),
        expect
    );
}

#[test]
fn prev_result_without_version_uses_default() {
    let legacy = json!({"ip4": {"ip": "10.0.0.2/24"}});
    let r = parse_result(&legacy, CniVersion::V020).unwrap();
    assert_eq!(r.ips[0].address, net("10.0.0.2/24"));
    // The same object read as 1.x has no ips at all.
    assert_eq!(
        parse_result(&legacy, CniVersion::V100).unwrap(),
        CniResult::default()
    );
    let modern = json!({"ips": [{"version": "4", "address": "10.0.0.2/24"}], "cniVersion": ""});
    let r = parse_result(&modern, CniVersion::V040).unwrap();
    assert_eq!(r.ips.len(), 1);
    assert_eq!(r.ips[0].interface, None);
}

#[test]
fn l2_result_cannot_be_legacy() {
    let l2 = CniResult {
        interfaces: rich().interfaces,
        ..CniResult::default()
    };
    for v in [CniVersion::V010, CniVersion::V020] {
        let e = render_result(&l2, v).unwrap_err();
        assert_eq!(e.code, ErrorCode::Internal);
        assert_eq!(e.msg, "cannot convert: no valid IP addresses");
        assert!(render_result_string(&l2, v).is_err());
    }
    assert_eq!(
        render_result(&l2, CniVersion::V040).unwrap(),
        json!({
            "cniVersion": "0.4.0",
            "interfaces": [
                {"name": "cni0", "mac": "0a:58:0a:58:00:01"},
                {"name": "veth3243a1b2", "mac": "be:ef:12:34:56:78"},
                {"name": "eth0", "mac": "0a:58:0a:58:00:05", "sandbox": "/var/run/netns/test-ns"}
            ],
            "dns": {}
        })
    );
    let v1 = render_result(&l2, CniVersion::V110).unwrap();
    assert!(v1.get("dns").is_none());
    assert!(v1.get("ips").is_none());
    assert_eq!(v1["interfaces"][0]["mtu"], 1500);
}

#[test]
fn legacy_keeps_first_ip_per_family_and_drops_orphan_routes() {
    let r = CniResult {
        ips: vec![
            IpConfig {
                interface: Some(0),
                address: net("10.0.0.2/24"),
                gateway: None,
            },
            IpConfig {
                interface: Some(0),
                address: net("10.0.1.2/24"),
                gateway: Some(ip("10.0.1.1")),
            },
        ],
        routes: vec![
            Route::new(net("10.10.0.0/16"), None),
            Route::new(net("fd00::/8"), Some(ip("fd00::1"))),
        ],
        ..CniResult::default()
    };
    assert_eq!(
        render_result(&r, CniVersion::V010).unwrap(),
        json!({
            "cniVersion": "0.1.0",
            "ip4": {"ip": "10.0.0.2/24", "routes": [{"dst": "10.10.0.0/16"}]},
            "dns": {}
        })
    );
}

#[test]
fn loopback_shapes() {
    // What the reference loopback prints without a prevResult.
    let r = CniResult {
        interfaces: vec![Interface {
            name: "lo".into(),
            mac: Some("00:00:00:00:00:00".into()),
            sandbox: Some("/var/run/netns/x".into()),
            ..Interface::default()
        }],
        ips: vec![
            IpConfig {
                interface: Some(0),
                address: net("127.0.0.1/8"),
                gateway: None,
            },
            IpConfig {
                interface: Some(0),
                address: net("::1/128"),
                gateway: None,
            },
        ],
        ..CniResult::default()
    };
    assert_eq!(
        render_result(&r, CniVersion::V100).unwrap(),
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": "/var/run/netns/x"}],
            "ips": [{"interface": 0, "address": "127.0.0.1/8"}, {"interface": 0, "address": "::1/128"}]
        })
    );
    assert_eq!(
        render_result(&r, CniVersion::V020).unwrap(),
        json!({"cniVersion": "0.2.0", "ip4": {"ip": "127.0.0.1/8"}, "ip6": {"ip": "::1/128"}, "dns": {}})
    );
}

#[test]
fn empty_result_renders() {
    let r = CniResult::default();
    assert_eq!(
        render_result(&r, CniVersion::V110).unwrap(),
        json!({"cniVersion": "1.1.0"})
    );
    assert_eq!(
        render_result(&r, CniVersion::V031).unwrap(),
        json!({"cniVersion": "0.3.1", "dns": {}})
    );
}

#[test]
fn zero_values_like_go() {
    let v = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "mac": "", "mtu": 0, "sandbox": ""}],
        "ips": [{"address": "10.0.0.2/24", "gateway": "", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "gw": null, "mtu": 0, "advmss": 0, "priority": 0, "table": 0, "scope": 0}],
        "dns": {"nameservers": null, "domain": ""}
    });
    let r = parse_result(&v, CniVersion::V110).unwrap();
    assert_eq!(
        r.interfaces[0],
        Interface {
            name: "eth0".into(),
            ..Interface::default()
        }
    );
    assert_eq!(r.ips[0].gateway, None);
    assert_eq!(r.ips[0].interface, Some(0));
    assert_eq!(r.routes[0].mtu, None);
    assert_eq!(r.routes[0].table, Some(0));
    assert!(r.dns.is_empty());
    assert_eq!(
        render_result(&r, CniVersion::V110).unwrap(),
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0"}],
            "ips": [{"address": "10.0.0.2/24", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0", "table": 0, "scope": 0}]
        })
    );
    // Some(0)/Some("") built in code are omitted the same way.
    let r = CniResult {
        interfaces: vec![Interface {
            name: String::new(),
            mac: Some(String::new()),
            mtu: Some(0),
            ..Interface::default()
        }],
        ..CniResult::default()
    };
    assert_eq!(
        render_result(&r, CniVersion::V110).unwrap(),
        json!({"cniVersion": "1.1.0", "interfaces": [{"name": ""}]})
    );
}

#[test]
fn parse_errors_name_the_path() {
    let cases = [
        (json!([]), "expected a JSON object, found array"),
        (
            json!({"cniVersion": 1}),
            "cniVersion: expected a string, found number",
        ),
        (
            json!({"cniVersion": "0.5.0"}),
            "unsupported CNI result version \"0.5.0\"",
        ),
        (json!({"ips": {}}), "ips: expected an array, found object"),
        (
            json!({"ips": [{"address": "10.0.0.1"}]}),
            "ips[0].address: invalid CIDR address \"10.0.0.1\"",
        ),
        (json!({"ips": [{}]}), "ips[0].address: missing"),
        (
            json!({"ips": [{"address": "10.0.0.1/8", "gateway": "x"}]}),
            "ips[0].gateway: invalid IP address \"x\"",
        ),
        (
            json!({"ips": [{"address": "10.0.0.1/8", "interface": -1}]}),
            "ips[0].interface: expected an integer 0-4294967295, found -1",
        ),
        (
            json!({"interfaces": [{"name": 5}]}),
            "interfaces[0].name: expected a string, found number",
        ),
        (
            json!({"interfaces": ["eth0"]}),
            "interfaces[0]: expected an object, found string",
        ),
        (
            json!({"routes": [{"dst": "0.0.0.0/0", "scope": 300}]}),
            "routes[0].scope: 300 is not a route scope (0-255)",
        ),
        (
            json!({"routes": [{"gw": "10.0.0.1"}]}),
            "routes[0].dst: missing",
        ),
        (
            json!({"dns": {"nameservers": [1]}}),
            "dns.nameservers[0]: expected a string, found number",
        ),
        (json!({"dns": "x"}), "dns: expected an object, found string"),
        (
            json!({"cniVersion": "0.2.0", "ip4": {"gateway": "10.0.0.1"}}),
            "ip4.ip: missing",
        ),
        (
            json!({"cniVersion": "0.2.0", "ip6": {"ip": "fd00::2/64", "routes": [{"dst": 1}]}}),
            "ip6.routes[0].dst: expected a string, found number",
        ),
    ];
    for (v, msg) in cases {
        let e = parse_result(&v, CniVersion::V110).unwrap_err();
        assert_eq!(e.code, ErrorCode::DecodingFailure, "{v}");
        assert_eq!(e.msg, msg, "{v}");
    }
}

#[test]
fn deserialize_and_serialize() {
    let r: CniResult = serde_json::from_value(golden(CniVersion::V040)).unwrap();
    assert_eq!(r.ips.len(), 2);
    let v = serde_json::to_value(rich()).unwrap();
    assert!(v.get("cniVersion").is_none());
    let mut g = golden(CniVersion::V110);
    if let Value::Object(o) = &mut g {
        o.remove("cniVersion");
    }
    assert_eq!(v, g);
    assert!(serde_json::from_value::<CniResult>(json!({"ips": 1})).is_err());
}
