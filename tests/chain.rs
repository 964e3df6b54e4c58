//! Conflists driven the way libcni drives them (containernetworking/cni
//! `libcni/api.go`): ADD in order with each result as the next plugin's
//! `prevResult`, the final result cached, CHECK with the cached result, DEL in
//! reverse, GC in two steps (DEL of cached attachments not in the valid list,
//! then GC to every plugin with `cni.dev/valid-attachments` and the legacy
//! `cni.dev/attachments`). Our plugins and the Go reference plugins from
//! `/usr/lib/cni` are mixed in one chain both ways round. Everything runs in
//! throwaway namespaces, the node side included.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use libtest_mimic::Failed;
use serde_json::{json, Value};

fn main() -> std::process::ExitCode {
    common::run(vec![
        privileged(
            "our_bridge_then_native_portmap_firewall_tuning_bandwidth",
            ours_then_native,
        ),
        privileged(
            "native_bridge_with_our_host_local_then_our_loopback",
            native_then_ours,
        ),
        privileged(
            "port_published_by_native_portmap_reaches_the_container",
            port_mapping,
        ),
        privileged("libcni_gc_with_both_keys_and_each_alone", libcni_gc),
        privileged("wasm_cni_gc_tool_releases_what_is_not_valid", gc_tool),
    ])
}

/// Versions a conflist with native plugins can carry here: chaining starts at
/// 0.3.0 and Debian's reference plugins (1.1.1) stop at 1.0.0.
const CHAIN_VERSIONS: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// A `CNI_PATH` directory where each type is a symlink to ours or to a native
/// plugin, and a host-local data directory that our settings allow.
struct Node {
    dir: tempfile::TempDir,
    host: Netns,
}

