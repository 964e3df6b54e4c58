//! bridge + host-local end to end: the real `wasm-cni` binary exec'd as `bridge`
//! inside throwaway namespaces (the node side included), for every CNI version,
//! side by side with the Go reference plugins on the same configs.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::{json, Value};

/// A network under test: its host-local data directory and the settings file
/// that allows it.
struct Network {
    dir: tempfile::TempDir,
    settings: PathBuf,
}

impl Network {
    fn new() -> Result<Self, libtest_mimic::Failed> {
        let dir = tempfile::tempdir().map_err(fail)?;
        let settings = dir.path().join("settings.json");
        let data = dir.path().join("ipam");
        std::fs::write(&settings, json!({"ipamDataDirs": [data]}).to_string()).map_err(fail)?;
        Ok(Network { dir, settings })
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    /// The IP files host-local keeps for `network`.
    fn allocations(&self, network: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.data_dir().join(network))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn env(&self, cmd: &str, ns: &str) -> CniEnv {
        CniEnv::new(cmd, ns).set("WASM_CNI_CONFIG", &self.settings.display().to_string())
    }

    fn conf(&self, version: &str, extra: Value) -> String {
        let mut conf = json!({
            "cniVersion": version,
            "name": "wcni-net",
            "type": "bridge",
            "bridge": "wcbr0",
            "isGateway": true,
            "ipMasq": true,
            "ipam": {
                "type": "host-local",
                "subnet": "10.88.0.0/24",
                "dataDir": self.data_dir(),
                "routes": [{"dst": "0.0.0.0/0"}]
            }
        });
        if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        conf.to_string()
    }
}

fn with_prev(conf: &str, prev: &Value) -> String {
    let mut v: Value = serde_json::from_str(conf).expect("json");
    v["prevResult"] = prev.clone();
    v.to_string()
}

/// `nft -j list ruleset` in the node namespace: the masquerade rules' comments.
fn masq_comments(host: &Netns) -> Result<Vec<String>, libtest_mimic::Failed> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &host.name, "nft", "-j", "list", "ruleset"])
        .output()
        .map_err(fail)?;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Ok(v["nftables"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["rule"]["comment"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

fn link_names(ns: &Netns) -> Result<Vec<String>, libtest_mimic::Failed> {
    Ok(ns
        .ip_json(&["link", "show"])?
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|x| x["ifname"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

fn global_addrs(ns: &Netns, dev: &str) -> Result<Vec<String>, libtest_mimic::Failed> {
    let v = ns.ip_json(&["addr", "show", "dev", dev])?;
    Ok(v[0]["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["scope"] == "global")
                .map(|x| format!("{}/{}", x["local"].as_str().unwrap_or(""), x["prefixlen"]))
                .collect()
        })
        .unwrap_or_default())
}

fn add_check_del_gc_status_every_version() -> TestResult {
    for version in VERSIONS {
        let net = Network::new()?;
        let sb = Sandbox::new("br")?;
        let conf = net.conf(version, json!({}));
        let ns = sb.container.path();
        let add = exec(
            Plugin::Ours("bridge"),
            &sb.host,
            &net.env("ADD", &ns),
            &conf,
        )?
        .ok()?;
        let result = add.json()?;
        ensure!(result["cniVersion"] == version, "{version}: {result}");
        if version >= "0.3.0" {
            let ifaces = result["interfaces"].as_array().cloned().unwrap_or_default();
            ensure!(ifaces.len() == 3, "{version}: interfaces {result}");
            ensure!(ifaces[0]["name"] == "wcbr0", "{version}: {result}");
            ensure!(
                ifaces[1]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("veth")),
                "{result}"
            );
            ensure!(
                ifaces[2]["name"] == "eth0" && ifaces[2]["sandbox"] == ns.as_str(),
                "{result}"
            );
            ensure!(
                ifaces
                    .iter()
                    .all(|i| i["mac"].as_str().is_some_and(|m| m.len() == 17)),
                "{result}"
            );
            ensure!(result["ips"][0]["address"] == "10.88.0.2/24", "{result}");
            ensure!(result["ips"][0]["gateway"] == "10.88.0.1", "{result}");
            ensure!(result["ips"][0]["interface"] == 2, "{result}");
        } else {
            ensure!(result["ip4"]["ip"] == "10.88.0.2/24", "{version}: {result}");
            ensure!(
                result["ip4"]["gateway"] == "10.88.0.1",
                "{version}: {result}"
            );
        }
        ensure!(
            global_addrs(&sb.container, "eth0")? == ["10.88.0.2/24"],
            "container address"
        );
        ensure!(
            global_addrs(&sb.host, "wcbr0")? == ["10.88.0.1/24"],
            "bridge address"
        );
        ensure!(sb.container.link_up("eth0")?, "eth0 down");
        let routes = sb.container.ip_json(&["route", "show", "default"])?;
        ensure!(
            routes[0]["gateway"] == "10.88.0.1",
            "default route {routes}"
        );
        ensure!(net.allocations("wcni-net") == ["10.88.0.2"], "ipam files");
        let comments = masq_comments(&sb.host)?;
        ensure!(
            comments
                .iter()
                .any(|c| c.contains("id: wcni-test-container") && c.contains("net: wcni-net")),
            "masquerade rule missing: {comments:?}"
        );

        if version >= "0.4.0" {
            exec(
                Plugin::Ours("bridge"),
                &sb.host,
                &net.env("CHECK", &ns),
                &with_prev(&conf, &result),
            )?
            .ok()?;
        }
        if version == "1.1.0" {
            exec(
                Plugin::Ours("bridge"),
                &sb.host,
                &net.env("STATUS", ""),
                &conf,
            )?
            .ok()?;
            let valid = json!([{"containerID": "wcni-test-container", "ifname": "eth0"}]);
            let mut gc: Value = serde_json::from_str(&conf).map_err(fail)?;
            gc["cni.dev/valid-attachments"] = valid;
            exec(
                Plugin::Ours("bridge"),
                &sb.host,
                &net.env("GC", ""),
                &gc.to_string(),
            )?
            .ok()?;
            ensure!(
                net.allocations("wcni-net") == ["10.88.0.2"],
                "GC released a valid IP"
            );
        }

        let prev = if version >= "0.4.0" {
            with_prev(&conf, &result)
        } else {
            conf.clone()
        };
        let del = exec(
            Plugin::Ours("bridge"),
            &sb.host,
            &net.env("DEL", &ns),
            &prev,
        )?
        .ok()?;
        ensure!(del.stdout.is_empty(), "DEL printed {}", del.stdout);
        ensure!(link_names(&sb.container)? == ["lo"], "container links left");
        ensure!(
            link_names(&sb.host)?.iter().all(|l| !l.starts_with("veth")),
            "host veth left"
        );
        ensure!(net.allocations("wcni-net").is_empty(), "IP not released");
        ensure!(masq_comments(&sb.host)?.is_empty(), "masquerade rule left");
        // Repeated DEL succeeds.
        exec(
            Plugin::Ours("bridge"),
            &sb.host,
            &net.env("DEL", &ns),
            &prev,
        )?
        .ok()?;
    }
    Ok(())
}

/// The same config through the Go reference and through us: same result (modulo
/// the random veth name and MACs), same addresses and routes in the kernel.
fn same_as_reference() -> TestResult {
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let ours_net = Network::new()?;
        let ref_net = Network::new()?;
        let ours = Sandbox::new("bro")?;
        let theirs = Sandbox::new("brr")?;
        // No IPAM default route here: Debian's reference (1.1.1) fails when IPAM's
        // default route and isDefaultGateway's coincide ("file exists"); newer
        // references and wasm-cni accept it (RouteAddEcmp).
        let extra = json!({"ipMasq": false, "isDefaultGateway": true,
            "ipam": {"type": "host-local", "subnet": "10.88.0.0/24", "dataDir": "<dir>",
                     "routes": [{"dst": "192.0.2.0/24"}]}});
        let conf_for = |net: &Network| {
            let mut e = extra.clone();
            e["ipam"]["dataDir"] = json!(net.data_dir());
            net.conf(version, e)
        };
        let a = exec(
            Plugin::Ours("bridge"),
            &ours.host,
            &ours_net.env("ADD", &ours.container.path()),
            &conf_for(&ours_net),
        )?
        .ok()?;
        let b = exec(
            Plugin::Reference("bridge"),
            &theirs.host,
            &ref_net.env("ADD", &theirs.container.path()),
            &conf_for(&ref_net),
        )?
        .ok()?;
        let mut ra = a.json()?;
        let mut rb = b.json()?;
        for r in [&mut ra, &mut rb] {
            normalize_sandbox(r);
            if let Some(ifaces) = r["interfaces"].as_array_mut() {
                for i in ifaces {
                    i["mac"] = json!("<mac>");
                    if i["name"].as_str().is_some_and(|n| n.starts_with("veth")) {
                        i["name"] = json!("<veth>");
                    }
                }
            }
            if r.get("dns")
                .is_some_and(|d| d.as_object().is_some_and(|m| m.is_empty()))
            {
                r.as_object_mut().map(|o| o.remove("dns"));
            }
        }
        ensure!(ra == rb, "{version}: ours {ra}\nreference {rb}");
        ensure!(
            global_addrs(&ours.container, "eth0")? == global_addrs(&theirs.container, "eth0")?,
            "container addresses differ"
        );
        ensure!(
            global_addrs(&ours.host, "wcbr0")? == global_addrs(&theirs.host, "wcbr0")?,
            "bridge addresses differ"
        );
        let routes = |ns: &Netns| -> Result<Value, libtest_mimic::Failed> {
            let mut v = ns.ip_json(&["route", "show"])?;
            if let Some(list) = v.as_array_mut() {
                for r in list {
                    r.as_object_mut().map(|o| o.remove("flags"));
                }
            }
            Ok(v)
        };
        let (ro, rt) = (routes(&ours.container)?, routes(&theirs.container)?);
        ensure!(
            ro == rt,
            "container routes differ: ours {ro}\nreference {rt}"
        );
    }
    Ok(())
}

/// Allocate with one host-local, release with the other, both ways: the on-disk
/// format is the reference's, byte for byte.
fn host_local_interoperates_with_reference() -> TestResult {
    let net = Network::new()?;
    let sb = Sandbox::new("hl")?;
    let conf = net.conf("1.0.0", json!({"type": "host-local"}));
    let ipam_only = |plugin: Plugin<'_>, cmd: &str, id: &str| {
        exec(
            plugin,
            &sb.host,
            &net.env(cmd, &sb.container.path()).container_id(id),
            &conf,
        )
    };
    let ours = ipam_only(Plugin::Ours("host-local"), "ADD", "ctr-a")?
        .ok()?
        .json()?;
    let theirs = ipam_only(Plugin::Reference("host-local"), "ADD", "ctr-b")?
        .ok()?
        .json()?;
    ensure!(ours["ips"][0]["address"] == "10.88.0.2/24", "{ours}");
    ensure!(
        theirs["ips"][0]["address"] == "10.88.0.3/24",
        "reference did not continue the round robin: {theirs}"
    );
    let file = std::fs::read(net.data_dir().join("wcni-net/10.88.0.2")).map_err(fail)?;
    ensure!(
        file == b"ctr-a\r\neth0",
        "our file is {:?}",
        String::from_utf8_lossy(&file)
    );
    let last = std::fs::read_to_string(net.data_dir().join("wcni-net/last_reserved_ip.0"))
        .map_err(fail)?;
    ensure!(last == "10.88.0.3", "last_reserved_ip.0 = {last:?}");
    // Our owner link for ctr-a; the reference made none for ctr-b.
    let links = || -> Result<Vec<String>, libtest_mimic::Failed> {
        let dir = std::fs::read_dir(net.data_dir().join("wcni-net")).map_err(fail)?;
        Ok(dir
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(".owner."))
            .collect())
    };
    ensure!(links()?.len() == 1, "owner links: {:?}", links()?);
    // The reference's release-by-owner reads the link as one of ctr-a's files
    // and removes it too; ours walks the directory for the unlinked ctr-b.
    ipam_only(Plugin::Reference("host-local"), "DEL", "ctr-a")?.ok()?;
    ensure!(links()?.is_empty(), "left by the reference: {:?}", links()?);
    ipam_only(Plugin::Ours("host-local"), "DEL", "ctr-b")?.ok()?;
    ensure!(
        net.allocations("wcni-net").is_empty(),
        "left: {:?}",
        net.allocations("wcni-net")
    );
    Ok(())
}

/// 100 containers in parallel on one bridge: unique IPs, every container reaches
/// the gateway and another container, and DEL leaves nothing behind.
fn many_containers_in_parallel() -> TestResult {
    const N: usize = 100;
    // Precompiled, as `wasm-cni install` leaves a node: 100 first
    // compilations at once (minutes in a debug build) would measure the
    // compiler, not the ADDs.
    tool(&["compile", "bridge", "host-local"])?.ok()?;
    let net = Network::new()?;
    let host = Netns::new("many").map_err(fail)?;
    let containers: Vec<Netns> = (0..N)
        .map(|i| Netns::new(&format!("m{i}")))
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    let conf = net.conf("1.0.0", json!({"ipam": {"type": "host-local", "subnet": "10.77.0.0/16", "dataDir": net.data_dir()}}));
    let results: Vec<Result<Value, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let env = net.env("ADD", &c.path()).container_id(&format!("ctr-{i}"));
                let conf = conf.clone();
                let host = &host;
                s.spawn(move || {
                    exec(Plugin::Ours("bridge"), host, &env, &conf)
                        .map_err(|e| format!("{e:?}"))
                        .and_then(|a| a.ok().map_err(|e| format!("{e:?}")))
                        .and_then(|a| a.json().map_err(|e| format!("{e:?}")))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    });
    let mut ips = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let r = r.as_ref().map_err(|e| fail(format!("ADD {i}: {e}")))?;
        ips.push(
            r["ips"][0]["address"]
                .as_str()
                .unwrap_or_default()
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string(),
        );
    }
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    ensure!(
        unique.len() == N,
        "duplicate IPs handed out: {} unique of {N}",
        unique.len()
    );
    for (i, c) in containers.iter().enumerate().step_by(10) {
        let peer = &ips[(i + 1) % N];
        for target in ["10.77.0.1", peer.as_str()] {
            let out = std::process::Command::new("ip")
                .args([
                    "netns", "exec", &c.name, "ping", "-c", "1", "-W", "2", target,
                ])
                .output()
                .map_err(fail)?;
            ensure!(out.status.success(), "container {i} cannot reach {target}");
        }
    }
    std::thread::scope(|s| {
        for (i, c) in containers.iter().enumerate() {
            let env = net.env("DEL", &c.path()).container_id(&format!("ctr-{i}"));
            let conf = conf.clone();
            let host = &host;
            s.spawn(move || exec(Plugin::Ours("bridge"), host, &env, &conf).map(|a| a.status));
        }
    });
    ensure!(
        net.allocations("wcni-net").is_empty(),
        "IPs left: {}",
        net.allocations("wcni-net").len()
    );
    ensure!(
        link_names(&host)?.iter().all(|l| !l.starts_with("veth")),
        "host veths left"
    );
    ensure!(masq_comments(&host)?.is_empty(), "masquerade rules left");
    Ok(())
}

