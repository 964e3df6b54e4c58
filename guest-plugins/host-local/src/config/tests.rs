use super::*;
use crate::testutil::ip;
use cni::go_quote;

fn conf(version: &str, ipam: &str) -> String {
    format!(r#"{{"cniVersion":"{version}","name":"mynet","type":"bridge","ipam":{ipam}}}"#)
}

fn ipam(ipam: &str) -> String {
    conf("1.1.0", ipam)
}

fn ranges(sets: &str) -> String {
    ipam(&format!(r#"{{"type":"host-local","ranges":{sets}}}"#))
}

fn ok(config: &str) -> IpamConfig {
    match load(config, &[]) {
        Ok(c) => c,
        Err(e) => panic!("{config}: {e}"),
    }
}

fn err(config: &str) -> CniError {
    load(config, &[]).expect_err(config)
}

fn msg(config: &str) -> String {
    let e = err(config);
    assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{e}");
    e.msg
}

fn args(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn range(subnet: &str, prefix: u8, start: &str, end: &str, gw: &str) -> Range {
    Range {
        subnet: ip(subnet),
        prefix,
        range_start: ip(start),
        range_end: ip(end),
        gateway: ip(gw),
    }
}

// --- decoding ---------------------------------------------------------------

#[test]
fn not_json_is_a_decoding_failure() {
    let e = err("{");
    assert_eq!(e.code, ErrorCode::DecodingFailure);
    assert!(
        e.msg.starts_with("error unmarshall network config: "),
        "{}",
        e.msg
    );
}

#[test]
fn top_level_must_be_an_object() {
    assert_eq!(
        msg("[1]"),
        "network configuration: expected an object, got [1]"
    );
}

#[test]
fn missing_or_null_ipam_is_refused() {
    assert_eq!(
        msg(r#"{"cniVersion":"1.0.0","name":"n"}"#),
        "IPAM config missing 'ipam' key"
    );
    assert_eq!(
        msg(r#"{"cniVersion":"1.0.0","name":"n","ipam":null}"#),
        "IPAM config missing 'ipam' key"
    );
}

#[test]
fn wrong_json_types_name_the_key_and_value() {
    assert_eq!(msg(&ipam("5")), "ipam: expected an object, got 5");
    assert_eq!(
        msg(&ranges(r#""x""#)),
        r#"ipam.ranges: expected an array, got "x""#
    );
    assert_eq!(
        msg(&ranges(r#"[{"subnet":"10.0.0.0/8"}]"#)),
        r#"ipam.ranges[0]: expected an array, got {"subnet":"10.0.0.0/8"}"#
    );
    assert_eq!(
        msg(&ranges("[[1]]")),
        "ipam.ranges[0][0]: expected an object, got 1"
    );
    assert_eq!(
        msg(&ranges(r#"[[{"subnet":24}]]"#)),
        "ipam.ranges[0][0].subnet: expected a string, got 24"
    );
    assert_eq!(
        msg(&ipam(r#"{"subnet":"10.0.0.0/8","dataDir":5}"#)),
        "ipam.dataDir: expected a string, got 5"
    );
    assert_eq!(
        msg(&ipam(r#"{"subnet":"10.0.0.0/8","resolvConf":[]}"#)),
        "ipam.resolvConf: expected a string, got []"
    );
    assert_eq!(
        msg(&ipam(r#"{"subnet":"10.0.0.0/8","type":1}"#)),
        "ipam.type: expected a string, got 1"
    );
    assert_eq!(
        msg(r#"{"cniVersion":1,"name":"n","ipam":{"subnet":"10.0.0.0/8"}}"#),
        "cniVersion: expected a string, got 1"
    );
    assert_eq!(
        msg(r#"{"name":"n","runtimeConfig":[],"ipam":{"subnet":"10.0.0.0/8"}}"#),
        "runtimeConfig: expected an object, got []"
    );
    assert_eq!(
        msg(r#"{"name":"n","args":{"cni":1},"ipam":{"subnet":"10.0.0.0/8"}}"#),
        "args.cni: expected an object, got 1"
    );
}

#[test]
fn long_values_are_cut_in_messages() {
    let long = "x".repeat(200);
    let m = msg(&ranges(&format!(r#""{long}""#)));
    assert!(m.ends_with("...") && m.len() < 120, "{m}");
}

#[test]
fn bad_addresses_name_the_key_and_value() {
    assert_eq!(
        msg(&ranges(r#"[[{"subnet":"10.1.2.0"}]]"#)),
        "ipam.ranges[0][0].subnet: invalid CIDR address: 10.1.2.0"
    );
    assert_eq!(
        msg(&ranges(r#"[[{"subnet":""}]]"#)),
        "ipam.ranges[0][0].subnet: invalid CIDR address: "
    );
    assert_eq!(
        msg(&ranges(
            r#"[[{"subnet":"10.1.2.0/24","rangeStart":"10.1.2"}]]"#
        )),
        "ipam.ranges[0][0].rangeStart: invalid IP address: 10.1.2"
    );
    assert_eq!(
        msg(&ranges(r#"[[{"subnet":"10.1.2.0/24","rangeEnd":"x"}]]"#)),
        "ipam.ranges[0][0].rangeEnd: invalid IP address: x"
    );
    assert_eq!(
        msg(&ranges(r#"[[{"subnet":"10.1.2.0/24","gateway":"x"}]]"#)),
        "ipam.ranges[0][0].gateway: invalid IP address: x"
    );
    assert_eq!(
        msg(&ipam(r#"{"subnet":"10.1.2.0/33"}"#)),
        "ipam.subnet: invalid CIDR address: 10.1.2.0/33"
    );
    let rt = r#"{"name":"n","runtimeConfig":{"ipRanges":[[{"subnet":"nope"}]]},"ipam":{}}"#;
    assert_eq!(
        msg(rt),
        "runtimeConfig.ipRanges[0][0].subnet: invalid CIDR address: nope"
    );
}

// --- range sets ---------------------------------------------------------------

#[test]
fn no_ranges_is_refused() {
    assert_eq!(
        msg(&ipam(r#"{"type":"host-local"}"#)),
        "no IP ranges specified"
    );
    assert_eq!(msg(&ranges("[]")), "no IP ranges specified");
}

#[test]
fn empty_range_set_is_refused() {
    let e = err(&ranges("[[]]"));
    assert_eq!(e.msg, "invalid range set 0: empty range set");
    assert_eq!(e.details, "range set 0 is ipam.ranges[0]");
}

#[test]
fn range_without_subnet_is_refused_like_the_reference() {
    assert_eq!(
        msg(&ranges(r#"[[{"rangeStart":"10.1.2.5"}]]"#)),
        "invalid range set 0: IP <nil> not v4 nor v6"
    );
}

#[test]
fn ipv4_defaults() {
    let c = ok(&ranges(r#"[[{"subnet":"192.0.2.0/24"}]]"#));
    assert_eq!(
        c.range_sets[0].ranges,
        vec![range(
            "192.0.2.0",
            24,
            "192.0.2.1",
            "192.0.2.254",
            "192.0.2.1"
        )]
    );
    let c = ok(&ranges(r#"[[{"subnet":"192.0.2.0/30"}]]"#));
    assert_eq!(
        c.range_sets[0].ranges,
        vec![range(
            "192.0.2.0",
            30,
            "192.0.2.1",
            "192.0.2.2",
            "192.0.2.1"
        )]
    );
}

#[test]
fn ipv6_defaults_end_at_the_last_address() {
    let c = ok(&ranges(r#"[[{"subnet":"2001:db8:1::/64"}]]"#));
    assert_eq!(
        c.range_sets[0].ranges,
        vec![range(
            "2001:db8:1::",
            64,
            "2001:db8:1::1",
            "2001:db8:1::ffff:ffff:ffff:ffff",
            "2001:db8:1::1"
        )]
    );
    // /126 is the smallest IPv6 subnet allowed.
    let c = ok(&ranges(r#"[[{"subnet":"2001:db8::/126"}]]"#));
    assert_eq!(c.range_sets[0].ranges[0].range_end, ip("2001:db8::3"));
}

#[test]
fn explicit_fields_are_kept() {
    let c = ok(&ranges(
        r#"[[{"subnet":"10.1.2.0/24","rangeStart":"10.1.2.9","rangeEnd":"10.1.2.20","gateway":"10.1.2.30"}]]"#,
    ));
    assert_eq!(
        c.range_sets[0].ranges,
        vec![range("10.1.2.0", 24, "10.1.2.9", "10.1.2.20", "10.1.2.30")]
    );
}

#[test]
fn empty_strings_count_as_absent_addresses() {
    let c = ok(&ranges(
        r#"[[{"subnet":"10.1.2.0/24","rangeStart":"","rangeEnd":"","gateway":""}]]"#,
    ));
    assert_eq!(
        c.range_sets[0].ranges,
        vec![range("10.1.2.0", 24, "10.1.2.1", "10.1.2.254", "10.1.2.1")]
    );
}

#[test]
fn host_bits_are_refused() {
    for (subnet, want) in [
        (
            "192.0.2.1/24",
            "For a subnet mask of length 24 the network address is 192.0.2.0",
        ),
        (
            "2001:db8:1::1/64",
            "For a subnet mask of length 64 the network address is 2001:db8:1::",
        ),
        (
            "2001:db8:24:19ff::/63",
            "For a subnet mask of length 63 the network address is 2001:db8:24:19fe::",
        ),
        (
            "192.168.127.0/23",
            "For a subnet mask of length 23 the network address is 192.168.126.0",
        ),
    ] {
        assert_eq!(
            msg(&ranges(&format!(r#"[[{{"subnet":"{subnet}"}}]]"#))),
            format!("invalid range set 0: Network has host bits set. {want}")
        );
    }
}

#[test]
fn too_small_networks_are_refused() {
    for subnet in [
        "192.0.2.0/31",
        "192.0.2.0/32",
        "2001:db8::/127",
        "2001:db8::/128",
    ] {
        assert_eq!(
            msg(&ranges(&format!(r#"[[{{"subnet":"{subnet}"}}]]"#))),
            format!("invalid range set 0: Network {subnet} too small to allocate from")
        );
    }
    // The size check comes before the host-bits check, and prints the address as given.
    assert_eq!(
        msg(&ranges(r#"[[{"subnet":"192.0.2.1/31"}]]"#)),
        "invalid range set 0: Network 192.0.2.1/31 too small to allocate from"
    );
}

#[test]
fn ipv4_mapped_subnets_behave_like_the_reference() {
    assert_eq!(
        msg(&ranges(r#"[[{"subnet":"::ffff:10.0.0.0/104"}]]"#)),
        "invalid range set 0: IPNet IP and Mask version mismatch"
    );
    assert_eq!(
        msg(&ranges(r#"[[{"subnet":"::ffff:10.0.0.0/127"}]]"#)),
        "invalid range set 0: Network 10.0.0.0/31 too small to allocate from"
    );
}

#[test]
fn range_start_and_end_must_be_inside_the_subnet() {
    let r = |extra: &str| ranges(&format!(r#"[[{{"subnet":"192.0.2.0/24",{extra}}}]]"#));
    assert_eq!(
        msg(&r(r#""rangeStart":"192.0.3.0""#)),
        "invalid range set 0: RangeStart 192.0.3.0 not in network 192.0.2.0/24"
    );
    assert_eq!(
        msg(&r(r#""rangeEnd":"192.0.4.0""#)),
        "invalid range set 0: RangeEnd 192.0.4.0 not in network 192.0.2.0/24"
    );
    // A start after the end is reported on the start, as the reference does.
    assert_eq!(
        msg(&r(r#""rangeStart":"192.0.2.50","rangeEnd":"192.0.2.40""#)),
        "invalid range set 0: RangeStart 192.0.2.50 not in network 192.0.2.0/24"
    );
    // The default start is network+1, so the network address cannot end the range.
    assert_eq!(
        msg(&r(r#""rangeEnd":"192.0.2.0""#)),
        "invalid range set 0: RangeEnd 192.0.2.0 not in network 192.0.2.0/24"
    );
    assert_eq!(
        msg(&r(r#""rangeStart":"2001:db8::1""#)),
        "invalid range set 0: RangeStart 2001:db8::1 not in network 192.0.2.0/24"
    );
    // The network and broadcast addresses are inside the subnet, so allowed explicitly.
    let c = ok(&r(r#""rangeStart":"192.0.2.0","rangeEnd":"192.0.2.255""#));
    assert_eq!(c.range_sets[0].ranges[0].range_end, ip("192.0.2.255"));
}

#[test]
fn broadcast_start_with_default_end_is_refused() {
    assert_eq!(
        msg(&ranges(
            r#"[[{"subnet":"192.0.2.0/24","rangeStart":"192.0.2.255"}]]"#
        )),
        "invalid range set 0: RangeStart 192.0.2.255 is after the default RangeEnd 192.0.2.254"
    );
}

#[test]
fn mixed_families_in_a_set_are_refused() {
    assert_eq!(
        msg(&ranges(
            r#"[[{"subnet":"10.1.2.0/24"},{"subnet":"2001:db8::/64"}]]"#
        )),
        "invalid range set 0: mixed address families"
    );
}

#[test]
fn overlaps_inside_a_set_are_refused() {
    assert_eq!(
        msg(&ranges(
            r#"[[{"subnet":"10.1.0.0/22"},{"subnet":"10.1.2.0/24"}]]"#
        )),
        "invalid range set 0: subnets 10.1.0.1-10.1.3.254 and 10.1.2.1-10.1.2.254 overlap"
    );
}

#[test]
fn overlaps_between_sets_are_refused() {
    let e = err(&ranges(
        r#"[[{"subnet":"10.1.2.0/24"}],[{"subnet":"2001:db8::/64"}],[{"subnet":"10.1.0.0/22"}]]"#,
    ));
    assert_eq!(e.msg, "range set 0 overlaps with 2");
    assert_eq!(
        e.details,
        "range set 0 is ipam.ranges[0] (10.1.2.1-10.1.2.254), range set 2 is ipam.ranges[2] (10.1.0.1-10.1.3.254)"
    );
}

#[test]
fn disjoint_ranges_of_one_subnet_do_not_overlap() {
    let c = ok(&ranges(
        r#"[[{"subnet":"10.1.2.0/24","rangeEnd":"10.1.2.99"}],
            [{"subnet":"10.1.2.0/24","rangeStart":"10.1.2.100"}]]"#,
    ));
    assert_eq!(c.range_sets.len(), 2);
    assert!(msg(&ranges(
        r#"[[{"subnet":"10.1.2.0/24","rangeEnd":"10.1.2.100"}],
            [{"subnet":"10.1.2.0/24","rangeStart":"10.1.2.100"}]]"#,
    ))
    .contains("overlaps"));
}

#[test]
fn old_versions_allow_one_set_per_family() {
    let two_v4 = r#"{"ranges":[[{"subnet":"10.1.2.0/24"}],[{"subnet":"10.1.3.0/24"}]]}"#;
    for version in ["0.1.0", "0.2.0", ""] {
        assert_eq!(
            msg(&conf(version, two_v4)),
            format!("CNI version {version} does not support more than 1 address per family")
        );
    }
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert_eq!(ok(&conf(version, two_v4)).range_sets.len(), 2);
    }
    let v4_v6 = r#"{"ranges":[[{"subnet":"10.1.2.0/24"}],[{"subnet":"2001:db8::/64"}]]}"#;
    assert_eq!(ok(&conf("0.2.0", v4_v6)).range_sets.len(), 2);
}

#[test]
fn version_comparison_follows_the_reference() {
    assert!(version_at_least("0.3.0", (0, 3, 0)));
    assert!(version_at_least("1", (0, 3, 0)));
    assert!(version_at_least("0.10.0", (0, 3, 0)));
    assert!(!version_at_least("0.2.9", (0, 3, 0)));
    assert!(!version_at_least("", (0, 3, 0)));
    assert!(!version_at_least("1.0.0.0", (0, 3, 0)));
    assert!(!version_at_least("x.1", (0, 3, 0)));
}

#[test]
fn legacy_and_runtime_ranges_are_prepended_in_order() {
    let input = r#"{
        "cniVersion": "0.3.1",
        "name": "mynet",
        "runtimeConfig": {"irrelevant": "a", "ipRanges": [[{"subnet": "12.1.3.0/24"}]]},
        "ipam": {
            "type": "host-local",
            "subnet": "10.1.2.0/24",
            "rangeStart": "10.1.2.9",
            "rangeEnd": "10.1.2.20",
            "gateway": "10.1.2.30",
            "ranges": [[{"subnet": "11.1.2.0/24", "rangeStart": "11.1.2.9",
                         "rangeEnd": "11.1.2.20", "gateway": "11.1.2.30"}]]
        }
    }"#;
    let c = ok(input);
    assert_eq!(c.cni_version, "0.3.1");
    let got: Vec<Range> = c.range_sets.iter().map(|s| s.ranges[0]).collect();
    assert_eq!(
        got,
        vec![
            range("12.1.3.0", 24, "12.1.3.1", "12.1.3.254", "12.1.3.1"),
            range("10.1.2.0", 24, "10.1.2.9", "10.1.2.20", "10.1.2.30"),
            range("11.1.2.0", 24, "11.1.2.9", "11.1.2.20", "11.1.2.30"),
        ]
    );
}

#[test]
fn error_details_name_the_source_of_a_range_set() {
    let input = r#"{"cniVersion":"1.0.0","name":"n",
        "runtimeConfig":{"ipRanges":[[{"subnet":"12.1.3.0/24"}]]},
        "ipam":{"subnet":"10.1.2.1/24"}}"#;
    let e = err(input);
    assert!(e
        .msg
        .starts_with("invalid range set 1: Network has host bits set"));
    assert_eq!(e.details, "range set 1 is the legacy ipam.subnet");
    let input = r#"{"cniVersion":"1.0.0","name":"n",
        "runtimeConfig":{"ipRanges":[[]]},"ipam":{"subnet":"10.1.2.0/24"}}"#;
    assert_eq!(
        err(input).details,
        "range set 0 is runtimeConfig.ipRanges[0]"
    );
}

#[test]
fn legacy_keys_without_subnet_are_ignored() {
    assert_eq!(
        msg(&ipam(r#"{"rangeStart":"10.1.2.9","gateway":"10.1.2.1"}"#)),
        "no IP ranges specified"
    );
}

#[test]
fn keys_match_case_insensitively_like_go() {
    let c = ok(
        r#"{"CNIVERSION":"0.3.1","name":"n","IPAM":{"DataDir":"/d","Ranges":[[{"SUBNET":"10.1.2.0/24","rangestart":"10.1.2.5"}]]}}"#,
    );
    assert_eq!(c.cni_version, "0.3.1");
    assert_eq!(c.data_dir, "/d");
    assert_eq!(c.range_sets[0].ranges[0].range_start, ip("10.1.2.5"));
    // An exact match wins over a case-insensitive one.
    let c = ok(&ipam(
        r#"{"subnet":"10.1.2.0/24","dataDir":"/exact","DATADIR":"/other"}"#,
    ));
    assert_eq!(c.data_dir, "/exact");
}

#[test]
fn gateway_outside_the_subnet_is_accepted_like_the_reference() {
    let c = ok(&ranges(
        r#"[[{"subnet":"10.1.2.0/24","gateway":"10.9.9.9"}]]"#,
    ));
    assert_eq!(c.range_sets[0].ranges[0].gateway, ip("10.9.9.9"));
}

#[test]
fn range_helpers() {
    let r = range("10.1.2.0", 24, "10.1.2.10", "10.1.2.20", "10.1.2.1");
    assert!(r.contains(ip("10.1.2.10")) && r.contains(ip("10.1.2.20")));
    assert!(r.contains(ip("::ffff:10.1.2.15")));
    assert!(!r.contains(ip("10.1.2.9")) && !r.contains(ip("10.1.2.21")));
    assert!(!r.contains(ip("2001:db8::1")));
    assert_eq!(r.to_string(), "10.1.2.10-10.1.2.20");
    let other = range("10.1.2.0", 24, "10.1.2.20", "10.1.2.30", "10.1.2.1");
    assert!(r.overlaps(&other) && other.overlaps(&r));
    let v6 = range(
        "2001:db8::",
        64,
        "2001:db8::1",
        "2001:db8::9",
        "2001:db8::1",
    );
    assert!(!r.overlaps(&v6));
    assert_eq!(v6.gateway_u128(), Some(ip::to_u128(ip("2001:db8::1"))));
    let set = RangeSet {
        ranges: vec![
            r,
            range("10.1.3.0", 24, "10.1.3.1", "10.1.3.254", "10.1.3.1"),
        ],
    };
    assert_eq!(set.to_string(), "10.1.2.10-10.1.2.20,10.1.3.1-10.1.3.254");
    assert!(set.contains(ip("10.1.3.7")) && !set.contains(ip("10.1.4.7")));
    assert!(set.is_v4());
}

// --- other keys ----------------------------------------------------------------

#[test]
fn data_dir_and_resolv_conf() {
    let c = ok(&ipam(r#"{"subnet":"10.1.2.0/24"}"#));
    assert_eq!(c.data_dir, DEFAULT_DATA_DIR);
    assert_eq!(c.resolv_conf, None);
    let c = ok(&ipam(
        r#"{"subnet":"10.1.2.0/24","dataDir":"","resolvConf":""}"#,
    ));
    assert_eq!(c.data_dir, DEFAULT_DATA_DIR);
    assert_eq!(c.resolv_conf, None);
    let c = ok(&ipam(
        r#"{"subnet":"10.1.2.0/24","dataDir":"/run/cni","resolvConf":"/etc/resolv.conf"}"#,
    ));
    assert_eq!(c.data_dir, "/run/cni");
    assert_eq!(c.resolv_conf.as_deref(), Some("/etc/resolv.conf"));
}

#[test]
fn routes_are_normalised_like_the_reference() {
    let c = ok(&ipam(
        r#"{"subnet":"10.1.2.0/24","routes":[
            {"dst":"0.0.0.0/0"},
            {"dst":"192.168.1.7/16","gw":"::ffff:1.1.1.1","mtu":1400,"advmss":0,"priority":5,"table":0,"scope":253},
            {"dst":"2001:db8:2::0/64","gw":"2001:db8:3::1"}]}"#,
    ));
    assert_eq!(
        c.routes,
        vec![
            Route {
                dst: "0.0.0.0/0".into(),
                gw: None,
                mtu: None,
                advmss: None,
                priority: None,
                table: None,
                scope: None,
            },
            Route {
                dst: "192.168.1.7/16".into(),
                gw: Some("1.1.1.1".into()),
                mtu: Some(1400),
                advmss: None,
                priority: Some(5),
                table: Some(0),
                scope: Some(253),
            },
            Route {
                dst: "2001:db8:2::/64".into(),
                gw: Some("2001:db8:3::1".into()),
                mtu: None,
                advmss: None,
                priority: None,
                table: None,
                scope: None,
            },
        ]
    );
}

#[test]
fn bad_routes_name_the_key_and_value() {
    let r = |route: &str| ipam(&format!(r#"{{"subnet":"10.1.2.0/24","routes":[{route}]}}"#));
    assert_eq!(
        msg(&r(r#"{"dst":"10.0.0.0"}"#)),
        "ipam.routes[0].dst: invalid CIDR address: 10.0.0.0"
    );
    assert_eq!(
        msg(&r(r#"{"gw":"10.0.0.1"}"#)),
        r#"ipam.routes[0]: missing "dst""#
    );
    assert_eq!(
        msg(&r(r#"{"dst":"0.0.0.0/0","gw":"x"}"#)),
        "ipam.routes[0].gw: invalid IP address: x"
    );
    assert_eq!(
        msg(&r(r#"{"dst":"0.0.0.0/0","mtu":-1}"#)),
        "ipam.routes[0].mtu: expected an integer from 0 to 4294967295, got -1"
    );
    assert_eq!(
        msg(&r(r#"{"dst":"0.0.0.0/0","table":1.5}"#)),
        "ipam.routes[0].table: expected an integer from 0 to 4294967295, got 1.5"
    );
    assert_eq!(
        msg(&ipam(r#"{"subnet":"10.1.2.0/24","routes":{}}"#)),
        "ipam.routes: expected an array, got {}"
    );
}

// --- requested addresses ----------------------------------------------------------

const ONE_SET: &str = r#"{"ranges":[[{"subnet":"10.1.2.0/24"}],[{"subnet":"11.1.2.0/24"}],[{"subnet":"2001:db8:1::/64"}]]}"#;

#[test]
fn cni_args_ip_with_or_without_prefix() {
    let c = load(&conf("0.3.1", ONE_SET), &args(&[("IP", "10.1.2.10")])).unwrap();
    assert_eq!(c.requested_ips, vec![ip("10.1.2.10")]);
    let c = load(&conf("0.3.1", ONE_SET), &args(&[("IP", "10.1.2.11/24")])).unwrap();
    assert_eq!(c.requested_ips, vec![ip("10.1.2.11")]);
    // An empty IP requests nothing; the last IP key wins.
    let c = load(&conf("0.3.1", ONE_SET), &args(&[("IP", "")])).unwrap();
    assert!(c.requested_ips.is_empty());
    let c = load(
        &conf("0.3.1", ONE_SET),
        &args(&[("IP", "10.1.2.1"), ("IP", "10.1.2.2")]),
    )
    .unwrap();
    assert_eq!(c.requested_ips, vec![ip("10.1.2.2")]);
}

#[test]
fn requested_ips_merge_env_args_and_runtime_config_in_order() {
    let input = r#"{
        "cniVersion": "0.3.1", "name": "mynet",
        "args": {"cni": {"ips": ["10.1.2.11/24", "11.11.11.11", "2001:db8:1::11/64", "10.1.2.10"]}},
        "runtimeConfig": {"ips": ["::ffff:10.1.2.12"]},
        "ipam": {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]]}
    }"#;
    let c = load(input, &args(&[("IP", "10.1.2.10")])).unwrap();
    assert_eq!(
        c.requested_ips,
        vec![
            ip("10.1.2.10"),
            ip("10.1.2.11"),
            ip("11.11.11.11"),
            ip("2001:db8:1::11"),
            ip("10.1.2.12"),
        ]
    );
}

#[test]
fn bad_requested_ips_are_refused() {
    let with = |key: &str, list: &str| {
        let (args, rc) = match key {
            "args" => (format!(r#"{{"cni":{{"ips":{list}}}}}"#), "{}".to_string()),
            _ => ("{}".to_string(), format!(r#"{{"ips":{list}}}"#)),
        };
        format!(
            r#"{{"cniVersion":"1.0.0","name":"n","args":{args},"runtimeConfig":{rc},"ipam":{{"subnet":"10.1.2.0/24"}}}}"#
        )
    };
    assert_eq!(
        msg(&with("args", r#"["10.1.2.5","nope"]"#)),
        "args.cni.ips[1]: invalid IP address nope"
    );
    assert_eq!(
        msg(&with("rc", r#"["10.1.2.5/99"]"#)),
        "runtimeConfig.ips[0]: invalid IP address 10.1.2.5/99"
    );
    assert_eq!(
        msg(&with("rc", "[5]")),
        "runtimeConfig.ips[0]: expected a string, got 5"
    );
    assert_eq!(
        msg(&with("args", r#"[""]"#)),
        "cannot understand ip: IP <nil> not v4 nor v6"
    );
    assert_eq!(
        msg(&with("args", r#""10.1.2.5""#)),
        r#"args.cni.ips: expected an array, got "10.1.2.5""#
    );
}

#[test]
fn cni_args_unknown_keys() {
    let cfg = conf("1.0.0", ONE_SET);
    let e = load(
        &cfg,
        &args(&[("FOO", "bar"), ("IP", "10.1.2.3"), ("Baz", "1")]),
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidEnvironment);
    assert_eq!(e.msg, r#"ARGS: unknown args ["FOO=bar" "Baz=1"]"#);
    // Keys are case-sensitive, as Go's FieldByName is.
    let e = load(&cfg, &args(&[("ip", "10.1.2.3")])).unwrap_err();
    assert_eq!(e.msg, r#"ARGS: unknown args ["ip=10.1.2.3"]"#);
    for yes in ["1", "true", "TRUE", "True"] {
        let c = load(&cfg, &args(&[("FOO", "bar"), ("IgnoreUnknown", yes)])).unwrap();
        assert!(c.requested_ips.is_empty());
    }
    let e = load(&cfg, &args(&[("IgnoreUnknown", "0"), ("FOO", "bar")])).unwrap_err();
    assert_eq!(e.msg, r#"ARGS: unknown args ["FOO=bar"]"#);
}

#[test]
fn cni_args_tolerate_kubernetes_keys() {
    let c = load(
        &conf("1.0.0", ONE_SET),
        &args(&[
            ("K8S_POD_NAMESPACE", "default"),
            ("K8S_POD_NAME", "web-0"),
            ("K8S_POD_INFRA_CONTAINER_ID", "abc"),
            ("K8S_POD_UID", "1234"),
            ("IP", "10.1.2.7"),
        ]),
    )
    .unwrap();
    assert_eq!(c.requested_ips, vec![ip("10.1.2.7")]);
}

#[test]
fn cni_args_bad_values() {
    let cfg = conf("1.0.0", ONE_SET);
    let e = load(&cfg, &args(&[("IP", "foo")])).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidEnvironment);
    assert_eq!(
        e.msg,
        r#"ARGS: error parsing value of pair "IP=foo": invalid IP address foo"#
    );
    let e = load(&cfg, &args(&[("IgnoreUnknown", "Yes")])).unwrap_err();
    assert_eq!(
        e.msg,
        r#"ARGS: error parsing value of pair "IgnoreUnknown=Yes": boolean unmarshal error: invalid input yes"#
    );
    let e = load(&cfg, &args(&[("CommonArgs", "x")])).unwrap_err();
    assert!(e
        .msg
        .starts_with("ARGS: cannot unmarshal into field 'CommonArgs'"));
}

#[test]
fn cni_args_are_checked_after_the_ipam_key() {
    let e = load(
        r#"{"cniVersion":"1.0.0","name":"n"}"#,
        &args(&[("FOO", "bar")]),
    )
    .unwrap_err();
    assert_eq!(e.msg, "IPAM config missing 'ipam' key");
}

#[test]
fn go_quote_escapes() {
    assert_eq!(go_quote("a=b"), r#""a=b""#);
    assert_eq!(
        go_quote("q\"\\\n\t\r\u{1}\u{7f}é"),
        r#""q\"\\\n\t\r\x01\x7fé""#
    );
    assert_eq!(
        go_quote("\u{7}\u{8}\u{c}\u{b}\u{85}"),
        r#""\a\b\f\v\u0085""#
    );
}

#[test]
fn requested_ips_are_deduplicated() {
    let input = r#"{"cniVersion":"1.0.0","name":"n","args":{"cni":{"ips":["10.1.2.5","10.1.2.5/24"]}},"ipam":{"subnet":"10.1.2.0/24"}}"#;
    let c = load(input, &args(&[("IP", "10.1.2.5")])).unwrap();
    assert_eq!(c.requested_ips, vec![ip("10.1.2.5")]);
}

/// A config cannot ask for thousands of addresses per container (each range
/// set is one), nor carry thousands of ranges.
#[test]
fn range_sets_and_ranges_are_bounded() {
    let set = |i: usize| format!(r#"[{{"subnet":"10.{}.{}.0/24"}}]"#, i / 256, i % 256);
    let sets: Vec<String> = (0..=MAX_RANGE_SETS).map(set).collect();
    assert!(msg(&ranges(&format!("[{}]", sets.join(",")))).contains("17 range sets, more than 16"));
    let sets: Vec<String> = (0..MAX_RANGE_SETS).map(set).collect();
    ok(&ranges(&format!("[{}]", sets.join(","))));
    let many: Vec<String> = (0..=MAX_RANGES)
        .map(|i| format!(r#"{{"subnet":"10.{}.{}.0/24"}}"#, i / 256, i % 256))
        .collect();
    assert!(msg(&ranges(&format!("[[{}]]", many.join(",")))).contains("1025 ranges in all"));
}