impl Node {
    fn new(tag: &str, ours: &[&str], native: &[&str]) -> Result<Self, Failed> {
        let dir = tempfile::tempdir().map_err(fail)?;
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).map_err(fail)?;
        for t in ours {
            std::os::unix::fs::symlink(BIN, bin.join(t)).map_err(fail)?;
        }
        for t in native {
            std::os::unix::fs::symlink(Path::new(REFERENCE_DIR).join(t), bin.join(t))
                .map_err(fail)?;
        }
        let data = dir.path().join("ipam");
        std::fs::write(
            dir.path().join("settings.json"),
            json!({"ipamDataDirs": [data]}).to_string(),
        )
        .map_err(fail)?;
        Ok(Node {
            dir,
            host: Netns::new(tag).map_err(fail)?,
        })
    }

    fn cni_path(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    fn settings(&self) -> String {
        self.dir.path().join("settings.json").display().to_string()
    }

    /// Reserved addresses of `network`, sorted.
    fn allocations(&self, network: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.data_dir().join(network))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn veths(&self) -> Result<Vec<String>, Failed> {
        Ok(self
            .host
            .ip_json(&["link", "show", "type", "veth"])?
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|x| x["ifname"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Run a command inside the node namespace and return its stdout.
    fn run(&self, args: &[&str]) -> Result<String, Failed> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.host.name])
            .args(args)
            .output()
            .map_err(fail)?;
        ensure!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// One attachment: a container namespace and the runtime's view of it.
struct Attachment {
    id: String,
    ns: Netns,
    ifname: &'static str,
    capability_args: Value,
}

impl Attachment {
    fn new(id: &str) -> Result<Self, Failed> {
        Ok(Attachment {
            id: id.to_string(),
            ns: Netns::new(id).map_err(fail)?,
            ifname: "eth0",
            capability_args: json!({}),
        })
    }
}

/// Which GC keys the runtime sends.
#[derive(Clone, Copy, Debug)]
enum GcKeys {
    /// libcni >= 1.2: both.
    Both,
    /// Spec HEAD: `cni.dev/valid-attachments` only.
    Valid,
    /// spec-v1.1.0 text: `cni.dev/attachments` only.
    Legacy,
}

/// The libcni side: a conflist, a result cache, and plugin execution.
struct Libcni<'a> {
    node: &'a Node,
    list: Value,
    cache: RefCell<BTreeMap<(String, String), Value>>,
}

impl<'a> Libcni<'a> {
    fn new(node: &'a Node, list: Value) -> Self {
        Libcni {
            node,
            list,
            cache: RefCell::new(BTreeMap::new()),
        }
    }

    fn version(&self) -> &str {
        self.list["cniVersion"].as_str().unwrap_or("")
    }

    fn plugins(&self) -> Vec<Value> {
        self.list["plugins"].as_array().cloned().unwrap_or_default()
    }

    /// libcni `buildOneConfig`: name and cniVersion from the list, prevResult,
    /// runtimeConfig = the capability args the plugin declares.
    fn conf(&self, plugin: &Value, prev: Option<&Value>, caps: &Value) -> String {
        let mut conf = plugin.clone();
        conf["name"] = self.list["name"].clone();
        conf["cniVersion"] = self.list["cniVersion"].clone();
        if let Some(p) = prev {
            conf["prevResult"] = p.clone();
        }
        let mut rc = serde_json::Map::new();
        if let Some(declared) = plugin["capabilities"].as_object() {
            for (k, on) in declared {
                if on == &json!(true) {
                    if let Some(v) = caps.get(k) {
                        rc.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        if !rc.is_empty() {
            conf["runtimeConfig"] = Value::Object(rc);
        }
        conf.to_string()
    }

    fn env(&self, command: &str, a: Option<&Attachment>) -> CniEnv {
        let mut env = match a {
            Some(a) => CniEnv::new(command, &a.ns.path())
                .container_id(&a.id)
                .ifname(a.ifname)
                .args("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p"),
            None => CniEnv::new(command, "")
                .unset("CNI_CONTAINERID")
                .unset("CNI_NETNS")
                .unset("CNI_IFNAME")
                .unset("CNI_ARGS"),
        };
        env.path = self.node.cni_path().display().to_string();
        env.set("WASM_CNI_CONFIG", &self.node.settings())
    }

    fn exec(&self, plugin: &Value, env: &CniEnv, stdin: &str) -> Result<Answer, Failed> {
        let t = plugin["type"].as_str().unwrap_or("");
        exec(
            Plugin::At(&self.node.cni_path().join(t)),
            &self.node.host,
            env,
            stdin,
        )
    }

    /// `AddNetworkList`.
    fn add(&self, a: &Attachment) -> Result<Value, Failed> {
        let mut prev: Option<Value> = None;
        for p in self.plugins() {
            let conf = self.conf(&p, prev.as_ref(), &a.capability_args);
            let answer = self.exec(&p, &self.env("ADD", Some(a)), &conf)?;
            let answer = answer
                .ok()
                .map_err(|e| fail(format!("ADD {}: {}", p["type"], e.text())))?;
            prev = Some(answer.json()?);
        }
        let result = prev.unwrap_or(Value::Null);
        self.cache
            .borrow_mut()
            .insert((a.id.clone(), a.ifname.to_string()), result.clone());
        Ok(result)
    }

    /// `CheckNetworkList` (0.4.0 and later).
    fn check(&self, a: &Attachment) -> Result<(), Failed> {
        self.check_skipping(a, &[])
    }

    /// `CheckNetworkList` leaving out native plugins whose CHECK is known broken.
    fn check_skipping(&self, a: &Attachment, skip: &[&str]) -> Result<(), Failed> {
        let cached = self
            .cache
            .borrow()
            .get(&(a.id.clone(), a.ifname.to_string()))
            .cloned()
            .ok_or_else(|| fail("CHECK without a cached result"))?;
        for p in self.plugins() {
            if skip.iter().any(|t| p["type"] == *t) {
                continue;
            }
            let conf = self.conf(&p, Some(&cached), &a.capability_args);
            self.exec(&p, &self.env("CHECK", Some(a)), &conf)?
                .ok()
                .map_err(|e| fail(format!("CHECK {}: {}", p["type"], e.text())))?;
        }
        Ok(())
    }

    /// `DelNetworkList`: reverse order, the cached result from 0.4.0 on.
    fn del(&self, a: &Attachment) -> Result<(), Failed> {
        let key = (a.id.clone(), a.ifname.to_string());
        let cached = if self.version() >= "0.4.0" {
            self.cache.borrow().get(&key).cloned()
        } else {
            None
        };
        for p in self.plugins().iter().rev() {
            let conf = self.conf(p, cached.as_ref(), &a.capability_args);
            self.exec(p, &self.env("DEL", Some(a)), &conf)?
                .ok()
                .map_err(|e| fail(format!("DEL {}: {}", p["type"], e.text())))?;
        }
        self.cache.borrow_mut().remove(&key);
        Ok(())
    }

    /// `GCNetworkList`: DEL every cached attachment not in `valid`, then GC to
    /// every plugin (1.1.0 lists only).
    fn gc(&self, valid: &[&Attachment], stale: &[&Attachment], keys: GcKeys) -> TestResult {
        let is_valid = |a: &Attachment| valid.iter().any(|v| v.id == a.id && v.ifname == a.ifname);
        for a in stale {
            let cached = self
                .cache
                .borrow()
                .contains_key(&(a.id.clone(), a.ifname.to_string()));
            if cached && !is_valid(a) {
                self.del(a)?;
            }
        }
        if self.version() < "1.1.0" {
            return Ok(());
        }
        let list: Vec<Value> = valid
            .iter()
            .map(|a| json!({"containerID": a.id, "ifname": a.ifname}))
            .collect();
        for p in self.plugins() {
            let mut conf: Value =
                serde_json::from_str(&self.conf(&p, None, &json!({}))).map_err(fail)?;
            if matches!(keys, GcKeys::Both | GcKeys::Valid) {
                conf["cni.dev/valid-attachments"] = json!(list);
            }
            if matches!(keys, GcKeys::Both | GcKeys::Legacy) {
                conf["cni.dev/attachments"] = json!(list);
            }
            self.exec(&p, &self.env("GC", None), &conf.to_string())?
                .ok()
                .map_err(|e| fail(format!("GC {} ({keys:?}): {}", p["type"], e.text())))?;
        }
        Ok(())
    }

    /// `GetStatusNetworkList` (1.1.0 lists only).
    fn status(&self) -> TestResult {
        for p in self.plugins() {
            let conf = self.conf(&p, None, &json!({}));
            self.exec(&p, &self.env("STATUS", None), &conf)?
                .ok()
                .map_err(|e| fail(format!("STATUS {}: {}", p["type"], e.text())))?;
        }
        Ok(())
    }
}

trait Text {
    fn text(&self) -> String;
}

impl Text for Failed {
    fn text(&self) -> String {
        self.message().map(str::to_string).unwrap_or_default()
    }
}

fn bridge_plugin(bridge: &str, subnet: &str, data: &Path) -> Value {
    json!({
        "type": "bridge",
        "bridge": bridge,
        "isGateway": true,
        "ipMasq": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": subnet}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": data,
        }
    })
}

fn container_ip(result: &Value) -> Result<String, Failed> {
    let ip = result["ips"][0]["address"]
        .as_str()
        .or_else(|| result["ip4"]["ip"].as_str())
        .ok_or_else(|| fail(format!("no address in {result}")))?;
    Ok(ip.split('/').next().unwrap_or("").to_string())
}

fn ours_then_native() -> TestResult {
    for version in CHAIN_VERSIONS {
        let node = Node::new(
            "chain1",
            &["bridge", "host-local"],
            &["portmap", "firewall", "tuning", "bandwidth"],
        )?;
        let mut plugins = vec![
            bridge_plugin("wcbr1", "10.89.0.0/24", &node.data_dir()),
            json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}),
            json!({"type": "tuning", "sysctl": {"net.core.somaxconn": "321"}}),
            json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}),
        ];
        // The reference firewall supports 0.4.0 and 1.0.0 only.
        let firewall = version >= "0.4.0";
        if firewall {
            plugins.insert(2, json!({"type": "firewall", "backend": "iptables"}));
        }
        let list = json!({"cniVersion": version, "name": "wcni-chain", "plugins": plugins});
        let cni = Libcni::new(&node, list);
        let mut a = Attachment::new("chainc1")?;
        a.capability_args = json!({
            "portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}],
            "bandwidth": {"ingressRate": 8_000_000, "ingressBurst": 80_000,
                          "egressRate": 8_000_000, "egressBurst": 80_000},
        });
        let result = cni
            .add(&a)
            .map_err(|e| fail(format!("{version}: {}", e.text())))?;
        ensure!(result["cniVersion"] == version, "{version}: {result}");
        let ip = container_ip(&result)?;
        ensure!(ip.starts_with("10.89.0."), "{version}: {result}");
        // Our interfaces went through the native plugins untouched; bandwidth
        // appends its ifb device for the egress limit.
        let ifaces = result["interfaces"].as_array().cloned().unwrap_or_default();
        ensure!(
            ifaces.len() == 4
                && ifaces[0]["name"] == "wcbr1"
                && ifaces[2]["name"] == "eth0"
                && ifaces[3]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("bwp")),
            "{version}: {result}"
        );
        let host_veth = ifaces[1]["name"].as_str().unwrap_or("").to_string();
        ensure!(node.veths()? == vec![host_veth.clone()], "{version}: veths");

        let rules = node.run(&["nft", "list", "ruleset"])?;
        ensure!(
            rules.contains("CNI-HOSTPORT-DNAT"),
            "{version}: no portmap chain"
        );
        ensure!(
            rules.contains("18080"),
            "{version}: no rule for the host port"
        );
        ensure!(
            !firewall || rules.contains("CNI-FORWARD"),
            "{version}: no firewall chain"
        );
        ensure!(rules.contains(&ip), "{version}: no rule for {ip}");
        let somaxconn = Command::new("ip")
            .args([
                "netns",
                "exec",
                &a.ns.name,
                "cat",
                "/proc/sys/net/core/somaxconn",
            ])
            .output()
            .map_err(fail)?;
        ensure!(
            String::from_utf8_lossy(&somaxconn.stdout).trim() == "321",
            "{version}: tuning did not apply"
        );
        let qdisc = node.run(&["tc", "qdisc", "show", "dev", &host_veth])?;
        ensure!(
            qdisc.contains("tbf"),
            "{version}: no bandwidth qdisc: {qdisc}"
        );

        if version >= "0.4.0" {
            // Debian's portmap 1.1.1 fails CHECK on every IPv4-only attachment,
            // looking for an IPv6 chain it never made (plugins#819).
            cni.check_skipping(&a, &["portmap"])
                .map_err(|e| fail(format!("{version}: {}", e.text())))?;
        }
        cni.del(&a)
            .map_err(|e| fail(format!("{version}: {}", e.text())))?;
        ensure!(node.veths()?.is_empty(), "{version}: veth left");
        ensure!(
            node.allocations("wcni-chain").is_empty(),
            "{version}: IP left"
        );
        let rules = node.run(&["nft", "list", "ruleset"])?;
        ensure!(
            !rules.contains(&ip),
            "{version}: a rule for {ip} is left:\n{rules}"
        );
        ensure!(!rules.contains("18080"), "{version}: the port rule is left");
        let links: Vec<String> = node
            .host
            .ip_json(&["link", "show"])?
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect();
        ensure!(links == ["lo", "wcbr1"], "{version}: links left: {links:?}");
        // A second DEL (runtimes retry) succeeds too.
        cni.cache
            .borrow_mut()
            .insert((a.id.clone(), "eth0".into()), result);
        cni.del(&a)
            .map_err(|e| fail(format!("{version} second DEL: {}", e.text())))?;
    }
    Ok(())
}

