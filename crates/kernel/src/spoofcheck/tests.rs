use super::*;
use crate::netns::tests::test_netns;
use crate::netns::{run_in_netns, NetnsHandle};
use crate::rtnl::RtNetlink;
use crate::Netlink;

use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

// --- names and plans, no kernel ---

#[test]
fn names_are_the_reference_ones() {
    // Literals from plugins pkg/link/spoofcheck.go and bridge.go's uniqueID.
    assert_eq!(spoof_iface_chain("ctr1", "eth0"), "cni-br-iface-ctr1-eth0");
    assert_eq!(
        spoof_mac_chain("ctr1", "eth0"),
        "cni-br-iface-ctr1-eth0-mac"
    );
    assert_eq!(spoof_rule_comment("ctr1", "eth0"), "macspoofchk-ctr1-eth0");
    // A 64-hex container ID (what runtimes use) with a 15-byte ifname fits.
    let cid = "a".repeat(64);
    let names = AttachmentNames::new(&cid, "abcdefghijklmno").expect("fits");
    assert_eq!(names.mac_chain.len(), 13 + 64 + 1 + 15 + 4);
}

#[test]
fn names_beyond_kernel_limits_are_refused() {
    // 13 + cid + 1 + "eth0" + 4 = 255 is the longest chain name.
    let fits = "c".repeat(255 - 13 - 1 - 4 - 4);
    assert!(AttachmentNames::new(&fits, "eth0").is_ok());
    let long = format!("{fits}c");
    match AttachmentNames::new(&long, "eth0") {
        Err(NetError::Invalid(msg)) => {
            assert!(msg.contains("256 bytes") && msg.contains("237"), "{msg}")
        }
        other => panic!("accepted a 256-byte chain name: {:?}", other.err()),
    }
    for (cid, ifname) in [("", "eth0"), ("ctr1", ""), ("c\0", "eth0")] {
        assert!(
            matches!(AttachmentNames::new(cid, ifname), Err(NetError::Invalid(_))),
            "{cid:?} {ifname:?}"
        );
    }
    assert_eq!(iifname_key("veth0").expect("ok").len(), IFNAMSIZ);
    for bad in ["", "sixteen-bytes-xx", "a\0b"] {
        assert!(
            matches!(iifname_key(bad), Err(NetError::Invalid(_))),
            "{bad:?}"
        );
    }
}

fn dumped(handle: u64, comment: &str, exprs: Vec<DecodedExpr>) -> NftRule {
    NftRule {
        table: SPOOF_TABLE.into(),
        chain: SPOOF_BASE_CHAIN.into(),
        handle,
        comment: comment.into(),
        exprs,
    }
}

#[test]
fn removal_takes_rules_by_comment_or_by_target() {
    let names = AttachmentNames::new("ctr1", "eth0").expect("names");
    let key = iifname_key("veth0").expect("key");
    let ours = dumped(
        1,
        &names.comment,
        dispatch_rule_dumped(&key, &names.iface_chain),
    );
    let no_comment = dumped(2, "", dispatch_rule_dumped(&key, &names.iface_chain));
    let to_mac = dumped(
        3,
        "",
        vec![DecodedExpr::Verdict(
            NFT_JUMP,
            Some(names.mac_chain.clone()),
        )],
    );
    let other = dumped(
        4,
        "macspoofchk-ctr1-eth1",
        dispatch_rule_dumped(&key, "cni-br-iface-ctr1-eth1"),
    );
    let prefix_only = dumped(5, "macspoofchk-ctr1-eth0x", vec![]);
    for rule in [&ours, &no_comment, &to_mac] {
        assert!(names.owns(rule), "{rule:?}");
    }
    for rule in [&other, &prefix_only] {
        assert!(!names.owns(rule), "{rule:?}");
    }
}

