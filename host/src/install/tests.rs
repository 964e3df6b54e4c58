use super::*;

fn net(subnets: &[&str]) -> NetworkOptions {
    NetworkOptions {
        conf_dir: PathBuf::from("/nonexistent"),
        file_name: "10-wasm-cni.conflist".into(),
        name: "pods".into(),
        cni_version: "1.0.0".into(),
        bridge: "cni0".into(),
        subnets: subnets.iter().map(|s| s.parse().expect("cidr")).collect(),
        ip_masq: true,
        mtu: Some(1450),
        chain: vec!["portmap".into(), "tuning".into()],
    }
}

#[test]
fn dual_stack_conflist() {
    let (v, text) = build_conflist(&net(&["10.244.1.0/24", "fd00:1::/64"])).expect("ok");
    assert!(text.ends_with("}\n"));
    assert_eq!(v["name"], "pods");
    let bridge = &v["plugins"][0];
    assert_eq!(bridge["type"], "bridge");
    assert_eq!(bridge["mtu"], 1450);
    assert_eq!(
        bridge["ipam"]["ranges"],
        json!([[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:1::/64"}]])
    );
    assert_eq!(
        bridge["ipam"]["routes"],
        json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
    );
    assert_eq!(v["plugins"][1]["capabilities"]["portMappings"], true);
    assert_eq!(v["plugins"][2], json!({"type": "tuning"}));
}

#[test]
fn bad_values_are_named() {
    let cases: Vec<(NetworkOptions, &str)> = vec![
        (net(&["10.244.1.7/24"]), "10.244.1.7/24"),
        (net(&["10.0.0.0/31"]), "10.0.0.0/31"),
        (net(&[]), "--subnet"),
        (
            NetworkOptions {
                name: "bad name".into(),
                ..net(&["10.0.0.0/24"])
            },
            "bad name",
        ),
        (
            NetworkOptions {
                bridge: "a-very-long-bridge-name".into(),
                ..net(&["10.0.0.0/24"])
            },
            "a-very-long-bridge-name",
        ),
        (
            NetworkOptions {
                chain: vec!["../evil".into()],
                ..net(&["10.0.0.0/24"])
            },
            "../evil",
        ),
        (
            NetworkOptions {
                file_name: "../x.conflist".into(),
                ..net(&["10.0.0.0/24"])
            },
            "../x.conflist",
        ),
        (
            NetworkOptions {
                cni_version: "9.9.9".into(),
                ..net(&["10.0.0.0/24"])
            },
            "9.9.9",
        ),
        (
            NetworkOptions {
                mtu: Some(20),
                ..net(&["10.0.0.0/24"])
            },
            "20",
        ),
    ];
    for (n, named) in cases {
        let e = build_conflist(&n).expect_err(named);
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
        assert!(e.msg.contains(named), "{named}: {}", e.msg);
    }
}