fn native_then_ours() -> TestResult {
    for version in CHAIN_VERSIONS {
        let node = Node::new("chain2", &["host-local", "loopback"], &["bridge"])?;
        let list = json!({
            "cniVersion": version,
            "name": "wcni-mixed",
            "plugins": [
                bridge_plugin("wcbr2", "10.90.0.0/24", &node.data_dir()),
                {"type": "loopback"},
            ]
        });
        let cni = Libcni::new(&node, list);
        let a = Attachment::new("chainc2")?;
        // The native bridge alone, to know what it answers.
        let bridge_only = Libcni::new(
            &node,
            json!({"cniVersion": version, "name": "wcni-mixed",
                   "plugins": [cni.plugins()[0].clone()]}),
        );
        let alone = bridge_only
            .add(&a)
            .map_err(|e| fail(format!("{version}: {}", e.text())))?;
        bridge_only.del(&a)?;

        let result = cni
            .add(&a)
            .map_err(|e| fail(format!("{version}: {}", e.text())))?;
        // The native bridge got its address from our host-local...
        let ip = container_ip(&result)?;
        ensure!(
            node.allocations("wcni-mixed") == vec![ip.clone()],
            "{version}: {:?} vs {ip}",
            node.allocations("wcni-mixed")
        );
        // ...and our loopback passed the native result through unchanged
        // (but for the MACs and the address, which a new attachment changes).
        let shape = |v: &Value| {
            let mut v = v.clone();
            // Go prints an empty `"dns": {}`; we leave the optional key out.
            if v["dns"] == json!({}) {
                v.as_object_mut().map(|o| o.remove("dns"));
            }
            for i in v["interfaces"].as_array_mut().into_iter().flatten() {
                i["mac"] = json!("<mac>");
                if let Some(s) = i.get_mut("sandbox") {
                    *s = json!("<netns>");
                }
                if i["name"].as_str().is_some_and(|n| n.starts_with("veth")) {
                    i["name"] = json!("<veth>");
                }
            }
            for x in v["ips"].as_array_mut().into_iter().flatten() {
                x["address"] = json!("<address>");
            }
            v
        };
        ensure!(
            shape(&result) == shape(&alone),
            "{version}: chain answer differs from the native bridge's:\n{result}\n{alone}"
        );
        let lo_up = a.ns.link_up("lo")?;
        ensure!(lo_up, "{version}: our loopback did not bring lo up");
        if version >= "0.4.0" {
            cni.check(&a)
                .map_err(|e| fail(format!("{version}: {}", e.text())))?;
        }
        cni.del(&a)
            .map_err(|e| fail(format!("{version}: {}", e.text())))?;
        ensure!(node.veths()?.is_empty(), "{version}: veth left");
        ensure!(
            node.allocations("wcni-mixed").is_empty(),
            "{version}: IP left"
        );
    }
    Ok(())
}

