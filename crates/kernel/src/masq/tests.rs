use super::iptables::*;
use super::naming::*;
use super::nftables::*;
use super::*;
use cni::go_quote;
use nix::errno::Errno;

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;

use crate::netns::{run_in_netns, NetnsHandle};
use sha2::{Digest, Sha512};

use std::io::Write as _;
use std::process::Stdio;

use serde_json::{json, Value};

use crate::nft::{
    nest, put_attr, put_str, udata_comment, DecodedExpr, Expr, NftRule, NFPROTO_INET, NFPROTO_IPV4,
    NFPROTO_IPV6, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS, NFTA_RULE_HANDLE, NFTA_RULE_TABLE,
    NFTA_RULE_USERDATA, NFT_CMP_EQ, NFT_CMP_NEQ, NFT_GOTO, NFT_META_NFPROTO, NFT_RETURN,
};

fn key(network: &str, container_id: &str, ifname: &str) -> AttachmentKey {
    AttachmentKey {
        network: network.into(),
        container_id: container_id.into(),
        ifname: ifname.into(),
    }
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test CIDR")
}

/// The first `n` hex digits of sha512, computed independently of the
/// module's helpers.
fn sha512_prefix(input: &str, n: usize) -> String {
    let hex: String = Sha512::digest(input.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex[..n].to_string()
}

// --- derivations (values checked with `printf %s '...' | sha512sum`) ---

#[test]
fn hashes_match_sha512sum() {
    assert_eq!(sha512_prefix("mynet", 16), "d23676b4f2d9fe04");
    assert_eq!(sha512_prefix("eth0:ctr1", 16), "7883a6f9ce71eedb");
    assert_eq!(sha512_prefix("mynetctr1", 24), "5145007e2a8415ce07579739");
    assert_eq!(h16("mynet"), "d23676b4f2d9fe04");
    assert_eq!(h16("my\"net"), "b591271a779eb12b");
    assert_eq!(sha512_hex("eth0:ctr1").len(), 128);
}

#[test]
fn nft_comment_is_the_reference_one() {
    let k = key("mynet", "ctr1", "eth0");
    assert_eq!(nft_instance_prefix(&k), "d23676b4f2d9fe04-7883a6f9ce71eedb");
    assert_eq!(
        nft_rule_comment(&k),
        "d23676b4f2d9fe04-7883a6f9ce71eedb, net: mynet, if: eth0, id: ctr1"
    );
    assert_eq!(nft_network_prefix("mynet"), "d23676b4f2d9fe04-");
}

#[test]
fn nft_comment_strips_quotes_and_is_cut_at_128_bytes() {
    // The hash keeps the quote; the readable part loses it.
    let k = key("my\"net", "ctr1", "eth0");
    assert_eq!(
        nft_rule_comment(&k),
        "b591271a779eb12b-7883a6f9ce71eedb, net: mynet, if: eth0, id: ctr1"
    );

    let cid = "0123456789abcdef".repeat(4);
    let k = key("mynetwork-with-a-long-name", &cid, "eth0");
    let comment = nft_rule_comment(&k);
    assert_eq!(comment.len(), 128);
    let full = format!(
        "a275b858cd7084ab-848025970da6a998, net: mynetwork-with-a-long-name, if: eth0, id: {cid}"
    );
    assert_eq!(comment, full[..128]);
    // Still found by its instance prefix, and read back (cut short).
    assert!(comment.starts_with(&nft_instance_prefix(&k)));
    let (ifname, id) = parse_nft_comment(&k.network, &comment).expect("parse");
    assert_eq!(ifname, "eth0");
    assert!(cid.starts_with(&id) && id.len() < cid.len());
}

#[test]
fn nft_comment_parses_back() {
    let k = key("mynet", "ctr1", "eth0");
    let comment = nft_rule_comment(&k);
    assert_eq!(
        parse_nft_comment("mynet", &comment),
        Some(("eth0".to_string(), "ctr1".to_string()))
    );
    assert_eq!(parse_nft_comment("othernet", &comment), None);
    assert_eq!(parse_nft_comment("mynet", "unrelated comment"), None);
}

#[test]
fn iptables_names_are_the_reference_ones() {
    assert_eq!(
        iptables_chain_name("mynet", "ctr1"),
        "CNI-5145007e2a8415ce07579739"
    );
    assert_eq!(iptables_chain_name("mynet", "ctr1").len(), 28);
    assert_eq!(
        iptables_comment("mynet", "ctr1"),
        r#"name: "mynet" id: "ctr1""#
    );
    assert_eq!(
        parse_iptables_comment(r#"name: "mynet" id: "ctr1""#),
        Some(("mynet".to_string(), "ctr1".to_string()))
    );
    assert_eq!(
        parse_iptables_comment(r#"name: "mynet" id: "ctr1" x"#),
        None
    );
    assert_eq!(parse_iptables_comment("dnat name: \"a\" id: \"b\""), None);
}

#[test]
fn go_quoting_round_trips() {
    assert_eq!(go_quote("a\"b\\c\n\x01\x7f"), r#""a\"b\\c\n\x01\x7f""#);
    assert_eq!(go_quote("\u{85}é"), "\"\\u0085é\"");
    for s in [
        "plain-name_1.x",
        "with \"quotes\"",
        "tab\tand\\",
        "\u{85}\u{2028}é",
        "",
    ] {
        let quoted = go_quote(s);
        let (back, rest) = go_unquote(&quoted).expect("unquote");
        assert_eq!(back, s);
        assert!(rest.is_empty());
    }
    assert_eq!(go_unquote("\"unterminated"), None);
    assert_eq!(go_unquote("\"bad \\q escape\""), None);
}

#[test]
fn saved_lines_split_like_xtables_quotes_them() {
    let line = r#"-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"mynet\" id: \"ctr1\"" -j CNI-5145007e2a8415ce07579739"#;
    assert_eq!(
        split_saved_line(line),
        [
            "-A",
            "POSTROUTING",
            "-s",
            "10.88.0.2/32",
            "-m",
            "comment",
            "--comment",
            r#"name: "mynet" id: "ctr1""#,
            "-j",
            "CNI-5145007e2a8415ce07579739",
        ]
    );
    assert_eq!(split_saved_line("  -N   X  "), ["-N", "X"]);
    assert_eq!(split_saved_line(r#"a "b\\c""#), ["a", r"b\c"]);
}

#[test]
fn saved_table_finds_rules_and_owners() {
    let c = iptables_chain_name("mynet", "ctr1");
    let text = format!(
        r#"-P POSTROUTING ACCEPT
-N {c}
-N CNI-orphan
-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"mynet\" id: \"ctr1\"" -j {c}
-A POSTROUTING -s 10.88.0.9/32 -m comment --comment "name: \"mynet\" id: \"forged\"" -j {c}
-A {c} -d 10.88.0.0/16 -m comment --comment "name: \"mynet\" id: \"ctr1\"" -j ACCEPT
-A {c} ! -d 224.0.0.0/4 -m comment --comment "name: \"mynet\" id: \"ctr1\"" -j MASQUERADE
-A CNI-{h} -d 10.1.0.0/16 -m comment --comment "name: \"mynet\" id: \"half\"" -j ACCEPT
"#,
        h = &iptables_chain_name("mynet", "half")[4..]
    );
    let table = SavedTable::parse(&text);
    assert!(table.has_chain(&c));
    assert_eq!(
        table.masq_rules("mynet"),
        [MasqRule {
            network: "mynet".into(),
            container_id: "ctr1".into(),
            ifname: String::new(),
            source: net("10.88.0.2/16"),
        }]
    );
    assert!(table.masq_rules("othernet").is_empty());
    let owners = table.owners("mynet");
    assert_eq!(
        owners,
        HashSet::from(["ctr1".to_string(), "half".to_string()])
    );
}

#[test]
fn prefixes_are_linearized_like_nft_does() {
    // Expected values from `nft --debug=netlink` (nftables 1.0.6).
    assert_eq!(
        match_prefix(16, net("10.1.0.0/20"), NFT_CMP_NEQ),
        [
            network_payload(16, 4),
            Expr::Bitwise(vec![0xff, 0xff, 0xf0, 0]),
            Expr::Cmp(NFT_CMP_NEQ, vec![10, 1, 0, 0]),
        ]
    );
    assert_eq!(
        match_prefix(16, net("10.88.0.0/16"), NFT_CMP_NEQ),
        [network_payload(16, 2), Expr::Cmp(NFT_CMP_NEQ, vec![10, 88]),]
    );
    assert_eq!(
        match_prefix(24, net("fd00::/61"), NFT_CMP_NEQ)[..2],
        [
            network_payload(24, 16),
            Expr::Bitwise(addr_bytes("ffff:ffff:ffff:fff8::".parse().expect("mask"))),
        ]
    );
    let base = postrouting_exprs();
    assert_eq!(
        base[0],
        [
            Expr::Meta(NFT_META_NFPROTO),
            Expr::Cmp(NFT_CMP_EQ, vec![NFPROTO_IPV4]),
            network_payload(16, 4),
            Expr::Bitwise(vec![0xf0, 0, 0, 0]),
            Expr::Cmp(NFT_CMP_EQ, vec![0xe0, 0, 0, 0]),
            Expr::Verdict(NFT_RETURN, None),
        ]
    );
    assert_eq!(
        base[1],
        [
            Expr::Meta(NFT_META_NFPROTO),
            Expr::Cmp(NFT_CMP_EQ, vec![NFPROTO_IPV6]),
            network_payload(24, 1),
            Expr::Cmp(NFT_CMP_EQ, vec![0xff]),
            Expr::Verdict(NFT_RETURN, None),
        ]
    );
    assert_eq!(base[2], [Expr::Verdict(NFT_GOTO, Some(NFT_MASQ_CHAIN))]);
}

/// Encodes a masquerade rule as the kernel would dump it, and reads it back.
#[test]
fn masq_rules_round_trip_through_the_wire_format() {
    for source in [
        "10.88.0.2/16",
        "10.1.2.3/20",
        "10.1.2.3/32",
        "192.168.1.4/0",
        "fd00::5/64",
        "fd00::5/61",
        "fd00::5/128",
    ] {
        let source = net(source);
        let mut msg = vec![NFPROTO_INET, 0, 0, 0];
        put_str(&mut msg, NFTA_RULE_TABLE, NFT_TABLE);
        put_str(&mut msg, NFTA_RULE_CHAIN, NFT_MASQ_CHAIN);
        put_attr(&mut msg, NFTA_RULE_HANDLE, &42u64.to_be_bytes());
        nest(&mut msg, NFTA_RULE_EXPRESSIONS, |b| {
            for expr in masq_rule_exprs(source) {
                expr.encode(b);
            }
        });
        put_attr(&mut msg, NFTA_RULE_USERDATA, &udata_comment("c"));
        let rule = NftRule::parse(&msg).expect("parse");
        assert_eq!(rule.handle, 42);
        assert_eq!(rule.comment, "c");
        assert_eq!(rule.table, NFT_TABLE);
        assert_eq!(rule_source(&rule), Some(source), "{source}");
    }
}

#[test]
fn rules_of_another_shape_have_no_source() {
    let rule = NftRule {
        table: NFT_TABLE.into(),
        chain: NFT_MASQ_CHAIN.into(),
        handle: 1,
        comment: String::new(),
        exprs: vec![DecodedExpr::Other("counter".into())],
    };
    assert_eq!(rule_source(&rule), None);
    let jump = NftRule {
        exprs: vec![DecodedExpr::Verdict(NFT_GOTO, Some(NFT_MASQ_CHAIN.into()))],
        ..rule
    };
    assert_eq!(rule_source(&jump), None);
}

#[test]
fn a_firewall_failure_keeps_its_cause_but_is_never_already_done() {
    let cause = NetError::Nftables {
        op: "delete rule".into(),
        errno: Errno::ENOENT,
        message: None,
    };
    let err = NetError::Firewall(Box::new(NetError::Several(vec![
        cause,
        NetError::NftProtocol("no answer".into()),
    ])));
    assert_eq!(
        err.to_string(),
        "firewall: nftables: cannot delete rule: ENOENT: No such file or directory; \
         nftables netlink: no answer"
    );
    // DEL's "already gone is done" never swallows a firewall failure...
    assert!(!err.is_not_found());
    // ...whose errno stays readable as data.
    let NetError::Firewall(inner) = &err else {
        panic!("{err:?}")
    };
    let NetError::Several(causes) = &**inner else {
        panic!("{inner:?}")
    };
    assert_eq!(causes[0].errno(), Some(Errno::ENOENT));
}

#[test]
fn kernel_errors_keep_errno_and_message() {
    let err = NetError::Nftables {
        op: "create base chain postrouting".into(),
        errno: Errno::EEXIST,
        message: Some("Chain type mismatch".into()),
    };
    assert_eq!(err.errno(), Some(Errno::EEXIST));
    assert_eq!(
        err.to_string(),
        "nftables: cannot create base chain postrouting: EEXIST: File exists (Chain type mismatch)"
    );
}

#[test]
fn unknown_backend_is_refused_by_name() {
    match masquerade_for("ebtables") {
        Err(e) => assert_eq!(e.to_string(), r#"unknown ipmasq backend "ebtables""#),
        Ok(_) => panic!("ebtables accepted"),
    }
}

// --- in throwaway network namespaces ---

/// A network namespace made for one test. Nothing is mounted: it goes
/// away when this handle (and any socket opened inside) is dropped, also
/// when the test panics.
struct TestNetns {
    ns: NetnsHandle,
}

impl TestNetns {
    /// `None` (after printing SKIP) when namespaces cannot be created;
    /// a failure instead when `WASM_CNI_REQUIRE_PRIVILEGED=1`.
    fn new(test: &str) -> Option<Self> {
        crate::netns::tests::test_netns(test).map(|ns| TestNetns { ns })
    }

    /// Runs `f` on a fresh thread inside the namespace.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        run_in_netns(&self.ns, f).expect("enter the test namespace")
    }

    /// A path other processes can open (`CNI_NETNS`).
    fn path(&self) -> String {
        format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.ns.as_fd().as_raw_fd()
        )
    }
}

fn skip(test: &str, why: &str) {
    if std::env::var("WASM_CNI_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
        panic!("{test} cannot run: {why}");
    }
    eprintln!("SKIP {test}: {why}");
}

fn installed(test: &str, program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        skip(test, &format!("{program} is not installed"));
    }
    found
}

/// Runs a tool (in the calling thread's namespace) and returns stdout.
fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn nft_ruleset() -> Value {
    serde_json::from_str(&tool("nft", &["-j", "list", "ruleset"])).expect("nft json")
}

/// The objects of `nft -j` output of one kind (`table`, `chain`, `rule`),
/// without their handles (which differ between runs).
fn objects(ruleset: &Value, kind: &str) -> Vec<Value> {
    ruleset["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .filter_map(|o| o.get(kind).cloned())
        .map(|mut o| {
            if let Some(map) = o.as_object_mut() {
                map.remove("handle");
            }
            o
        })
        .collect()
}

fn rules_of(ruleset: &Value, chain: &str) -> Vec<Value> {
    objects(ruleset, "rule")
        .into_iter()
        .filter(|r| r["chain"] == chain)
        .collect()
}

/// How `nft -j` shows the reference's rule for `source`.
fn expected_masq_rule(source: IpNet, comment: &str) -> Value {
    let proto = if source.addr().is_ipv4() { "ip" } else { "ip6" };
    let max = if source.addr().is_ipv4() { 32 } else { 128 };
    let subnet = source.trunc();
    let right = if subnet.prefix_len() == max {
        json!(subnet.addr().to_string())
    } else {
        json!({"prefix": {"addr": subnet.addr().to_string(), "len": subnet.prefix_len()}})
    };
    json!({
        "family": "inet",
        "table": NFT_TABLE,
        "chain": NFT_MASQ_CHAIN,
        "comment": comment,
        "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "saddr"}},
                       "right": source.addr().to_string()}},
            {"match": {"op": "!=", "left": {"payload": {"protocol": proto, "field": "daddr"}},
                       "right": right}},
            {"masquerade": null},
        ],
    })
}

fn assert_reference_layout(ruleset: &Value) {
    assert_eq!(
        objects(ruleset, "table"),
        [json!({"family": "inet", "name": NFT_TABLE})]
    );
    assert_eq!(
        objects(ruleset, "chain"),
        [
            json!({"family": "inet", "table": NFT_TABLE, "name": "masq_checks"}),
            json!({"family": "inet", "table": NFT_TABLE, "name": "postrouting",
                       "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}),
        ]
    );
    let base: Vec<Value> = rules_of(ruleset, "postrouting")
        .into_iter()
        .map(|r| r["expr"].clone())
        .collect();
    assert_eq!(
        base,
        [
            json!([{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                                  "right": {"prefix": {"addr": "224.0.0.0", "len": 4}}}},
                       {"return": null}]),
            json!([{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}},
                                  "right": {"prefix": {"addr": "ff00::", "len": 8}}}},
                       {"return": null}]),
            json!([{"goto": {"target": "masq_checks"}}]),
        ]
    );
}

