//! Shared harness for the integration tests: throwaway network namespaces (the
//! "host" side included), exec of the real `wasm-cni` binary and of the Go
//! reference plugins, and privileged-test gating.
//!
//! Every test that touches the kernel creates its own namespaces and deletes them
//! in `Drop`, also when it fails. Nothing is created in the machine's root
//! namespace: the plugin under test is exec'd inside the test's own host namespace.

#![allow(dead_code)]

pub mod node;

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

/// The `wasm-cni` binary built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_wasm-cni");
/// Where Debian's containernetworking-plugins puts the Go reference plugins.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";
/// Every CNI version a config can carry.
pub const VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

pub type TestResult = Result<(), Failed>;

/// Why privileged tests cannot run here, or None when they can.
fn privilege_problem() -> Option<String> {
    static PROBLEM: OnceLock<Option<String>> = OnceLock::new();
    PROBLEM
        .get_or_init(|| {
            if !nix::unistd::geteuid().is_root() {
                return Some("not running as root".into());
            }
            match Netns::new("probe") {
                Ok(_) => None,
                Err(e) => Some(format!("cannot create a network namespace: {e}")),
            }
        })
        .clone()
}

/// A test that needs root and network namespaces. When they are unavailable it is
/// reported as ignored, or fails if `WASM_CNI_REQUIRE_PRIVILEGED=1` (CI).
pub fn privileged(name: &str, f: fn() -> TestResult) -> Trial {
    let required = std::env::var("WASM_CNI_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1");
    match privilege_problem() {
        None => Trial::test(name, f),
        Some(why) if required => Trial::test(name, move || {
            Err(format!("privileged test required but cannot run: {why}").into())
        }),
        Some(_) => Trial::test(name, f).with_ignored_flag(true),
    }
}

/// A test that needs nothing special.
pub fn plain(name: &str, f: fn() -> TestResult) -> Trial {
    Trial::test(name, f)
}

/// Run the trials with libtest's command-line conventions.
pub fn run(trials: Vec<Trial>) -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let code = libtest_mimic::run(&args, trials).exit_code();
    // The shared host lives in a static that is never dropped: remove its
    // directories here.
    if let Some(host) = HOST.get() {
        let _ = std::fs::remove_dir_all(host.cache.path());
        let _ = std::fs::remove_dir_all(host.plugins.path());
    }
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("wcni-links-{}", std::process::id())),
    );
    code
}

/// Turn any displayable error into a test failure.
pub fn fail(msg: impl std::fmt::Display) -> Failed {
    Failed::from(msg.to_string())
}

/// `assert!` for `TestResult` functions.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::common::fail(format!($($msg)+)));
        }
    };
}

