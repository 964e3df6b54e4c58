//! podman end to end: the real `podman` (CNI network backend, its vendored libcni)
//! runs busybox containers on a wasm-cni network. The network's chain is wasm-cni's
//! `bridge` + `host-local`, followed by the Go reference `portmap`, `firewall` and
//! `tuning` from `/usr/lib/cni`, at CNI 1.0.0.
//!
//! Everything podman touches is throwaway:
//! - it runs inside a network namespace the test creates (the node side: bridge,
//!   host veths, iptables/nftables rules), never in the machine's root namespace;
//! - and inside a private mount namespace (held by an `unshare ... sleep` the test
//!   starts) with tmpfs over `/run` (podman's container netns bind mounts under
//!   `/run/netns`, the xtables lock), `/var/lib` (libcni's cache in `/var/lib/cni`)
//!   and `/dev/shm` (podman's `libpod_lock`);
//! - its root, runroot, tmpdir, network configs, CNI plugin directory, the
//!   host-local data directory and the containers' rootfs are in a temporary
//!   directory;
//! - containers run under a cgroup parent of their own, removed at the end.
//!
//! `Drop` removes every container, kills by PID whatever the test started that is
//! still alive (in the private mount namespace or in the cgroup parent), removes
//! the cgroups, the namespaces and the files, also when the test fails.
//!
//! Without podman, runc, conmon, busybox-static, nsenter or unshare the tests are
//! ignored, or fail with `WASM_CNI_REQUIRE_PRIVILEGED=1` (CI); `scripts/setup`
//! installs them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use libtest_mimic::{Failed, Trial};
use serde_json::{json, Value};

/// The network's name (each test has its own podman, so they can share it).
const NET: &str = "wcni";
/// The static busybox that becomes the containers' rootfs.
const BUSYBOX: &str = "/bin/busybox";
/// How long one podman command may take before the test gives up on it.
const PODMAN_TIMEOUT: Duration = Duration::from_secs(60);
/// The published port on the node, and the port httpd listens on in the container.
const HOST_PORT: u16 = 8080;
const CONTAINER_PORT: u16 = 80;
/// A sysctl only `tuning` sets (the bridge sets `arp_notify`, not this one).
const TUNED_SYSCTL: &str = "net/ipv4/conf/eth0/log_martians";

type Res<T> = Result<T, Failed>;

/// The precompiled-component cache of this test binary, owned by `main` (so it is
/// removed at the end, unlike `common::shared_host`'s).
static CACHE: OnceLock<PathBuf> = OnceLock::new();

/// `dir/name` for every directory in `PATH` and the usual system ones.
fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<String> = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(str::to_string)
        .collect();
    dirs.extend(
        [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .map(str::to_string),
    );
    dirs.iter()
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// What is missing for these tests, or None.
fn missing_tools() -> Option<String> {
    let mut missing: Vec<String> = [
        "podman", "buildah", "runc", "conmon", "nsenter", "unshare", "nft",
    ]
    .into_iter()
    .filter(|t| find_program(t).is_none())
    .map(str::to_string)
    .collect();
    if !Path::new(BUSYBOX).is_file() {
        missing.push(format!("{BUSYBOX} (busybox-static)"));
    } else if is_dynamic(Path::new(BUSYBOX)) {
        missing.push(format!(
            "a static {BUSYBOX} (busybox-static; this one needs a loader the rootfs lacks)"
        ));
    }
    for p in ["portmap", "firewall", "tuning"] {
        if !Path::new(REFERENCE_DIR).join(p).is_file() {
            missing.push(format!("{REFERENCE_DIR}/{p}"));
        }
    }
    (!missing.is_empty())
        .then(|| format!("not installed: {} (run scripts/setup)", missing.join(", ")))
}

/// Whether an ELF64 file has a program interpreter (PT_INTERP), i.e. is not static.
fn is_dynamic(path: &Path) -> bool {
    let Ok(elf) = std::fs::read(path) else {
        return false;
    };
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    // ELF64, little-endian only (the machines these tests run on).
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(size), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..usize::from(count)).any(|i| {
        u32_at(phoff as usize + i * usize::from(size)) == Some(3) // PT_INTERP
    })
}

/// A privileged test that also needs podman: ignored when the tools are missing,
/// or failed under `WASM_CNI_REQUIRE_PRIVILEGED=1`, never passed.
fn podman_test(name: &'static str, f: fn() -> TestResult) -> Trial {
    let required = std::env::var("WASM_CNI_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1");
    match missing_tools() {
        None => privileged(name, f),
        Some(why) if required => Trial::test(name, move || {
            Err(format!("podman test required but cannot run: {why}").into())
        }),
        Some(why) => {
            eprintln!("{name}: ignored: {why}");
            privileged(name, f).with_ignored_flag(true)
        }
    }
}

/// What podman reports for a container attached to [`NET`].
#[derive(Debug, Clone)]
struct Attached {
    id: String,
    ip: Ipv4Addr,
    prefix: u64,
    gateway: String,
    mac: String,
}