fn sorted(mut rules: Vec<MasqRule>) -> Vec<MasqRule> {
    rules.sort_by(|a, b| {
        (&a.container_id, &a.ifname, a.source).cmp(&(&b.container_id, &b.ifname, b.source))
    });
    rules
}

fn masq_rule(k: &AttachmentKey, source: &str) -> MasqRule {
    MasqRule {
        network: k.network.clone(),
        container_id: k.container_id.clone(),
        ifname: k.ifname.clone(),
        source: net(source),
    }
}

#[test]
fn nft_add_remove_gc_in_a_namespace() {
    const TEST: &str = "nft_add_remove_gc_in_a_namespace";
    let Some(ns) = TestNetns::new(TEST) else {
        return;
    };
    if !installed(TEST, "nft") {
        return;
    }
    ns.run(|| {
        let mut nft = NftMasquerade::open().expect("open");
        let k1 = key("mynet", "ctr1", "eth0");
        let k2 = key("mynet", "ctr2", "eth0");
        let other = key("othernet", "ctr1", "eth0");

        // Nothing there yet: listing and removing are fine.
        assert!(nft.rules("mynet").expect("rules").is_empty());
        nft.remove(&k1).expect("remove before anything exists");
        assert!(objects(&nft_ruleset(), "table").is_empty());

        let added = [
            (&k1, "10.88.0.2/16"),
            (&k1, "fd00:88::2/64"),
            (&k2, "10.88.0.3/16"),
            (&other, "10.99.0.2/24"),
        ];
        for (k, source) in added {
            nft.add(k, net(source)).expect("add");
        }
        let ruleset = nft_ruleset();
        assert_reference_layout(&ruleset);
        let expected: Vec<Value> = added
            .iter()
            .map(|(k, s)| expected_masq_rule(net(s), &nft_rule_comment(k)))
            .collect();
        assert_eq!(rules_of(&ruleset, "masq_checks"), expected);
        // The reference finds its rules by this prefix.
        let comment = rules_of(&ruleset, "masq_checks")[0]["comment"].clone();
        let reference_prefix = format!(
            "{}-{}",
            sha512_prefix("mynet", 16),
            sha512_prefix("eth0:ctr1", 16)
        );
        assert!(comment
            .as_str()
            .is_some_and(|c| c.starts_with(&reference_prefix)));
        // And `nft list` renders the comment and the rule as text.
        let text = tool("nft", &["list", "chain", "inet", NFT_TABLE, "masq_checks"]);
        assert!(
            text.contains(&format!(
                "ip saddr 10.99.0.2 ip daddr != 10.99.0.0/24 masquerade comment \"{}\"",
                nft_rule_comment(&other)
            )),
            "{text}"
        );

        // Adding again changes nothing (cni#925).
        for (k, source) in added {
            nft.add(k, net(source)).expect("add again");
        }
        let again = nft_ruleset();
        assert_reference_layout(&again);
        assert_eq!(rules_of(&again, "masq_checks"), expected);

        assert_eq!(
            sorted(nft.rules("mynet").expect("rules")),
            [
                masq_rule(&k1, "10.88.0.2/16"),
                masq_rule(&k1, "fd00:88::2/64"),
                masq_rule(&k2, "10.88.0.3/16"),
            ]
        );

        // A new subnet for the same address replaces the old rule.
        nft.add(&k1, net("10.88.0.2/24")).expect("add new subnet");
        assert_eq!(
            sorted(nft.rules("mynet").expect("rules")),
            [
                masq_rule(&k1, "10.88.0.2/24"),
                masq_rule(&k1, "fd00:88::2/64"),
                masq_rule(&k2, "10.88.0.3/16"),
            ]
        );

        // Removal by key alone takes both addresses of k1.
        nft.remove(&k1).expect("remove");
        nft.remove(&k1).expect("remove again");
        assert_eq!(
            nft.rules("mynet").expect("rules"),
            [masq_rule(&k2, "10.88.0.3/16")]
        );
        assert_eq!(
            nft.rules("othernet").expect("rules"),
            [masq_rule(&other, "10.99.0.2/24")]
        );

        // GC keeps valid attachments, and never looks at other networks.
        let removed = nft
            .gc("mynet", &[("ctr2".into(), "eth1".into())])
            .expect("gc");
        assert_eq!(removed, [masq_rule(&k2, "10.88.0.3/16")]);
        assert!(nft.gc("mynet", &[]).expect("gc again").is_empty());
        assert!(nft
            .gc("othernet", &[("ctr1".into(), "eth0".into())])
            .expect("gc other")
            .is_empty());
        let left = nft_ruleset();
        assert_reference_layout(&left);
        assert_eq!(
            rules_of(&left, "masq_checks"),
            [expected_masq_rule(
                net("10.99.0.2/24"),
                &nft_rule_comment(&other)
            )]
        );
    });
}

