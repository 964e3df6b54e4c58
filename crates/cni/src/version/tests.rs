use super::*;

#[test]
fn parse_exact_only() {
    for (v, s) in CniVersion::ALL.iter().zip(SUPPORTED_VERSIONS) {
        assert_eq!(CniVersion::parse(s).unwrap(), *v);
        assert_eq!(v.to_string(), s);
        assert_eq!(s.parse::<CniVersion>().unwrap(), *v);
    }
    assert_eq!(CniVersion::parse("").unwrap(), CniVersion::V010);
    for bad in [
        "1.0",
        "1",
        "v1.0.0",
        "1.0.0 ",
        " 1.0.0",
        "0.5.0",
        "2.0.0",
        "1.1.0-rc1",
    ] {
        let e = CniVersion::parse(bad).unwrap_err();
        assert_eq!(e.code, ErrorCode::IncompatibleVersion, "{bad}");
        assert_eq!(e.msg, "incompatible CNI versions");
    }
    assert_eq!(
        CniVersion::parse("0.5.0").unwrap_err().details,
        r#"config is "0.5.0", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#
    );
}

#[test]
fn ordering_and_families() {
    assert!(CniVersion::V010 < CniVersion::V020);
    assert!(CniVersion::V031 < CniVersion::V040);
    assert!(CniVersion::V040 < CniVersion::V100);
    assert!(CniVersion::V100 < CniVersion::V110);
    let legacy: Vec<_> = CniVersion::ALL
        .into_iter()
        .filter(|v| v.is_legacy_result())
        .collect();
    assert_eq!(legacy, [CniVersion::V010, CniVersion::V020]);
    let v04: Vec<_> = CniVersion::ALL
        .into_iter()
        .filter(|v| v.is_04x_result())
        .collect();
    assert_eq!(v04, [CniVersion::V030, CniVersion::V031, CniVersion::V040]);
}

#[test]
fn serde_as_string() {
    assert_eq!(
        serde_json::to_string(&CniVersion::V031).unwrap(),
        "\"0.3.1\""
    );
    let v: CniVersion = serde_json::from_str("\"1.0.0\"").unwrap();
    assert_eq!(v, CniVersion::V100);
    assert!(serde_json::from_str::<CniVersion>("\"9\"").is_err());
}

#[test]
fn version_info_matches_reference() {
    assert_eq!(
            version_info_json(),
            "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.1.0\",\"0.2.0\",\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
        );
    let v: serde_json::Value = serde_json::from_str(&version_info_json()).unwrap();
    assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 7);
}

#[test]
fn about() {
    assert_eq!(
            about_text("CNI wasm-cni plugin v0.1.0"),
            "CNI wasm-cni plugin v0.1.0\nCNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n"
        );
}

fn gate(cmd: Command, v: &str) -> Result<CniVersion, (ErrorCode, String)> {
    check_command_version(cmd, v).map_err(|e| (e.code, e.msg))
}

#[test]
fn add_del_accept_every_version() {
    for cmd in [Command::Add, Command::Del] {
        for v in CniVersion::ALL {
            assert_eq!(gate(cmd, v.as_str()), Ok(v));
        }
        assert_eq!(gate(cmd, ""), Ok(CniVersion::V010));
        assert_eq!(
            gate(cmd, "0.5.0"),
            Err((
                ErrorCode::IncompatibleVersion,
                "incompatible CNI versions".into()
            ))
        );
    }
}

#[test]
fn check_gate() {
    let no = Err((
        ErrorCode::IncompatibleVersion,
        "config version does not allow CHECK".to_string(),
    ));
    for v in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "", "0.3.5"] {
        assert_eq!(gate(Command::Check, v), no, "{v}");
    }
    for v in [CniVersion::V040, CniVersion::V100, CniVersion::V110] {
        assert_eq!(gate(Command::Check, v.as_str()), Ok(v));
    }
    assert_eq!(
        gate(Command::Check, "2.0.0"),
        Err((
            ErrorCode::IncompatibleVersion,
            "plugin version does not allow CHECK".into()
        ))
    );
    assert_eq!(
        gate(Command::Check, "1.0"),
        Err((
            ErrorCode::IncompatibleVersion,
            "incompatible CNI versions".into()
        ))
    );
    assert_eq!(
            gate(Command::Check, "abc"),
            Err((
                ErrorCode::DecodingFailure,
                r#"failed to convert major version part "abc": strconv.Atoi: parsing "abc": invalid syntax"#.into()
            ))
        );
    assert_eq!(
        gate(Command::Check, "1.2.3.4"),
        Err((
            ErrorCode::DecodingFailure,
            r#"invalid version "1.2.3.4": too many parts"#.into()
        ))
    );
}

#[test]
fn gc_and_status_gates() {
    for (cmd, verb) in [(Command::Gc, "GC"), (Command::Status, "STATUS")] {
        for v in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", ""] {
            assert_eq!(
                gate(cmd, v),
                Err((
                    ErrorCode::IncompatibleVersion,
                    format!("config version does not allow {verb}")
                )),
                "{verb} {v}"
            );
        }
        assert_eq!(gate(cmd, "1.1.0"), Ok(CniVersion::V110));
        assert_eq!(
            gate(cmd, "1.2.0"),
            Err((
                ErrorCode::IncompatibleVersion,
                format!("plugin version does not allow {verb}")
            ))
        );
    }
}

#[test]
fn atoi_like_go() {
    assert_eq!(go_atoi("+1"), Ok(1));
    assert_eq!(go_atoi("-1"), Ok(-1));
    assert_eq!(go_atoi("007"), Ok(7));
    assert!(go_atoi("").is_err());
    assert!(go_atoi("+").is_err());
    assert!(go_atoi("1a").is_err());
    assert!(go_atoi("99999999999999999999")
        .unwrap_err()
        .contains("out of range"));
    assert_eq!(loose_triple("1"), Ok((1, 0, 0)));
    assert_eq!(loose_triple(""), Ok((0, 1, 0)));
    assert!(loose_triple("1..0").is_err());
}