fn faults_leave_nothing_behind() -> TestResult {
    // DEL after the netns is gone, and with an empty CNI_NETNS: IP and rules released.
    for gone_how in ["deleted", "empty"] {
        let net = Network::new()?;
        let host = Netns::new("flt").map_err(fail)?;
        let c = Netns::new("fltc").map_err(fail)?;
        let conf = net.conf("1.0.0", json!({}));
        exec(
            Plugin::Ours("bridge"),
            &host,
            &net.env("ADD", &c.path()),
            &conf,
        )?
        .ok()?;
        let path = c.path();
        drop(c);
        let ns = if gone_how == "deleted" {
            path
        } else {
            String::new()
        };
        exec(Plugin::Ours("bridge"), &host, &net.env("DEL", &ns), &conf)?.ok()?;
        ensure!(
            net.allocations("wcni-net").is_empty(),
            "{gone_how}: IP leaked"
        );
        ensure!(
            masq_comments(&host)?.is_empty(),
            "{gone_how}: masquerade rule leaked"
        );
    }
    // ADD failing halfway (the container already has eth0): nothing is left.
    let net = Network::new()?;
    let sb = Sandbox::new("half")?;
    sb.container.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "clash",
    ])?;
    let host_before = sb.host.snapshot()?;
    let container_before = sb.container.snapshot()?;
    let a = exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("ADD", &sb.container.path()),
        &net.conf("1.0.0", json!({})),
    )?;
    let msg = a.error(107)?;
    ensure!(msg.contains("eth0"), "{msg}");
    ensure!(
        sb.host.snapshot()? == host_before,
        "host changed after a failed ADD"
    );
    ensure!(
        sb.container.snapshot()? == container_before,
        "container changed after a failed ADD"
    );
    ensure!(
        net.allocations("wcni-net").is_empty(),
        "IP not released after a failed ADD"
    );
    ensure!(
        masq_comments(&sb.host)?.is_empty(),
        "rules left after a failed ADD"
    );

    // A stale IPAM file (no DEL ever came) is cleaned by GC.
    let net = Network::new()?;
    let sb = Sandbox::new("gc")?;
    let conf = net.conf("1.1.0", json!({}));
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("ADD", &sb.container.path()).container_id("live"),
        &conf,
    )?
    .ok()?;
    let dir = net.data_dir().join("wcni-net");
    std::fs::write(dir.join("10.88.0.200"), "stale\r\neth0").map_err(fail)?;
    let mut gc: Value = serde_json::from_str(&conf).map_err(fail)?;
    gc["cni.dev/attachments"] = json!([{"containerID": "live", "ifname": "eth0"}]);
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("GC", ""),
        &gc.to_string(),
    )?
    .ok()?;
    ensure!(
        net.allocations("wcni-net") == ["10.88.0.2"],
        "GC result: {:?}",
        net.allocations("wcni-net")
    );
    Ok(())
}

