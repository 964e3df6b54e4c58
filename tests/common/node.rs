//! A full snapshot of a node (a throwaway "host" namespace and the files a
//! test watches) and measured invocations, for the red-team suite: an attack
//! is contained only if nothing in the snapshot moved, it answered with the
//! expected error, and it stayed within its time and memory.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use serde_json::{json, Value};
use sha2::Digest as _;

use super::{fail, spawn_under, Answer, CniEnv, Netns, Plugin};

/// Everything an attack could change in one namespace: links and their
/// addresses, routes and policy rules of both families in every table, the
/// `net.*` sysctls, the nftables ruleset (iptables-nft included) and the
/// legacy iptables tables.
pub fn namespace_state(ns: &Netns) -> Result<Value, Failed> {
    let mut state = ns.snapshot()?;
    state["rules4"] = ns.ip_json(&["-4", "rule", "show"])?;
    state["rules6"] = ns.ip_json(&["-6", "rule", "show"])?;
    state["sysctls"] = Value::String(in_ns(ns, &["sysctl", "-a", "-r", r"^net\."])?);
    let legacy = in_ns(ns, &["iptables-legacy-save"])?;
    // Drop the timestamp comments and packet counters.
    let legacy: Vec<&str> = legacy.lines().filter(|l| !l.starts_with('#')).collect();
    state["iptables_legacy"] = Value::String(legacy.join("\n"));
    Ok(state)
}

/// stdout of `args` run inside `ns` (stderr ignored: unreadable sysctls).
fn in_ns(ns: &Netns, args: &[&str]) -> Result<String, Failed> {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args(args)
        .output()
        .map_err(fail)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every entry under `dirs`, never following links: path, type, mode, owner,
/// and the contents of regular files and the target of links.
pub fn files_state(dirs: &[&Path]) -> Result<Value, Failed> {
    let mut entries = Vec::new();
    for dir in dirs {
        walk(dir, &mut entries)?;
    }
    Ok(Value::Array(entries))
}

fn walk(path: &Path, out: &mut Vec<Value>) -> Result<(), Failed> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fail(format!("{}: {e}", path.display()))),
    };
    let ft = meta.file_type();
    let mut entry = json!({"path": path, "mode": meta.mode(), "uid": meta.uid()});
    if ft.is_symlink() {
        entry["link"] = json!(std::fs::read_link(path).map_err(fail)?);
    } else if ft.is_file() {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(64 << 20).read_to_end(&mut bytes))
            .map_err(|e| fail(format!("{}: {e}", path.display())))?;
        entry["contents"] = match String::from_utf8(bytes) {
            Ok(text) if text.len() <= 64 << 10 => json!(text),
            Ok(text) => json!(format!(
                "sha256:{:x}",
                sha2::Sha256::digest(text.as_bytes())
            )),
            Err(e) => json!(format!("sha256:{:x}", sha2::Sha256::digest(e.as_bytes()))),
        };
    }
    out.push(entry);
    if ft.is_dir() {
        let mut children: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(fail)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        children.sort();
        for child in children {
            walk(&child, out)?;
        }
    }
    Ok(())
}

/// The node as a tenant or a component must leave it: its namespace and the
/// watched files.
pub fn node_state(host: &Netns, files: &[&Path]) -> Result<Value, Failed> {
    Ok(json!({"namespace": namespace_state(host)?, "files": files_state(files)?}))
}

/// The top-level parts of two snapshots that differ, for the failure message.
pub fn differences(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for part in ["namespace", "files"] {
        match (before[part].as_object(), after[part].as_object()) {
            (Some(b), Some(a)) => {
                for (k, v) in b {
                    let after = a.get(k).unwrap_or(&Value::Null);
                    if after != v {
                        out.push(format!("{part}.{k}: {}", first_difference(v, after)));
                    }
                }
            }
            _ if before[part] != after[part] => out.push(part.to_string()),
            _ => {}
        }
    }
    out
}

/// The first element that differs between two values (arrays element by
/// element), shortened, as "before -> after".
fn first_difference(before: &Value, after: &Value) -> String {
    let short = |v: &Value| v.to_string().chars().take(300).collect::<String>();
    if let (Some(b), Some(a)) = (before.as_array(), after.as_array()) {
        for i in 0..b.len().max(a.len()) {
            let (x, y) = (
                b.get(i).unwrap_or(&Value::Null),
                a.get(i).unwrap_or(&Value::Null),
            );
            if x != y {
                return format!("[{i}] {} -> {}", short(x), short(y));
            }
        }
    }
    format!("{} -> {}", short(before), short(after))
}

/// An invocation's answer with its wall time and the peak resident memory of
/// the process (its children not included).
pub struct Measured {
    pub answer: Answer,
    pub elapsed: Duration,
    pub peak_rss_kib: u64,
}

/// [`super::exec`], measured. GNU time runs the plugin and reports its peak
/// RSS: a child forked from this (large) test process would count the pages
/// it shared with it before exec, which are not the plugin's.
pub fn exec_measured(
    plugin: Plugin<'_>,
    host_ns: &Netns,
    env: &CniEnv,
    stdin: &str,
) -> Result<Measured, Failed> {
    let report = tempfile::NamedTempFile::new().map_err(fail)?;
    let wrapper = [
        OsStr::new("/usr/bin/time"),
        OsStr::new("-f"),
        OsStr::new("%M"),
        OsStr::new("-o"),
        report.path().as_os_str(),
    ];
    let started = Instant::now();
    let child = spawn_under(&wrapper, plugin, host_ns, env, stdin)?;
    let out = child.wait_with_output().map_err(fail)?;
    let elapsed = started.elapsed();
    // The last line is the figure; one before it may say the exit status.
    let text = std::fs::read_to_string(report.path()).map_err(fail)?;
    let peak_rss_kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| fail(format!("GNU time reported {text:?}")))?;
    Ok(Measured {
        answer: Answer {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        elapsed,
        peak_rss_kib,
    })
}