/// A TCP server inside the container namespace answering one connection.
fn serve_once(ns: &Netns, port: u16, reply: &str) -> Result<Child, Failed> {
    let script = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('0.0.0.0',{port}))\ns.listen(1)\nprint('ready',flush=True)\n\
         s.settimeout(20)\nc,_=s.accept()\nc.sendall(b'{reply}')\nc.close()\n"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(fail)?;
    // Wait for "ready" so the client never races the bind.
    let mut line = String::new();
    if let Some(out) = child.stdout.as_mut() {
        use std::io::BufRead;
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    ensure!(line.trim() == "ready", "server did not start");
    Ok(child)
}

fn port_mapping() -> TestResult {
    let node = Node::new(
        "chain3",
        &["bridge", "host-local"],
        &["portmap", "firewall"],
    )?;
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "wcni-ports",
        "plugins": [
            bridge_plugin("wcbr3", "10.91.0.0/24", &node.data_dir()),
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
            {"type": "firewall", "backend": "iptables"},
        ]
    });
    let cni = Libcni::new(&node, list);
    let mut a = Attachment::new("chainc3")?;
    a.capability_args =
        json!({"portMappings": [{"hostPort": 18081, "containerPort": 8080, "protocol": "tcp"}]});
    let result = cni.add(&a)?;
    let gateway = result["ips"][0]["gateway"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut server = serve_once(&a.ns, 8080, "through-portmap")?;
    let client = Command::new("ip")
        .args([
            "netns",
            "exec",
            &node.host.name,
            "python3",
            "-c",
            &format!(
                "import socket\ns=socket.create_connection(('{gateway}',18081),timeout=10)\n\
                 print(s.recv(100).decode())"
            ),
        ])
        .output()
        .map_err(fail)?;
    let _ = server.kill();
    let _ = server.wait();
    let got = String::from_utf8_lossy(&client.stdout).trim().to_string();
    ensure!(
        got == "through-portmap",
        "{gateway}:18081 gave {got:?}: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    cni.del(&a)?;
    ensure!(node.allocations("wcni-ports").is_empty(), "IP left");
    Ok(())
}

fn libcni_gc() -> TestResult {
    for keys in [GcKeys::Both, GcKeys::Valid, GcKeys::Legacy] {
        let node = Node::new("chain4", &["bridge", "host-local", "loopback"], &[])?;
        let list = json!({
            "cniVersion": "1.1.0",
            "name": "wcni-gc",
            "plugins": [
                bridge_plugin("wcbr4", "10.92.0.0/24", &node.data_dir()),
                {"type": "loopback"},
            ]
        });
        let cni = Libcni::new(&node, list);
        cni.status()?;
        let kept = Attachment::new("gckeep")?;
        let lost = Attachment::new("gclost")?;
        let cached = Attachment::new("gccached")?;
        let kept_ip = container_ip(&cni.add(&kept)?)?;
        cni.add(&lost)?;
        cni.add(&cached)?;
        ensure!(
            node.allocations("wcni-gc").len() == 3,
            "{keys:?}: three IPs"
        );
        // The runtime lost its record of one attachment (its cache entry is
        // gone and so is the container): only the plugins' GC can clean it.
        cni.cache
            .borrow_mut()
            .remove(&(lost.id.clone(), "eth0".to_string()));
        drop(lost);
        cni.gc(&[&kept], &[&cached], keys)?;
        ensure!(
            node.allocations("wcni-gc") == vec![kept_ip.clone()],
            "{keys:?}: left {:?}, expected only {kept_ip}",
            node.allocations("wcni-gc")
        );
        let rules = node.run(&["nft", "list", "ruleset"])?;
        let masq_rules = rules.matches("comment").count();
        ensure!(
            rules.contains(&kept_ip) && masq_rules > 0,
            "{keys:?}: the kept attachment's rules went:\n{rules}"
        );
        ensure!(
            !rules.contains("10.92.0.3") && !rules.contains("10.92.0.4"),
            "{keys:?}: stale rules left:\n{rules}"
        );
        // The lost container's veth goes with its namespace, which the kernel
        // tears down asynchronously after `ip netns del`.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while node.veths()?.len() > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ensure!(
            node.veths()?.len() == 1,
            "{keys:?}: veths {:?}",
            node.veths()?
        );
        cni.del(&kept)?;
        ensure!(node.allocations("wcni-gc").is_empty(), "{keys:?}: IP left");
    }
    Ok(())
}

