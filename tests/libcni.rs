//! libcni, the library runtimes embed, drives wasm-cni: a small Go program of
//! ours (`tests/libcni/driver.go`) on Debian's libcni 1.1.2 runs a conflist of
//! wasm-cni plugins (bridge + host-local, then loopback) through ADD, CHECK
//! and DEL as libcni does (result cache, prevResult, DEL in reverse), and GC
//! and STATUS as libcni 1.2 runs them. Everything runs in throwaway
//! namespaces, the caller's included.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use libtest_mimic::{Failed, Trial};
use serde_json::json;

/// Where Debian's golang-github-appc-cni-dev puts libcni.
const GOPATH: &str = "/usr/share/gocode";

/// The driver, built once per run into a temporary directory (offline, GOPATH
/// mode, as Debian packages Go libraries).
fn driver() -> Result<&'static Path, Failed> {
    static BUILT: OnceLock<Result<(tempfile::TempDir, PathBuf), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = dir.path().join("libcni-driver");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/libcni/driver.go");
        let status = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(&source)
            .env("GO111MODULE", "off")
            .env("GOPATH", GOPATH)
            .env("GOPROXY", "off")
            .env("GOCACHE", dir.path().join("gocache"))
            .output()
            .map_err(|e| format!("go build: {e}"))?;
        if !status.status.success() {
            return Err(format!(
                "go build: {}",
                String::from_utf8_lossy(&status.stderr)
            ));
        }
        Ok((dir, out))
    });
    match built {
        Ok((_, path)) => Ok(path),
        Err(e) => Err(fail(e)),
    }
}

/// Why the driver cannot be built here, if it cannot.
fn go_problem() -> Option<String> {
    if Command::new("go").arg("version").output().is_err() {
        return Some("no Go toolchain (apt install golang-go)".into());
    }
    if !Path::new(GOPATH)
        .join("src/github.com/containernetworking/cni/libcni")
        .is_dir()
    {
        return Some("no libcni sources (apt install golang-github-appc-cni-dev)".into());
    }
    None
}

/// A privileged test that also needs Go and libcni: skipped without them, a
/// failure when `WASM_CNI_REQUIRE_PRIVILEGED=1`.
fn with_go(name: &str, f: fn() -> TestResult) -> Trial {
    let trial = privileged(name, f);
    match go_problem() {
        None => trial,
        Some(why) if std::env::var("WASM_CNI_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") => {
            Trial::test(name, move || Err(format!("cannot run: {why}").into()))
        }
        Some(_) => trial.with_ignored_flag(true),
    }
}