/// One podman "node": its network namespace, its private mount namespace, its
/// configuration and storage, and the network `NET` on `10.77.<octet>.0/24`.
struct Node {
    /// `unshare --mount` running `sleep`: holds the private mount namespace.
    holder: Child,
    /// `/proc/<holder>/ns/mnt`, what `nsenter --mount` enters.
    mnt: String,
    /// The namespace's identity (`mnt:[inode]`), once the holder is inside it and
    /// it differs from ours; only then may `Drop` kill processes found in it.
    mnt_id: Option<String>,
    cgroup_parent: String,
    runc: PathBuf,
    octet: u8,
    bridge: String,
    calls: AtomicU32,
    host: Netns,
    dir: tempfile::TempDir,
}

impl Node {
    fn new(tag: &str, octet: u8) -> Res<Node> {
        let runc = find_program("runc").ok_or_else(|| fail("runc not found"))?;
        let dir = tempfile::tempdir().map_err(fail)?;
        let d = dir.path();
        for sub in [
            "root",
            "runroot",
            "tmp",
            "net.d",
            "cni-bin",
            "ipam",
            "logs",
            "cache",
            "wasm-plugins",
        ] {
            std::fs::create_dir_all(d.join(sub)).map_err(fail)?;
        }
        // The plugin directory podman searches: ours under the reference names,
        // the reference plugins for the rest of the chain. /opt/cni/bin is untouched.
        for p in ["bridge", "host-local"] {
            std::os::unix::fs::symlink(BIN, d.join("cni-bin").join(p)).map_err(fail)?;
        }
        for p in ["portmap", "firewall", "tuning"] {
            std::os::unix::fs::symlink(Path::new(REFERENCE_DIR).join(p), d.join("cni-bin").join(p))
                .map_err(fail)?;
        }
        build_rootfs(&d.join("rootfs"))?;
        let settings = d.join("settings.json");
        std::fs::write(
            &settings,
            json!({
                "ipamDataDirs": [d.join("ipam")],
                "cacheDir": CACHE.get().cloned().unwrap_or_else(|| d.join("cache")),
                "pluginDir": d.join("wasm-plugins"),
                "logFile": d.join("wasm-cni.log"),
                "logLevel": "info",
                "auditLog": d.join("audit.jsonl"),
            })
            .to_string(),
        )
        .map_err(fail)?;
        let bridge = format!("wcpod{octet}");
        let conflist = json!({
            "cniVersion": "1.0.0",
            "name": NET,
            "plugins": [
                {
                    "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": d.join("ipam"),
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "ranges": [[{
                            "subnet": format!("10.77.{octet}.0/24"),
                            "gateway": format!("10.77.{octet}.1")
                        }]]
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "firewall"},
                {"type": "tuning", "sysctl": {TUNED_SYSCTL.replace('/', "."): "1"}}
            ]
        });
        std::fs::write(
            d.join("net.d").join(format!("{NET}.conflist")),
            serde_json::to_string_pretty(&conflist).map_err(fail)?,
        )
        .map_err(fail)?;
        // TOML basic strings take JSON's escapes.
        let s = |p: &Path| json!(p).to_string();
        let conf = format!(
            r#"[containers]
# Podman's defaults (nofile and nproc 1048576 and more) exceed the hard limits
# here, and raising a hard limit needs CAP_SYS_RESOURCE, which runc lacks on
# sandboxed machines: runc fails with "error setting rlimit type 7".
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[network]
network_backend = "cni"
cni_plugin_dirs = [{bin}]
network_config_dir = {netd}

[engine]
# buildah takes the cgroup manager from here (podman gets the flag as well).
cgroup_manager = "cgroupfs"
# conmon runs `podman container cleanup` (hence CNI DEL) when a container exits,
# with only these variables: without WASM_CNI_CONFIG our DEL would not find the
# settings that allow the host-local dataDir, and the allocation would leak.
conmon_env_vars = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "WASM_CNI_CONFIG={settings}"]
"#,
            bin = s(&d.join("cni-bin")),
            netd = s(&d.join("net.d")),
            settings = settings.display(),
        );
        std::fs::write(d.join("containers.conf"), conf).map_err(fail)?;

        let host = Netns::new(&format!("pm{tag}")).map_err(fail)?;
        host.ip(&["link", "set", "lo", "up"])?;