fn gc_tool() -> TestResult {
    let node = Node::new("chain5", &["bridge", "host-local"], &[])?;
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "wcni-tool",
        "plugins": [bridge_plugin("wcbr5", "10.93.0.0/24", &node.data_dir())]
    });
    let conf_dir = node.dir.path().join("net.d");
    std::fs::create_dir(&conf_dir).map_err(fail)?;
    std::fs::write(conf_dir.join("10-tool.conflist"), list.to_string()).map_err(fail)?;
    let cni = Libcni::new(&node, list);
    let keep = Attachment::new("toolkeep")?;
    let gone = Attachment::new("toolgone")?;
    let keep_ip = container_ip(&cni.add(&keep)?)?;
    let gone_ip = container_ip(&cni.add(&gone)?)?;
    drop(gone);
    let valid = node.dir.path().join("valid.json");
    std::fs::write(
        &valid,
        json!([{"containerID": "toolkeep", "ifname": "eth0"}]).to_string(),
    )
    .map_err(fail)?;

    let run = |extra: &[&str]| -> Result<Answer, Failed> {
        let valid_s = valid.display().to_string();
        let conf_s = conf_dir.display().to_string();
        let path_s = node.cni_path().display().to_string();
        let mut args = vec![
            "gc",
            "--network",
            "wcni-tool",
            "--valid",
            &valid_s,
            "--conf-dir",
            &conf_s,
            "--cni-path",
            &path_s,
        ];
        args.extend_from_slice(extra);
        exec(
            Plugin::Tool(&args),
            &node.host,
            &CniEnv::new("", "")
                .unset("CNI_COMMAND")
                .set("WASM_CNI_CONFIG", &node.settings()),
            "",
        )
    };
    // The 1.0.0 list is collected anyway: our plugins speak 1.1.0 whatever the
    // file says.
    let out = run(&[])?.ok()?;
    ensure!(
        out.stdout.contains("released 1 attachment(s)")
            && out.stdout.contains("toolgone")
            && out.stdout.contains(&gone_ip),
        "{}",
        out.stdout
    );
    ensure!(
        node.allocations("wcni-tool") == vec![keep_ip.clone()],
        "left {:?}",
        node.allocations("wcni-tool")
    );
    let again = run(&["--json"])?.ok()?;
    let v: Value = serde_json::from_str(&again.stdout).map_err(fail)?;
    ensure!(v["released"] == json!([]), "{v}");
    ensure!(v["kept"][0]["containerID"] == "toolkeep", "{v}");
    ensure!(v["plugins"][0]["outcome"] == "ok", "{v}");

    // Bad input names the bad value and changes nothing.
    std::fs::write(&valid, "{\"containerID\": 1}").map_err(fail)?;
    let bad = run(&[])?;
    ensure!(
        bad.status != 0 && bad.stderr.contains("valid.json"),
        "{}",
        bad.stderr
    );
    ensure!(
        node.allocations("wcni-tool") == vec![keep_ip],
        "bad GC changed state"
    );
    cni.del(&keep)?;
    Ok(())
}
