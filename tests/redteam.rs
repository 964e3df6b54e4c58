//! The red-team suite (issue 12): each test is an attack a tenant (through a
//! network configuration) or a hostile component could make on a node. Each
//! checks the error returned, the time and memory the invocation took, and a
//! full snapshot of the node before and after: its links, addresses, routes,
//! rules, `net.*` sysctls, nftables and legacy iptables, and the files the
//! test watches outside the state directory. The node is a throwaway
//! namespace like everything else here.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::node::{differences, exec_measured, namespace_state, node_state, Measured};
use common::*;
use plan::IntentKind;
use serde_json::{json, Value};

/// The most an attack may take, in time and peak resident memory.
const MOST_TIME: Duration = Duration::from_secs(15);
const MOST_RSS_KIB: u64 = 128 << 10;

/// A node (and a container) for one attack, with an administrator directory
/// holding its settings.
struct Scene {
    sb: Sandbox,
    admin: tempfile::TempDir,
}

impl Scene {
    fn new(tag: &str) -> Result<Self, libtest_mimic::Failed> {
        Ok(Scene {
            sb: Sandbox::new(tag)?,
            admin: tempfile::tempdir().map_err(fail)?,
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.admin.path().join(rel)
    }

    /// Write the settings file (and a policy, when given) and return its path.
    fn settings(
        &self,
        mut settings: Value,
        policy: Option<Value>,
    ) -> Result<String, libtest_mimic::Failed> {
        if let Some(policy) = policy {
            let file = self.path("policy.json");
            std::fs::write(&file, policy.to_string()).map_err(fail)?;
            settings["policyFile"] = json!(file);
        }
        let file = self.path("config.json");
        std::fs::write(&file, settings.to_string()).map_err(fail)?;
        Ok(file.display().to_string())
    }

    /// The node and the container as they are.
    fn state(&self, watched: &[&Path]) -> Result<Value, libtest_mimic::Failed> {
        let mut state = node_state(&self.sb.host, watched)?;
        state["container"] = namespace_state(&self.sb.container)?;
        Ok(state)
    }

    /// The state once the kernel has finished what earlier steps started (an
    /// address's duplicate detection, a link's IPv6 link-local address): no
    /// address tentative, and two snapshots 200 ms apart that agree, within 5 s.
    fn settled_state(&self, watched: &[&Path]) -> Result<Value, libtest_mimic::Failed> {
        let mut state = self.state(watched)?;
        for _ in 0..25 {
            std::thread::sleep(Duration::from_millis(200));
            let again = self.state(watched)?;
            if again == state && !state.to_string().contains("\"tentative\":true") {
                return Ok(state);
            }
            state = again;
        }
        Err(fail("the node never settled"))
    }

    /// Invoke `plugin` with `command`, the settings file and `stdin`.
    fn invoke(
        &self,
        plugin: Plugin<'_>,
        command: &str,
        settings: &str,
        stdin: &Value,
        tweak: impl FnOnce(CniEnv) -> CniEnv,
    ) -> Result<Measured, libtest_mimic::Failed> {
        let env =
            tweak(CniEnv::new(command, &self.sb.container.path())).set("WASM_CNI_CONFIG", settings);
        exec_measured(plugin, &self.sb.host, &env, &stdin.to_string())
    }
}

/// Run `attack` and require the CNI error `code` with `needle` in its message
/// or details, within the time and memory bounds, with nothing changed.
fn contained(
    scene: &Scene,
    watched: &[&Path],
    what: &str,
    code: u64,
    needle: &str,
    attack: impl FnOnce() -> Result<Measured, libtest_mimic::Failed>,
) -> TestResult {
    let before = scene.settled_state(watched)?;
    let m = attack()?;
    let after = scene.state(watched)?;
    let msg = m
        .answer
        .error(code)
        .map_err(|e| fail(format!("{what}: {e:?}")))?;
    let details = m.answer.json()?["details"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(
        msg.contains(needle) || details.contains(needle),
        "{what}: {msg:?} / {details:?} lacks {needle:?}"
    );
    ensure!(m.elapsed < MOST_TIME, "{what}: took {:?}", m.elapsed);
    ensure!(
        m.peak_rss_kib < MOST_RSS_KIB,
        "{what}: peak RSS {} KiB",
        m.peak_rss_kib
    );
    let changed = differences(&before, &after);
    let container_changed = before["container"] != after["container"];
    ensure!(
        changed.is_empty() && !container_changed,
        "{what}: the node changed: {changed:?} (container: {container_changed})"
    );
    eprintln!(
        "  {what}: code {code} in {} ms, peak RSS {} KiB, node unchanged",
        m.elapsed.as_millis(),
        m.peak_rss_kib
    );
    Ok(())
}

/// A bridge + host-local config of network `name` with extra `ipam` keys.
fn bridge_conf(name: &str, bridge: &str, ipam: Value) -> Value {
    let mut conf = json!({
        "cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": bridge,
        "isGateway": true,
        "ipam": {"type": "host-local", "subnet": "10.77.0.0/24"}
    });
    if let (Some(i), Some(extra)) = (conf["ipam"].as_object_mut(), ipam.as_object()) {
        i.extend(extra.clone());
    }
    conf
}

/// Class 3: `ipam.resolvConf` opened any path as root, blocked forever on a
/// FIFO or `/dev/stdout` while holding the network's lock, leaked root-only
/// files into the result and told whether a file exists. Now only regular
/// files under `resolvConfPaths`, reached without links, without blocking.
fn resolv_conf_reads_only_what_the_admin_opened() -> TestResult {
    let scene = Scene::new("dns")?;
    let dns = scene.path("dns");
    std::fs::create_dir(&dns).map_err(fail)?;
    std::fs::write(dns.join("resolv.conf"), "nameserver 10.77.0.53\n").map_err(fail)?;
    let secret = scene.path("secret");
    std::fs::write(&secret, "nameserver 10.66.6.6\nsearch root-only.example\n").map_err(fail)?;
    nix::unistd::mkfifo(
        &dns.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .map_err(fail)?;
    std::os::unix::fs::symlink(&secret, dns.join("link")).map_err(fail)?;
    let settings = scene.settings(
        json!({"ipamDataDirs": [scene.path("data")], "resolvConfPaths": [dns]}),
        None,
    )?;
    let watched: [&Path; 2] = [&dns, &secret];
    let attempts = [
        ("/dev/stdout".to_string(), "not under an allowed directory"),
        (
            secret.display().to_string(),
            "not under an allowed directory",
        ),
        (
            "/nonexistent/resolv.conf".to_string(),
            "not under an allowed directory",
        ),
        (dns.join("fifo").display().to_string(), "is a FIFO"),
        (dns.join("link").display().to_string(), "symbolic link"),
        (
            format!("{}/../secret", dns.display()),
            "not a clean absolute path",
        ),
    ];
    for (path, needle) in attempts {
        let conf = bridge_conf(
            "dnsnet",
            "wcnidns0",
            json!({"dataDir": scene.path("data"), "resolvConf": path}),
        );
        contained(
            &scene,
            &watched,
            &format!("resolvConf {path}"),
            999,
            needle,
            || scene.invoke(Plugin::Ours("bridge"), "ADD", &settings, &conf, |e| e),
        )?;
    }
    // What the administrator opened works, and nothing else leaks in.
    let conf = bridge_conf(
        "dnsnet",
        "wcnidns0",
        json!({"dataDir": scene.path("data"), "resolvConf": dns.join("resolv.conf")}),
    );
    let m = scene.invoke(Plugin::Ours("bridge"), "ADD", &settings, &conf, |e| e)?;
    let result = m.answer.ok()?.json()?;
    ensure!(
        result["dns"]["nameservers"] == json!(["10.77.0.53"]),
        "{result}"
    );
    Ok(())
}

/// Class 6: tricks with the state directory. A link planted under an allowed
/// `dataDir` root redirected the state directory (text checks only); a
/// planted `lock -> ../../x` made the next call create and lock `x` as root;
/// a 2,000-level `dataDir` left 2,004 directories behind.
fn state_directory_links_lead_nowhere() -> TestResult {
    let scene = Scene::new("state")?;
    let data = scene.path("data");
    let outside = scene.path("outside");
    std::fs::create_dir_all(&data).map_err(fail)?;
    std::fs::create_dir_all(&outside).map_err(fail)?;
    let settings = scene.settings(json!({"ipamDataDirs": [data]}), None)?;
    let watched: [&Path; 2] = [&outside, &scene.path("x")];

    // A link under the allowed root that leads outside it.
    std::os::unix::fs::symlink(&outside, data.join("evil")).map_err(fail)?;
    let conf = bridge_conf("statenet", "wcnist0", json!({"dataDir": data.join("evil")}));
    contained(
        &scene,
        &watched,
        "dataDir through a link",
        100,
        "symbolic link",
        || scene.invoke(Plugin::Ours("bridge"), "ADD", &settings, &conf, |e| e),
    )?;
    // `wasm-cni plan` refuses it the same way (a dry run once took any state
    // directory it could not open for an empty one).
    let report = scene
        .invoke(
            Plugin::Tool(&["plan", "--json"]),
            "ADD",
            &settings,
            &conf,
            |e| e,
        )?
        .answer;
    ensure!(
        report.status == 1 && report.stderr.contains("leads through a symbolic link"),
        "plan: exit {}: {}",
        report.status,
        report.stderr
    );

    // A lock planted as a link by whoever could write the state directory.
    let store = data.join("locknet");
    std::fs::create_dir_all(&store).map_err(fail)?;
    std::os::unix::fs::symlink("../../x", store.join("lock")).map_err(fail)?;
    let conf = bridge_conf("locknet", "wcnist0", json!({"dataDir": data}));
    contained(
        &scene,
        &watched,
        "planted lock link",
        5,
        "symbolic link",
        || scene.invoke(Plugin::Ours("bridge"), "ADD", &settings, &conf, |e| e),
    )?;
    ensure!(!scene.path("x").exists(), "the lock link was followed");

    // A dataDir thousands of directories deep is refused before one is made.
    let deep: PathBuf = std::iter::once(data.clone())
        .chain((0..2000).map(|_| PathBuf::from("d")))
        .collect();
    let conf = bridge_conf("deepnet", "wcnist0", json!({"dataDir": deep}));
    let data_watch: [&Path; 1] = [&data.join("d")];
    contained(
        &scene,
        &data_watch,
        "2,000-level dataDir",
        100,
        "more than",
        || scene.invoke(Plugin::Ours("bridge"), "ADD", &settings, &conf, |e| e),
    )?;
    Ok(())
}

/// Class 6: `wasm-cni inspect` followed links planted in a state directory,
/// printing root-only files and reading `/dev/zero` without end.
fn inspect_follows_no_planted_link() -> TestResult {
    let scene = Scene::new("insp")?;
    let data = scene.path("data");
    let store = data.join("pods");
    std::fs::create_dir_all(&store).map_err(fail)?;
    std::fs::write(store.join("10.1.0.2"), "c1\r\neth0").map_err(fail)?;
    let secret = scene.path("secret");
    std::fs::write(&secret, "root-only-contents").map_err(fail)?;
    std::os::unix::fs::symlink(&secret, store.join("10.1.0.3")).map_err(fail)?;
    std::os::unix::fs::symlink("/dev/zero", store.join("10.1.0.4")).map_err(fail)?;
    std::os::unix::fs::symlink(scene.path("elsewhere"), data.join("linked")).map_err(fail)?;
    let started = std::time::Instant::now();
    let out = tool(&[
        "inspect",
        "--json",
        "--data-dir",
        &data.display().to_string(),
    ])?
    .ok()?;
    ensure!(
        started.elapsed() < MOST_TIME,
        "took {:?}",
        started.elapsed()
    );
    let rows = out.json()?;
    ensure!(
        rows.as_array().map(Vec::len) == Some(1) && rows[0]["containerID"] == "c1",
        "{rows}"
    );
    ensure!(!out.stdout.contains("root-only"), "{}", out.stdout);
    Ok(())
}

/// Class 2: a tenant's `ipam.type` that names wasm-cni itself, or a wrapper
/// that leads back to it, made every process exec the next one (hundreds of
/// processes in two seconds). Now it is refused at once.
fn ipam_delegation_cannot_fork_without_end() -> TestResult {
    use std::os::unix::fs::PermissionsExt as _;
    let scene = Scene::new("fork")?;
    let bin = scene.path("bin");
    std::fs::create_dir(&bin).map_err(fail)?;
    std::os::unix::fs::symlink(BIN, bin.join("wasm-cni")).map_err(fail)?;
    let wrapper = bin.join("loop-ipam");
    std::fs::write(&wrapper, format!("#!/bin/sh\nexec {BIN} \"$@\"\n")).map_err(fail)?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
    let settings = scene.settings(json!({}), None)?;
    let watched: [&Path; 1] = [&bin];
    for (ipam, needle) in [
        ("wasm-cni", "is wasm-cni itself"),
        ("loop-ipam", "levels deep"),
    ] {
        let conf = json!({
            "cniVersion": "1.0.0", "name": "forknet", "type": "bridge",
            "bridge": "wcnifork0", "ipam": {"type": ipam}
        });
        contained(
            &scene,
            &watched,
            &format!("ipam.type {ipam}"),
            7,
            needle,
            || {
                scene.invoke(Plugin::Ours("bridge"), "ADD", &settings, &conf, |mut e| {
                    e.path = bin.display().to_string();
                    e
                })
            },
        )?;
    }
    // A native delegate that never ends, and starts a process of its own:
    // both end at the deadline (its process group is killed).
    let pidfile = scene.path("background.pid");
    let hang = bin.join("hang-ipam");
    std::fs::write(
        &hang,
        format!(
            "#!/bin/sh\nsleep 1000 &\necho $! > {}\nexec sleep 1000\n",
            pidfile.display()
        ),
    )
    .map_err(fail)?;
    std::fs::set_permissions(&hang, std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
    let bounded = scene.settings(json!({"limits": {"delegateMs": 1000}}), None)?;
    let conf = json!({
        "cniVersion": "1.0.0", "name": "forknet", "type": "bridge",
        "bridge": "wcnifork0", "ipam": {"type": "hang-ipam"}
    });
    let outcome = contained(
        &scene,
        &[],
        "a delegate that hangs",
        102,
        "within 1000 ms",
        || {
            scene.invoke(Plugin::Ours("bridge"), "ADD", &bounded, &conf, |mut e| {
                e.path = bin.display().to_string();
                e
            })
        },
    );
    let background: Option<i32> = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|p| p.trim().parse().ok());
    let alive = background.is_some_and(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.starts_with("sleep"))
    });
    if let (true, Some(pid)) = (alive, background) {
        // Ours (the test started the delegate): do not leave it behind.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    outcome?;
    ensure!(
        background.is_some(),
        "the delegate never started its process"
    );
    ensure!(!alive, "the delegate's own process outlived the deadline");
    Ok(())
}

/// Class 10, GHSA-rc4p-x33f-vpr2: wasmtime 47.0.0-48.0.8 without its `gc`
/// feature aborts the host process when a guest uses a declared subtype. A
/// component that declares one is refused when it compiles; the process
/// answers and exits 1 (an abort is 134).
fn gc_subtypes_cannot_crash_the_host() -> TestResult {
    // A component whose core module is (module (type (sub (func)))).
    let module: &[u8] = b"\0asm\x01\0\0\0\x01\x06\x01\x50\x00\x60\x00\x00";
    let mut component = b"\0asm\x0d\x00\x01\x00".to_vec();
    component.push(0x01);
    component.push(module.len() as u8);
    component.extend_from_slice(module);
    std::fs::write(
        shared_host().plugins.path().join("subtype.wasm"),
        &component,
    )
    .map_err(fail)?;
    let scene = Scene::new("gc")?;
    let settings = scene.settings(json!({}), None)?;
    let conf = json!({"cniVersion": "1.0.0", "name": "gcnet", "type": "subtype"});
    let mut status = 0;
    contained(&scene, &[], "subtype component", 104, "gc", || {
        let m = scene.invoke(Plugin::Ours("subtype"), "ADD", &settings, &conf, |e| e)?;
        status = m.answer.status;
        Ok(m)
    })?;
    ensure!(status == 1, "exit status {status} (134 is an abort)");
    Ok(())
}

/// Class 5: a component granted any bridge name and per-link sysctls named a
/// bridge `all` (or `default`) and then set "its" sysctls: those of every
/// link of the node. Refused, in ADD and in DEL alike.
fn namespace_wide_sysctls_stay_the_admins() -> TestResult {
    shared_host().install_test_guest("hostile", "hostile");
    let scene = Scene::new("sysall")?;
    let settings = scene.settings(
        json!({}),
        Some(json!({"plugins": [{
            "match": {"name": "hostile"},
            "intents": IntentKind::ALL,
            "bridges": ["*"],
            "sysctls": ["net/ipv4/conf/<if>/proxy_arp", "net/ipv6/conf/<if>/disable_ipv6"]
        }]})),
    )?;
    for attack in ["sysctl-all", "sysctl-default"] {
        for command in ["ADD", "DEL"] {
            let conf = json!({
                "cniVersion": "1.0.0", "name": "sysnet", "type": "hostile", "attack": attack
            });
            contained(
                &scene,
                &[],
                &format!("{attack} {command}"),
                100,
                "sysctl is not granted",
                || scene.invoke(Plugin::Ours("hostile"), command, &settings, &conf, |e| e),
            )?;
        }
    }
    Ok(())
}

/// Class 4: ownership by name and by plan. A component deleted a node link
/// by ordering `delete-link X` before `ensure-host-veth X`, and took over an
/// existing veth (another attachment's) by naming it in `ensure-host-veth`.
fn components_touch_only_links_they_own() -> TestResult {
    shared_host().install_test_guest("hostile", "hostile");
    let scene = Scene::new("own")?;
    // A node link of the kind the component covets.
    scene.sb.host.ip(&[
        "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p",
    ])?;
    let settings = scene.settings(json!({}), Some(hostile_policy()))?;
    for (attack, needle) in [
        ("delete-then-claim", "host link is not created by this plan"),
        ("claim-veth", "is not this network's"),
        ("delete-host-link", "host link is not created by this plan"),
        ("enslave-uplink", "uplink0"),
    ] {
        let conf =
            json!({"cniVersion": "1.0.0", "name": "ownnet", "type": "hostile", "attack": attack});
        contained(&scene, &[], attack, 100, needle, || {
            scene.invoke(Plugin::Ours("hostile"), "ADD", &settings, &conf, |e| e)
        })?;
    }
    Ok(())
}

/// Class 4 and 9: a bridge belongs to the network that created it (its record
/// is the link's alias). Another network naming it (a tenant reusing a bridge
/// name; two networks on one bridge gave a duplicate IP) is refused, and so is
/// a node bridge the administrator did not name in `adopt` (a tenant's
/// `forceAddress` once removed the node's own address from it).
fn networks_take_up_only_their_own_bridges() -> TestResult {
    let scene = Scene::new("brown")?;
    let data = scene.path("data");
    let settings = scene.settings(json!({"ipamDataDirs": [data]}), None)?;
    // forceAddress: a plugin removes the bridge's other addresses in the subnet.
    let conf = |net: &str, bridge: &str, subnet: &str| {
        json!({"cniVersion": "1.0.0", "name": net, "type": "bridge", "bridge": bridge,
            "isGateway": true, "forceAddress": net == "tenant-c",
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data}})
    };
    scene
        .invoke(
            Plugin::Ours("bridge"),
            "ADD",
            &settings,
            &conf("tenant-a", "wcniown0", "10.81.0.0/24"),
            |e| e,
        )?
        .answer
        .ok()?;
    let record = scene.sb.host.ip_json(&["link", "show", "wcniown0"])?;
    ensure!(
        record[0]["ifalias"] == "wasm-cni network=tenant-a",
        "no ownership record: {record}"
    );
    contained(
        &scene,
        &[],
        "another network's bridge",
        100,
        "is not this network's",
        || {
            scene.invoke(
                Plugin::Ours("bridge"),
                "ADD",
                &settings,
                &conf("tenant-b", "wcniown0", "10.81.0.0/24"),
                |e| e.container_id("other-container"),
            )
        },
    )?;
    // A node bridge with the node's own address.
    scene
        .sb
        .host
        .ip(&["link", "add", "wcninode0", "type", "bridge"])?;
    scene
        .sb
        .host
        .ip(&["addr", "add", "10.83.0.250/24", "dev", "wcninode0"])?;
    contained(
        &scene,
        &[],
        "a node bridge",
        100,
        "no wasm-cni record",
        || {
            scene.invoke(
                Plugin::Ours("bridge"),
                "ADD",
                &settings,
                &conf("tenant-c", "wcninode0", "10.83.0.0/24"),
                |e| e.container_id("third-container"),
            )
        },
    )?;
    Ok(())
}

/// Class 1: tenant-chosen addresses were trusted. A bundled bridge +
/// host-local config with a public subnet made the node route that space to
/// the tenant's bridge. Now IPAM's results, every address, gateway, host route
/// and masquerade source must lie in the address space the administrator
/// opened (default: the private ranges), and a host address must not overlap
/// the node's own routes.
fn tenants_use_only_the_address_space_opened_to_them() -> TestResult {
    let scene = Scene::new("space")?;
    let data = scene.path("data");
    // The node's own network, as its uplink would carry it.
    scene.sb.host.ip(&[
        "link", "add", "wcninic0", "type", "veth", "peer", "name", "wcninic1",
    ])?;
    scene
        .sb
        .host
        .ip(&["addr", "add", "10.84.0.5/16", "dev", "wcninic0"])?;
    scene.sb.host.ip(&["link", "set", "wcninic0", "up"])?;
    let conf = |net: &str, subnet: &str| {
        json!({"cniVersion": "1.0.0", "name": net, "type": "bridge", "bridge": "wcnisp0",
            "isGateway": true, "ipMasq": true,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data}})
    };
    let default = scene.settings(json!({"ipamDataDirs": [data]}), None)?;
    for (what, subnet, needle) in [
        ("public subnet", "8.8.8.0/24", "outside the address space"),
        (
            "documentation space not opened",
            "203.0.113.0/24",
            "outside the address space",
        ),
        (
            "the node's own subnet",
            "10.84.1.0/24",
            "overlaps the node's route 10.84.0.0/16",
        ),
    ] {
        contained(&scene, &[], what, 100, needle, || {
            scene.invoke(
                Plugin::Ours("bridge"),
                "ADD",
                &default,
                &conf("spacenet", subnet),
                |e| e,
            )
        })?;
    }
    // The administrator narrows the space for every plugin.
    let narrow = scene.settings(
        json!({"ipamDataDirs": [data]}),
        Some(json!({"addressSpace": ["10.85.0.0/16"]})),
    )?;
    contained(
        &scene,
        &[],
        "private space outside the policy's",
        100,
        "10.85.0.0/16",
        || {
            scene.invoke(
                Plugin::Ours("bridge"),
                "ADD",
                &narrow,
                &conf("spacenet", "10.86.0.0/24"),
                |e| e,
            )
        },
    )?;
    let m = scene.invoke(
        Plugin::Ours("bridge"),
        "ADD",
        &narrow,
        &conf("spacenet", "10.85.3.0/24"),
        |e| e,
    )?;
    let result = m.answer.ok()?.json()?;
    ensure!(result["ips"][0]["address"] == "10.85.3.2/24", "{result}");
    Ok(())
}

/// Class 7: a component that asked IPAM for an address and released it could
/// still plan it, while IPAM was free to give it to another container.
fn released_addresses_are_not_the_invocations() -> TestResult {
    shared_host().install_test_guest("hostile", "hostile");
    let scene = Scene::new("acct")?;
    let data = scene.path("data");
    let settings = scene.settings(json!({"ipamDataDirs": [data]}), Some(hostile_policy()))?;
    let conf = json!({"cniVersion": "1.0.0", "name": "acctnet", "type": "hostile",
        "attack": "ipam-release-use",
        "ipam": {"type": "host-local", "subnet": "10.124.0.0/24", "dataDir": data}});
    contained(
        &scene,
        &[],
        "use after release",
        100,
        "10.124.0.2/24",
        || scene.invoke(Plugin::Ours("hostile"), "ADD", &settings, &conf, |e| e),
    )
}

/// Class 8: budgets for the whole invocation, not per call. Waits in DEL
/// (5 s each, 21 minutes for a full plan), a guest looping on `log` (354 MiB
/// in one deadline), 100 MB on stdin (2.1 GB of memory), 11,000 range sets
/// (571 reservations left behind).
fn every_activity_has_an_invocation_budget() -> TestResult {
    shared_host().install_test_guest("hostile", "hostile");
    let scene = Scene::new("budget")?;
    let data = scene.path("data");
    let log = scene.path("wasm-cni.log");
    let settings = scene.settings(
        json!({"ipamDataDirs": [data], "logFile": log, "limits": {"deadlineMs": 1000}}),
        Some(hostile_policy()),
    )?;
    let hostile = |attack: &str| json!({"cniVersion": "1.0.0", "name": "budgetnet", "type": "hostile", "attack": attack});
    contained(&scene, &[], "250 waits in DEL", 107, "used up", || {
        scene.invoke(
            Plugin::Ours("hostile"),
            "DEL",
            &settings,
            &hostile("many-waits"),
            |e| e,
        )
    })?;
    contained(&scene, &[], "log flood", 102, "ran out of time", || {
        scene.invoke(
            Plugin::Ours("hostile"),
            "ADD",
            &settings,
            &hostile("log-flood"),
            |e| e.set("WASM_CNI_LOG_LEVEL", "info"),
        )
    })?;
    let logged = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    ensure!(logged < 2 << 20, "the guest logged {logged} bytes");
    ensure!(
        std::fs::read_to_string(&log)
            .map_err(fail)?
            .contains("log budget"),
        "no word of the dropped lines"
    );
    // The network's lock held elsewhere (a stuck holder): waited for at most
    // the deadline, then "try again later".
    let store = data.join("heldnet");
    std::fs::create_dir_all(&store).map_err(fail)?;
    let lock = std::fs::File::create(store.join("lock")).map_err(fail)?;
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| fail(e))?;
    let conf = bridge_conf("heldnet", "wcnibud0", json!({"dataDir": data}));
    contained(
        &scene,
        &[],
        "the network's lock held",
        11,
        "held by another invocation",
        || scene.invoke(Plugin::Ours("bridge"), "ADD", &settings, &conf, |e| e),
    )?;
    drop(held);
    // 100 MB on stdin: read no further than the bound.
    let mut huge = bridge_conf("budgetnet", "wcnibud0", json!({"dataDir": data}));
    huge["padding"] = json!("x".repeat(100 << 20));
    contained(&scene, &[], "100 MB on stdin", 7, "larger than", || {
        scene.invoke(Plugin::Ours("bridge"), "ADD", &settings, &huge, |e| e)
    })?;
    // 11,000 range sets: refused before one address is reserved.
    let sets: Vec<Value> = (0..11_000)
        .map(|i| json!([{"subnet": format!("10.{}.{}.0/24", 100 + i / 256, i % 256)}]))
        .collect();
    let conf = json!({"cniVersion": "1.0.0", "name": "rangenet", "type": "bridge",
        "bridge": "wcnibud0", "ipam": {"type": "host-local", "ranges": sets, "dataDir": data}});
    contained(&scene, &[], "11,000 range sets", 7, "more than 16", || {
        scene.invoke(Plugin::Ours("bridge"), "ADD", &settings, &conf, |e| e)
    })?;
    let reserved = std::fs::read_dir(data.join("rangenet"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name() != "lock")
                .count()
        })
        .unwrap_or(0);
    ensure!(
        reserved == 0,
        "{reserved} files left in the state directory"
    );
    Ok(())
}