        // The private mount namespace. Nothing mounted here propagates back.
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(
                "mount -t tmpfs -o mode=0755 wcni-run /run && mkdir -m 0755 /run/netns \
                 && mount -t tmpfs -o mode=0755 wcni-varlib /var/lib \
                 && mount -t tmpfs -o mode=1777 wcni-shm /dev/shm \
                 && echo ready && exec sleep 3600",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("unshare: {e}")))?;
        let out = holder.stdout.take();
        let mut node = Node {
            mnt: format!("/proc/{}/ns/mnt", holder.id()),
            holder,
            mnt_id: None,
            cgroup_parent: format!("wcni-podman-{}-{tag}", std::process::id()),
            runc,
            octet,
            bridge,
            calls: AtomicU32::new(0),
            host,
            dir,
        };
        let mut line = String::new();
        if let Some(out) = out {
            BufReader::new(out).read_line(&mut line).map_err(fail)?;
        }
        if line.trim() != "ready" {
            let mut err = String::new();
            if let Some(mut e) = node.holder.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(fail(format!("private mount namespace: {err}")));
        }
        let ours = std::fs::read_link("/proc/self/ns/mnt").map_err(fail)?;
        let theirs = std::fs::read_link(&node.mnt).map_err(fail)?;
        ensure!(
            ours != theirs,
            "the holder is not in a mount namespace of its own"
        );
        node.mnt_id = Some(theirs.display().to_string());
        Ok(node)
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn subnet(&self) -> String {
        format!("10.77.{}.0/24", self.octet)
    }

    fn gateway(&self) -> String {
        format!("10.77.{}.1", self.octet)
    }

    /// `podman <args>` inside both namespaces; the answer whatever the exit.
    fn podman_raw(&self, args: &[&str]) -> Res<Answer> {
        let d = self.dir.path();
        let mut global: Vec<OsString> = vec!["--tmpdir".into(), d.join("tmp").into()];
        global.extend(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"].map(Into::into));
        global.extend(["--events-backend", "none", "--network-backend", "cni"].map(Into::into));
        global.extend(["--network-config-dir".into(), d.join("net.d").into()]);
        global.extend(["--runtime".into(), self.runc.clone().into_os_string()]);
        self.containers_tool("podman", &global, args)
    }

    /// `buildah <args>` inside both namespaces (same storage and
    /// containers.conf as podman); the answer whatever the exit.
    fn buildah_raw(&self, args: &[&str]) -> Res<Answer> {
        self.containers_tool("buildah", &["--storage-driver".into(), "vfs".into()], args)
    }

    /// `buildah <args>`, required to succeed; its stdout.
    fn buildah(&self, args: &[&str]) -> Res<String> {
        self.succeeded("buildah", args, self.buildah_raw(args)?)
    }

    /// A containers/common tool (podman, buildah) inside both namespaces, with
    /// this node's storage, containers.conf and wasm-cni settings.
    fn containers_tool(&self, tool: &str, global: &[OsString], args: &[&str]) -> Res<Answer> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let out_path = self.path("logs").join(format!("{n}.out"));
        let err_path = self.path("logs").join(format!("{n}.err"));
        let d = self.dir.path();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--mount={}", self.mnt))
            .arg(format!("--net={}", self.host.path()))
            .arg("--")
            .arg(tool)
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .args(global)
            .args(args)
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("WASM_CNI_CONFIG", d.join("settings.json"))
            .env("TMPDIR", d.join("tmp"));
        for v in [
            "WASM_CNI_PLUGIN_DIR",
            "WASM_CNI_CACHE_DIR",
            "WASM_CNI_LOG_FILE",
            "WASM_CNI_LOG_LEVEL",
            "WASM_CNI_POLICY",
        ] {
            cmd.env_remove(v);
        }
        // Files, not pipes: `podman run -d` leaves conmon behind, which would
        // keep a pipe open.
        cmd.stdin(Stdio::null())
            .stdout(File::create(&out_path).map_err(fail)?)
            .stderr(File::create(&err_path).map_err(fail)?);
        let mut child = cmd.spawn().map_err(|e| fail(format!("nsenter: {e}")))?;
        let deadline = Instant::now() + PODMAN_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(fail)? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "{tool} {args:?} still running after {PODMAN_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Ok(Answer {
            status: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        })
    }

    /// `podman <args>`, required to succeed; its stdout.
    fn podman(&self, args: &[&str]) -> Res<String> {
        self.succeeded("podman", args, self.podman_raw(args)?)
    }

    /// The stdout of a `tool` run that exited 0; else a failure with its
    /// stderr and the end of wasm-cni's log.
    fn succeeded(&self, tool: &str, args: &[&str], a: Answer) -> Res<String> {
        if a.status != 0 {
            return Err(fail(format!(
                "{tool} {args:?}: exit {}: {}\nwasm-cni log:\n{}",
                a.status,
                a.stderr.trim(),
                self.log_tail()
            )));
        }
        Ok(a.stdout)
    }

    /// The end of wasm-cni's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path("wasm-cni.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Start a detached container `name` on `NET` from the busybox rootfs.
    fn run(&self, name: &str, extra: &[&str], command: &[&str]) -> Res<String> {
        let parent = format!("/{}", self.cgroup_parent);
        let rootfs = self.path("rootfs").display().to_string();
        let mut args = vec!["run", "--detach", "--name", name, "--network", NET];
        args.extend(["--cgroup-parent", &parent, "--cap-add", "NET_RAW"]);
        args.extend(extra);
        // `--rootfs` is a flag: the first argument after the options is the rootfs.
        args.extend(["--rootfs", &rootfs]);
        args.extend(command);
        Ok(self.podman(&args)?.trim().to_string())
    }

    /// `sh -c script` in container `name`.
    fn exec(&self, name: &str, script: &str) -> Res<String> {
        self.podman(&["exec", name, "sh", "-c", script])
    }

    fn inspect(&self, name: &str) -> Res<Attached> {
        let v: Value = serde_json::from_str(&self.podman(&["inspect", name])?).map_err(fail)?;
        let n = &v[0]["NetworkSettings"]["Networks"][NET];
        let text = |x: &Value| x.as_str().unwrap_or_default().to_string();
        Ok(Attached {
            id: text(&v[0]["Id"]),
            ip: text(&n["IPAddress"])
                .parse()
                .map_err(|e| fail(format!("{name}: IPAddress in {n}: {e}")))?,
            prefix: n["IPPrefixLen"].as_u64().unwrap_or_default(),
            gateway: text(&n["Gateway"]),
            mac: text(&n["MacAddress"]),
        })
    }

    /// The containers podman knows, running or not.
    fn containers(&self) -> Res<Vec<String>> {
        Ok(self
            .podman(&["ps", "--all", "--format", "{{.Names}}"])?
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// host-local's allocations: IP -> the file's content (container ID, ifname).
    fn allocations(&self) -> BTreeMap<String, String> {
        std::fs::read_dir(self.path("ipam").join(NET))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.parse::<std::net::IpAddr>().ok()?;
                        let content = std::fs::read_to_string(e.path()).unwrap_or_default();
                        Some((name, content))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What wasm-cni's audit trail says it did for `container`: (command, outcome)
    /// of each bridge plan.
    fn audited(&self, container: &str) -> Vec<(String, String)> {
        std::fs::read_to_string(self.path("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["container"] == container && e["plugin"] == "bridge")
            .map(|e| {
                (
                    e["command"].as_str().unwrap_or_default().to_string(),
                    e["outcome"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Entries of `/run/netns` in the private mount namespace (podman's container
    /// netns bind mounts).
    fn netns_mounts(&self) -> Res<Vec<String>> {
        let out = Command::new("nsenter")
            .arg(format!("--mount={}", self.mnt))
            .args(["--", "ls", "-A", "/run/netns"])
            .output()
            .map_err(fail)?;
        ensure!(
            out.status.success(),
            "ls /run/netns: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// The node namespace's state for "nothing changed" comparisons: `ip -d link`,
    /// `ip addr`, routes, the nftables ruleset (counters removed) and host-local's
    /// files (but `last_reserved_ip`, which moves on by design).
    fn state(&self) -> Res<Value> {
        // Our DEL's reaper deletes the veth after the plugin exited.
        settle_reapers()?;
        let mut snap = self.host.snapshot()?;
        snap["firewall"] = Value::String(strip_counters(&self.host.ruleset()?));
        let mut details = self.host.ip_json(&["-d", "link", "show"])?;
        strip_volatile(&mut details);
        snap["details"] = details;
        let files: BTreeMap<String, String> = std::fs::read_dir(self.path("ipam").join(NET))
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            std::fs::read_to_string(e.path()).unwrap_or_default(),
                        )
                    })
                    .filter(|(n, _)| !n.starts_with("last_reserved_ip"))
                    .collect()
            })
            .unwrap_or_default();
        snap["ipam"] = json!(files);
        Ok(snap)
    }

    /// Wait until the bridge, left without ports, has lost its carrier: the
    /// kernel updates carrier and operstate asynchronously (linkwatch).
    fn settle_bridge_down(&self) -> TestResult {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let l = self.host.ip_json(&["link", "show", "dev", &self.bridge])?;
            let no_carrier = l[0]["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "NO-CARRIER"));
            if no_carrier && l[0]["operstate"] == "DOWN" {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the bridge without ports still has carrier: {l}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until no address in the node namespace is IPv6-tentative (DAD done).
    fn settle_ipv6(&self) -> TestResult {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let tentative = self.host.ip_json(&["-6", "addr", "show", "tentative"])?;
            let pending = tentative.as_array().is_some_and(|l| {
                l.iter()
                    .any(|x| x["addr_info"].as_array().is_some_and(|a| !a.is_empty()))
            });
            if !pending {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "IPv6 addresses still tentative: {tentative}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything the test started that still runs: processes in the private mount
    /// namespace (podman, conmon) and in the cgroup parent (containers, conmon).
    fn strays(&self) -> BTreeSet<i32> {
        let mut pids = cgroup_pids(&self.cgroup_parent);
        if let Some(id) = &self.mnt_id {
            let holder = self.holder.id() as i32;
            for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                if pid == holder {
                    continue;
                }
                if std::fs::read_link(e.path().join("ns/mnt"))
                    .is_ok_and(|l| l.display().to_string() == *id)
                {
                    pids.insert(pid);
                }
            }
        }
        pids.remove(&(std::process::id() as i32));
        pids
    }

    /// After `podman rm`: nothing of `gone` is left anywhere.
    fn assert_gone(&self, gone: &[&Attached]) -> TestResult {
        let alloc = self.allocations();
        ensure!(alloc.is_empty(), "IP allocations left behind: {alloc:?}");
        let links: Vec<String> = self
            .host
            .ip_json(&["link", "show"])?
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect();
        ensure!(
            links == ["lo".to_string(), self.bridge.clone()],
            "links left behind in the node namespace: {links:?}"
        );
        let rules = self.host.ruleset()?;
        for c in gone {
            for needle in [c.id.clone(), format!("{} ", c.ip), format!("{}:", c.ip)] {
                ensure!(
                    !rules.contains(&needle),
                    "rule mentioning {needle:?} left behind:\n{rules}"
                );
            }
            ensure!(
                !cgroup_dirs(&self.cgroup_parent)
                    .iter()
                    .any(|d| d.join(format!("libpod-{}", c.id)).exists()),
                "cgroup of {} left behind",
                c.id
            );
        }
        ensure!(
            !rules.contains("dnat to"),
            "DNAT rule left behind:\n{rules}"
        );
        let mounts = self.netns_mounts()?;
        ensure!(
            mounts.is_empty(),
            "container netns left in /run/netns: {mounts:?}"
        );
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.mnt_id.is_some() {
            let _ = self.podman_raw(&["rm", "--all", "--force", "--time", "0"]);
        }
        // Whatever survived was started by this test: end it by PID.
        for _ in 0..50 {
            let strays = self.strays();
            if strays.is_empty() {
                break;
            }
            for pid in strays {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        remove_cgroups(&self.cgroup_parent);
        // Then the fields: the node namespace, the temporary directory.
    }
}

/// A rootfs of the static busybox with every applet linked.
fn build_rootfs(root: &Path) -> TestResult {
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "www"] {
        std::fs::create_dir_all(root.join(d)).map_err(fail)?;
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).map_err(fail)?;
    let list = Command::new(BUSYBOX).arg("--list").output().map_err(fail)?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.contains('/') {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).map_err(fail)?;
        }
    }
    Ok(())
}

/// Where `a` and `b` differ: one line per differing path.
fn json_diff(path: &str, a: &Value, b: &Value) -> Vec<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    let null = Value::Null;
                    json_diff(
                        &format!("{path}/{k}"),
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                    )
                })
                .collect()
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .flat_map(|(i, (p, q))| json_diff(&format!("{path}/{i}"), p, q))
            .collect(),
        (Value::String(x), Value::String(y)) if x.contains('\n') || y.contains('\n') => {
            let xs: BTreeSet<&str> = x.lines().collect();
            let ys: BTreeSet<&str> = y.lines().collect();
            xs.symmetric_difference(&ys)
                .map(|l| format!("{path}: {} {l}", if xs.contains(l) { "-" } else { "+" }))
                .collect()
        }
        _ if a == b => Vec::new(),
        _ => vec![format!("{path}: {a} -> {b}")],
    }
}

/// `counter packets N bytes M` -> `counter`.
fn strip_counters(ruleset: &str) -> String {
    ruleset
        .lines()
        .map(|line| {
            let mut out = Vec::new();
            let mut words = line.split_whitespace();
            while let Some(w) = words.next() {
                if w == "packets" || w == "bytes" {
                    words.next();
                } else {
                    out.push(w);
                }
            }
            out.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Counters, timers and the default qdisc out of `ip -d -j link`.
fn strip_volatile(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !k.ends_with("_timer") && k != "stats64" && k != "qdisc");
            map.values_mut().for_each(strip_volatile);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_volatile),
        _ => {}
    }
}

/// `<hierarchy>/<parent>` for the unified root and every v1 hierarchy.
fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    if parent.is_empty() || parent.contains('/') || parent.starts_with('.') {
        return Vec::new();
    }
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(parent)];
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        dirs.push(e.path().join(parent));
    }
    dirs.retain(|d| d.is_dir());
    dirs
}

/// `dir` and its subdirectories, deepest first.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(subtree(&e.path()));
        }
    }
    out.push(dir.to_path_buf());
    out
}