/// IPv4 + IPv6 on one attachment, the iptables masquerade backend, and L2 mode.
fn dual_stack_iptables_and_l2() -> TestResult {
    let net = Network::new()?;
    let sb = Sandbox::new("ds")?;
    let conf = net.conf(
        "1.0.0",
        json!({
            "ipMasqBackend": "iptables",
            "isDefaultGateway": true,
            "enabledad": true,
            "ipam": {"type": "host-local", "dataDir": net.data_dir(), "ranges": [
                [{"subnet": "10.66.0.0/24"}], [{"subnet": "fd66::/64"}]
            ]}
        }),
    );
    let add = exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("ADD", &sb.container.path()),
        &conf,
    )?
    .ok()?;
    let r = add.json()?;
    ensure!(r["ips"][0]["address"] == "10.66.0.2/24", "{r}");
    ensure!(r["ips"][1]["address"] == "fd66::2/64", "{r}");
    let routes: Vec<&str> = r["routes"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["dst"].as_str()).collect())
        .unwrap_or_default();
    ensure!(routes == ["0.0.0.0/0", "::/0"], "{r}");
    let v6 = sb
        .container
        .ip_json(&["-6", "addr", "show", "dev", "eth0", "scope", "global"])?;
    ensure!(v6[0]["addr_info"][0]["local"] == "fd66::2", "{v6}");
    let bridge6 = sb
        .host
        .ip_json(&["-6", "addr", "show", "dev", "wcbr0", "scope", "global"])?;
    ensure!(
        bridge6[0]["addr_info"][0]["local"] == "fd66::1",
        "{bridge6}"
    );
    let nat = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &sb.host.name,
            "iptables",
            "-t",
            "nat",
            "-S",
        ])
        .output()
        .map_err(fail)?;
    let nat = String::from_utf8_lossy(&nat.stdout).into_owned();
    ensure!(
        nat.contains("-A POSTROUTING -s 10.66.0.2/32") && nat.contains("wcni-test-container"),
        "{nat}"
    );
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("CHECK", &sb.container.path()),
        &with_prev(&conf, &r),
    )?
    .ok()?;
    // DEL without the netns still removes the iptables rules.
    exec(Plugin::Ours("bridge"), &sb.host, &net.env("DEL", ""), &conf)?.ok()?;
    let nat = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &sb.host.name,
            "iptables",
            "-t",
            "nat",
            "-S",
        ])
        .output()
        .map_err(fail)?;
    ensure!(
        !String::from_utf8_lossy(&nat.stdout).contains("CNI-"),
        "iptables rules left"
    );
    ensure!(net.allocations("wcni-net").is_empty(), "IPs left");

    // L2: no IPAM, the link is up, CHECK works (the reference's L2 CHECK fails).
    let sb = Sandbox::new("l2")?;
    let l2 = json!({"cniVersion": "1.0.0", "name": "l2net", "type": "bridge", "bridge": "wcl2"})
        .to_string();
    let add = exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &CniEnv::new("ADD", &sb.container.path()),
        &l2,
    )?
    .ok()?;
    let r = add.json()?;
    ensure!(
        r.get("ips").is_none() && r["interfaces"].as_array().map(|a| a.len()) == Some(3),
        "{r}"
    );
    ensure!(sb.container.link_up("eth0")?, "L2 eth0 down");
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &CniEnv::new("CHECK", &sb.container.path()),
        &with_prev(&l2, &r),
    )?
    .ok()?;
    let reference = exec(
        Plugin::Reference("bridge"),
        &sb.host,
        &CniEnv::new("CHECK", &sb.container.path()),
        &with_prev(&l2, &r),
    )?;
    ensure!(
        reference.status != 0,
        "the reference's L2 CHECK now works; update the docs"
    );
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &CniEnv::new("DEL", &sb.container.path()),
        &l2,
    )?
    .ok()?;
    ensure!(link_names(&sb.container)? == ["lo"], "L2 DEL left links");
    Ok(())
}

