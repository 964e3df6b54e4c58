//! `wasm-cni install` / `uninstall` / `inspect`, in throwaway directory trees
//! standing in for a node's `/opt/cni/bin`, `/opt/cni/wasm`, the cache and
//! `/etc/cni/net.d`. Nothing here touches the machine's real directories.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{fail, plain, tool, Answer, TestResult};
use serde_json::Value;

fn main() -> std::process::ExitCode {
    common::run(vec![
        plain("install_then_uninstall_leaves_nothing", round_trip),
        plain("install_twice_changes_nothing", idempotent),
        plain("install_refuses_foreign_plugins_unless_replace", replace),
        plain("bad_install_flags_change_nothing", bad_flags),
        plain("plugins_stay_runnable_while_reinstalling", atomic),
        plain(
            "extra_components_are_installed_and_removed",
            extra_components,
        ),
        plain("inspect_lists_held_addresses", inspect),
        plain("install_under_a_root_records_node_paths", under_root),
    ])
}

/// A node's directories under one temporary root.
struct Tree {
    root: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        Tree {
            root: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }
    fn dir_flags(&self) -> Vec<String> {
        [
            ("--bin-dir", "bin"),
            ("--component-dir", "wasm"),
            ("--cache-dir", "cache"),
            ("--conf-dir", "net.d"),
        ]
        .iter()
        .flat_map(|(flag, rel)| [flag.to_string(), self.path(rel).display().to_string()])
        .collect()
    }
    fn install(&self, extra: &[&str]) -> Result<Answer, libtest_mimic::Failed> {
        let mut args: Vec<String> = vec!["install".into()];
        args.extend(self.dir_flags());
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tool(&args)
    }
    fn uninstall(&self) -> Result<Answer, libtest_mimic::Failed> {
        tool(&[
            "uninstall",
            "--bin-dir",
            &self.path("bin").display().to_string(),
        ])
    }
    /// Every file and link under the root, with its content (or link target).
    fn files(&self) -> BTreeMap<String, String> {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
            let Ok(entries) = fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
                let meta = fs::symlink_metadata(&p).expect("stat");
                if meta.is_symlink() {
                    out.insert(
                        rel,
                        format!("-> {}", fs::read_link(&p).expect("link").display()),
                    );
                } else if meta.is_dir() {
                    walk(&p, root, out);
                } else {
                    let bytes = fs::read(&p).unwrap_or_default();
                    out.insert(
                        rel,
                        format!(
                            "{:o} {} bytes sha {}",
                            meta.permissions().mode() & 0o7777,
                            bytes.len(),
                            wasm_cni_digest(&bytes)
                        ),
                    );
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.root.path(), self.root.path(), &mut out);
        out
    }
}

fn wasm_cni_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