#[test]
fn nft_add_collapses_duplicates() {
    const TEST: &str = "nft_add_collapses_duplicates";
    let Some(ns) = TestNetns::new(TEST) else {
        return;
    };
    if !installed(TEST, "nft") {
        return;
    }
    ns.run(|| {
            let mut nft = NftMasquerade::open().expect("open");
            let k = key("mynet", "ctr1", "eth0");
            let comment = nft_rule_comment(&k);
            nft.add(&k, net("10.88.0.2/16")).expect("add");
            // A duplicate, as left behind by cni#925-style double installs.
            let dup = format!(
                "add rule inet {NFT_TABLE} masq_checks ip saddr 10.88.0.2 ip daddr != 10.88.0.0/16 masquerade comment \"{comment}\""
            );
            tool("nft", &[&dup]);
            tool("nft", &[&dup]);
            assert_eq!(rules_of(&nft_ruleset(), "masq_checks").len(), 3);
            nft.add(&k, net("10.88.0.2/16")).expect("add");
            assert_eq!(
                rules_of(&nft_ruleset(), "masq_checks"),
                [expected_masq_rule(net("10.88.0.2/16"), &comment)]
            );
        });
}

/// What knftables sends for the reference's `setupIPMasqNFTables`
/// (plugins `pkg/ip/ipmasq_nftables_linux.go`) for one address.
fn reference_transaction(k: &AttachmentKey, source: IpNet) -> String {
    // Literals copied from the Go code, not from this module.
    let t = "cni_plugins_masquerade";
    let ip = if source.addr().is_ipv4() { "ip" } else { "ip6" };
    format!(
            "add table inet {t} {{ comment \"Masquerading for plugins from github.com/containernetworking/plugins\" ; }}\n\
             add chain inet {t} masq_checks {{ comment \"Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet\" ; }}\n\
             add chain inet {t} postrouting {{ type nat hook postrouting priority srcnat ; }}\n\
             flush chain inet {t} postrouting\n\
             add rule inet {t} postrouting ip daddr == 224.0.0.0/4  return\n\
             add rule inet {t} postrouting ip6 daddr == ff00::/8  return\n\
             add rule inet {t} postrouting goto masq_checks\n\
             add rule inet {t} masq_checks {ip} saddr == {a} {ip} daddr != {subnet} masquerade comment \"{c}\"\n",
            a = source.addr(),
            subnet = source.trunc(),
            c = nft_rule_comment(k),
        )
}