/// The bridge's MAC is pinned: CHECK of the first container still passes after
/// others joined the bridge (an unpinned bridge takes the lowest port MAC).
fn check_after_more_ports_join() -> TestResult {
    let net = Network::new()?;
    let host = Netns::new("pin").map_err(fail)?;
    let first = Netns::new("pin1").map_err(fail)?;
    let conf = net.conf("1.0.0", json!({}));
    let r = exec(
        Plugin::Ours("bridge"),
        &host,
        &net.env("ADD", &first.path()),
        &conf,
    )?
    .ok()?
    .json()?;
    let others: Vec<Netns> = (0..4)
        .map(|i| Netns::new(&format!("pin{i}x")))
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    for (i, c) in others.iter().enumerate() {
        exec(
            Plugin::Ours("bridge"),
            &host,
            &net.env("ADD", &c.path()).container_id(&format!("o{i}")),
            &conf,
        )?
        .ok()?;
    }
    exec(
        Plugin::Ours("bridge"),
        &host,
        &net.env("CHECK", &first.path()),
        &with_prev(&conf, &r),
    )?
    .ok()?;
    Ok(())
}

/// DEL frees the interface name before it returns (the link is down and
/// renamed) and the reaper deletes the pair after the process exits: an ADD
/// right after DEL into the same namespace (`podman network reload`) works,
/// the host side ends with no veth, and a retired link a killed DEL left
/// behind goes with the next DEL in that namespace.
fn del_frees_the_name_at_once_and_deletes_after_exit() -> TestResult {
    let net = Network::new()?;
    let host = Netns::new("ret").map_err(fail)?;
    let ctr = Netns::new("retc").map_err(fail)?;
    let conf = net.conf("1.0.0", json!({"ipMasq": false}));
    let run = |cmd: &str| -> Result<Answer, libtest_mimic::Failed> {
        exec_unsettled(
            Plugin::Ours("bridge"),
            &host,
            &net.env(cmd, &ctr.path()),
            &conf,
        )
    };
    run("ADD")?.ok()?;
    let host_links = link_names(&host)?;
    ensure!(
        host_links.len() == 3,
        "lo, bridge and one veth: {host_links:?}"
    );
    run("DEL")?.ok()?;
    let names = link_names(&ctr)?;
    ensure!(
        !names.iter().any(|n| n == "eth0"),
        "eth0 still named after DEL: {names:?}"
    );
    // Re-added at once, same namespace and name.
    run("ADD")?.ok()?;
    ensure!(
        link_names(&ctr)?.iter().any(|n| n == "eth0"),
        "no eth0 after the second ADD"
    );
    run("DEL")?.ok()?;
    settle_retired_links(&ctr.path())?;
    let names = link_names(&ctr)?;
    ensure!(names == ["lo"], "container namespace after DEL: {names:?}");
    let names = link_names(&host)?;
    ensure!(names.len() == 2, "host namespace after DEL: {names:?}");

    // A killed DEL's leftover: a retired pair nobody deletes.
    ctr.ip(&[
        "link",
        "add",
        "wcnidel0000abcd",
        "type",
        "veth",
        "peer",
        "name",
        "wcnidel0000abce",
    ])?;
    run("ADD")?.ok()?;
    run("DEL")?.ok()?;
    settle_retired_links(&ctr.path())?;
    let names = link_names(&ctr)?;
    ensure!(names == ["lo"], "leftover not deleted: {names:?}");
    Ok(())
}