#[test]
fn base_chain_refusals_are_told_apart() {
    let refusal = |errno| NetError::Nftables {
        op: "create base chain PREROUTING".into(),
        errno,
        message: None,
    };
    // No PREROUTING before: the kernel lacks the bridge family.
    for errno in [Errno::ENOENT, Errno::EOPNOTSUPP, Errno::EAFNOSUPPORT] {
        let e = install_error("ctr1-eth0", false, refusal(errno));
        assert!(matches!(e, NetError::Unsupported(_)), "{e:?}");
        assert!(e.to_string().contains("CONFIG_NF_TABLES_BRIDGE"), "{e}");
    }
    // A PREROUTING was there: it is someone else's, of another shape.
    for errno in [Errno::EEXIST, Errno::EOPNOTSUPP] {
        let e = install_error("ctr1-eth0", true, refusal(errno));
        match &e {
            NetError::Conflict(msg) => assert!(
                msg.contains("ctr1-eth0") && msg.contains("priority -300"),
                "{msg}"
            ),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    // Anything else keeps its errno.
    let e = install_error("ctr1-eth0", true, refusal(Errno::ENOMEM));
    assert_eq!(e.errno(), Some(Errno::ENOMEM));
    let e = spoof_error(
        "macspoofchk remove",
        "ctr1-eth0",
        NetError::Nftables {
            op: "delete chain cni-br-iface-ctr1-eth0".into(),
            errno: Errno::EBUSY,
            message: None,
        },
    );
    assert_eq!(
        e.to_string(),
        "macspoofchk remove ctr1-eth0: cannot delete chain cni-br-iface-ctr1-eth0: \
             EBUSY: Device or resource busy"
    );
}

// --- in throwaway network namespaces ---

fn skip(test: &str, why: &str) {
    if std::env::var("WASM_CNI_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
        panic!("{test} cannot run: {why}");
    }
    eprintln!("SKIP {test}: {why}");
}

fn nft_installed(test: &str) -> bool {
    let found = Command::new("nft")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        skip(
            test,
            "nft is not installed (needed to read the ruleset back)",
        );
    }
    found
}

/// A namespace for `test`, the anti-spoofing door opened inside it, and
/// rtnetlink there; `None` (after SKIP) when any of it is unavailable.
/// Everything is anonymous: dropping the values, also on panic, frees
/// the namespace with its links and rules.
fn setup(test: &str) -> Option<(NetnsHandle, NftSpoofCheck, RtNetlink)> {
    let ns = test_netns(test)?;
    if !nft_installed(test) {
        return None;
    }
    let sc = match run_in_netns(&ns, NftSpoofCheck::open).expect("enter test netns") {
        Ok(sc) => sc,
        Err(e) if e.is_unsupported() => {
            skip(test, &e.to_string());
            return None;
        }
        Err(e) => panic!("open: {e}"),
    };
    let nl = RtNetlink::open(&ns).expect("rtnetlink in test netns");
    Some((ns, sc, nl))
}

/// Runs a tool inside `ns` and returns its stdout.
fn tool_in(ns: &NetnsHandle, program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = run_in_netns(ns, || {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("write stdin");
        drop(input);
        child.wait_with_output().expect("wait")
    })
    .expect("enter test netns");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn nft_ruleset(ns: &NetnsHandle) -> Value {
    serde_json::from_str(&tool_in(ns, "nft", &["-j", "list", "ruleset"], None)).expect("nft json")
}

/// The `nft -j` objects of one kind, without handles (which differ
/// between runs).
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

/// Tables, chains and rules, without handles.
fn layout(ns: &NetnsHandle) -> [Vec<Value>; 3] {
    let ruleset = nft_ruleset(ns);
    ["table", "chain", "rule"].map(|kind| objects(&ruleset, kind))
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

fn base_chain_json() -> Value {
    json!({"family": "bridge", "table": "nat", "name": "PREROUTING",
               "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"})
}

/// What stays once every attachment is removed: the shared table and
/// base chain.
fn empty_table() -> [Vec<Value>; 3] {
    [
        vec![json!({"family": "bridge", "name": "nat"})],
        vec![base_chain_json()],
        vec![],
    ]
}

fn chain_json(name: &str) -> Value {
    json!({"family": "bridge", "table": "nat", "name": name})
}

/// How `nft -j` shows one attachment's rules: the dispatch rule, then
/// the jump, then the MAC check and the drop.
fn rules_json(port: &str, mac: [u8; 6], cid: &str, ifname: &str) -> [Value; 4] {
    let (iface, mac_chain) = (spoof_iface_chain(cid, ifname), spoof_mac_chain(cid, ifname));
    let comment = spoof_rule_comment(cid, ifname);
    let rule = |chain: &str, expr: Value| {
        json!({"family": "bridge", "table": "nat", "chain": chain,
                   "comment": comment, "expr": expr})
    };
    [
        rule(
            "PREROUTING",
            json!([{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": port}},
                       {"jump": {"target": iface}}]),
        ),
        rule(&iface, json!([{"jump": {"target": mac_chain}}])),
        rule(
            &mac_chain,
            json!([{"match": {"op": "==",
                                  "left": {"payload": {"protocol": "ether", "field": "saddr"}},
                                  "right": mac_text(mac)}},
                       {"return": null}]),
        ),
        rule(&mac_chain, json!([{"drop": null}])),
    ]
}

/// The whole layout for attachments installed in this order, as `nft`
/// lists it (chains in creation order, rules grouped by chain).
fn expected_layout(attachments: &[(&str, [u8; 6], &str, &str)]) -> [Vec<Value>; 3] {
    let mut chains = vec![base_chain_json()];
    let mut dispatch = Vec::new();
    let mut per_chain = Vec::new();
    for (port, mac, cid, ifname) in attachments {
        chains.push(chain_json(&spoof_iface_chain(cid, ifname)));
        chains.push(chain_json(&spoof_mac_chain(cid, ifname)));
        let [d, jump, check, drop] = rules_json(port, *mac, cid, ifname);
        dispatch.push(d);
        per_chain.extend([jump, check, drop]);
    }
    dispatch.extend(per_chain);
    [
        vec![json!({"family": "bridge", "name": "nat"})],
        chains,
        dispatch,
    ]
}

fn veth(nl: &mut RtNetlink, ns: &NetnsHandle, name: &str, peer: &str) {
    let here = ns.try_clone().expect("dup netns");
    nl.create_veth(name, None, None, peer, &here).expect("veth");
}

const MAC_A: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
const MAC_B: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x03];

#[test]
fn spoofcheck_install_and_remove_in_a_namespace() {
    const TEST: &str = "spoofcheck_install_and_remove_in_a_namespace";
    let Some((ns, mut sc, mut nl)) = setup(TEST) else {
        return;
    };
    veth(&mut nl, &ns, "porta", "peera");
    veth(&mut nl, &ns, "portb", "peerb");

    // Nothing there yet: removing is fine and creates nothing.
    sc.remove("ctr1", "eth0").expect("remove before anything");
    assert_eq!(layout(&ns), [Vec::<Value>::new(), vec![], vec![]]);

    let a = ("porta", MAC_A, "ctr1", "eth0");
    let b = ("portb", MAC_B, "ctr2", "eth1");
    for (port, mac, cid, ifname) in [a, b] {
        match sc.install(port, mac, cid, ifname) {
            Ok(()) => {}
            Err(e) if e.is_unsupported() => {
                skip(TEST, &e.to_string());
                return;
            }
            Err(e) => panic!("install {cid}: {e}"),
        }
    }
    let both = expected_layout(&[a, b]);
    assert_eq!(layout(&ns), both);
    // And `nft list` renders the reference's rule text.
    let text = tool_in(&ns, "nft", &["list", "table", "bridge", "nat"], None);
    for line in [
        // nft names priority -300 of the bridge family "dstnat".
        "type filter hook prerouting priority dstnat; policy accept;",
        "iifname \"porta\" jump cni-br-iface-ctr1-eth0 comment \"macspoofchk-ctr1-eth0\"",
        "jump cni-br-iface-ctr1-eth0-mac comment \"macspoofchk-ctr1-eth0\"",
        "ether saddr 02:42:ac:11:00:02 return comment \"macspoofchk-ctr1-eth0\"",
        "drop comment \"macspoofchk-ctr1-eth0\"",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }

    // Installing again changes nothing: no second dispatch rule.
    for (port, mac, cid, ifname) in [a, b] {
        sc.install(port, mac, cid, ifname).expect("install again");
    }
    assert_eq!(layout(&ns), both);

    // A new port or MAC for the same attachment replaces its rules; the
    // new dispatch rule is appended, after ctr2's.
    sc.install("portb", MAC_B, "ctr1", "eth0")
        .expect("new port and MAC");
    let [tables, chains, mut rules] = expected_layout(&[("portb", MAC_B, "ctr1", "eth0"), b]);
    rules.swap(0, 1);
    assert_eq!(layout(&ns), [tables, chains, rules]);
    sc.install("porta", MAC_A, "ctr1", "eth0").expect("back");

    // Removing one leaves the other, and the shared table and base chain.
    sc.remove("ctr1", "eth0").expect("remove ctr1");
    assert_eq!(layout(&ns), expected_layout(&[b]));
    sc.remove("ctr1", "eth0").expect("remove ctr1 again");
    assert_eq!(layout(&ns), expected_layout(&[b]));

    // The port is gone (as after the container's veth was deleted):
    // removal finds the rules by name and comment all the same.
    nl.delete_link("portb").expect("delete port");
    assert!(nl.link("portb").expect("get").is_none());
    sc.remove("ctr2", "eth1").expect("remove without the port");
    assert_eq!(
        layout(&ns),
        empty_table(),
        "only the shared table and base chain stay"
    );
}

/// Installation is one batch: when the kernel refuses part of it, none
/// of it stays (no chains of the attachment, no rules).
#[test]
fn spoofcheck_install_is_all_or_nothing() {
    const TEST: &str = "spoofcheck_install_is_all_or_nothing";
    let Some((ns, mut sc, _nl)) = setup(TEST) else {
        return;
    };
    // A PREROUTING of another priority in the same table: the base
    // chain cannot be declared, so the whole batch is refused.
    tool_in(
        &ns,
        "nft",
        &["-f", "-"],
        Some(
            "add table bridge nat\n\
                 add chain bridge nat PREROUTING { type filter hook prerouting priority 0 ; }\n",
        ),
    );
    let before = layout(&ns);
    match sc.install("porta", MAC_A, "ctr1", "eth0") {
        Err(NetError::Conflict(msg)) => assert!(msg.contains("ctr1-eth0"), "{msg}"),
        other => panic!("expected a conflict with the other PREROUTING, got {other:?}"),
    }
    assert_eq!(layout(&ns), before, "nothing half-made");
}

/// The reference's own transactions (nft text equivalent of what its
/// go-nft JSON does), and its teardown, against ours.
fn reference_setup(port: &str, mac: [u8; 6], cid: &str, ifname: &str) -> [String; 2] {
    // Literals from plugins pkg/link/spoofcheck.go, not from this module.
    let id = format!("{cid}-{ifname}");
    let (iface, macc) = (
        format!("cni-br-iface-{id}"),
        format!("cni-br-iface-{id}-mac"),
    );
    let c = format!("macspoofchk-{id}");
    [
            format!(
                "add table bridge nat\n\
                 add chain bridge nat PREROUTING {{ type filter hook prerouting priority -300 ; policy accept ; }}\n\
                 add chain bridge nat {iface}\n\
                 add chain bridge nat {macc}\n"
            ),
            format!(
                "flush chain bridge nat {iface}\n\
                 flush chain bridge nat {macc}\n\
                 add rule bridge nat PREROUTING iifname \"{port}\" jump {iface} comment \"{c}\"\n\
                 add rule bridge nat {iface} jump {macc} comment \"{c}\"\n\
                 add rule bridge nat {macc} ether saddr {m} return comment \"{c}\"\n\
                 add rule bridge nat {macc} drop comment \"{c}\"\n",
                m = mac_text(mac)
            ),
        ]
}

fn reference_install(ns: &NetnsHandle, port: &str, mac: [u8; 6], cid: &str, ifname: &str) {
    for script in reference_setup(port, mac, cid, ifname) {
        tool_in(ns, "nft", &["-f", "-"], Some(&script));
    }
}

/// The reference's Teardown: delete the PREROUTING rules whose comment
/// is the attachment's (by handle), then both chains.
fn reference_teardown(ns: &NetnsHandle, cid: &str, ifname: &str) {
    let comment = format!("macspoofchk-{cid}-{ifname}");
    let ruleset = nft_ruleset(ns);
    let mut script = String::new();
    for rule in ruleset["nftables"].as_array().expect("array") {
        let Some(rule) = rule.get("rule") else {
            continue;
        };
        if rule["chain"] == "PREROUTING" && rule["comment"] == comment.as_str() {
            script.push_str(&format!(
                "delete rule bridge nat PREROUTING handle {}\n",
                rule["handle"]
            ));
        }
    }
    tool_in(ns, "nft", &["-f", "-"], Some(&script));
    let chains = format!(
        "delete chain bridge nat cni-br-iface-{cid}-{ifname}\n\
             delete chain bridge nat cni-br-iface-{cid}-{ifname}-mac\n"
    );
    tool_in(ns, "nft", &["-f", "-"], Some(&chains));
}

#[test]
fn spoofcheck_layout_is_the_reference_layout() {
    const TEST: &str = "spoofcheck_layout_is_the_reference_layout";
    let Some((ns, mut sc, _nl)) = setup(TEST) else {
        return;
    };
    let a = ("porta", MAC_A, "ctr1", "eth0");
    let empty_table = empty_table();

    reference_install(&ns, "porta", MAC_A, "ctr1", "eth0");
    let reference = layout(&ns);
    assert_eq!(reference, expected_layout(&[a]));
    let reference_text = tool_in(&ns, "nft", &["list", "ruleset"], None);
    tool_in(&ns, "nft", &["flush", "ruleset"], None);

    match sc.install("porta", MAC_A, "ctr1", "eth0") {
        Ok(()) => {}
        Err(e) if e.is_unsupported() => {
            skip(TEST, &e.to_string());
            return;
        }
        Err(e) => panic!("install: {e}"),
    }
    assert_eq!(layout(&ns), reference);
    assert_eq!(
        tool_in(&ns, "nft", &["list", "ruleset"], None),
        reference_text
    );

    // The reference installing over ours appends a second dispatch rule
    // (its Setup never looks at PREROUTING); ours collapses them.
    reference_install(&ns, "porta", MAC_A, "ctr1", "eth0");
    let [_, _, rules] = layout(&ns);
    assert_eq!(
        rules.iter().filter(|r| r["chain"] == "PREROUTING").count(),
        2
    );
    sc.install("porta", MAC_A, "ctr1", "eth0").expect("install");
    assert_eq!(layout(&ns), reference);

    // The reference's teardown removes what ours installed ...
    reference_teardown(&ns, "ctr1", "eth0");
    assert_eq!(layout(&ns), empty_table);
    // ... and ours removes what the reference installed.
    reference_install(&ns, "porta", MAC_A, "ctr1", "eth0");
    sc.remove("ctr1", "eth0").expect("remove");
    assert_eq!(layout(&ns), empty_table);
}

/// The Go reference bridge itself (Debian's 1.1.1), with `macspoofchk`:
/// the same rules as ours, and each removes the other's. Everything, the
/// "host" side included, runs in namespaces made here.
#[test]
fn spoofcheck_interop_with_the_reference_bridge() {
    const TEST: &str = "spoofcheck_interop_with_the_reference_bridge";
    let bridge = "/usr/lib/cni/bridge";
    if !std::path::Path::new(bridge).exists() {
        skip(TEST, "the Go reference bridge is not installed");
        return;
    }
    let Some((host, mut sc, _nl)) = setup(TEST) else {
        return;
    };
    let container = NetnsHandle::new_unnamed().expect("container netns");
    let container_path = format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        container.as_fd().as_raw_fd()
    );
    let config = json!({
        "cniVersion": "1.0.0",
        "name": "spoofnet",
        "type": "bridge",
        "bridge": "wcnispoof0",
        "macspoofchk": true,
        "ipam": {},
    })
    .to_string();
    let cni = |command: &str, container_id: &str| -> Value {
        let out = run_in_netns(&host, || {
            let mut child = Command::new(bridge)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("CNI_COMMAND", command)
                .env("CNI_CONTAINERID", container_id)
                .env("CNI_NETNS", &container_path)
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", "/usr/lib/cni")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn bridge");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(config.as_bytes()).expect("write config");
            drop(stdin);
            child.wait_with_output().expect("bridge")
        })
        .expect("enter host netns");
        assert!(
            out.status.success(),
            "bridge {command}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    // The host veth and the container MAC, from an ADD result.
    let attachment = |result: &Value| -> (String, [u8; 6]) {
        let port = result["interfaces"][1]["name"]
            .as_str()
            .expect("host veth")
            .to_string();
        let text = result["interfaces"][2]["mac"].as_str().expect("mac");
        let bytes: Vec<u8> = text
            .split(':')
            .map(|h| u8::from_str_radix(h, 16).expect("hex"))
            .collect();
        (port, bytes.try_into().expect("6 bytes"))
    };
    let empty_table = empty_table();

    // The reference's ADD writes exactly our layout.
    let (port, mac) = attachment(&cni("ADD", "ctr-ref"));
    assert_eq!(
        layout(&host),
        expected_layout(&[(port.as_str(), mac, "ctr-ref", "eth0")])
    );
    // Ours on top of it: still one layout.
    match sc.install(&port, mac, "ctr-ref", "eth0") {
        Ok(()) => {}
        Err(e) if e.is_unsupported() => {
            skip(TEST, &e.to_string());
            return;
        }
        Err(e) => panic!("install: {e}"),
    }
    assert_eq!(
        layout(&host),
        expected_layout(&[(port.as_str(), mac, "ctr-ref", "eth0")])
    );
    // The reference's DEL removes them (ours or its own, the same).
    cni("DEL", "ctr-ref");
    assert_eq!(layout(&host), empty_table);

    // Ours removes what the reference's ADD made, after its port is gone.
    let (port, mac) = attachment(&cni("ADD", "ctr-2"));
    assert_eq!(
        layout(&host),
        expected_layout(&[(port.as_str(), mac, "ctr-2", "eth0")])
    );
    let mut nl_c = RtNetlink::open(&container).expect("rtnetlink in container");
    nl_c.delete_link("eth0").expect("delete container veth");
    sc.remove("ctr-2", "eth0").expect("remove");
    assert_eq!(layout(&host), empty_table);
    // The reference's DEL after ours finds nothing and still succeeds.
    cni("DEL", "ctr-2");
    assert_eq!(layout(&host), empty_table);
}