/// One node: its namespace, a directory with the plugin links, libcni's
/// cache, the IPAM state and the settings, and the conflist.
struct Node {
    host: Netns,
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Result<Self, Failed> {
        let node = Node {
            host: Netns::new("libcni").map_err(fail)?,
            dir: tempfile::tempdir().map_err(fail)?,
        };
        let bin = node.path("bin");
        std::fs::create_dir(&bin).map_err(fail)?;
        for plugin in ["bridge", "host-local", "loopback"] {
            std::os::unix::fs::symlink(BIN, bin.join(plugin)).map_err(fail)?;
        }
        std::fs::write(
            node.path("settings.json"),
            json!({"ipamDataDirs": [node.path("data")]}).to_string(),
        )
        .map_err(fail)?;
        let conflist = json!({
            "cniVersion": "1.0.0", "name": "libcninet",
            "plugins": [
                {"type": "bridge", "bridge": "wcnilib0", "isGateway": true, "ipMasq": true,
                 "ipam": {"type": "host-local", "subnet": "10.93.0.0/24",
                          "dataDir": node.path("data")}},
                {"type": "loopback"}
            ]
        });
        std::fs::write(node.path("libcninet.conflist"), conflist.to_string()).map_err(fail)?;
        Ok(node)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Run the driver in the node's namespace.
    fn driver(&self, args: &[&str]) -> Result<Answer, Failed> {
        let ns = std::fs::File::open(self.host.path()).map_err(fail)?;
        let mut cmd = Command::new(driver()?);
        cmd.args(args)
            .env("CNI_PATH", self.path("bin"))
            .env("CNI_CACHE_DIR", self.path("cache"))
            .env("WASM_CNI_CONFIG", self.path("settings.json"))
            .envs(shared_host().env());
        kernel::netns::exec_in(&mut cmd, &ns);
        let out = cmd.output().map_err(fail)?;
        Ok(Answer {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn conflist(&self) -> String {
        self.path("libcninet.conflist").display().to_string()
    }

    /// The addresses host-local holds for the network.
    fn reserved(&self) -> Vec<String> {
        let mut ips: Vec<String> = std::fs::read_dir(self.path("data/libcninet"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        ips.sort();
        ips
    }
}

fn libcni_drives_a_wasm_cni_chain() -> TestResult {
    let node = Node::new()?;
    let first = Netns::new("lc1").map_err(fail)?;
    let second = Netns::new("lc2").map_err(fail)?;
    let list = node.conflist();
    let (p1, p2) = (first.path(), second.path());

    // ADD through libcni: bridge + host-local, then loopback with prevResult.
    let added = node.driver(&["add", &list, &p1, "ctr-1", "eth0"])?.ok()?;
    let result = added.json()?;
    ensure!(result["ips"][0]["address"] == "10.93.0.2/24", "{result}");
    ensure!(
        result["interfaces"]
            .as_array()
            .is_some_and(|i| i.iter().any(|i| i["name"] == "eth0")),
        "{result}"
    );
    ensure!(first.link_up("lo")?, "loopback did not run after bridge");
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &first.name,
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "10.93.0.1",
        ])
        .output()
        .map_err(fail)?;
    ensure!(
        ping.status.success(),
        "the container cannot reach its gateway"
    );
    // libcni cached the result for CHECK and DEL.
    let cached = std::fs::read_dir(node.path("cache/results"))
        .map_err(fail)?
        .count();
    ensure!(cached == 1, "{cached} cached results");

    node.driver(&["check", &list, &p1, "ctr-1", "eth0"])?.ok()?;
    node.driver(&["status", &list])?.ok()?;

    // A second container, then GC keeping only the first: the second's
    // address is released as stale.
    node.driver(&["add", &list, &p2, "ctr-2", "eth0"])?.ok()?;
    ensure!(
        node.reserved() == ["10.93.0.2", "10.93.0.3"],
        "{:?}",
        node.reserved()
    );
    node.driver(&["gc", &list, "ctr-1/eth0"])?.ok()?;
    ensure!(
        node.reserved() == ["10.93.0.2"],
        "after GC: {:?}",
        node.reserved()
    );

    // DEL in reverse through libcni, twice (the second finds nothing to do).
    for _ in 0..2 {
        node.driver(&["del", &list, &p1, "ctr-1", "eth0"])?.ok()?;
        settle_retired_links(&p1)?;
    }
    ensure!(node.reserved().is_empty(), "left: {:?}", node.reserved());
    let links = first.ip_json(&["link", "show"])?;
    ensure!(
        links.as_array().is_some_and(|l| l.len() == 1),
        "the container keeps {links}"
    );
    node.driver(&["del", &list, &p2, "ctr-2", "eth0"])?.ok()?;
    settle_retired_links(&p2)?;
    // Nothing of either container is left on the node but the bridge.
    let host_links: Vec<String> = node
        .host
        .ip_json(&["link", "show"])?
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ensure!(host_links == ["lo", "wcnilib0"], "{host_links:?}");
    ensure!(
        !node.host.ruleset()?.contains("ctr-"),
        "masquerade rules left: {}",
        node.host.ruleset()?
    );
    Ok(())
}

/// A wasm-cni error reaches libcni's caller as the plugin's CNI error.
fn libcni_passes_wasm_cni_errors_on() -> TestResult {
    let node = Node::new()?;
    let container = Netns::new("lce").map_err(fail)?;
    let list = node.conflist();
    // An interface name the kernel refuses: the reference's words, through
    // libcni's error type.
    let answer = node.driver(&["add", &list, &container.path(), "ctr-e", "eth0/x"])?;
    ensure!(answer.status == 1, "exit {}", answer.status);
    ensure!(
        answer
            .stderr
            .contains(r#"plugin type="bridge" failed (add)"#)
            && answer
                .stderr
                .contains("interface name contains / or : or whitespace"),
        "{}",
        answer.stderr
    );
    ensure!(node.reserved().is_empty(), "left: {:?}", node.reserved());
    Ok(())
}

fn main() -> std::process::ExitCode {
    run(vec![
        with_go(
            "libcni_drives_a_wasm_cni_chain",
            libcni_drives_a_wasm_cni_chain,
        ),
        with_go(
            "libcni_passes_wasm_cni_errors_on",
            libcni_passes_wasm_cni_errors_on,
        ),
    ])
}