/// Class 9: thirty first ADDs at once on a new shared bridge failed five
/// times: each process compiled the components itself on two cores and ran
/// guests out of their deadlines, and the bridge one of them created is taken
/// up by the others only once it carries its record. Now one process compiles
/// and the others wait for its artifact; a record is awaited briefly.
fn parallel_first_adds_share_one_new_bridge() -> TestResult {
    const N: usize = 30;
    let scene = Scene::new("par")?;
    let data = scene.path("data");
    let cache = scene.path("cache");
    let settings = scene.settings(json!({"ipamDataDirs": [data]}), None)?;
    let containers: Vec<Netns> = (0..N)
        .map(|i| Netns::new(&format!("p{i}")).map_err(fail))
        .collect::<Result<_, _>>()?;
    let conf = bridge_conf("parnet", "wcnipar0", json!({"dataDir": data}));
    let results: Vec<Result<String, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let env = CniEnv::new("ADD", &c.path())
                    .container_id(&format!("par-{i}"))
                    .set("WASM_CNI_CONFIG", &settings)
                    .set("WASM_CNI_CACHE_DIR", &cache.display().to_string());
                let conf = conf.to_string();
                let host = &scene.sb.host;
                s.spawn(move || {
                    let answer = exec(Plugin::Ours("bridge"), host, &env, &conf)
                        .map_err(|e| format!("{e:?}"))?;
                    let result = answer.ok().map_err(|e| format!("{e:?}"))?;
                    let v = result.json().map_err(|e| format!("{e:?}"))?;
                    Ok(v["ips"][0]["address"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    });
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    ensure!(
        failures.is_empty(),
        "{} of {N} failed: {:?}",
        failures.len(),
        failures.first()
    );
    let mut ips: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    ips.sort();
    ips.dedup();
    ensure!(ips.len() == N, "duplicate IPs: {} unique of {N}", ips.len());
    Ok(())
}

/// Class 9: a component with no grant for them read the node's links, its
/// routing table and another network's masquerade rules. A plugin now sees
/// only what it could act on.
fn components_see_only_what_is_theirs() -> TestResult {
    shared_host().install_test_guest("hostile", "hostile");
    let scene = Scene::new("peek")?;
    let data = scene.path("data");
    scene.sb.host.ip(&[
        "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p",
    ])?;
    scene
        .sb
        .host
        .ip(&["addr", "add", "10.87.0.5/24", "dev", "uplink0"])?;
    scene.sb.host.ip(&["link", "set", "uplink0", "up"])?;
    scene.sb.container.ip(&[
        "link", "add", "eth9", "type", "veth", "peer", "name", "eth9p",
    ])?;
    let settings = scene.settings(json!({"ipamDataDirs": [data]}), Some(hostile_policy()))?;
    // Another network with masquerading, on the same node.
    let victim = json!({"cniVersion": "1.0.0", "name": "victimnet", "type": "bridge",
        "bridge": "wcnivic0", "isGateway": true, "ipMasq": true,
        "ipam": {"type": "host-local", "subnet": "10.88.0.0/24", "dataDir": data}});
    scene
        .invoke(Plugin::Ours("bridge"), "ADD", &settings, &victim, |e| {
            e.container_id("victim")
        })?
        .answer
        .ok()?;
    let conf =
        json!({"cniVersion": "1.0.0", "name": "peeknet", "type": "hostile", "attack": "peek"});
    contained(
        &scene,
        &[],
        "peek",
        7,
        "saw: node link false, node routes 0, other network's rules 0, other link false",
        || scene.invoke(Plugin::Ours("hostile"), "ADD", &settings, &conf, |e| e),
    )
}

/// Class 9: the digest pin covered the main component, but a
/// `host-local.wasm` dropped in the plugin directory replaced the bundled
/// IPAM, whose results the validator trusts. An installed IPAM component now
/// runs only when a policy grant matches it.
fn dropped_ipam_components_do_not_run() -> TestResult {
    let scene = Scene::new("drop")?;
    let data = scene.path("data");
    let plugins = scene.path("plugins");
    std::fs::create_dir(&plugins).map_err(fail)?;
    let (_, bytes, digest) = bundled::BUNDLED
        .iter()
        .find(|(name, _, _)| *name == "host-local")
        .ok_or_else(|| fail("no bundled host-local"))?;
    std::fs::write(plugins.join("host-local.wasm"), bytes).map_err(fail)?;
    let with_dir = |e: CniEnv| e.set("WASM_CNI_PLUGIN_DIR", &plugins.display().to_string());
    let settings = scene.settings(json!({"ipamDataDirs": [data]}), None)?;
    let conf = bridge_conf("dropnet", "wcnidrop0", json!({"dataDir": data}));
    let watched: [&Path; 1] = [&plugins];
    contained(
        &scene,
        &watched,
        "dropped host-local behind bridge",
        100,
        "no policy grant matches it",
        || scene.invoke(Plugin::Ours("bridge"), "ADD", &settings, &conf, with_dir),
    )?;
    contained(
        &scene,
        &watched,
        "dropped host-local invoked directly",
        100,
        "no policy grant matches it",
        || {
            scene.invoke(
                Plugin::Ours("host-local"),
                "ADD",
                &settings,
                &conf,
                with_dir,
            )
        },
    )?;
    // Granted by digest, it runs (and the bundled bridge keeps its built-in grant).
    let granted = scene.settings(
        json!({"ipamDataDirs": [data]}),
        Some(json!({"plugins": [{"match": {"name": "host-local", "digest": format!("sha256:{digest}")}}]})),
    )?;
    scene
        .invoke(Plugin::Ours("bridge"), "ADD", &granted, &conf, with_dir)?
        .answer
        .ok()?;
    Ok(())
}

/// Class 9: an ADD result could attribute any IP to a host interface, and its
/// routes and DNS were not checked against what was applied: a runtime would
/// trust them. Each is a contract violation now, and the plan is undone.
fn results_describe_only_what_was_applied() -> TestResult {
    shared_host().install_test_guest("hostile", "hostile");
    let scene = Scene::new("lie")?;
    let settings = scene.settings(json!({}), Some(hostile_policy()))?;
    for (attack, needle) in [
        ("lying-result", "was not touched by the plan"),
        ("host-ip", "not on the interface it names"),
        (
            "lying-route",
            "neither returned by IPAM nor added by the plan",
        ),
        ("lying-dns", "10.123.0.53"),
    ] {
        let conf =
            json!({"cniVersion": "1.0.0", "name": "lienet", "type": "hostile", "attack": attack});
        contained(&scene, &[], attack, 104, needle, || {
            scene.invoke(Plugin::Ours("hostile"), "ADD", &settings, &conf, |e| e)
        })?;
    }
    Ok(())
}

/// Class 9: a failed ADD said everything was undone, but routes the kernel
/// dropped with an address the plan removed stayed lost. The rollback now
/// puts them back after the address.
fn a_failed_add_restores_the_routes_it_cost() -> TestResult {
    shared_host().install_test_guest("hostile", "hostile");
    let scene = Scene::new("undo")?;
    let settings = scene.settings(json!({}), Some(hostile_policy()))?;
    // The network's own bridge (with its record), and a route of the node
    // through a gateway on its subnet.
    let host = &scene.sb.host;
    host.ip(&["link", "add", "wcnifrc0", "type", "bridge"])?;
    host.ip(&[
        "link",
        "set",
        "wcnifrc0",
        "alias",
        "wasm-cni network=forcenet",
        "up",
    ])?;
    // With a broadcast address, as the ADD that made it would have.
    host.ip(&[
        "addr",
        "add",
        "10.123.0.1/24",
        "brd",
        "+",
        "dev",
        "wcnifrc0",
    ])?;
    host.ip(&[
        "route",
        "add",
        "10.96.0.0/16",
        "via",
        "10.123.0.7",
        "dev",
        "wcnifrc0",
    ])?;
    let conf = json!({"cniVersion": "1.0.0", "name": "forcenet", "type": "hostile", "attack": "force-then-fail"});
    contained(
        &scene,
        &[],
        "forced address, then a failure",
        107,
        "every change made before the failure was undone",
        || scene.invoke(Plugin::Ours("hostile"), "ADD", &settings, &conf, |e| e),
    )
}

/// The `json` blocks of the section of docs/security.md headed `heading`.
fn doc_json_blocks(heading: &str) -> Result<Vec<Value>, libtest_mimic::Failed> {
    let doc = include_str!("../docs/security.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .ok_or_else(|| fail(format!("no section {heading:?} in docs/security.md")))?;
    section
        .split("```json\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default())
        .map(|b| serde_json::from_str(b).map_err(|e| fail(format!("{e}: {b}"))))
        .collect()
}

/// The worked example of docs/security.md, run as it is written: two tenants
/// on one node, each with its own plugin type, bridge names and address space.
fn two_tenants_share_a_node() -> TestResult {
    let blocks = doc_json_blocks("A node shared by two tenants")?;
    let (policy, tenant_a) = match blocks.as_slice() {
        [policy, conf, ..] => (policy.clone(), conf.clone()),
        _ => return Err(fail("the section lost its policy or configuration")),
    };
    let (_, bytes, digest) = bundled::BUNDLED
        .iter()
        .find(|(name, _, _)| *name == "bridge")
        .ok_or_else(|| fail("no bundled bridge"))?;
    let policy: Value =
        serde_json::from_str(&policy.to_string().replace("<bridge digest>", digest))
            .map_err(fail)?;
    let scene = Scene::new("tenants")?;
    let data = scene.path("data");
    let plugins = scene.path("plugins");
    std::fs::create_dir(&plugins).map_err(fail)?;
    for tenant in ["tenant-a-bridge", "tenant-b-bridge"] {
        std::fs::write(plugins.join(format!("{tenant}.wasm")), bytes).map_err(fail)?;
    }
    let settings = scene.settings(json!({"ipamDataDirs": [data]}), Some(policy))?;
    let with_dir = |e: CniEnv| e.set("WASM_CNI_PLUGIN_DIR", &plugins.display().to_string());
    let mut a = tenant_a;
    a["ipam"]["dataDir"] = json!(data);
    let mut b = a.clone();
    b["name"] = json!("b-net");
    b["type"] = json!("tenant-b-bridge");
    b["bridge"] = json!("tb-br0");
    b["ipam"]["subnet"] = json!("10.20.1.0/24");
    let type_of = |conf: &Value| conf["type"].as_str().unwrap_or_default().to_string();
    for (conf, ifname) in [(&a, "eth0"), (&b, "eth1")] {
        let who = type_of(conf);
        scene
            .invoke(Plugin::Ours(&who), "ADD", &settings, conf, |e| {
                with_dir(e).container_id(&who).ifname(ifname)
            })?
            .answer
            .ok()?;
    }
    // Tenant A on B's bridge, in B's space; and the bundled bridge, which the
    // empty top-level address space leaves nothing.
    let mut on_b_bridge = a.clone();
    on_b_bridge["bridge"] = json!("tb-br0");
    let mut in_b_space = a.clone();
    in_b_space["ipam"]["subnet"] = json!("10.20.1.0/24");
    in_b_space["bridge"] = json!("ta-br1");
    let mut bundled = a.clone();
    bundled["type"] = json!("bridge");
    bundled["bridge"] = json!("wcnibnd0");
    for (what, conf, needle) in [
        (
            "A on B's bridge",
            &on_b_bridge,
            "bridge name is not granted",
        ),
        ("A in B's space", &in_b_space, "outside the address space"),
        ("the bundled bridge", &bundled, "outside the address space"),
    ] {
        let who = type_of(conf);
        contained(&scene, &[], what, 100, needle, || {
            scene.invoke(Plugin::Ours(&who), "ADD", &settings, conf, |e| {
                with_dir(e).container_id("intruder").ifname("eth2")
            })
        })?;
    }
    // Tenant B names A's network in a GC that keeps nothing: A's reservations
    // and masquerade rules stay.
    let mut gc = b.clone();
    gc["name"] = json!("a-net");
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([]);
    let a_store = data.join("a-net");
    let watched: [&Path; 1] = [&a_store];
    contained(
        &scene,
        &watched,
        "B's GC of A's network",
        100,
        "another plugin's network",
        || {
            scene.invoke(
                Plugin::Ours("tenant-b-bridge"),
                "GC",
                &settings,
                &gc,
                with_dir,
            )
        },
    )?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    run(vec![
        privileged("redteam_two_tenants_share_a_node", two_tenants_share_a_node),
        privileged(
            "redteam_a_failed_add_restores_the_routes_it_cost",
            a_failed_add_restores_the_routes_it_cost,
        ),
        privileged(
            "redteam_results_describe_only_what_was_applied",
            results_describe_only_what_was_applied,
        ),
        privileged(
            "redteam_dropped_ipam_components_do_not_run",
            dropped_ipam_components_do_not_run,
        ),
        privileged(
            "redteam_components_see_only_what_is_theirs",
            components_see_only_what_is_theirs,
        ),
        privileged(
            "redteam_parallel_first_adds_share_one_new_bridge",
            parallel_first_adds_share_one_new_bridge,
        ),
        privileged(
            "redteam_released_addresses_are_not_the_invocations",
            released_addresses_are_not_the_invocations,
        ),
        privileged(
            "redteam_every_activity_has_an_invocation_budget",
            every_activity_has_an_invocation_budget,
        ),
        privileged(
            "redteam_tenants_use_only_the_address_space_opened_to_them",
            tenants_use_only_the_address_space_opened_to_them,
        ),
        privileged(
            "redteam_components_touch_only_links_they_own",
            components_touch_only_links_they_own,
        ),
        privileged(
            "redteam_networks_take_up_only_their_own_bridges",
            networks_take_up_only_their_own_bridges,
        ),
        privileged(
            "redteam_ipam_delegation_cannot_fork_without_end",
            ipam_delegation_cannot_fork_without_end,
        ),
        privileged(
            "redteam_gc_subtypes_cannot_crash_the_host",
            gc_subtypes_cannot_crash_the_host,
        ),
        privileged(
            "redteam_namespace_wide_sysctls_stay_the_admins",
            namespace_wide_sysctls_stay_the_admins,
        ),
        privileged(
            "redteam_resolv_conf_reads_only_what_the_admin_opened",
            resolv_conf_reads_only_what_the_admin_opened,
        ),
        privileged(
            "redteam_state_directory_links_lead_nowhere",
            state_directory_links_lead_nowhere,
        ),
        plain(
            "redteam_inspect_follows_no_planted_link",
            inspect_follows_no_planted_link,
        ),
    ])
}