fn actions(answer: &Answer) -> Result<Vec<(String, String)>, libtest_mimic::Failed> {
    let v: Value = serde_json::from_str(&answer.stdout).map_err(fail)?;
    Ok(v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap_or("").to_string(),
                a["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect())
}

/// Exec `<bin>/<type>` with CNI_COMMAND=VERSION, as a runtime probing it would.
fn probe(bin_dir: &Path, plugin: &str) -> Result<Value, String> {
    let out = Command::new(bin_dir.join(plugin))
        .env("CNI_COMMAND", "VERSION")
        .env_remove("WASM_CNI_CONFIG")
        .output()
        .map_err(|e| format!("exec {plugin}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{plugin}: exit {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{plugin}: {e}"))
}

fn round_trip() -> TestResult {
    let tree = Tree::new();
    let out = tree
        .install(&[
            "--subnet",
            "10.244.3.0/24",
            "--subnet",
            "fd00:3::/64",
            "--ip-masq",
            "--chain",
            "portmap",
            "--chain",
            "tuning",
        ])?
        .ok()?;
    let bin = tree.path("bin");
    for t in ["bridge", "host-local", "loopback"] {
        let target = fs::read_link(bin.join(t)).map_err(fail)?;
        ensure!(
            target == Path::new("wasm-cni"),
            "{t} -> {}",
            target.display()
        );
        let v = probe(&bin, t).map_err(fail)?;
        ensure!(v["cniVersion"] == "1.1.0", "{t}: {v}");
    }
    let mode = fs::metadata(bin.join("wasm-cni"))
        .map_err(fail)?
        .permissions()
        .mode();
    ensure!(mode & 0o777 == 0o755, "binary mode {mode:o}");
    let cached = fs::read_dir(tree.path("cache")).map_err(fail)?.count();
    ensure!(cached == 3, "{cached} cache entries; stdout {}", out.stdout);

    let list: Value =
        serde_json::from_slice(&fs::read(tree.path("net.d/10-wasm-cni.conflist")).map_err(fail)?)
            .map_err(fail)?;
    ensure!(
        list["name"] == "wasm-cni" && list["cniVersion"] == "1.0.0",
        "{list}"
    );
    let plugins = list["plugins"].as_array().cloned().unwrap_or_default();
    let types: Vec<&str> = plugins.iter().filter_map(|p| p["type"].as_str()).collect();
    ensure!(types == ["bridge", "portmap", "tuning"], "{types:?}");
    ensure!(
        plugins[0]["ipMasq"] == true && plugins[0]["bridge"] == "cni0",
        "{list}"
    );
    ensure!(
        plugins[0]["ipam"]["ranges"]
            == serde_json::json!([[{"subnet": "10.244.3.0/24"}], [{"subnet": "fd00:3::/64"}]]),
        "{list}"
    );
    ensure!(plugins[1]["capabilities"]["portMappings"] == true, "{list}");

    let out = tree.uninstall()?.ok()?;
    let left = tree.files();
    ensure!(left.is_empty(), "left behind: {left:?}\n{}", out.stdout);
    let again = tree.uninstall()?.ok()?;
    ensure!(again.stdout.trim() == "nothing to do", "{}", again.stdout);
    Ok(())
}

fn idempotent() -> TestResult {
    let tree = Tree::new();
    tree.install(&["--subnet", "10.244.4.0/24"])?.ok()?;
    let before = tree.files();
    let second = tree
        .install(&["--subnet", "10.244.4.0/24", "--json"])?
        .ok()?;
    for (action, path) in actions(&second)? {
        ensure!(action == "kept", "second install did {action} {path}");
    }
    let after = tree.files();
    ensure!(
        before == after,
        "second install changed files:\n{before:#?}\n{after:#?}"
    );
    // A new subnet rewrites the conflist, and only it.
    let third = tree
        .install(&["--subnet", "10.244.5.0/24", "--json"])?
        .ok()?;
    let changed: Vec<_> = actions(&third)?
        .into_iter()
        .filter(|(a, _)| a != "kept")
        .collect();
    ensure!(
        changed.len() == 1 && changed[0].1.ends_with("10-wasm-cni.conflist"),
        "{changed:?}"
    );
    tree.uninstall()?.ok()?;
    Ok(())
}

fn replace() -> TestResult {
    let tree = Tree::new();
    let bin = tree.path("bin");
    fs::create_dir_all(&bin).map_err(fail)?;
    let reference = b"#!/bin/sh\necho reference bridge\n";
    fs::write(bin.join("bridge"), reference).map_err(fail)?;
    fs::set_permissions(bin.join("bridge"), fs::Permissions::from_mode(0o755)).map_err(fail)?;
    let before = tree.files();

    let refused = tree.install(&["--subnet", "10.244.6.0/24"])?;
    ensure!(refused.status != 0, "install replaced a foreign plugin");
    ensure!(
        refused
            .stderr
            .contains(&bin.join("bridge").display().to_string())
            && refused.stderr.contains("--replace"),
        "{}",
        refused.stderr
    );
    ensure!(tree.files() == before, "a refused install changed files");

    tree.install(&["--replace"])?.ok()?;
    ensure!(
        fs::read_link(bin.join("bridge")).is_ok(),
        "bridge not replaced"
    );
    let kept = fs::read(bin.join(".wasm-cni-backup/bridge")).map_err(fail)?;
    ensure!(kept == reference, "backup differs");
    tree.uninstall()?.ok()?;
    ensure!(
        tree.files() == before,
        "uninstall did not restore:\n{:#?}",
        tree.files()
    );
    Ok(())
}

fn bad_flags() -> TestResult {
    let cases: [(&[&str], &str); 6] = [
        (&["--subnet", "10.0.0.7/24"], "10.0.0.7/24"),
        (&["--subnet", "10.0.0.0/33"], "10.0.0.0/33"),
        (
            &["--subnet", "10.0.0.0/24", "--network", "no spaces"],
            "no spaces",
        ),
        (
            &[
                "--subnet",
                "10.0.0.0/24",
                "--bridge",
                "bridge-name-too-long",
            ],
            "bridge-name-too-long",
        ),
        (
            &["--subnet", "10.0.0.0/24", "--chain", "../../bin/sh"],
            "../../bin/sh",
        ),
        (
            &["--subnet", "10.0.0.0/24", "--cni-version", "2.0.0"],
            "2.0.0",
        ),
    ];
    for (flags, named) in cases {
        let tree = Tree::new();
        let out = tree.install(flags)?;
        ensure!(out.status != 0, "{flags:?} succeeded");
        ensure!(out.stderr.contains(named), "{flags:?}: {}", out.stderr);
        ensure!(out.stdout.is_empty(), "{flags:?} printed {}", out.stdout);
        let files = tree.files();
        ensure!(files.is_empty(), "{flags:?} created {files:?}");
    }
    Ok(())
}

/// A runtime execs plugins and reads the conflist at any moment: while install
/// runs again and again (each time rewriting the binary, whose mode we disturb,
/// and the conflist, whose subnet changes), every exec must work and every read
/// of the conflist must parse.
fn atomic() -> TestResult {
    let tree = Arc::new(Tree::new());
    tree.install(&["--subnet", "10.244.7.0/24"])?.ok()?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (tree, stop) = (Arc::clone(&tree), Arc::clone(&stop));
        std::thread::spawn(move || -> Result<u32, String> {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                probe(&tree.path("bin"), "loopback")?;
                let text = fs::read(tree.path("net.d/10-wasm-cni.conflist"))
                    .map_err(|e| format!("read conflist: {e}"))?;
                serde_json::from_slice::<Value>(&text).map_err(|e| format!("conflist: {e}"))?;
                n += 1;
            }
            Ok(n)
        })
    };
    let mut result = Ok(());
    for i in 0..6 {
        let binary = tree.path("bin/wasm-cni");
        let _ = fs::set_permissions(&binary, fs::Permissions::from_mode(0o700));
        let subnet = format!("10.244.{}.0/24", 8 + i);
        let out = tree.install(&["--subnet", &subnet, "--json"])?;
        if out.status != 0 {
            result = Err(fail(format!("install {i}: {}", out.stderr)));
            break;
        }
        let wrote = actions(&out)?
            .into_iter()
            .filter(|(a, _)| a == "wrote")
            .count();
        if wrote != 2 {
            result = Err(fail(format!("install {i} rewrote {wrote} files, not 2")));
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let probes = reader
        .join()
        .map_err(|_| fail("reader panicked"))?
        .map_err(fail)?;
    result?;
    ensure!(probes > 0, "the reader never ran");
    tree.uninstall()?.ok()?;
    Ok(())
}

fn extra_components() -> TestResult {
    let tree = Tree::new();
    let src = tree.path("src");
    fs::create_dir_all(&src).map_err(fail)?;
    let guest = Path::new(bundled::TEST_GUESTS).join("hostile.wasm");
    fs::copy(&guest, src.join("tenant-net.wasm")).map_err(fail)?;
    fs::write(src.join("README.txt"), "not a component").map_err(fail)?;
    let src_s = src.display().to_string();
    tree.install(&["--components", &src_s])?.ok()?;
    let link = fs::read_link(tree.path("bin/tenant-net")).map_err(fail)?;
    ensure!(link == Path::new("wasm-cni"), "{}", link.display());
    ensure!(
        tree.path("wasm/tenant-net.wasm").is_file(),
        "component not copied"
    );
    let cached = fs::read_dir(tree.path("cache")).map_err(fail)?.count();
    ensure!(cached == 4, "{cached} cache entries");

    // Not a component: refused before anything is written.
    let bad = tree.path("bad");
    fs::create_dir_all(&bad).map_err(fail)?;
    fs::write(bad.join("broken.wasm"), b"\0asm garbage").map_err(fail)?;
    let before = tree.files();
    let out = tree.install(&["--components", &bad.display().to_string()])?;
    ensure!(
        out.status != 0 && out.stderr.contains("broken.wasm"),
        "{}",
        out.stderr
    );
    ensure!(tree.files() == before, "a refused install changed files");

    tree.uninstall()?.ok()?;
    let left: Vec<String> = tree
        .files()
        .into_keys()
        .filter(|k| !k.starts_with("src/") && !k.starts_with("bad/"))
        .collect();
    ensure!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}

fn inspect() -> TestResult {
    let dir = tempfile::tempdir().map_err(fail)?;
    let store = dir.path().join("pods");
    fs::create_dir(&store).map_err(fail)?;
    fs::write(store.join("10.88.0.2"), "c-one\r\neth0").map_err(fail)?;
    fs::write(store.join("fd00:88::2"), "c-one\r\neth0").map_err(fail)?;
    fs::write(store.join("10.88.0.3"), "c-two\r\nnet1").map_err(fail)?;
    fs::write(store.join("last_reserved_ip.0"), "10.88.0.3").map_err(fail)?;
    let d = dir.path().display().to_string();
    let table = tool(&["inspect", "--data-dir", &d])?.ok()?;
    let lines: Vec<&str> = table.stdout.lines().collect();
    ensure!(lines.len() == 3, "{}", table.stdout);
    ensure!(
        lines[0].split_whitespace().collect::<Vec<_>>()
            == ["NETWORK", "CONTAINER", "IFNAME", "IPS", "AGE"],
        "{}",
        lines[0]
    );
    ensure!(
        lines[1].split_whitespace().take(4).collect::<Vec<_>>()
            == ["pods", "c-one", "eth0", "10.88.0.2,fd00:88::2"],
        "{}",
        lines[1]
    );
    let json = tool(&["inspect", "--data-dir", &d, "--network", "pods", "--json"])?.ok()?;
    let v: Value = serde_json::from_str(&json.stdout).map_err(fail)?;
    ensure!(v.as_array().map(Vec::len) == Some(2), "{v}");
    ensure!(
        v[1]["containerID"] == "c-two" && v[1]["ifname"] == "net1",
        "{v}"
    );
    let none = tool(&["inspect", "--data-dir", &d, "--network", "other", "--json"])?.ok()?;
    ensure!(none.stdout.trim() == "[]", "{}", none.stdout);
    Ok(())
}

/// An installer container sees the node at `/host`: `--root` makes the record
/// and the report name node paths, so uninstall works from the node as well.
fn under_root() -> TestResult {
    let tree = Tree::new();
    let root = tree.root.path().display().to_string();
    let out = tool(&[
        "install",
        "--root",
        &root,
        "--cache-dir",
        "/var/cache/wasm-cni",
        "--component-dir",
        "/opt/cni/wasm",
        "--subnet",
        "10.244.9.0/24",
        "--json",
    ])?
    .ok()?;
    for (_, path) in actions(&out)? {
        ensure!(
            path.starts_with("/opt/cni/")
                || path.starts_with("/var/cache/wasm-cni/")
                || path.starts_with("/etc/cni/net.d/"),
            "reported {path}"
        );
    }
    let record: Value = serde_json::from_slice(
        &fs::read(tree.path("opt/cni/bin/.wasm-cni-install.json")).map_err(fail)?,
    )
    .map_err(fail)?;
    ensure!(record["binary"] == "/opt/cni/bin/wasm-cni", "{record}");
    ensure!(
        record["conflist"][0] == "/etc/cni/net.d/10-wasm-cni.conflist",
        "{record}"
    );
    probe(&tree.path("opt/cni/bin"), "bridge").map_err(fail)?;
    ensure!(
        tree.path("etc/cni/net.d/10-wasm-cni.conflist").is_file(),
        "no conflist"
    );
    tool(&["uninstall", "--root", &root, "--bin-dir", "/opt/cni/bin"])?.ok()?;
    let left = tree.files();
    ensure!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}