/// An IPAM type with no component runs the native binary from CNI_PATH, as the
/// reference delegates (`static` here); STATUS reports an exhausted range (50).
fn native_ipam_and_status() -> TestResult {
    let net = Network::new()?;
    let sb = Sandbox::new("nat")?;
    let conf = net.conf(
        "1.0.0",
        json!({"ipMasq": false, "ipam": {"type": "static",
            "addresses": [{"address": "10.33.0.7/24", "gateway": "10.33.0.1"}]}}),
    );
    let r = exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("ADD", &sb.container.path()),
        &conf,
    )?
    .ok()?
    .json()?;
    ensure!(r["ips"][0]["address"] == "10.33.0.7/24", "{r}");
    ensure!(
        global_addrs(&sb.container, "eth0")? == ["10.33.0.7/24"],
        "address not applied"
    );
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("DEL", &sb.container.path()),
        &conf,
    )?
    .ok()?;

    let sb = Sandbox::new("sts")?;
    let conf = net.conf("1.1.0", json!({"ipam": {"type": "host-local", "subnet": "10.34.0.0/30", "dataDir": net.data_dir()}}));
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("STATUS", ""),
        &conf,
    )?
    .ok()?;
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("ADD", &sb.container.path()),
        &conf,
    )?
    .ok()?;
    let msg = exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("STATUS", ""),
        &conf,
    )?
    .error(50)?;
    ensure!(msg.contains("no IP addresses available"), "{msg}");
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("DEL", &sb.container.path()),
        &conf,
    )?
    .ok()?;
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("STATUS", ""),
        &conf,
    )?
    .ok()?;
    Ok(())
}

