use super::super::error::ErrorCode;
use super::*;

fn pairs(a: &CniArgs) -> Vec<(&str, &str)> {
    a.pairs()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn empty_and_none() {
    for raw in ["", "none"] {
        let a = CniArgs::parse(raw).unwrap();
        assert!(a.is_empty());
        assert_eq!(a.raw(), raw);
        a.check_known(&[]).unwrap();
    }
}

#[test]
fn valid_pairs() {
    let a = CniArgs::parse("IP=10.0.0.5;MAC=0a:58:0a:00:00:05;IP=10.0.0.6").unwrap();
    assert_eq!(
        pairs(&a),
        [
            ("IP", "10.0.0.5"),
            ("MAC", "0a:58:0a:00:00:05"),
            ("IP", "10.0.0.6")
        ]
    );
    assert_eq!(a.get("IP"), Some("10.0.0.6"));
    assert_eq!(a.get("ip"), None, "keys are case-sensitive");
    assert_eq!(a.get("MAC"), Some("0a:58:0a:00:00:05"));
    a.check_known(&["IP", "MAC"]).unwrap();
    // Empty key or value still splits into two parts.
    let a = CniArgs::parse("K=;=v").unwrap();
    assert_eq!(pairs(&a), [("K", ""), ("", "v")]);
}

#[test]
fn invalid_pairs() {
    for (raw, bad) in [
        ("FOO", "FOO"),
        ("A=1;B", "B"),
        ("A=1;", ""),
        (";A=1", ""),
        ("A=b=c", "A=b=c"),
        ("IgnoreUnknown=1;X=a=b", "X=a=b"),
    ] {
        let e = CniArgs::parse(raw).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidEnvironment, "{raw}");
        assert_eq!(e.msg, format!("ARGS: invalid pair \"{bad}\""), "{raw}");
        // Lenient parsing defers the same error to the consumer.
        let a = CniArgs::parse_lenient(raw);
        assert_eq!(a.validate().unwrap_err(), e);
        assert_eq!(a.check_known(&["A", "B", "X"]).unwrap_err(), e);
    }
    let a = CniArgs::parse_lenient("A=1;junk;B=2");
    assert_eq!(pairs(&a), [("A", "1"), ("B", "2")]);
}

#[test]
fn ignore_unknown_values() {
    for v in ["1", "true", "TRUE", "True"] {
        assert!(
            CniArgs::parse(&format!("IgnoreUnknown={v}"))
                .unwrap()
                .ignore_unknown(),
            "{v}"
        );
    }
    for v in ["0", "false", "", "yes"] {
        assert!(
            !CniArgs::parse(&format!("IgnoreUnknown={v}"))
                .unwrap()
                .ignore_unknown(),
            "{v}"
        );
    }
    assert!(!CniArgs::parse("ignoreunknown=1").unwrap().ignore_unknown());
    let e = CniArgs::parse("IgnoreUnknown=Yes;FOO=1")
        .unwrap()
        .check_known(&[])
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidEnvironment);
    assert_eq!(
            e.msg,
            "ARGS: error parsing value of pair \"IgnoreUnknown=Yes\": boolean unmarshal error: invalid input yes"
        );
}

#[test]
fn unknown_keys() {
    let a = CniArgs::parse("IP=10.0.0.5;FOO=bar;BAZ=1").unwrap();
    let e = a.check_known(&["IP"]).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidEnvironment);
    assert_eq!(e.msg, "ARGS: unknown args [\"FOO=bar\" \"BAZ=1\"]");
    a.check_known(&["IP", "FOO", "BAZ"]).unwrap();
    CniArgs::parse("IP=10.0.0.5;FOO=bar;IgnoreUnknown=true")
        .unwrap()
        .check_known(&["IP"])
        .unwrap();
    // IgnoreUnknown counts wherever it stands.
    CniArgs::parse("FOO=bar;IgnoreUnknown=1")
        .unwrap()
        .check_known(&[])
        .unwrap();
    let e = CniArgs::parse("FOO=bar;IgnoreUnknown=0")
        .unwrap()
        .check_known(&[])
        .unwrap_err();
    assert_eq!(e.msg, "ARGS: unknown args [\"FOO=bar\"]");
}

#[test]
fn k8s_keys_tolerated() {
    let a = CniArgs::parse(
            "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1",
        )
        .unwrap();
    a.check_known(&[]).unwrap();
    assert_eq!(a.get("K8S_POD_NAME"), Some("web-0"));
    let a = CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1",
        )
        .unwrap();
    a.check_known(&["MAC"]).unwrap();
    // Only the K8S_ prefix, case-sensitively.
    let e = CniArgs::parse("k8s_POD=x")
        .unwrap()
        .check_known(&[])
        .unwrap_err();
    assert_eq!(e.msg, "ARGS: unknown args [\"k8s_POD=x\"]");
}

#[test]
fn load_reads_known_values_in_order_like_the_reference() {
    let args = CniArgs::from_pairs(&[
        ("FOO".to_string(), "1".to_string()),
        ("IP".to_string(), "10.0.0.5".to_string()),
    ]);
    assert_eq!(args.raw(), "FOO=1;IP=10.0.0.5");
    let mut seen = Vec::new();
    let e = args
        .load(&["IP"], |k, v| {
            seen.push((k.to_string(), v.to_string()));
            Ok(())
        })
        .unwrap_err();
    assert_eq!(seen, [("IP".to_string(), "10.0.0.5".to_string())]);
    assert_eq!(e.code, ErrorCode::InvalidEnvironment);
    assert_eq!(e.msg, r#"ARGS: unknown args ["FOO=1"]"#);
    // A bad value of a known key fails before the unknown keys are counted.
    let e = args.load(&["IP"], |_, _| Err("bad IP".into())).unwrap_err();
    assert_eq!(
        e.msg,
        r#"ARGS: error parsing value of pair "IP=10.0.0.5": bad IP"#
    );
    let e = CniArgs::parse("CommonArgs=x")
        .unwrap()
        .check_known(&[])
        .unwrap_err();
    assert!(e.msg.contains("'CommonArgs'"), "{}", e.msg);
}