fn nft_file(script: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write script");
    assert!(
        child.wait().expect("nft").success(),
        "nft -f failed:\n{script}"
    );
}

/// Our rules and the reference's are the same objects, and either side's
/// ADD leaves the layout single, so a node can switch plugins.
#[test]
fn nft_layout_is_the_reference_layout() {
    const TEST: &str = "nft_layout_is_the_reference_layout";
    let Some(ns) = TestNetns::new(TEST) else {
        return;
    };
    if !installed(TEST, "nft") {
        return;
    }
    ns.run(|| {
        let k1 = key("mynet", "ctr1", "eth0");
        let k2 = key("mynet", "ctr2", "eth0");
        let v4 = net("10.88.0.2/16");
        let v6 = net("fd00:88::2/64");

        nft_file(&reference_transaction(&k1, v4));
        nft_file(&reference_transaction(&k1, v6));
        let reference = nft_ruleset();
        // Table and chain comments are not in nftables 1.0.6's JSON; the
        // text output shows them.
        let reference_text = tool("nft", &["list", "ruleset"]);
        tool("nft", &["flush", "ruleset"]);

        let mut nft = NftMasquerade::open().expect("open");
        nft.add(&k1, v4).expect("add v4");
        nft.add(&k1, v6).expect("add v6");
        let ours = nft_ruleset();
        for kind in ["table", "chain", "rule"] {
            assert_eq!(objects(&ours, kind), objects(&reference, kind), "{kind}");
        }
        assert_eq!(tool("nft", &["list", "ruleset"]), reference_text);

        // The reference's ADD after ours: still one layout, both rules.
        nft_file(&reference_transaction(&k2, net("10.88.0.3/16")));
        assert_reference_layout(&nft_ruleset());
        assert_eq!(
            sorted(nft.rules("mynet").expect("rules")),
            [
                masq_rule(&k1, "10.88.0.2/16"),
                masq_rule(&k1, "fd00:88::2/64"),
                masq_rule(&k2, "10.88.0.3/16"),
            ]
        );
        // Ours after the reference's: the same.
        nft.add(&k2, net("10.88.0.3/16")).expect("add k2");
        assert_reference_layout(&nft_ruleset());
        assert_eq!(rules_of(&nft_ruleset(), "masq_checks").len(), 3);

        // The reference's teardown: delete the masq_checks rules whose
        // comment starts with the instance hash. It takes ours.
        let prefix = format!(
            "{}-{}",
            sha512_prefix("mynet", 16),
            sha512_prefix("eth0:ctr1", 16)
        );
        let ruleset = nft_ruleset();
        for rule in ruleset["nftables"].as_array().expect("array") {
            let Some(rule) = rule.get("rule") else {
                continue;
            };
            if rule["chain"] == "masq_checks"
                && rule["comment"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(&prefix))
            {
                let handle = rule["handle"].to_string();
                tool(
                    "nft",
                    &[
                        "delete",
                        "rule",
                        "inet",
                        NFT_TABLE,
                        "masq_checks",
                        "handle",
                        &handle,
                    ],
                );
            }
        }
        assert_eq!(
            nft.rules("mynet").expect("rules"),
            [masq_rule(&k2, "10.88.0.3/16")]
        );
        // And ours takes a rule the reference made.
        nft.remove(&k2).expect("remove k2");
        assert!(nft.rules("mynet").expect("rules").is_empty());
    });
}