/// `vlan` with `isGateway`: the gateway goes on `<bridge>.<vlan>`, a host veth
/// whose peer is an untagged port of the VLAN. On a kernel without bridge VLAN
/// filtering (this machine's), the ADD must fail cleanly instead: code 107, the
/// namespaces and IPAM as before.
fn vlan_gateway_or_clean_failure() -> TestResult {
    let net = Network::new()?;
    let sb = Sandbox::new("vlan")?;
    let conf = net.conf("1.0.0", json!({"vlan": 42, "ipMasq": false}));
    let host_before = sb.host.snapshot()?;
    let container_before = sb.container.snapshot()?;
    let a = exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("ADD", &sb.container.path()),
        &conf,
    )?;
    if a.status == 0 {
        let r = a.json()?;
        ensure!(r["interfaces"][3]["name"] == "wcbr0.42", "{r}");
        ensure!(
            global_addrs(&sb.host, "wcbr0.42")? == ["10.88.0.1/24"],
            "gateway address"
        );
        exec(
            Plugin::Ours("bridge"),
            &sb.host,
            &net.env("DEL", &sb.container.path()),
            &conf,
        )?
        .ok()?;
    } else {
        let msg = a.error(107)?;
        ensure!(msg.contains("ensure-bridge"), "{msg}");
        ensure!(sb.host.snapshot()? == host_before, "host changed");
        ensure!(
            sb.container.snapshot()? == container_before,
            "container changed"
        );
        ensure!(net.allocations("wcni-net").is_empty(), "IP not released");
    }
    Ok(())
}