/// A named network namespace (`ip netns add`) deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A fresh namespace named `wcni-<pid>-<n>-<tag>` (tag shortened to fit).
    pub fn new(tag: &str) -> Result<Self, String> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag: String = tag.chars().take(12).collect();
        let name = format!("wcni-{}-{n}-{tag}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("ip netns add: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Netns { name })
    }

    /// The bind-mounted path runtimes pass as `CNI_NETNS`.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// `ip -j <args>` inside this namespace, parsed.
    pub fn ip_json(&self, args: &[&str]) -> Result<Value, Failed> {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-j"])
            .args(args)
            .output()
            .map_err(fail)?;
        if !out.status.success() {
            return Err(fail(format!(
                "ip {args:?} in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        serde_json::from_slice(&out.stdout).map_err(fail)
    }

    /// Run `ip <args>` in this namespace and require success.
    pub fn ip(&self, args: &[&str]) -> TestResult {
        let out = Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .map_err(fail)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(fail(format!(
                "ip {args:?} in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Whether link `name` is administratively up.
    pub fn link_up(&self, name: &str) -> Result<bool, Failed> {
        let links = self.ip_json(&["link", "show", "dev", name])?;
        Ok(links[0]["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "UP")))
    }

    /// A snapshot of links, addresses and routes (both families), with counters
    /// and timers removed, for "nothing changed" comparisons.
    pub fn snapshot(&self) -> Result<Value, Failed> {
        let mut links = self.ip_json(&["addr", "show"])?;
        if let Some(list) = links.as_array_mut() {
            for l in list {
                if let Some(obj) = l.as_object_mut() {
                    obj.remove("stats64");
                    // The kernel attaches a default qdisc the first time a link
                    // comes up and keeps it when the link goes down again; it is
                    // not state a plugin owns.
                    obj.remove("qdisc");
                    if let Some(addrs) = obj.get_mut("addr_info").and_then(|a| a.as_array_mut()) {
                        for a in addrs {
                            if let Some(a) = a.as_object_mut() {
                                a.remove("valid_life_time");
                                a.remove("preferred_life_time");
                            }
                        }
                    }
                }
            }
        }
        let v4 = self.ip_json(&["-4", "route", "show", "table", "all"])?;
        let v6 = self.ip_json(&["-6", "route", "show", "table", "all"])?;
        Ok(serde_json::json!({"links": links, "v4": v4, "v6": v6, "firewall": self.ruleset()?}))
    }

    /// The nftables ruleset (iptables-nft rules included), with rule handles.
    pub fn ruleset(&self) -> Result<String, Failed> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "list", "ruleset"])
            .output()
            .map_err(fail)?;
        if !out.status.success() {
            return Err(fail(format!(
                "nft list ruleset in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A pair of throwaway namespaces: the node side where the plugin runs, and the
/// container.
pub struct Sandbox {
    pub host: Netns,
    pub container: Netns,
}

impl Sandbox {
    pub fn new(tag: &str) -> Result<Self, Failed> {
        Ok(Sandbox {
            host: Netns::new(&format!("h{tag}")).map_err(fail)?,
            container: Netns::new(&format!("c{tag}")).map_err(fail)?,
        })
    }
}

/// Which plugin binary to exec.
#[derive(Clone, Copy, Debug)]
pub enum Plugin<'a> {
    /// `wasm-cni` run under this type name (argv[0]), as a multi-call symlink would.
    Ours(&'a str),
    /// `/usr/lib/cni/<name>`.
    Reference(&'a str),
    /// `wasm-cni` with these arguments (e.g. `plan --json`).
    Tool(&'a [&'a str]),
    /// The executable at this path (a `CNI_PATH` entry, ours or native), with
    /// the environment ours get.
    At(&'a Path),
}

/// Settings shared by the test binary: one precompiled cache for the whole run
/// (compiling is the slow step), and a plugin directory.
pub struct Host {
    pub cache: tempfile::TempDir,
    pub plugins: tempfile::TempDir,
}

impl Host {
    pub fn new() -> Self {
        Host {
            cache: tempfile::tempdir().expect("tempdir"),
            plugins: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The environment every invocation of ours gets.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "WASM_CNI_CACHE_DIR".into(),
                self.cache.path().display().to_string(),
            ),
            (
                "WASM_CNI_PLUGIN_DIR".into(),
                self.plugins.path().display().to_string(),
            ),
            ("WASM_CNI_LOG_LEVEL".into(), "warn".into()),
        ]
    }

    /// Install a test guest from `guest-plugins/testing` under `name`.
    pub fn install_test_guest(&self, guest: &str, name: &str) {
        let from = Path::new(bundled::TEST_GUESTS).join(format!("{guest}.wasm"));
        std::fs::copy(&from, self.plugins.path().join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// One shared `Host` per test binary.
static HOST: OnceLock<Host> = OnceLock::new();

pub fn shared_host() -> &'static Host {
    HOST.get_or_init(Host::new)
}

/// The CNI environment of one invocation.
#[derive(Clone, Debug)]
pub struct CniEnv {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
    pub path: String,
    pub extra: Vec<(String, String)>,
    /// Variables to leave unset entirely.
    pub unset: Vec<&'static str>,
}

impl CniEnv {
    pub fn new(command: &str, netns: &str) -> Self {
        CniEnv {
            command: command.into(),
            container_id: "wcni-test-container".into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            args: String::new(),
            path: REFERENCE_DIR.into(),
            extra: Vec::new(),
            unset: Vec::new(),
        }
    }

    pub fn ifname(mut self, ifname: &str) -> Self {
        self.ifname = ifname.into();
        self
    }

    pub fn args(mut self, args: &str) -> Self {
        self.args = args.into();
        self
    }

    pub fn container_id(mut self, id: &str) -> Self {
        self.container_id = id.into();
        self
    }

    pub fn unset(mut self, var: &'static str) -> Self {
        self.unset.push(var);
        self
    }

    pub fn set(mut self, k: &str, v: &str) -> Self {
        self.extra.push((k.into(), v.into()));
        self
    }
}

/// What an invocation printed and how it exited.
#[derive(Debug)]
pub struct Answer {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Answer {
    /// stdout as JSON.
    pub fn json(&self) -> Result<Value, Failed> {
        serde_json::from_str(&self.stdout)
            .map_err(|e| fail(format!("stdout is not JSON ({e}): {:?}", self.stdout)))
    }

    /// Require exit 0.
    pub fn ok(self) -> Result<Self, Failed> {
        if self.status == 0 {
            Ok(self)
        } else {
            Err(fail(format!(
                "exit {}; stdout {}; stderr {}",
                self.status, self.stdout, self.stderr
            )))
        }
    }

    /// Require a CNI error with `code`; returns its message.
    pub fn error(&self, code: u64) -> Result<String, Failed> {
        if self.status == 0 {
            return Err(fail(format!(
                "expected error {code}, got success: {}",
                self.stdout
            )));
        }
        let v = self.json()?;
        if v["code"].as_u64() != Some(code) {
            return Err(fail(format!(
                "expected code {code}, got {}; stderr {}",
                self.stdout, self.stderr
            )));
        }
        Ok(v["msg"].as_str().unwrap_or_default().to_string())
    }
}

/// Exec a plugin inside `host_ns` (entered with setns between fork and exec, so
/// argv[0] is kept) with the CNI environment and `stdin`.
pub fn exec(
    plugin: Plugin<'_>,
    host_ns: &Netns,
    env: &CniEnv,
    stdin: &str,
) -> Result<Answer, Failed> {
    let answer = exec_unsettled(plugin, host_ns, env, stdin)?;
    if is_ours(plugin) && env.command == "DEL" {
        settle_retired_links(&env.netns)?;
    }
    Ok(answer)
}

/// Whether `plugin` runs our binary (by name, or through a link in a
/// `CNI_PATH` directory).
fn is_ours(plugin: Plugin<'_>) -> bool {
    match plugin {
        Plugin::Ours(_) => true,
        Plugin::At(path) => std::fs::canonicalize(path).ok() == std::fs::canonicalize(BIN).ok(),
        Plugin::Reference(_) | Plugin::Tool(_) => false,
    }
}

/// [`exec`] without waiting, after our DEL, for the deletion the reaper
/// finishes after the process exits.
pub fn exec_unsettled(
    plugin: Plugin<'_>,
    host_ns: &Netns,
    env: &CniEnv,
    stdin: &str,
) -> Result<Answer, Failed> {
    let Output {
        status,
        stdout,
        stderr,
    } = spawn(plugin, host_ns, env, stdin)?
        .wait_with_output()
        .map_err(fail)?;
    Ok(Answer {
        status: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// The links of the namespace at `netns_path` that our DEL retired and its
/// reaper has not deleted yet.
pub fn retired_links(netns_path: &str) -> Result<Vec<String>, Failed> {
    let out = Command::new("nsenter")
        .arg(format!("--net={netns_path}"))
        .args(["ip", "-o", "link", "show"])
        .output()
        .map_err(fail)?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .filter(|name| name.starts_with("wcnidel"))
        .collect())
}

/// Wait (at most 10 s) until no process runs our binary: a DEL's reaper
/// deletes retired links after the plugin process exited, for runtimes (podman)
/// that exec the plugin themselves. Other tests' invocations only delay this.
pub fn settle_reapers() -> TestResult {
    let ours = std::fs::canonicalize(BIN).map_err(fail)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let running = std::fs::read_dir("/proc")
            .map_err(fail)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .any(|e| {
                let zombie = std::fs::read_to_string(e.path().join("stat"))
                    .map(|s| s.rsplit(") ").next().unwrap_or("").starts_with('Z'))
                    .unwrap_or(true);
                !zombie && std::fs::read_link(e.path().join("exe")).ok().as_ref() == Some(&ours)
            });
        if !running {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(fail(
                "a wasm-cni process (a DEL's reaper?) still runs after 10 s",
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Wait (at most 10 s) until the reaper of our DEL has deleted the links it
/// retired in the namespace at `netns_path`: DEL frees the interface name at
/// once and leaves the kernel's slow unregister to a child that runs after
/// the process exits. Nothing to wait for when the namespace is gone.
pub fn settle_retired_links(netns_path: &str) -> TestResult {
    if netns_path.is_empty() || !Path::new(netns_path).exists() {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = retired_links(netns_path)?;
        if left.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(fail(format!(
                "retired links never deleted in {netns_path}: {left:?}"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Start a plugin like [`exec`] without waiting for it (stdout and stderr piped).
pub fn spawn(
    plugin: Plugin<'_>,
    host_ns: &Netns,
    env: &CniEnv,
    stdin: &str,
) -> Result<std::process::Child, Failed> {
    spawn_under(&[], plugin, host_ns, env, stdin)
}

/// [`spawn`] with the plugin run by the program `wrapper` names (with its
/// arguments), e.g. GNU time; our binary then runs through a link named as the
/// plugin, since a wrapper cannot set argv[0].
pub fn spawn_under(
    wrapper: &[&std::ffi::OsStr],
    plugin: Plugin<'_>,
    host_ns: &Netns,
    env: &CniEnv,
    stdin: &str,
) -> Result<std::process::Child, Failed> {
    let ns = File::open(host_ns.path()).map_err(fail)?;
    let (program, args, ours): (PathBuf, Vec<&str>, bool) = match plugin {
        Plugin::Ours(_) if wrapper.is_empty() => (BIN.into(), Vec::new(), true),
        Plugin::Ours(name) => (named_link(name)?, Vec::new(), true),
        Plugin::Reference(name) => (Path::new(REFERENCE_DIR).join(name), Vec::new(), false),
        Plugin::Tool(args) => (BIN.into(), args.to_vec(), true),
        Plugin::At(path) => (path.to_path_buf(), Vec::new(), true),
    };
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&program);
            c
        }
        None => Command::new(&program),
    };
    cmd.args(args);
    if let (Plugin::Ours(name), true) = (plugin, wrapper.is_empty()) {
        cmd.arg0(name);
    }
    if ours {
        cmd.envs(shared_host().env());
    }
    for (k, v) in [
        ("CNI_COMMAND", &env.command),
        ("CNI_CONTAINERID", &env.container_id),
        ("CNI_NETNS", &env.netns),
        ("CNI_IFNAME", &env.ifname),
        ("CNI_ARGS", &env.args),
        ("CNI_PATH", &env.path),
    ] {
        if !env.unset.contains(&k) {
            cmd.env(k, v);
        }
    }
    cmd.envs(env.extra.iter().map(|(k, v)| (k, v)));
    kernel::netns::exec_in(&mut cmd, &ns);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(fail)?;
    if let Some(mut s) = child.stdin.take() {
        // A plugin may exit before reading stdin (VERSION): ignore EPIPE.
        let _ = s.write_all(stdin.as_bytes());
    }
    drop(ns);
    Ok(child)
}

/// The grant the tests give the hostile component: every intent kind, so
/// that each attack meets the rule it is meant to test, not the missing
/// grant; bridges `wcni*`, one CIDR, masquerading and IPv4 forwarding.
pub fn hostile_policy() -> Value {
    serde_json::json!({"plugins": [{
        "match": {"name": "hostile"},
        "intents": plan::IntentKind::ALL,
        "bridges": ["wcni*"],
        "cidrs": ["10.123.0.0/24"],
        "masquerade": true,
        "sysctls": ["net/ipv4/ip_forward"]
    }]})
}

/// A link to our binary named `name`, in a directory of this test process.
fn named_link(name: &str) -> Result<PathBuf, Failed> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wcni-links-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir
    });
    let link = dir.join(name);
    match std::os::unix::fs::symlink(BIN, &link) {
        Ok(()) => Ok(link),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(link),
        Err(e) => Err(fail(e)),
    }
}

/// Run `wasm-cni <args>` as a tool (no CNI environment).
pub fn tool(args: &[&str]) -> Result<Answer, Failed> {
    let out = Command::new(BIN)
        .args(args)
        .envs(shared_host().env())
        .env_remove("CNI_COMMAND")
        .output()
        .map_err(fail)?;
    Ok(Answer {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Replace every `sandbox` value (it names a per-test namespace) with a marker.
pub fn normalize_sandbox(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if k == "sandbox" {
                    *val = Value::String("<netns>".into());
                } else {
                    normalize_sandbox(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_sandbox),
        _ => {}
    }
}

/// The scratch path of a file that is not a network namespace.
pub fn not_a_netns(dir: &Path) -> PathBuf {
    let p = dir.join("not-a-netns");
    std::fs::write(&p, b"plain file").expect("write");
    p
}