fn cgroup_pids(parent: &str) -> BTreeSet<i32> {
    cgroup_dirs(parent)
        .iter()
        .flat_map(|d| subtree(d))
        .flat_map(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// rmdir the cgroup parent in every hierarchy (empty cgroups only, by design).
fn remove_cgroups(parent: &str) {
    for _ in 0..100 {
        let dirs = cgroup_dirs(parent);
        if dirs.is_empty() {
            return;
        }
        for d in dirs.iter().flat_map(|d| subtree(d)) {
            let _ = std::fs::remove_dir(d);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET path` to `addr` from inside `ns` (a thread that entered it); the reply.
fn http_get(ns: &Netns, addr: SocketAddr, path: &str) -> Result<String, String> {
    let handle = kernel::NetnsHandle::open(ns.path()).map_err(|e| e.to_string())?;
    kernel::run_in_netns(&handle, || -> Result<String, String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .map_err(|e| format!("send to {addr}: {e}"))?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)
            .map_err(|e| format!("read from {addr}: {e}"))?;
        Ok(reply)
    })
    .map_err(|e| e.to_string())?
}

/// [`http_get`] until the reply carries `token` (httpd may still be starting).
fn fetch_token(ns: &Netns, addr: SocketAddr, path: &str, token: &str) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = http_get(ns, addr, path);
        match &got {
            Ok(reply) if reply.contains(token) => return Ok(()),
            _ if Instant::now() > deadline => {
                return Err(fail(format!("GET {addr}{path}: {got:?}, wanted {token}")))
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn token(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("wcni-{tag}-{}-{nanos}", std::process::id())
}

/// Checks every network fact of a running container against podman's view,
/// the container's own view and the node's.
fn check_attached(node: &Node, name: &str, c: &Attached) -> TestResult {
    let subnet: ipnet::Ipv4Net = node.subnet().parse().map_err(fail)?;
    ensure!(
        subnet.contains(&c.ip) && c.ip != subnet.network() && c.ip != subnet.broadcast(),
        "{name}: {} is not a host address of {subnet}",
        c.ip
    );
    ensure!(
        c.ip.to_string() != node.gateway(),
        "{name} got the gateway's address"
    );
    ensure!(c.prefix == 24, "{name}: prefix {}", c.prefix);
    ensure!(c.gateway == node.gateway(), "{name}: gateway {}", c.gateway);
    let inside = node.exec(
        name,
        "ip -4 addr show dev eth0; cat /sys/class/net/eth0/address",
    )?;
    ensure!(
        inside.contains(&format!("inet {}/24", c.ip)),
        "{name}: eth0 inside is {inside}"
    );
    ensure!(
        !c.mac.is_empty() && inside.contains(&c.mac),
        "{name}: podman says MAC {}, eth0 inside is {inside}",
        c.mac
    );
    let route = node.exec(name, "ip route show default")?;
    ensure!(
        route.contains(&format!("via {}", node.gateway())),
        "{name}: default route {route}"
    );
    let tuned = node.exec(name, &format!("cat /proc/sys/{TUNED_SYSCTL}"))?;
    ensure!(
        tuned.trim() == "1",
        "{name}: tuning did not set {TUNED_SYSCTL}: {tuned}"
    );
    let alloc = node.allocations();
    ensure!(
        alloc
            .get(&c.ip.to_string())
            .is_some_and(|owner| owner.starts_with(&c.id)),
        "{name}: host-local files {alloc:?}"
    );
    let rules = node.host.ruleset()?;
    // wasm-cni's masquerade, the reference firewall's accept rules.
    for needle in [
        format!("ip saddr {} ip daddr != {} masquerade", c.ip, node.subnet()),
        format!("id: {}", c.id),
        format!("ip daddr {} ct state related,established", c.ip),
    ] {
        ensure!(rules.contains(&needle), "{name}: no {needle:?} in\n{rules}");
    }
    ensure!(
        node.audited(&c.id)
            .contains(&("ADD".into(), "applied".into())),
        "{name}: wasm-cni's audit trail has no applied ADD: {:?}",
        node.audited(&c.id)
    );
    Ok(())
}

fn ping(node: &Node, from: &str, to: &str) -> TestResult {
    node.exec(from, &format!("ping -c 2 -w 5 {to}"))
        .map(|_| ())
        .map_err(|e| {
            fail(format!(
                "{from} cannot ping {to}: {}",
                e.message().unwrap_or_default()
            ))
        })
}

/// Two containers ping each other and the gateway; a published port reaches httpd
/// in one of them from the node (gateway and 127.0.0.1) and from the other
/// container (hairpin); `podman rm` leaves no link, rule, allocation, netns mount
/// or cgroup.
fn ping_publish_and_rm() -> TestResult {
    let node = Node::new("ping", 1)?;
    let before = node.state()?;
    let tok = token("ping");
    std::fs::write(node.path("rootfs/www/token"), &tok).map_err(fail)?;

    let id1 = node.run("c1", &[], &["sleep", "3600"])?;
    let port = format!("{HOST_PORT}:{CONTAINER_PORT}");
    let httpd_port = CONTAINER_PORT.to_string();
    let id2 = node.run(
        "c2",
        &["--publish", &port],
        &["httpd", "-f", "-p", &httpd_port, "-h", "/www"],
    )?;
    let c1 = node.inspect("c1")?;
    let c2 = node.inspect("c2")?;
    ensure!(
        c1.id == id1 && c2.id == id2,
        "podman run/inspect ids differ"
    );
    // --rootfs: no image, so nothing was pulled (the node namespace has no route
    // to any registry anyway).
    let images = node.podman(&["images", "--quiet"])?;
    ensure!(images.trim().is_empty(), "podman has images: {images}");
    ensure!(c1.ip != c2.ip, "both containers got {}", c1.ip);
    ensure!(c1.mac != c2.mac, "both containers got MAC {}", c1.mac);
    check_attached(&node, "c1", &c1)?;
    check_attached(&node, "c2", &c2)?;
    let rules = node.host.ruleset()?;
    let dnat = format!("dnat to {}:{CONTAINER_PORT}", c2.ip);
    ensure!(rules.contains(&dnat), "portmap: no {dnat:?} in\n{rules}");

    ping(&node, "c1", &c2.ip.to_string())?;
    ping(&node, "c2", &c1.ip.to_string())?;
    ping(&node, "c1", &node.gateway())?;

    // The published port from the node namespace, to the bridge address and to
    // localhost (portmap's OUTPUT DNAT and route_localnet), and from c1 through
    // the node back into the bridge (hairpin).
    let gw: Ipv4Addr = node.gateway().parse().map_err(fail)?;
    fetch_token(
        &node.host,
        SocketAddr::from((gw, HOST_PORT)),
        "/token",
        &tok,
    )?;
    fetch_token(
        &node.host,
        SocketAddr::from((Ipv4Addr::LOCALHOST, HOST_PORT)),
        "/token",
        &tok,
    )?;
    let hairpin = node.exec(
        "c1",
        &format!(
            "printf 'GET /token HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {} {HOST_PORT}",
            node.gateway()
        ),
    )?;
    ensure!(
        hairpin.contains(&tok),
        "hairpin through the published port: {hairpin:?}"
    );

    node.podman(&["rm", "--force", "--time", "0", "c1", "c2"])?;
    ensure!(
        node.containers()?.is_empty(),
        "podman still lists containers"
    );
    node.assert_gone(&[&c1, &c2])?;
    for c in [&c1, &c2] {
        ensure!(
            node.audited(&c.id)
                .contains(&("DEL".into(), "applied".into())),
            "no applied DEL for {} in wasm-cni's audit trail: {:?}",
            c.id,
            node.audited(&c.id)
        );
    }
    // Against the pristine node: only the bridge (and its address and route)
    // stays, as with the reference bridge; the firewall keeps empty chains.
    let after = node.state()?;
    let without_bridge = |v: &Value, key: &str, field: &str| -> Value {
        json!(v[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x[field] != node.bridge.as_str())
            .collect::<Vec<_>>())
    };
    for (key, field) in [("links", "ifname"), ("v4", "dev"), ("v6", "dev")] {
        ensure!(
            without_bridge(&after, key, field) == without_bridge(&before, key, field),
            "{key} changed beyond the bridge:\nbefore {}\nafter {}",
            before[key],
            after[key]
        );
    }
    let files: Vec<&String> = after["ipam"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    ensure!(
        files.iter().all(|f| *f == "lock"),
        "host-local files left behind: {files:?}"
    );
    Ok(())
}

/// A container with a static IP and MAC exits on its own: conmon's
/// `podman container cleanup` (not the test's podman) runs CNI DEL and releases
/// everything. `podman start` attaches it again with the same address; `podman
/// rm` then leaves the node exactly as the self-cleanup did.
fn static_ip_exit_restart_and_rm() -> TestResult {
    let node = Node::new("static", 2)?;
    let ip = "10.77.2.50";
    let mac = "02:42:0a:4d:02:32";
    let run_static = || -> Res<Attached> {
        let a = node.inspect("s1")?;
        ensure!(a.ip.to_string() == ip, "static IP: podman says {}", a.ip);
        ensure!(a.mac == mac, "static MAC: podman says {}", a.mac);
        check_attached(&node, "s1", &a)?;
        Ok(a)
    };
    // The container loops until the test creates /tmp/stop-s1 in its rootfs.
    let stop = node.path("rootfs/tmp/stop-s1");
    node.run(
        "s1",
        &["--ip", ip, "--mac-address", mac],
        &[
            "sh",
            "-c",
            "while [ ! -e /tmp/stop-s1 ]; do sleep 0.1; done",
        ],
    )?;
    let first = run_static()?;
    ensure!(
        node.audited(&first.id).len() == 1,
        "audit {:?}",
        node.audited(&first.id)
    );
    // The new bridge's IPv6 link-local address finishes duplicate address
    // detection while a port gives it carrier; a bridge left without ports keeps
    // it tentative. Let it settle so both snapshots below see the same kernel state.
    node.settle_ipv6()?;

    std::fs::write(&stop, b"").map_err(fail)?;
    node.podman(&["wait", "s1"])?;
    // conmon's cleanup runs asynchronously after the exit.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !node.allocations().is_empty()
        || node
            .host
            .ip_json(&["link", "show"])?
            .as_array()
            .map_or(0, Vec::len)
            > 2
    {
        ensure!(
            Instant::now() < deadline,
            "after the container exited, conmon's cleanup left {:?}\n{}",
            node.allocations(),
            node.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ensure!(
        node.audited(&first.id)
            .contains(&("DEL".into(), "applied".into())),
        "no applied DEL after the exit: {:?}\n{}",
        node.audited(&first.id),
        node.log_tail()
    );
    node.assert_gone(&[&first])?;
    node.settle_bridge_down()?;
    let exited = node.state()?;

    std::fs::remove_file(&stop).map_err(fail)?;
    node.podman(&["start", "s1"])?;
    let second = run_static()?;
    ensure!(second.id == first.id, "a different container after start");
    node.podman(&["rm", "--force", "--time", "0", "s1"])?;
    ensure!(
        node.containers()?.is_empty(),
        "podman still lists containers"
    );
    node.assert_gone(&[&second])?;
    node.settle_bridge_down()?;
    let removed = node.state()?;
    ensure!(
        removed == exited,
        "podman rm left a different node than the exit's cleanup:\n{}",
        json_diff("", &exited, &removed).join("\n")
    );
    let adds = node
        .audited(&first.id)
        .iter()
        .filter(|(c, o)| c == "ADD" && o == "applied")
        .count();
    ensure!(
        adds == 2,
        "expected two ADDs: {:?}",
        node.audited(&first.id)
    );
    Ok(())
}

/// buildah 1.28 with its CNI backend (containers/common, a libcni caller like
/// podman): `buildah run` and a `buildah build` RUN step on the wasm-cni
/// network get an address, reach the gateway, and leave nothing behind.
fn buildah_run_and_build() -> TestResult {
    let node = Node::new("bld", 3)?;
    let limits = [
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ];
    let runc = node.runc.display().to_string();
    let gw = node.gateway();
    let probe = format!("ip -4 addr show eth0 && ping -c 1 -W 2 {gw}");
    // The image: the busybox rootfs on scratch (no registry).
    let mut from = vec!["from", "--pull=never"];
    from.extend(limits);
    from.push("scratch");
    let c = node.buildah(&from)?.trim().to_string();
    let rootfs = node.path("rootfs").display().to_string();
    node.buildah(&["copy", &c, &format!("{rootfs}/"), "/"])?;
    let out = node.buildah(&[
        "run",
        "--runtime",
        &runc,
        "--network",
        NET,
        "--cap-add",
        "CAP_NET_RAW",
        &c,
        "--",
        "sh",
        "-c",
        &probe,
    ])?;
    let subnet_prefix = format!("inet 10.77.{}.", node.octet);
    ensure!(out.contains(&subnet_prefix), "buildah run: {out}");
    ensure!(out.contains(" 0% packet loss"), "buildah run: {out}");
    node.buildah(&["rm", &c])?;
    // A build whose RUN step uses the network.
    let ctx = node.path("ctx");
    std::fs::create_dir_all(&ctx).map_err(fail)?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(node.path("rootfs"))
        .arg(ctx.join("rootfs"))
        .status()
        .map_err(fail)?;
    ensure!(status.success(), "cp rootfs");
    std::fs::write(
        ctx.join("Containerfile"),
        format!("FROM scratch\nCOPY rootfs/ /\nRUN {probe}\n"),
    )
    .map_err(fail)?;
    let containerfile = ctx.join("Containerfile").display().to_string();
    let ctx_dir = ctx.display().to_string();
    let mut build = vec![
        "build",
        "--runtime",
        &runc,
        "--network",
        NET,
        "--cap-add",
        "CAP_NET_RAW",
    ];
    build.extend(limits);
    build.extend(["-t", "localhost/wcni-built", "-f", &containerfile, &ctx_dir]);
    let out = node.buildah(&build)?;
    ensure!(out.contains(&subnet_prefix), "buildah build: {out}");
    ensure!(out.contains(" 0% packet loss"), "buildah build: {out}");
    // Every DEL ran: no reservation left, no port on the bridge.
    let reserved: Vec<String> = std::fs::read_dir(node.path("ipam").join(NET))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    ensure!(reserved.is_empty(), "reservations left: {reserved:?}");
    let ports = node
        .host
        .ip_json(&["link", "show", "master", &node.bridge])?;
    ensure!(
        ports.as_array().is_none_or(Vec::is_empty),
        "ports left on the bridge: {ports}"
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cache = tempfile::tempdir().expect("tempdir");
    let _ = CACHE.set(cache.path().to_path_buf());
    let code = run(vec![
        podman_test("podman_ping_publish_and_rm", ping_publish_and_rm),
        podman_test(
            "podman_static_ip_exit_restart_and_rm",
            static_ip_exit_restart_and_rm,
        ),
        podman_test("buildah_run_and_build", buildah_run_and_build),
    ]);
    drop(cache);
    code
}