/// Port and link settings reach the kernel: hairpin, port isolation, MTU on
/// both veth ends and the bridge, the container MAC from runtimeConfig, and
/// promiscuous mode on the bridge (which CHECK then verifies).
fn port_settings_reach_the_kernel() -> TestResult {
    let net = Network::new()?;
    let sb = Sandbox::new("port")?;
    let conf = net.conf(
        "1.0.0",
        json!({"hairpinMode": true, "portIsolation": true, "mtu": 1400, "ipMasq": false,
               "runtimeConfig": {"mac": "0a:58:0a:58:00:99"}}),
    );
    let r = exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("ADD", &sb.container.path()),
        &conf,
    )?
    .ok()?
    .json()?;
    let veth = r["interfaces"][1]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let port = sb.host.ip_json(&["-d", "link", "show", "dev", &veth])?;
    let slave = &port[0]["linkinfo"]["info_slave_data"];
    ensure!(
        slave["hairpin"] == true && slave["isolated"] == true,
        "port settings: {slave}"
    );
    ensure!(port[0]["mtu"] == 1400, "host veth mtu {}", port[0]["mtu"]);
    let eth0 = sb.container.ip_json(&["link", "show", "dev", "eth0"])?;
    ensure!(eth0[0]["mtu"] == 1400, "container mtu {}", eth0[0]["mtu"]);
    ensure!(
        eth0[0]["address"] == "0a:58:0a:58:00:99",
        "container mac {}",
        eth0[0]["address"]
    );
    ensure!(r["interfaces"][2]["mac"] == "0a:58:0a:58:00:99", "{r}");
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("DEL", &sb.container.path()),
        &conf,
    )?
    .ok()?;

    let sb = Sandbox::new("prom")?;
    let conf = net.conf("1.0.0", json!({"promiscMode": true, "ipMasq": false}));
    let r = exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("ADD", &sb.container.path()),
        &conf,
    )?
    .ok()?
    .json()?;
    let br = sb.host.ip_json(&["link", "show", "dev", "wcbr0"])?;
    ensure!(
        br[0]["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "PROMISC")),
        "{br}"
    );
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("CHECK", &sb.container.path()),
        &with_prev(&conf, &r),
    )?
    .ok()?;
    // CHECK notices when the bridge no longer matches the config.
    sb.host.ip(&["link", "set", "wcbr0", "promisc", "off"])?;
    let msg = exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &net.env("CHECK", &sb.container.path()),
        &with_prev(&conf, &r),
    )?
    .error(999)?;
    ensure!(msg.contains("promiscuous"), "{msg}");

    // disableContainerInterface leaves the container end down (L2 only).
    let sb = Sandbox::new("dci")?;
    let l2 = json!({"cniVersion": "1.0.0", "name": "dci", "type": "bridge", "bridge": "wcdci",
        "disableContainerInterface": true})
    .to_string();
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &CniEnv::new("ADD", &sb.container.path()),
        &l2,
    )?
    .ok()?;
    ensure!(
        !sb.container.link_up("eth0")?,
        "eth0 is up despite disableContainerInterface"
    );
    exec(
        Plugin::Ours("bridge"),
        &sb.host,
        &CniEnv::new("DEL", &sb.container.path()),
        &l2,
    )?
    .ok()?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    run(vec![
        privileged(
            "bridge_add_check_del_gc_status_every_version",
            add_check_del_gc_status_every_version,
        ),
        privileged("bridge_same_as_reference", same_as_reference),
        privileged(
            "host_local_interoperates_with_reference",
            host_local_interoperates_with_reference,
        ),
        privileged(
            "bridge_many_containers_in_parallel",
            many_containers_in_parallel,
        ),
        privileged(
            "bridge_faults_leave_nothing_behind",
            faults_leave_nothing_behind,
        ),
        privileged(
            "bridge_dual_stack_iptables_and_l2",
            dual_stack_iptables_and_l2,
        ),
        privileged("bridge_native_ipam_and_status", native_ipam_and_status),
        privileged(
            "bridge_del_frees_the_name_at_once_and_deletes_after_exit",
            del_frees_the_name_at_once_and_deletes_after_exit,
        ),
        privileged(
            "bridge_port_settings_reach_the_kernel",
            port_settings_reach_the_kernel,
        ),
        privileged(
            "bridge_vlan_gateway_or_clean_failure",
            vlan_gateway_or_clean_failure,
        ),
        privileged(
            "bridge_check_after_more_ports_join",
            check_after_more_ports_join,
        ),
    ])
}