/// `-N` and `-A` lines of the nat table, sorted (iptables-nft lists
/// chains in its own order).
fn nat_rules(program: &str) -> Vec<String> {
    let mut lines: Vec<String> = tool(program, &["-t", "nat", "-S"])
        .lines()
        .filter(|l| !l.starts_with("-P "))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn sorted_lines<const N: usize>(lines: [String; N]) -> Vec<String> {
    let mut lines = lines.to_vec();
    lines.sort();
    lines
}

/// The lines `iptables -t nat -S` shows for the reference's rules.
fn reference_iptables_lines(k: &AttachmentKey, source: IpNet) -> [String; 3] {
    let chain = iptables_chain_name(&k.network, &k.container_id);
    let comment = format!(
        r#"--comment "name: \"{}\" id: \"{}\"""#,
        k.network, k.container_id
    );
    let (host, multicast) = if source.addr().is_ipv4() {
        (32, "224.0.0.0/4")
    } else {
        (128, "ff00::/8")
    };
    [
        format!(
            "-A POSTROUTING -s {}/{host} -m comment {comment} -j {chain}",
            source.addr()
        ),
        format!(
            "-A {chain} -d {} -m comment {comment} -j ACCEPT",
            source.trunc()
        ),
        format!("-A {chain} ! -d {multicast} -m comment {comment} -j MASQUERADE"),
    ]
}

#[test]
fn iptables_add_remove_gc_in_a_namespace() {
    const TEST: &str = "iptables_add_remove_gc_in_a_namespace";
    let Some(ns) = TestNetns::new(TEST) else {
        return;
    };
    if !installed(TEST, "iptables") || !installed(TEST, "ip6tables") {
        return;
    }
    ns.run(|| {
        let mut ipt = IptablesMasquerade::open().expect("open");
        let k1 = key("mynet", "ctr1", "eth0");
        let k2 = key("mynet", "ctr2", "eth0");
        let other = key("othernet", "ctr1", "eth0");
        let c1 = iptables_chain_name("mynet", "ctr1");
        let c2 = iptables_chain_name("mynet", "ctr2");
        let c3 = iptables_chain_name("othernet", "ctr1");

        assert!(ipt.rules("mynet").expect("rules").is_empty());
        ipt.remove(&k1).expect("remove before anything exists");

        for _ in 0..2 {
            ipt.add(&k1, net("10.88.0.2/16")).expect("add");
            ipt.add(&k1, net("fd00:88::2/64")).expect("add v6");
            ipt.add(&k2, net("10.88.0.3/16")).expect("add k2");
            ipt.add(&other, net("10.99.0.2/24")).expect("add other");
        }
        // Exactly the reference's rules, once each.
        let [j1, a1, m1] = reference_iptables_lines(&k1, net("10.88.0.2/16"));
        let [j2, a2, m2] = reference_iptables_lines(&k2, net("10.88.0.3/16"));
        let [j3, a3, m3] = reference_iptables_lines(&other, net("10.99.0.2/24"));
        assert_eq!(
            nat_rules("iptables"),
            sorted_lines([
                format!("-N {c1}"),
                format!("-N {c2}"),
                format!("-N {c3}"),
                j1,
                j2.clone(),
                j3.clone(),
                a1,
                m1,
                a2.clone(),
                m2.clone(),
                a3.clone(),
                m3.clone(),
            ])
        );
        let [j6, a6, m6] = reference_iptables_lines(&k1, net("fd00:88::2/64"));
        assert_eq!(
            nat_rules("ip6tables"),
            sorted_lines([format!("-N {c1}"), j6, a6, m6])
        );

        let no_ifname = |k: &AttachmentKey, s: &str| MasqRule {
            ifname: String::new(),
            ..masq_rule(k, s)
        };
        assert_eq!(
            sorted(ipt.rules("mynet").expect("rules")),
            [
                no_ifname(&k1, "10.88.0.2/16"),
                no_ifname(&k1, "fd00:88::2/64"),
                no_ifname(&k2, "10.88.0.3/16"),
            ]
        );

        // Removal needs no address and takes both families.
        ipt.remove(&k1).expect("remove");
        ipt.remove(&k1).expect("remove again");
        assert_eq!(
            nat_rules("iptables"),
            sorted_lines([
                format!("-N {c2}"),
                format!("-N {c3}"),
                j2,
                j3.clone(),
                a2,
                m2,
                a3.clone(),
                m3.clone(),
            ])
        );
        assert!(nat_rules("ip6tables").is_empty());

        // A half-made chain (no POSTROUTING jump yet) is collected too.
        let half = iptables_chain_name("mynet", "half");
        tool("iptables", &["-t", "nat", "-N", &half]);
        tool(
            "iptables",
            &[
                "-t",
                "nat",
                "-A",
                &half,
                "-d",
                "10.88.0.9/16",
                "-j",
                "ACCEPT",
                "-m",
                "comment",
                "--comment",
                r#"name: "mynet" id: "half""#,
            ],
        );
        let removed = ipt
            .gc("mynet", &[("ctr9".into(), "eth0".into())])
            .expect("gc");
        assert_eq!(removed, [no_ifname(&k2, "10.88.0.3/16")]);
        assert!(ipt
            .gc("othernet", &[("ctr1".into(), "eth7".into())])
            .expect("gc other")
            .is_empty());
        assert_eq!(
            nat_rules("iptables"),
            sorted_lines([format!("-N {c3}"), j3, a3, m3])
        );
    });
}

/// A backend acts on the namespace it was opened in, from any thread.
#[test]
fn backends_stay_in_the_namespace_they_were_opened_in() {
    const TEST: &str = "backends_stay_in_the_namespace_they_were_opened_in";
    let (Some(a), Some(b)) = (TestNetns::new(TEST), TestNetns::new(TEST)) else {
        return;
    };
    if !installed(TEST, "nft") || !installed(TEST, "iptables") {
        return;
    }
    let (mut nft, mut ipt) = a.run(|| {
        (
            NftMasquerade::open().expect("open nft"),
            IptablesMasquerade::open().expect("open iptables"),
        )
    });
    let k = key("mynet", "ctr1", "eth0");
    b.run(|| {
        nft.add(&k, net("10.88.0.2/16")).expect("nft add");
        ipt.add(&k, net("10.88.0.2/16")).expect("iptables add");
        assert!(objects(&nft_ruleset(), "table").is_empty());
        assert!(nat_rules("iptables").is_empty());
    });
    a.run(|| {
        assert_eq!(rules_of(&nft_ruleset(), "masq_checks").len(), 1);
        assert_eq!(nat_rules("iptables").len(), 4);
    });
}

/// The Go reference bridge (Debian's 1.1.1 has only the iptables
/// backend) and ours write the same iptables rules, and ours removes the
/// reference's without knowing the address. Everything, the "host" side
/// included, runs in namespaces made here.
#[test]
fn iptables_interop_with_the_reference_bridge() {
    const TEST: &str = "iptables_interop_with_the_reference_bridge";
    let bridge = "/usr/lib/cni/bridge";
    if !std::path::Path::new(bridge).exists() {
        skip(TEST, "the Go reference bridge is not installed");
        return;
    }
    let (Some(host), Some(container)) = (TestNetns::new(TEST), TestNetns::new(TEST)) else {
        return;
    };
    if !installed(TEST, "iptables") {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let config = json!({
        "cniVersion": "1.0.0",
        "name": "interop",
        "type": "bridge",
        "bridge": "wcnimasq0",
        "isGateway": true,
        "ipMasq": true,
        "ipam": {
            "type": "host-local",
            "subnet": "10.77.0.0/24",
            "dataDir": data.path(),
        },
    })
    .to_string();
    let cni = |command: &str, container_id: &str| {
        let mut child = Command::new(bridge)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container_id)
            .env("CNI_NETNS", container.path())
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bridge");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(config.as_bytes())
            .expect("write config");
        let out = child.wait_with_output().expect("bridge");
        assert!(
            out.status.success(),
            "bridge {command}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    host.run(|| {
        let mut ipt = IptablesMasquerade::open().expect("open");
        let k = key("interop", "ctr-ref", "eth0");
        // host-local hands out .2 first.
        let source = net("10.77.0.2/24");

        // Ours first, then the reference's ADD finds identical rules.
        ipt.add(&k, source).expect("add");
        let ours = nat_rules("iptables");
        let result: Value = serde_json::from_str(&cni("ADD", "ctr-ref")).expect("result");
        assert_eq!(result["ips"][0]["address"], "10.77.0.2/24");
        assert_eq!(nat_rules("iptables"), ours);
        ipt.add(&k, source).expect("add again");
        assert_eq!(nat_rules("iptables"), ours);
        assert_eq!(
            ipt.rules("interop").expect("rules"),
            [MasqRule {
                ifname: String::new(),
                ..masq_rule(&k, "10.77.0.2/24")
            }]
        );

        // Ours removes them by key, without the address.
        ipt.remove(&k).expect("remove");
        assert!(nat_rules("iptables").is_empty());

        // The reference's DEL removes rules that ours made. (Not after
        // ours removed them: while the interface exists, the reference's
        // DEL fails whenever its chain is already gone, whoever removed
        // it, because its go-iptables does not read iptables-nft's exit
        // status 2, "Chain ... does not exist", as "not there".)
        ipt.add(&k, source)
            .expect("add for the reference to delete");
        cni("DEL", "ctr-ref");
        assert!(nat_rules("iptables").is_empty());

        // The reference's own ADD, listed and removed by ours.
        let result: Value = serde_json::from_str(&cni("ADD", "ctr-2")).expect("result");
        let address = result["ips"][0]["address"].as_str().expect("address");
        assert_eq!(
            ipt.rules("interop").expect("rules"),
            [MasqRule {
                ifname: String::new(),
                ..masq_rule(&key("interop", "ctr-2", "eth0"), address)
            }]
        );
        ipt.remove(&key("interop", "ctr-2", "eth0"))
            .expect("remove");
        assert!(nat_rules("iptables").is_empty());
    });
}

/// A batch is all or nothing, and losing a race to another writer that
/// deleted the same rule is retried with a fresh listing.
#[test]
fn nft_batches_are_atomic_and_lost_races_are_retried() {
    const TEST: &str = "nft_batches_are_atomic_and_lost_races_are_retried";
    let Some(ns) = TestNetns::new(TEST) else {
        return;
    };
    if !installed(TEST, "nft") {
        return;
    }
    ns.run(|| {
        let mut nft = NftMasquerade::open().expect("open");
        let k1 = key("mynet", "ctr1", "eth0");
        let k2 = key("mynet", "ctr2", "eth0");
        nft.add(&k1, net("10.88.0.2/16")).expect("add");
        let handle = nft.list_rules().expect("list")[0].handle;

        // A stale handle fails the batch; the rule added with it is gone.
        tool(
            "nft",
            &[
                "delete",
                "rule",
                "inet",
                NFT_TABLE,
                "masq_checks",
                "handle",
                &handle.to_string(),
            ],
        );
        let mut batch = nft.sock.batch(NFPROTO_INET);
        add_masq_rule(&mut batch, net("10.88.0.3/16"), &nft_rule_comment(&k2));
        delete_masq_rule(&mut batch, handle);
        let err = nft.sock.commit(batch).expect_err("stale handle");
        assert_eq!(err.errno(), Some(Errno::ENOENT), "{err}");
        assert!(rules_of(&nft_ruleset(), "masq_checks").is_empty());

        // Another writer deletes the rule between our listing and our
        // commit: the transaction is planned again and succeeds.
        nft.add(&k1, net("10.88.0.2/16")).expect("add");
        let mut attempts = 0;
        nft.transact(|rules, batch| {
            attempts += 1;
            for rule in rules {
                if attempts == 1 {
                    let handle = rule.handle.to_string();
                    tool(
                        "nft",
                        &[
                            "delete",
                            "rule",
                            "inet",
                            NFT_TABLE,
                            "masq_checks",
                            "handle",
                            &handle,
                        ],
                    );
                }
                delete_masq_rule(batch, rule.handle);
            }
        })
        .expect("transact");
        assert_eq!(attempts, 2);
        assert!(nft.rules("mynet").expect("rules").is_empty());
    });
}
