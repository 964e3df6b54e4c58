use super::super::result::IpConfig;
use super::*;
use serde_json::json;

const CONF: &str =
    r#"{"cniVersion":"1.1.0","name":"mynet","type":"bridge","ipam":{"type":"host-local"}}"#;

fn full_env(cmd: &str) -> BTreeMap<String, String> {
    [
        (ENV_COMMAND, cmd),
        (ENV_CONTAINERID, "abc123"),
        (ENV_NETNS, "/var/run/netns/test"),
        (ENV_IFNAME, "eth0"),
        (ENV_PATH, "/opt/cni/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn with(mut env: BTreeMap<String, String>, k: &str, v: &str) -> BTreeMap<String, String> {
    env.insert(k.into(), v.into());
    env
}

fn request(env: &BTreeMap<String, String>, stdin: &str) -> Request {
    match parse_invocation(env, stdin.as_bytes()).unwrap() {
        Invocation::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn err(env: &BTreeMap<String, String>, stdin: &str) -> (ErrorCode, String) {
    let e = parse_invocation(env, stdin.as_bytes()).unwrap_err();
    (e.code, e.msg)
}

#[test]
fn command_parse() {
    for c in [
        Command::Add,
        Command::Del,
        Command::Check,
        Command::Gc,
        Command::Status,
        Command::Version,
    ] {
        assert_eq!(Command::parse(c.as_str()), Some(c));
        assert_eq!(c.to_string().parse::<Command>().unwrap(), c);
    }
    assert_eq!(Command::parse("add"), None);
    let e = "FOO".parse::<Command>().unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (ErrorCode::InvalidEnvironment, "unknown CNI_COMMAND: FOO")
    );
}

#[test]
fn about_and_version() {
    assert_eq!(
        parse_invocation(&BTreeMap::new(), b"").unwrap(),
        Invocation::About
    );
    let env = with(full_env("ADD"), ENV_COMMAND, "");
    assert_eq!(
        parse_invocation(&env, b"garbage").unwrap(),
        Invocation::About
    );
    let only_cmd: BTreeMap<_, _> = [(ENV_COMMAND.to_string(), "VERSION".to_string())].into();
    assert_eq!(
        parse_invocation(&only_cmd, b"not json").unwrap(),
        Invocation::Version
    );
    // libcni's probe: dummy env and a nameless config.
    let probe = with(
        with(with(only_cmd, ENV_NETNS, "dummy"), ENV_IFNAME, "dummy"),
        ENV_PATH,
        "dummy",
    );
    assert_eq!(
        parse_invocation(&probe, br#"{"cniVersion":"1.1.0"}"#).unwrap(),
        Invocation::Version
    );
}

#[test]
fn unknown_command() {
    for c in ["FOO", "add", "Version", " ADD"] {
        assert_eq!(
            err(&full_env(c), CONF),
            (
                ErrorCode::InvalidEnvironment,
                format!("unknown CNI_COMMAND: {c}")
            )
        );
    }
    // Reported before the (also bad) stdin.
    assert_eq!(err(&full_env("BOGUS"), "").1, "unknown CNI_COMMAND: BOGUS");
}

#[test]
fn full_add_request() {
    let env = with(
        with(full_env("ADD"), ENV_ARGS, "IgnoreUnknown=1;K8S_POD_NAME=x"),
        ENV_PATH,
        "/opt/cni/bin::/usr/lib/cni:",
    );
    let r = request(&env, CONF);
    assert_eq!(r.command, Command::Add);
    assert_eq!(r.container_id, "abc123");
    assert_eq!(r.netns, Some(PathBuf::from("/var/run/netns/test")));
    assert_eq!(r.ifname, "eth0");
    assert_eq!(r.args.get("K8S_POD_NAME"), Some("x"));
    assert_eq!(
        r.path,
        [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
    );
    assert!(!r.netns_override);
    assert_eq!(r.stdin, CONF.as_bytes());
    assert_eq!(r.config.cni_version, CniVersion::V110);
    assert_eq!(r.config.name, "mynet");
    assert_eq!(r.config.plugin_type.as_deref(), Some("bridge"));
    assert_eq!(r.config.ipam_type.as_deref(), Some("host-local"));
    assert_eq!(r.config.prev_result, None);
    assert_eq!(r.config.valid_attachments, None);
    assert_eq!(r.config.raw["ipam"]["type"], "host-local");
}

#[test]
fn netns_override() {
    for (v, want) in [
        ("1", true),
        ("true", true),
        ("TRUE", true),
        ("True", true),
        ("0", false),
        ("yes", false),
        ("", false),
    ] {
        let r = request(&with(full_env("ADD"), ENV_NETNS_OVERRIDE, v), CONF);
        assert_eq!(r.netns_override, want, "{v}");
    }
}

/// Every subset of the four variables, unset or set-but-empty, for every
/// verb: the error lists exactly the required ones that are missing, in
/// the reference's order.
#[test]
fn missing_variable_combinations() {
    let vars = [ENV_CONTAINERID, ENV_NETNS, ENV_IFNAME, ENV_PATH];
    let required: [(&str, &[&str]); 5] = [
        ("ADD", &[ENV_CONTAINERID, ENV_NETNS, ENV_IFNAME, ENV_PATH]),
        ("CHECK", &[ENV_CONTAINERID, ENV_NETNS, ENV_IFNAME, ENV_PATH]),
        ("DEL", &[ENV_CONTAINERID, ENV_IFNAME, ENV_PATH]),
        ("GC", &[ENV_PATH]),
        ("STATUS", &[ENV_PATH]),
    ];
    for (cmd, req) in required {
        for mask in 0u32..16 {
            for empty_instead_of_unset in [false, true] {
                let mut env = full_env(cmd);
                let mut expect = Vec::new();
                for (i, var) in vars.iter().enumerate() {
                    if mask & (1 << i) != 0 {
                        if empty_instead_of_unset {
                            env.insert(var.to_string(), String::new());
                        } else {
                            env.remove(*var);
                        }
                        if req.contains(var) {
                            expect.push(*var);
                        }
                    }
                }
                let got = parse_invocation(&env, CONF.as_bytes());
                if expect.is_empty() {
                    let Ok(Invocation::Request(r)) = got else {
                        panic!("{cmd} mask {mask}: {got:?}")
                    };
                    if mask & 2 != 0 {
                        assert_eq!(r.netns, None);
                    }
                } else {
                    let e = got.unwrap_err();
                    assert_eq!(e.code, ErrorCode::InvalidEnvironment, "{cmd} {mask}");
                    assert_eq!(
                        e.msg,
                        format!("required env variables [{}] missing", expect.join(",")),
                        "{cmd} mask {mask}"
                    );
                }
            }
        }
    }
}

#[test]
fn gc_and_status_need_little() {
    for cmd in ["GC", "STATUS"] {
        let env: BTreeMap<_, _> = [
            (ENV_COMMAND.to_string(), cmd.to_string()),
            (ENV_PATH.to_string(), "/opt/cni/bin".to_string()),
            (ENV_CONTAINERID.to_string(), String::new()),
        ]
        .into();
        let r = request(&env, CONF);
        assert_eq!(r.container_id, "");
        assert_eq!(r.ifname, "");
        assert_eq!(r.netns, None);
        // Not required, so not validated (reference skel).
        let env = with(with(env, ENV_CONTAINERID, "bad id!"), ENV_IFNAME, "bad/if");
        assert_eq!(request(&env, CONF).container_id, "bad id!");
    }
}

#[test]
fn bad_container_ids() {
    for id in [
        "-abc", "_abc", ".abc", "abc def", "abc/def", "abc\n", "ab:c", "über", "a$b",
    ] {
        for cmd in ["ADD", "CHECK", "DEL"] {
            let e = parse_invocation(&with(full_env(cmd), ENV_CONTAINERID, id), CONF.as_bytes())
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidEnvironment, "{id:?}");
            assert_eq!(e.msg, "invalid characters in containerID");
            assert_eq!(e.details, id);
        }
    }
    for id in ["a", "0", "abc-DEF_1.2", "cnitool-77383ca0a0715733ca6f"] {
        request(&with(full_env("ADD"), ENV_CONTAINERID, id), CONF);
    }
    let e = validate_container_id("").unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (ErrorCode::UnknownContainer, "missing containerID")
    );
}

#[test]
fn bad_interface_names() {
    let cases = [
        ("abcdefghijklmnop", "interface name is too long"),
        ("eth0eth0eth0eth0eth0", "interface name is too long"),
        ("ééééééééé", "interface name is too long"),
        (".", "interface name is . or .."),
        ("..", "interface name is . or .."),
        (
            "eth/0",
            "interface name contains / or : or whitespace characters",
        ),
        (
            "eth0:1",
            "interface name contains / or : or whitespace characters",
        ),
        (
            "eth 0",
            "interface name contains / or : or whitespace characters",
        ),
        (
            "eth0\t",
            "interface name contains / or : or whitespace characters",
        ),
        (
            "eth\u{a0}0",
            "interface name contains / or : or whitespace characters",
        ),
    ];
    for (name, msg) in cases {
        for cmd in ["ADD", "CHECK", "DEL"] {
            let e = parse_invocation(&with(full_env(cmd), ENV_IFNAME, name), CONF.as_bytes())
                .unwrap_err();
            assert_eq!(
                (e.code, e.msg.as_str()),
                (ErrorCode::InvalidEnvironment, msg),
                "{name:?}"
            );
            assert!(
                e.details.contains(&go_quote(name)),
                "{name:?}: {}",
                e.details
            );
        }
    }
    assert_eq!(
        validate_interface_name("abcdefghijklmnop")
            .unwrap_err()
            .details,
        "interface name should be less than 16 characters, got \"abcdefghijklmnop\""
    );
    for name in ["abcdefghijklmno", "lo", "eth0.100", "a", "...", "-x"] {
        request(&with(full_env("ADD"), ENV_IFNAME, name), CONF);
    }
    assert_eq!(
        validate_interface_name("").unwrap_err().msg,
        "interface name is empty"
    );
}

#[test]
fn validation_errors_precede_missing_ones() {
    // Bad container ID wins over a later missing CNI_PATH.
    let mut env = with(full_env("ADD"), ENV_CONTAINERID, "-x");
    env.remove(ENV_PATH);
    assert_eq!(err(&env, CONF).1, "invalid characters in containerID");
    // A missing container ID is collected; the bad ifname after it fails first.
    let mut env = with(full_env("ADD"), ENV_IFNAME, "a/b");
    env.remove(ENV_CONTAINERID);
    assert_eq!(
        err(&env, CONF).1,
        "interface name contains / or : or whitespace characters"
    );
    // Environment before stdin.
    let mut env = full_env("DEL");
    env.remove(ENV_PATH);
    assert_eq!(
        err(&env, "not json").1,
        "required env variables [CNI_PATH] missing"
    );
}

#[test]
fn stdin_errors() {
    let env = full_env("ADD");
    let cases: [(&str, ErrorCode, &str); 14] = [
        (
            "",
            ErrorCode::DecodingFailure,
            "error unmarshall network config: ",
        ),
        (
            "{",
            ErrorCode::DecodingFailure,
            "error unmarshall network config: ",
        ),
        (
            "{\"name\":\"a\"} x",
            ErrorCode::DecodingFailure,
            "error unmarshall network config: ",
        ),
        (
            "[]",
            ErrorCode::DecodingFailure,
            "error unmarshall network config: expected a JSON object, found array",
        ),
        (
            "\"x\"",
            ErrorCode::DecodingFailure,
            "error unmarshall network config: expected a JSON object, found string",
        ),
        (
            "42",
            ErrorCode::DecodingFailure,
            "error unmarshall network config: expected a JSON object, found number",
        ),
        (
            "null",
            ErrorCode::InvalidNetworkConfig,
            "missing network name",
        ),
        (
            "{}",
            ErrorCode::InvalidNetworkConfig,
            "missing network name",
        ),
        (
            "{\"name\":\"\"}",
            ErrorCode::InvalidNetworkConfig,
            "missing network name",
        ),
        (
            "{\"name\":null}",
            ErrorCode::InvalidNetworkConfig,
            "missing network name",
        ),
        (
            "{\"name\":\"my net\"}",
            ErrorCode::InvalidNetworkConfig,
            "invalid characters found in network name",
        ),
        (
            "{\"name\":\"-net\"}",
            ErrorCode::InvalidNetworkConfig,
            "invalid characters found in network name",
        ),
        (
            "{\"name\":42}",
            ErrorCode::DecodingFailure,
            "error unmarshall network config: name: expected a string, found number",
        ),
        (
            "{\"name\":\"n\",\"cniVersion\":true}",
            ErrorCode::DecodingFailure,
            "decoding version from network config: cniVersion: expected a string, found bool",
        ),
    ];
    for (stdin, code, msg) in cases {
        let (c, m) = err(&env, stdin);
        assert_eq!(c, code, "{stdin:?}: {m}");
        assert!(m.starts_with(msg), "{stdin:?}: {m}");
    }
    let e = parse_invocation(&env, br#"{"name":"my/net"}"#).unwrap_err();
    assert_eq!(e.details, "my/net");
}

#[test]
fn wrong_types_of_other_keys() {
    let env = full_env("ADD");
    let cases = [
        (
            r#"{"name":"n","cniVersion":"1.0.0","type":3}"#,
            "invalid network config: type: expected a string, found number",
        ),
        (
            r#"{"name":"n","cniVersion":"1.0.0","ipam":"host-local"}"#,
            "invalid network config: ipam: expected an object, found string",
        ),
        (
            r#"{"name":"n","cniVersion":"1.0.0","ipam":{"type":[]}}"#,
            "invalid network config: ipam.type: expected a string, found array",
        ),
        (
            r#"{"name":"n","cniVersion":"1.0.0","prevResult":"x"}"#,
            "could not parse prevResult: expected a JSON object, found string",
        ),
        (
            r#"{"name":"n","cniVersion":"1.0.0","prevResult":{"ips":[{"address":"bogus"}]}}"#,
            "could not parse prevResult: ips[0].address: invalid CIDR address \"bogus\"",
        ),
        (
            r#"{"name":"n","cniVersion":"1.0.0","prevResult":{"cniVersion":"7.0.0"}}"#,
            "could not parse prevResult: unsupported CNI result version \"7.0.0\"",
        ),
    ];
    for (stdin, msg) in cases {
        assert_eq!(
            err(&env, stdin),
            (ErrorCode::InvalidNetworkConfig, msg.to_string()),
            "{stdin}"
        );
    }
    // null and "" are as absent.
    let r = request(
        &env,
        r#"{"name":"n","type":"","ipam":null,"prevResult":null,"runtimeConfig":null,"args":null}"#,
    );
    assert_eq!(r.config.plugin_type, None);
    assert_eq!(r.config.ipam_type, None);
    assert_eq!(r.config.prev_result, None);
    assert_eq!(r.config.runtime_config, None);
    assert_eq!(r.config.args, None);
    let r = request(&env, r#"{"name":"n","ipam":{}}"#);
    assert_eq!(r.config.ipam_type, None);
}

#[test]
fn versions_in_config() {
    let conf = |v: &str| format!(r#"{{"name":"n","cniVersion":"{v}"}}"#);
    for v in CniVersion::ALL {
        assert_eq!(
            request(&full_env("ADD"), &conf(v.as_str()))
                .config
                .cni_version,
            v
        );
        assert_eq!(
            request(&full_env("DEL"), &conf(v.as_str()))
                .config
                .cni_version,
            v
        );
    }
    // Empty or absent = 0.1.0.
    assert_eq!(
        request(&full_env("ADD"), &conf("")).config.cni_version,
        CniVersion::V010
    );
    assert_eq!(
        request(&full_env("ADD"), r#"{"name":"n"}"#)
            .config
            .cni_version,
        CniVersion::V010
    );
    for bad in ["0.5.0", "1.0", "v1.0.0", "2.0.0", "abc"] {
        let e = parse_invocation(&full_env("ADD"), conf(bad).as_bytes()).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (ErrorCode::IncompatibleVersion, "incompatible CNI versions")
        );
        assert_eq!(
            e.details,
            format!(
                r#"config is "{bad}", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#
            )
        );
    }
}

#[test]
fn version_gates() {
    let conf = |v: &str| format!(r#"{{"name":"n","cniVersion":"{v}"}}"#);
    let gc_env = || with(full_env("GC"), ENV_CONTAINERID, "");
    for v in CniVersion::ALL {
        let check = parse_invocation(&full_env("CHECK"), conf(v.as_str()).as_bytes());
        assert_eq!(check.is_ok(), v >= CniVersion::V040, "CHECK {v}");
        if let Err(e) = check {
            assert_eq!(
                (e.code, e.msg.as_str()),
                (
                    ErrorCode::IncompatibleVersion,
                    "config version does not allow CHECK"
                )
            );
        }
        for (env, verb) in [(gc_env(), "GC"), (full_env("STATUS"), "STATUS")] {
            let got = parse_invocation(&env, conf(v.as_str()).as_bytes());
            assert_eq!(got.is_ok(), v == CniVersion::V110, "{verb} {v}");
            if let Err(e) = got {
                assert_eq!(e.code, ErrorCode::IncompatibleVersion);
                assert_eq!(e.msg, format!("config version does not allow {verb}"));
            }
        }
    }
    assert_eq!(
        err(&full_env("CHECK"), r#"{"name":"n"}"#).1,
        "config version does not allow CHECK"
    );
    assert_eq!(
        err(&full_env("CHECK"), &conf("9.0.0")).1,
        "plugin version does not allow CHECK"
    );
    assert_eq!(
        err(&full_env("CHECK"), &conf("x.y")).0,
        ErrorCode::DecodingFailure
    );
}

#[test]
fn gc_attachments() {
    let env = with(full_env("GC"), ENV_CONTAINERID, "");
    let both = r#"{"cniVersion":"1.1.0","name":"n",
            "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}],
            "cni.dev/attachments":[{"containerID":"old","ifname":"eth9"}]}"#;
    let a = request(&env, both).config.valid_attachments.unwrap();
    assert_eq!(
        a,
        [Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into()
        }]
    );

    let legacy = r#"{"cniVersion":"1.1.0","name":"n",
            "cni.dev/attachments":[{"containerID":"c2","ifname":"net1"},{"containerID":"c3"}]}"#;
    let a = request(&env, legacy).config.valid_attachments.unwrap();
    assert_eq!(
        a,
        [
            Attachment {
                container_id: "c2".into(),
                ifname: "net1".into()
            },
            Attachment {
                container_id: "c3".into(),
                ifname: String::new()
            },
        ]
    );

    // cnitool gc sends neither key: "no list", unlike an empty list.
    assert_eq!(
        request(&env, r#"{"cniVersion":"1.1.0","name":"n"}"#)
            .config
            .valid_attachments,
        None
    );
    let empty = r#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[]}"#;
    assert_eq!(request(&env, empty).config.valid_attachments, Some(vec![]));
    // null falls back to the legacy key.
    let null_new = r#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":null,"cni.dev/attachments":[]}"#;
    assert_eq!(
        request(&env, null_new).config.valid_attachments,
        Some(vec![])
    );

    let bad =
        r#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":1}]}"#;
    assert_eq!(
            err(&env, bad),
            (
                ErrorCode::InvalidNetworkConfig,
                "invalid network config: cni.dev/valid-attachments[0].containerID: expected a string, found number".into()
            )
        );
    let bad = r#"{"cniVersion":"1.1.0","name":"n","cni.dev/attachments":{}}"#;
    assert_eq!(
        err(&env, bad).1,
        "invalid network config: cni.dev/attachments: expected an array, found object"
    );

    // Only read for GC.
    let r = request(
        &full_env("ADD"),
        r#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":7}"#,
    );
    assert_eq!(r.config.valid_attachments, None);
    // Attachment serde uses the spec's key names.
    assert_eq!(
        serde_json::to_value(Attachment {
            container_id: "c".into(),
            ifname: "i".into()
        })
        .unwrap(),
        json!({"containerID": "c", "ifname": "i"})
    );
}

#[test]
fn prev_result_in_every_version() {
    let shapes = [
        json!({"cniVersion":"0.1.0","ip4":{"ip":"10.1.0.5/16","gateway":"10.1.0.1"}}),
        json!({"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/16","gateway":"10.1.0.1"}}),
        json!({"cniVersion":"0.3.0","ips":[{"version":"4","address":"10.1.0.5/16","gateway":"10.1.0.1"}]}),
        json!({"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.1.0.5/16","gateway":"10.1.0.1"}]}),
        json!({"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/16","gateway":"10.1.0.1"}]}),
        json!({"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/16","gateway":"10.1.0.1"}]}),
        json!({"cniVersion":"1.1.0","ips":[{"address":"10.1.0.5/16","gateway":"10.1.0.1"}]}),
    ];
    let want = vec![IpConfig {
        interface: None,
        address: "10.1.0.5/16".parse().unwrap(),
        gateway: Some("10.1.0.1".parse().unwrap()),
    }];
    for conf_version in CniVersion::ALL {
        for shape in &shapes {
            // With its own version, any shape works under any config version.
            let conf =
                json!({"cniVersion": conf_version.as_str(), "name": "n", "prevResult": shape});
            let r = request(&full_env("DEL"), &conf.to_string());
            assert_eq!(r.config.prev_result.unwrap().ips, want, "{conf}");
            // Without one, the config's version decides the shape.
            let mut unversioned = shape.clone();
            unversioned.as_object_mut().unwrap().remove("cniVersion");
            let conf = json!({"cniVersion": conf_version.as_str(), "name": "n", "prevResult": unversioned});
            let r = request(&full_env("DEL"), &conf.to_string());
            let same_family = shape["ip4"].is_object() == conf_version.is_legacy_result();
            let ips = r.config.prev_result.unwrap().ips;
            assert_eq!(ips == want, same_family, "{conf}");
        }
    }
}

#[test]
fn unknown_keys_kept_and_loopback_style() {
    // The reference loopback test's invocation, in every version.
    for v in CniVersion::ALL {
        let env: BTreeMap<String, String> = [
            (ENV_COMMAND, "ADD"),
            (ENV_CONTAINERID, "dummy"),
            (ENV_NETNS, "/var/run/netns/lo-test"),
            (ENV_IFNAME, "lo"),
            (ENV_ARGS, "none"),
            (ENV_PATH, "/some/test/path"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let stdin =
            format!(r#"{{"name":"loopback-test","cniVersion":"{v}","x-custom":{{"a":1}}}}"#);
        let r = request(&env, &stdin);
        assert!(r.args.is_empty());
        r.args.check_known(&[]).unwrap();
        assert_eq!(r.config.raw["x-custom"]["a"], 1);
        assert_eq!(r.config.plugin_type, None);
    }
    // Malformed CNI_ARGS does not fail the invocation, only its consumers.
    let r = request(&with(full_env("ADD"), ENV_ARGS, "junk"), CONF);
    assert_eq!(
        r.args.check_known(&[]).unwrap_err().msg,
        "ARGS: invalid pair \"junk\""
    );
}
