//! deploy/: the container image recipe, the DaemonSet and its entrypoint, checked
//! as far as they can be without a cluster or an image build.
//!
//! - The manifests are parsed (every YAML document) and their invariants asserted:
//!   kinds, RBAC (`get` on nodes, nothing else), host network, tolerations for every
//!   node, the hostPath set against the directories the entrypoint hands to
//!   `wasm-cni install`, the image and command against the Containerfile.
//! - The Containerfile is read: stages, what is copied and where, that its build
//!   context is a complete cargo workspace (`cargo metadata --locked --offline` on a
//!   copy of exactly what it copies).
//! - deploy/entrypoint.sh runs for real against a fake Kubernetes API (plain http
//!   on 127.0.0.1 in this process; no packet leaves the machine), with a fake token
//!   and a throwaway directory standing in for the node (`/host`): once with a stub
//!   `wasm-cni` that records its arguments, and once with the real binary, which
//!   needs `wasm-cni install`/`uninstall`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use serde::Deserialize;
use serde_json::{json, Value};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const TOKEN: &str = "fake-service-account-token";
const NAMESPACE: &str = "kube-system";

fn deploy(file: &str) -> PathBuf {
    Path::new(ROOT).join("deploy").join(file)
}

fn read(path: &Path) -> Result<String, libtest_mimic::Failed> {
    fs::read_to_string(path).map_err(|e| fail(format!("read {}: {e}", path.display())))
}

// ---------------------------------------------------------------------------
// The manifests

/// Every non-empty YAML document of `deploy/<file>`.
fn documents(file: &str) -> Result<Vec<Value>, libtest_mimic::Failed> {
    let text = read(&deploy(file))?;
    let mut docs = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let doc = Value::deserialize(de).map_err(|e| fail(format!("{file} document {i}: {e}")))?;
        if !doc.is_null() {
            docs.push(doc);
        }
    }
    Ok(docs)
}

fn one<'a>(docs: &'a [Value], kind: &str) -> Result<&'a Value, libtest_mimic::Failed> {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    ensure!(
        found.len() == 1,
        "expected one {kind}, found {}",
        found.len()
    );
    Ok(found[0])
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn manifests_parse_with_the_expected_kinds() -> TestResult {
    let docs = documents("daemonset.yaml")?;
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    ensure!(
        kinds
            == [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "DaemonSet"
            ],
        "daemonset.yaml kinds: {kinds:?}"
    );
    let expected_api = [
        ("ServiceAccount", "v1"),
        ("ClusterRole", "rbac.authorization.k8s.io/v1"),
        ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
        ("DaemonSet", "apps/v1"),
    ];
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        let api = expected_api
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, a)| *a);
        ensure!(
            doc["apiVersion"].as_str() == api,
            "{kind}: apiVersion {}",
            doc["apiVersion"]
        );
        ensure!(
            doc["metadata"]["name"] == "wasm-cni",
            "{kind} is named {}",
            doc["metadata"]["name"]
        );
        let cluster_scoped = kind.starts_with("Cluster");
        if cluster_scoped {
            ensure!(
                doc["metadata"]["namespace"].is_null(),
                "{kind} is cluster-scoped but has a namespace"
            );
        } else {
            ensure!(
                doc["metadata"]["namespace"] == NAMESPACE,
                "{kind} is not in {NAMESPACE}"
            );
        }
    }
    let docs = documents("uninstall.yaml")?;
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    ensure!(kinds == ["DaemonSet"], "uninstall.yaml kinds: {kinds:?}");
    ensure!(
        docs[0]["apiVersion"] == "apps/v1" && docs[0]["metadata"]["namespace"] == NAMESPACE,
        "uninstall DaemonSet: {}",
        docs[0]["metadata"]
    );
    Ok(())
}

fn rbac_grants_get_on_nodes_only() -> TestResult {
    let docs = documents("daemonset.yaml")?;
    let role = one(&docs, "ClusterRole")?;
    let rules = role["rules"].as_array().cloned().unwrap_or_default();
    ensure!(rules.len() == 1, "ClusterRole rules: {rules:?}");
    let rule = &rules[0];
    ensure!(strings(&rule["apiGroups"]) == [""], "apiGroups: {rule}");
    ensure!(
        strings(&rule["resources"]) == ["nodes"],
        "resources: {rule}"
    );
    ensure!(strings(&rule["verbs"]) == ["get"], "verbs: {rule}");
    ensure!(
        rule.as_object().is_some_and(|o| o
            .keys()
            .all(|k| ["apiGroups", "resources", "verbs"].contains(&k.as_str()))),
        "unexpected keys in the rule: {rule}"
    );
    // No other role of any kind.
    ensure!(
        !docs
            .iter()
            .any(|d| d["kind"] == "Role" || d["kind"] == "RoleBinding"),
        "daemonset.yaml has a namespaced Role or RoleBinding"
    );

    let binding = one(&docs, "ClusterRoleBinding")?;
    ensure!(
        binding["roleRef"]
            == json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]}),
        "roleRef: {}",
        binding["roleRef"]
    );
    let sa = one(&docs, "ServiceAccount")?;
    ensure!(
        binding["subjects"]
            == json!([{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": sa["metadata"]["namespace"]}]),
        "subjects: {}",
        binding["subjects"]
    );
    let ds = one(&docs, "DaemonSet")?;
    let pod = &ds["spec"]["template"]["spec"];
    ensure!(
        pod["serviceAccountName"] == sa["metadata"]["name"],
        "the DaemonSet runs as {}",
        pod["serviceAccountName"]
    );
    ensure!(
        pod["automountServiceAccountToken"] != false,
        "the installer needs its token"
    );

    // The uninstaller asks the API nothing: no token at all.
    let un = documents("uninstall.yaml")?;
    let pod = &un[0]["spec"]["template"]["spec"];
    ensure!(
        pod["automountServiceAccountToken"] == false && pod["serviceAccountName"].is_null(),
        "the uninstall DaemonSet should mount no token: {pod}"
    );
    Ok(())
}

/// Kubernetes' toleration matching (`ToleratesTaint`).
fn tolerates(tolerations: &[Value], key: &str, value: &str, effect: &str) -> bool {
    tolerations.iter().any(|t| {
        let t_effect = t["effect"].as_str().unwrap_or("");
        if !t_effect.is_empty() && t_effect != effect {
            return false;
        }
        let t_key = t["key"].as_str().unwrap_or("");
        if !t_key.is_empty() && t_key != key {
            return false;
        }
        match t["operator"].as_str().unwrap_or("Equal") {
            "Exists" => true,
            "Equal" => !t_key.is_empty() && t["value"].as_str().unwrap_or("") == value,
            _ => false,
        }
    })
}

/// A resource quantity in milli-units (cpu) or bytes (memory).
fn quantity(q: &Value) -> Option<u64> {
    let s = match q {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let units: [(&str, f64); 7] = [
        ("m", 1.0),
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
    ];
    for (suffix, factor) in units {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|n| (n * factor) as u64);
        }
    }
    // A bare number: cores for cpu (kept in milli-units), bytes for memory.
    s.parse::<f64>().ok().map(|n| (n * 1000.0) as u64)
}

/// Invariants shared by the install and uninstall DaemonSets.
fn check_daemonset(ds: &Value, what: &str) -> TestResult {
    let spec = &ds["spec"];
    ensure!(
        spec["updateStrategy"]["type"] == "RollingUpdate" || spec["updateStrategy"].is_null(),
        "{what}: updateStrategy {}",
        spec["updateStrategy"]
    );
    let labels = &spec["template"]["metadata"]["labels"];
    let selector = spec["selector"]["matchLabels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    ensure!(!selector.is_empty(), "{what}: no selector");
    for (k, v) in &selector {
        ensure!(
            &labels[k] == v,
            "{what}: selector {k}={v} does not match the template"
        );
    }
    let pod = &spec["template"]["spec"];
    ensure!(pod["hostNetwork"] == true, "{what}: not hostNetwork");
    ensure!(
        pod["priorityClassName"] == "system-node-critical",
        "{what}: priorityClassName {}",
        pod["priorityClassName"]
    );
    let tolerations = pod["tolerations"].as_array().cloned().unwrap_or_default();
    for (key, value, effect) in [
        ("node.kubernetes.io/not-ready", "", "NoSchedule"),
        ("node.kubernetes.io/not-ready", "", "NoExecute"),
        ("node.kubernetes.io/unreachable", "", "NoExecute"),
        ("node.kubernetes.io/network-unavailable", "", "NoSchedule"),
        ("node.kubernetes.io/disk-pressure", "", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "", "NoSchedule"),
        ("node-role.kubernetes.io/control-plane", "", "NoSchedule"),
        ("node-role.kubernetes.io/master", "", "NoSchedule"),
        (
            "node.cloudprovider.kubernetes.io/uninitialized",
            "true",
            "NoSchedule",
        ),
        ("example.com/dedicated", "gpu", "NoExecute"),
    ] {
        ensure!(
            tolerates(&tolerations, key, value, effect),
            "{what}: does not tolerate {key}={value}:{effect}"
        );
    }
    let containers = pod["containers"].as_array().cloned().unwrap_or_default();
    ensure!(
        containers.len() == 1,
        "{what}: {} containers",
        containers.len()
    );
    ensure!(
        pod["initContainers"].is_null(),
        "{what}: unexpected initContainers"
    );
    let c = &containers[0];
    let node_name = c["env"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == "NODE_NAME"));
    ensure!(
        node_name
            .is_some_and(|e| e["valueFrom"] == json!({"fieldRef": {"fieldPath": "spec.nodeName"}})),
        "{what}: NODE_NAME is not the downward API's spec.nodeName: {node_name:?}"
    );
    for res in ["cpu", "memory"] {
        let req = quantity(&c["resources"]["requests"][res]);
        let lim = quantity(&c["resources"]["limits"][res]);
        ensure!(
            req.is_some() && lim.is_some() && req <= lim,
            "{what}: {res} request {:?} / limit {:?}",
            c["resources"]["requests"][res],
            c["resources"]["limits"][res]
        );
    }
    let sc = &c["securityContext"];
    ensure!(
        sc["privileged"] != true,
        "{what}: the installer must not be privileged"
    );
    ensure!(
        sc["allowPrivilegeEscalation"] == false,
        "{what}: allowPrivilegeEscalation"
    );
    ensure!(
        sc["runAsUser"] == 0,
        "{what}: must run as root to write the node's directories"
    );
    ensure!(
        strings(&sc["capabilities"]["drop"]) == ["ALL"],
        "{what}: capabilities are not dropped"
    );
    let added = strings(&sc["capabilities"]["add"]);
    for cap in &added {
        ensure!(
            ["CHOWN", "DAC_OVERRIDE", "FOWNER"].contains(&cap.as_str()),
            "{what}: capability {cap} is more than writing files needs"
        );
    }
    ensure!(
        pod["hostPID"] != true && pod["hostIPC"] != true,
        "{what}: hostPID/hostIPC"
    );
    Ok(())
}

fn daemonset_runs_everywhere_with_least_privilege() -> TestResult {
    let docs = documents("daemonset.yaml")?;
    let ds = one(&docs, "DaemonSet")?;
    check_daemonset(ds, "daemonset.yaml")?;
    ensure!(
        ds["spec"]["updateStrategy"]["type"] == "RollingUpdate",
        "the installer's updateStrategy must be RollingUpdate"
    );
    let un = documents("uninstall.yaml")?;
    check_daemonset(&un[0], "uninstall.yaml")
}

/// The container of the DaemonSet in `file`.
fn container(file: &str) -> Result<(Value, Value), libtest_mimic::Failed> {
    let docs = documents(file)?;
    let ds = one(&docs, "DaemonSet")?;
    let pod = ds["spec"]["template"]["spec"].clone();
    let c = pod["containers"][0].clone();
    Ok((pod, c))
}

/// `hostPath volume path -> mountPath` in the container, and the other volumes'
/// `mountPath -> volume`.
fn mounts(pod: &Value, c: &Value) -> (BTreeMap<String, String>, BTreeMap<String, Value>) {
    let volumes: BTreeMap<String, Value> = pod["volumes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| {
                    (
                        v["name"].as_str().unwrap_or_default().to_string(),
                        v.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut host = BTreeMap::new();
    let mut other = BTreeMap::new();
    for m in c["volumeMounts"].as_array().cloned().unwrap_or_default() {
        let name = m["name"].as_str().unwrap_or_default();
        let path = m["mountPath"].as_str().unwrap_or_default().to_string();
        let Some(v) = volumes.get(name) else {
            continue;
        };
        if let Some(hp) = v["hostPath"]["path"].as_str() {
            host.insert(hp.to_string(), path);
        } else {
            let mut entry = v.clone();
            entry["readOnly"] = m["readOnly"].clone();
            other.insert(path, entry);
        }
    }
    (host, other)
}

/// `NAME -> default` for every `: "${NAME:=default}"` line of the entrypoint.
fn entrypoint_defaults() -> Result<BTreeMap<String, String>, libtest_mimic::Failed> {
    let text = read(&deploy("entrypoint.sh"))?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix(": \"${") else {
            continue;
        };
        let Some((name, rest)) = rest.split_once(":=") else {
            continue;
        };
        let Some(value) = rest.strip_suffix("}\"") else {
            continue;
        };
        out.insert(name.to_string(), value.to_string());
    }
    Ok(out)
}

/// Every host directory the installer writes, relative to the node's root.
const HOST_DIRS: [&str; 5] = [
    "/opt/cni/bin",
    "/opt/cni/wasm",
    "/etc/cni/net.d",
    "/var/cache/wasm-cni",
    "/etc/wasm-cni",
];

fn host_paths_match_the_entrypoint() -> TestResult {
    let defaults = entrypoint_defaults()?;
    let host_root = defaults
        .get("WASM_CNI_HOST_ROOT")
        .ok_or_else(|| fail("the entrypoint has no WASM_CNI_HOST_ROOT default"))?;
    for file in ["daemonset.yaml", "uninstall.yaml"] {
        let (pod, c) = container(file)?;
        let (host, other) = mounts(&pod, &c);
        // The installer mounts all of them; the uninstaller all but the settings,
        // which are the administrator's and stay.
        let expected: BTreeSet<&str> = if file == "daemonset.yaml" {
            HOST_DIRS.into_iter().collect()
        } else {
            HOST_DIRS[..4].iter().copied().collect()
        };
        let got: BTreeSet<&str> = host.keys().map(String::as_str).collect();
        ensure!(got == expected, "{file}: hostPath volumes {got:?}");
        for (hp, mount) in &host {
            ensure!(
                *mount == format!("{host_root}{hp}"),
                "{file}: hostPath {hp} is mounted at {mount}, the entrypoint looks at {host_root}{hp}"
            );
        }
        for v in pod["volumes"].as_array().cloned().unwrap_or_default() {
            if !v["hostPath"].is_null() {
                ensure!(
                    v["hostPath"]["type"] == "DirectoryOrCreate",
                    "{file}: hostPath {} has type {}",
                    v["hostPath"]["path"],
                    v["hostPath"]["type"]
                );
            }
        }
        for m in c["volumeMounts"].as_array().cloned().unwrap_or_default() {
            if m["mountPath"]
                .as_str()
                .is_some_and(|p| p.starts_with(host_root.as_str()))
            {
                ensure!(
                    m["readOnly"] != true,
                    "{file}: {} is read-only",
                    m["mountPath"]
                );
            }
        }
        // The root filesystem is read-only: everything the entrypoint writes
        // outside the node's directories (mktemp, the ready file) is under /tmp,
        // which must be a writable volume; the readiness probe looks at that file.
        ensure!(
            c["securityContext"]["readOnlyRootFilesystem"] == true,
            "{file}: the root filesystem should be read-only"
        );
        let tmp = other
            .get("/tmp")
            .ok_or_else(|| fail(format!("{file}: /tmp is not a volume")))?;
        ensure!(
            !tmp["emptyDir"].is_null() && tmp["readOnly"] != true,
            "{file}: /tmp is {tmp}"
        );
        let ready = defaults
            .get("WASM_CNI_READY_FILE")
            .ok_or_else(|| fail("no WASM_CNI_READY_FILE default"))?;
        ensure!(
            ready.starts_with("/tmp/"),
            "the ready file {ready} is not under /tmp"
        );
        ensure!(
            c["readinessProbe"]["exec"]["command"] == json!(["test", "-f", ready]),
            "{file}: readinessProbe {}",
            c["readinessProbe"]
        );
    }

    // The optional ConfigMap is mounted where the entrypoint looks for settings.
    let (pod, c) = container("daemonset.yaml")?;
    let (_, other) = mounts(&pod, &c);
    let source = defaults
        .get("WASM_CNI_CONFIG_SOURCE")
        .ok_or_else(|| fail("no WASM_CNI_CONFIG_SOURCE default"))?;
    let cm = other
        .get(source)
        .ok_or_else(|| fail(format!("nothing is mounted at {source}")))?;
    ensure!(
        cm["configMap"]["name"] == "wasm-cni-config" && cm["configMap"]["optional"] == true,
        "{source}: {cm}"
    );
    // The token and CA the entrypoint reads are the service account's.
    ensure!(
        defaults.get("WASM_CNI_TOKEN_FILE").map(String::as_str)
            == Some("/var/run/secrets/kubernetes.io/serviceaccount/token")
            && defaults.get("WASM_CNI_CA_FILE").map(String::as_str)
                == Some("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"),
        "token/CA defaults: {defaults:?}"
    );

    // Every WASM_CNI_* variable the DaemonSet sets is one the entrypoint reads.
    let script = read(&deploy("entrypoint.sh"))?;
    for file in ["daemonset.yaml", "uninstall.yaml"] {
        let (_, c) = container(file)?;
        for e in c["env"].as_array().cloned().unwrap_or_default() {
            let name = e["name"].as_str().unwrap_or_default();
            ensure!(
                name == "NODE_NAME" || script.contains(&format!("${{{name}")),
                "{file}: env {name} is not read by the entrypoint"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The Containerfile

struct Stage {
    from: String,
    alias: Option<String>,
    /// (INSTRUCTION, arguments), continuation lines joined.
    instructions: Vec<(String, String)>,
}

fn containerfile() -> Result<Vec<Stage>, libtest_mimic::Failed> {
    let text = read(&deploy("Containerfile"))?;
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.starts_with('#') || trimmed.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            logical.push(std::mem::take(&mut current));
        }
    }
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (ins, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let ins = ins.to_ascii_uppercase();
        let rest = rest.trim().to_string();
        if ins == "ARG" && stages.is_empty() {
            if let Some((k, v)) = rest.split_once('=') {
                args.insert(k.to_string(), v.to_string());
            }
            continue;
        }
        if ins == "FROM" {
            let mut from = rest.clone();
            for (k, v) in &args {
                from = from.replace(&format!("${{{k}}}"), v);
            }
            let mut words = from.split_whitespace();
            let image = words.next().unwrap_or_default().to_string();
            let alias = match (words.next(), words.next()) {
                (Some(a), Some(name)) if a.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                from: image,
                alias,
                instructions: Vec::new(),
            });
            continue;
        }
        let stage = stages
            .last_mut()
            .ok_or_else(|| fail(format!("{ins} before FROM")))?;
        stage.instructions.push((ins, rest));
    }
    Ok(stages)
}

impl Stage {
    fn all(&self, ins: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|(i, _)| i == ins)
            .map(|(_, r)| r.as_str())
            .collect()
    }

    /// COPY instructions as (flags, sources, destination).
    fn copies(&self) -> Vec<(Vec<String>, Vec<String>, String)> {
        self.all("COPY")
            .into_iter()
            .map(|r| {
                let words: Vec<String> = r.split_whitespace().map(str::to_string).collect();
                let (flags, paths): (Vec<String>, Vec<String>) =
                    words.into_iter().partition(|w| w.starts_with("--"));
                let (dest, sources) = paths.split_last().map_or_else(
                    || (String::new(), Vec::new()),
                    |(d, s)| (d.clone(), s.to_vec()),
                );
                (flags, sources, dest)
            })
            .collect()
    }
}

/// The Debian release in an image reference such as `rust:1.95-bookworm` or
/// `debian:bookworm-slim`.
fn debian_release(image: &str) -> Option<&'static str> {
    ["bullseye", "bookworm", "trixie", "forky"]
        .into_iter()
        .find(|r| image.contains(r))
}

fn containerfile_builds_what_the_manifests_run() -> TestResult {
    let stages = containerfile()?;
    ensure!(stages.len() == 2, "{} stages", stages.len());
    let (builder, image) = (&stages[0], &stages[1]);
    let builder_name = builder
        .alias
        .clone()
        .ok_or_else(|| fail("the build stage has no name"))?;
    ensure!(
        builder.from.contains("/rust:") || builder.from.starts_with("rust:"),
        "builder FROM {}",
        builder.from
    );
    let runs = builder.all("RUN").join("\n");
    ensure!(
        runs.contains("rustup target add wasm32-wasip2"),
        "the builder does not add wasm32-wasip2: {runs}"
    );
    ensure!(
        runs.contains("cargo build --locked --release -p wasm-cni"),
        "the builder does not build the release binary: {runs}"
    );
    // glibc: the binary is dynamically linked, so both stages are the same Debian.
    ensure!(
        image.from.contains("debian:") && image.from.ends_with("-slim"),
        "final stage FROM {}",
        image.from
    );
    let release = debian_release(&builder.from);
    ensure!(
        release.is_some() && release == debian_release(&image.from),
        "builder {} and image {} are not the same Debian release",
        builder.from,
        image.from
    );
    ensure!(
        builder.from.contains(&format!(
            ":{}-",
            read(&Path::new(ROOT).join("Cargo.toml"))?
                .lines()
                .find_map(|l| l.strip_prefix("rust-version = "))
                .unwrap_or_default()
                .trim_matches('"')
        )),
        "the builder's Rust is not the workspace's rust-version: {}",
        builder.from
    );
    let image_runs = image.all("RUN").join("\n");
    for pkg in ["curl", "jq"] {
        ensure!(
            image_runs.contains("apt-get install") && image_runs.contains(pkg),
            "the image does not install {pkg}: {image_runs}"
        );
    }

    // What the build context must carry: the root workspace, the binary's crate and
    // its test targets, the library crates, what crates/bundled/build.rs reads (wit/,
    // guest-plugins/).
    let copied: Vec<String> = builder
        .copies()
        .into_iter()
        .flat_map(|(_, s, _)| s)
        .collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "host",
        "crates",
        "tests",
        "wit",
        "guest-plugins",
    ] {
        ensure!(
            copied.iter().any(|c| c == needed),
            "the builder does not copy {needed}: {copied:?}"
        );
    }
    let ignore = read(&deploy("Containerfile.dockerignore"))?;
    for src in &copied {
        ensure!(
            Path::new(ROOT).join(src).exists(),
            "COPY {src}: not in the repository"
        );
        ensure!(
            !ignore.lines().any(|l| l.trim() == src),
            "COPY {src} is excluded by Containerfile.dockerignore"
        );
    }

    // The final stage: the binary where the entrypoint looks for it, the
    // entrypoint where ENTRYPOINT (and the DaemonSets' command) run it.
    let defaults = entrypoint_defaults()?;
    let bin = defaults
        .get("WASM_CNI_BIN")
        .ok_or_else(|| fail("no WASM_CNI_BIN default"))?;
    let copies = image.copies();
    ensure!(
        copies.iter().any(
            |(flags, src, dest)| flags.contains(&format!("--from={builder_name}"))
                && src.len() == 1
                && dest == bin
        ),
        "the image does not copy the binary from {builder_name} to {bin}: {:?}",
        copies
    );
    let entry: Vec<String> = serde_json::from_str(
        image
            .all("ENTRYPOINT")
            .last()
            .ok_or_else(|| fail("no ENTRYPOINT"))?,
    )
    .map_err(|e| fail(format!("ENTRYPOINT is not the exec (JSON) form: {e}")))?;
    ensure!(entry.len() == 1, "ENTRYPOINT {entry:?}");
    ensure!(
        copies.iter().any(
            |(_, src, dest)| src == &["deploy/entrypoint.sh".to_string()] && *dest == entry[0]
        ),
        "deploy/entrypoint.sh is not copied to {}",
        entry[0]
    );
    ensure!(
        image_runs.contains(&format!("chmod 0755 {}", entry[0])),
        "the entrypoint is not made executable"
    );
    let mode = fs::metadata(deploy("entrypoint.sh"))
        .map_err(fail)?
        .permissions()
        .mode();
    ensure!(
        mode & 0o111 != 0,
        "deploy/entrypoint.sh is not executable ({mode:o})"
    );

    let version = read(&Path::new(ROOT).join("Cargo.toml"))?
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_string())
        .ok_or_else(|| fail("no workspace version"))?;
    for (file, mode) in [
        ("daemonset.yaml", "install"),
        ("uninstall.yaml", "uninstall"),
    ] {
        let (_, c) = container(file)?;
        ensure!(
            c["command"].is_null() || strings(&c["command"]) == entry,
            "{file}: command {} is not the image's ENTRYPOINT {entry:?}",
            c["command"]
        );
        ensure!(strings(&c["args"]) == [mode], "{file}: args {}", c["args"]);
        let img = c["image"].as_str().unwrap_or_default();
        ensure!(
            img.ends_with(&format!("/wasm-cni:{version}")),
            "{file}: image {img} is not wasm-cni:{version}"
        );
    }
    Ok(())
}

/// Copy `from` into `to`, skipping build output.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            if entry.file_name() == "target" {
                continue;
            }
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(from, to).map(|_| ())
    }
}

fn build_context_is_a_complete_workspace() -> TestResult {
    let stages = containerfile()?;
    let dir = tempfile::tempdir().map_err(fail)?;
    for (_, sources, dest) in stages[0].copies() {
        for src in sources {
            let target = if dest == "./" || dest == "." {
                dir.path().join(&src)
            } else {
                dir.path().join(&dest)
            };
            copy_tree(&Path::new(ROOT).join(&src), &target).map_err(fail)?;
        }
    }
    let host = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    for manifest in ["Cargo.toml", "guest-plugins/Cargo.toml"] {
        let out = Command::new(env!("CARGO"))
            .args([
                "metadata",
                "--locked",
                "--offline",
                "--format-version",
                "1",
                "--filter-platform",
                &host,
                "--manifest-path",
            ])
            .arg(dir.path().join(manifest))
            .output()
            .map_err(fail)?;
        ensure!(
            out.status.success(),
            "cargo metadata on the image's build context ({manifest}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The newest glibc symbol version the binary needs.
fn glibc_needed(binary: &[u8]) -> Option<(u32, u32)> {
    let needle = b"GLIBC_2.";
    let mut best = None;
    let mut i = 0;
    while i + needle.len() < binary.len() {
        if &binary[i..i + needle.len()] == needle {
            let rest = &binary[i + needle.len()..];
            let digits: String = rest
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .map(|&b| b as char)
                .collect();
            if let Ok(minor) = digits.parse::<u32>() {
                best = best.max(Some((2, minor)));
            }
            i += needle.len();
        } else {
            i += 1;
        }
    }
    best
}

fn documented_glibc_floor_holds() -> TestResult {
    let readme = read(&deploy("README.md"))?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let floor = readme
        .split("glibc ")
        .skip(1)
        .find_map(|s| {
            let (v, rest) = s.split_once(' ')?;
            rest.starts_with("or newer").then_some(v)?;
            let (major, minor) = v.split_once('.')?;
            Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
        })
        .ok_or_else(|| fail("deploy/README.md states no \"glibc X.Y or newer\""))?;
    let binary = fs::read(BIN).map_err(fail)?;
    let needed = glibc_needed(&binary).ok_or_else(|| fail("no GLIBC_ version in the binary"))?;
    ensure!(
        needed <= floor,
        "the binary needs glibc {}.{}, deploy/README.md says {}.{} or newer",
        needed.0,
        needed.1,
        floor.0,
        floor.1
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// A fake Kubernetes API

#[derive(Clone, Debug)]
struct Request {
    path: String,
    headers: BTreeMap<String, String>,
}

/// Plain http on 127.0.0.1: `GET /api/v1/nodes/<name>` answers the node's
/// next object (the last one repeats), 401 without the right bearer token, 404 for
/// an unknown node.
struct FakeApi {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<JoinHandle<()>>,
}

fn node(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec,
           "status": {"conditions": [{"type": "Ready", "status": "False"}]}})
}

fn status(code: u16, reason: &str, message: &str) -> String {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
           "reason": reason, "code": code})
    .to_string()
}

impl FakeApi {
    fn start(nodes: Vec<(&str, Vec<Value>)>) -> Result<Self, libtest_mimic::Failed> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let nodes: BTreeMap<String, Vec<Value>> =
            nodes.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
        let (reqs, halt) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut served: BTreeMap<String, usize> = BTreeMap::new();
            for stream in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = Self::serve(stream, &nodes, &mut served, &reqs);
            }
        });
        Ok(FakeApi {
            url: format!("http://{addr}"),
            requests,
            stop,
            addr,
            thread: Some(thread),
        })
    }

    fn serve(
        mut stream: TcpStream,
        nodes: &BTreeMap<String, Vec<Value>>,
        served: &mut BTreeMap<String, usize>,
        requests: &Mutex<Vec<Request>>,
    ) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
            // Not HTTP (a TLS ClientHello, say): hang up at once.
            if !buf.starts_with(&b"GET "[..buf.len().min(4)]) {
                return stream.shutdown(Shutdown::Both);
            }
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        let mut lines = text.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_default()
            .to_string();
        let headers: BTreeMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let authorized = headers.get("authorization") == Some(&format!("Bearer {TOKEN}"));
        requests.lock().expect("lock").push(Request {
            path: path.clone(),
            headers,
        });
        let (code, body) = if !authorized {
            (401, status(401, "Unauthorized", "Unauthorized"))
        } else if let Some(name) = path.strip_prefix("/api/v1/nodes/") {
            match nodes.get(name) {
                Some(answers) if !answers.is_empty() => {
                    let n = served.entry(name.to_string()).or_default();
                    let answer = &answers[(*n).min(answers.len() - 1)];
                    *n += 1;
                    match answer {
                        Value::String(raw) => (200, raw.clone()),
                        v => (200, v.to_string()),
                    }
                }
                _ => (
                    404,
                    status(404, "NotFound", &format!("nodes \"{name}\" not found")),
                ),
            }
        } else {
            (
                404,
                status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            )
        };
        let reason = match code {
            200 => "OK",
            401 => "Unauthorized",
            _ => "Not Found",
        };
        write!(
            stream,
            "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Running the entrypoint

/// A throwaway pod: a directory standing in for the node (`/host`), a token, a
/// CA, a stub or real `wasm-cni`, and the entrypoint's environment.
struct Pod {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// A `wasm-cni` stand-in that records each call (arguments, and the settings
/// file it was given) and succeeds; `policy check` fails on a file containing
/// "bad".
const STUB: &str = r#"#!/bin/sh
{
  printf 'CALL'
  for a in "$@"; do printf '\t%s' "$a"; done
  printf '\tENV:WASM_CNI_CONFIG=%s\n' "${WASM_CNI_CONFIG:-}"
} >>"$(dirname "$0")/calls.log"
if [ "$1" = policy ] && grep -q bad "$3"; then echo "bad policy" >&2; exit 1; fi
exit 0
"#;

enum Ended {
    /// Exited by itself (status, stderr).
    Exited(i32, String),
    /// Became ready and was still running.
    Ready(Child),
}

impl Pod {
    fn new(api: &FakeApi, node: &str, real_binary: bool) -> Result<Self, libtest_mimic::Failed> {
        let dir = tempfile::tempdir().map_err(fail)?;
        let p = dir.path();
        for sub in [
            "host",
            "secrets",
            "tmp",
            "config-source",
            "components",
            "stub",
        ] {
            fs::create_dir_all(p.join(sub)).map_err(fail)?;
        }
        fs::write(p.join("secrets/token"), TOKEN).map_err(fail)?;
        fs::write(p.join("secrets/ca.crt"), "not a certificate (plain http)\n").map_err(fail)?;
        // The settings the binary itself reads: empty, so that the machine's own
        // /etc/wasm-cni never leaks into the test.
        fs::write(p.join("settings.json"), "{}").map_err(fail)?;
        let bin = if real_binary {
            BIN.to_string()
        } else {
            let stub = p.join("stub/wasm-cni");
            fs::write(&stub, STUB).map_err(fail)?;
            fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).map_err(fail)?;
            stub.display().to_string()
        };
        let s = |sub: &str| p.join(sub).display().to_string();
        let env = vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("TMPDIR".into(), s("tmp")),
            ("NODE_NAME".into(), node.into()),
            ("WASM_CNI_BIN".into(), bin),
            ("WASM_CNI_HOST_ROOT".into(), s("host")),
            ("WASM_CNI_API_SERVER".into(), api.url.clone()),
            ("WASM_CNI_TOKEN_FILE".into(), s("secrets/token")),
            ("WASM_CNI_CA_FILE".into(), s("secrets/ca.crt")),
            ("WASM_CNI_CIDR_WAIT".into(), "0".into()),
            ("WASM_CNI_CONFIG_SOURCE".into(), s("config-source")),
            ("WASM_CNI_COMPONENTS".into(), s("components")),
            ("WASM_CNI_READY_FILE".into(), s("tmp/ready")),
            ("WASM_CNI_CONFIG".into(), s("settings.json")),
        ];
        Ok(Pod { dir, env })
    }

    fn set(&mut self, k: &str, v: &str) {
        self.env.retain(|(name, _)| name != k);
        self.env.push((k.into(), v.into()));
    }

    fn unset(&mut self, k: &str) {
        self.env.retain(|(name, _)| name != k);
    }

    fn host(&self) -> PathBuf {
        self.dir.path().join("host")
    }

    fn ready_file(&self) -> PathBuf {
        self.dir.path().join("tmp/ready")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("stderr")
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// The stub's calls: each the argument list, and the WASM_CNI_CONFIG it saw.
    fn calls(&self) -> Vec<(Vec<String>, String)> {
        fs::read_to_string(self.dir.path().join("stub/calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let mut fields: Vec<String> = l.split('\t').skip(1).map(str::to_string).collect();
                let env = fields
                    .pop()
                    .and_then(|e| e.strip_prefix("ENV:WASM_CNI_CONFIG=").map(str::to_string))
                    .unwrap_or_default();
                (fields, env)
            })
            .collect()
    }

    /// Run the entrypoint (`args`) until it exits or writes its ready file.
    fn run(&self, args: &[&str], timeout: Duration) -> Result<Ended, libtest_mimic::Failed> {
        let _ = fs::remove_file(self.ready_file());
        let err = fs::File::create(self.stderr_path()).map_err(fail)?;
        let mut child = Command::new(deploy("entrypoint.sh"))
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(fail)?;
        let started = Instant::now();
        loop {
            if let Some(st) = child.try_wait().map_err(fail)? {
                return Ok(Ended::Exited(st.code().unwrap_or(-1), self.stderr()));
            }
            if self.ready_file().exists() {
                return Ok(Ended::Ready(child));
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "entrypoint neither ready nor exited after {timeout:?}; stderr: {}",
                    self.stderr()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run until ready, then SIGTERM it: it must exit 0 promptly.
    fn run_ready_then_term(&self, args: &[&str], timeout: Duration) -> TestResult {
        match self.run(args, timeout)? {
            Ended::Exited(code, stderr) => Err(fail(format!(
                "entrypoint exited {code} instead of staying up: {stderr}"
            ))),
            Ended::Ready(child) => self.terminate(child),
        }
    }

    fn terminate(&self, mut child: Child) -> TestResult {
        // Still up a moment later: it sleeps rather than exiting.
        std::thread::sleep(Duration::from_millis(200));
        ensure!(
            child.try_wait().map_err(fail)?.is_none(),
            "entrypoint exited after becoming ready: {}",
            self.stderr()
        );
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).map_err(fail)?;
        let started = Instant::now();
        loop {
            if let Some(st) = child.try_wait().map_err(fail)? {
                ensure!(
                    st.code() == Some(0),
                    "SIGTERM: exit {st}; stderr: {}",
                    self.stderr()
                );
                ensure!(
                    !self.ready_file().exists(),
                    "the ready file outlived the entrypoint"
                );
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(5) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail("entrypoint still running 5 s after SIGTERM"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run and require a failure whose message contains every one of `needles`.
    fn run_fails(&self, args: &[&str], needles: &[&str]) -> Result<String, libtest_mimic::Failed> {
        match self.run(args, Duration::from_secs(60))? {
            Ended::Ready(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(fail(format!(
                    "entrypoint succeeded; expected a failure naming {needles:?}"
                )))
            }
            Ended::Exited(code, stderr) => {
                ensure!(code != 0, "exit 0; stderr: {stderr}");
                for n in needles {
                    ensure!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
                }
                Ok(stderr)
            }
        }
    }
}

/// The install call the stub saw: exactly one, and no uninstall.
fn install_call(pod: &Pod) -> Result<Vec<String>, libtest_mimic::Failed> {
    let calls = pod.calls();
    let installs: Vec<&Vec<String>> = calls
        .iter()
        .map(|(args, _)| args)
        .filter(|a| a.first().map(String::as_str) == Some("install"))
        .collect();
    ensure!(installs.len() == 1, "install calls: {calls:?}");
    ensure!(
        !calls
            .iter()
            .any(|(a, _)| a.first().map(String::as_str) == Some("uninstall")),
        "uninstall was called: {calls:?}"
    );
    Ok(installs[0].clone())
}

/// The values of every `flag` in `args`, in order.
fn flag_values(args: &[String], flag: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].clone())
        .collect()
}

fn dual_stack_node() -> Value {
    node(
        "node-a",
        json!({"podCIDR": "10.244.3.0/24", "podCIDRs": ["10.244.3.0/24", "fd00:10:244:3::/64"]}),
    )
}

fn entrypoint_installs_with_the_nodes_cidrs() -> TestResult {
    let api = FakeApi::start(vec![("node-a", vec![dual_stack_node()])])?;
    let pod = Pod::new(&api, "node-a", false)?;
    pod.run_ready_then_term(&[], Duration::from_secs(30))?;
    let args = install_call(&pod)?;
    ensure!(
        flag_values(&args, "--subnet") == ["10.244.3.0/24", "fd00:10:244:3::/64"],
        "subnets: {args:?}"
    );
    // Every directory handed to install is a node path the DaemonSet mounts as a
    // hostPath, found under --root (the stand-in for /host).
    let host = pod.host().display().to_string();
    ensure!(flag_values(&args, "--root") == [host], "--root: {args:?}");
    let (ds_pod, c) = container("daemonset.yaml")?;
    let (mounted, _) = mounts(&ds_pod, &c);
    for (flag, path) in [
        ("--bin-dir", "/opt/cni/bin"),
        ("--component-dir", "/opt/cni/wasm"),
        ("--cache-dir", "/var/cache/wasm-cni"),
        ("--conf-dir", "/etc/cni/net.d"),
    ] {
        ensure!(flag_values(&args, flag) == [path], "{flag}: {args:?}");
        ensure!(mounted.contains_key(path), "{path} is not a hostPath");
    }
    ensure!(
        !args.contains(&"--components".to_string()),
        "--components without components: {args:?}"
    );

    // The API saw one GET of this node, with the token, asking for JSON.
    let reqs = api.requests();
    ensure!(reqs.len() == 1, "{} API requests", reqs.len());
    ensure!(
        reqs[0].path == "/api/v1/nodes/node-a",
        "path {}",
        reqs[0].path
    );
    ensure!(
        reqs[0].headers.get("authorization") == Some(&format!("Bearer {TOKEN}")),
        "headers {:?}",
        reqs[0].headers
    );
    ensure!(
        reqs[0].headers.get("accept").map(String::as_str) == Some("application/json"),
        "headers {:?}",
        reqs[0].headers
    );
    // The token never appears in what the entrypoint prints.
    ensure!(!pod.stderr().contains(TOKEN), "the token was logged");
    Ok(())
}

fn entrypoint_falls_back_to_pod_cidr() -> TestResult {
    let api = FakeApi::start(vec![(
        "old-node",
        vec![node("old-node", json!({"podCIDR": "10.85.0.0/24"}))],
    )])?;
    let pod = Pod::new(&api, "old-node", false)?;
    pod.run_ready_then_term(&[], Duration::from_secs(30))?;
    let args = install_call(&pod)?;
    ensure!(
        flag_values(&args, "--subnet") == ["10.85.0.0/24"],
        "{args:?}"
    );

    // IPv6 only.
    let api = FakeApi::start(vec![(
        "v6-node",
        vec![node("v6-node", json!({"podCIDRs": ["fd00:85::/64"]}))],
    )])?;
    let pod = Pod::new(&api, "v6-node", false)?;
    pod.run_ready_then_term(&[], Duration::from_secs(30))?;
    let args = install_call(&pod)?;
    ensure!(
        flag_values(&args, "--subnet") == ["fd00:85::/64"],
        "{args:?}"
    );
    Ok(())
}

fn entrypoint_fails_loudly_without_a_pod_cidr() -> TestResult {
    let api = FakeApi::start(vec![
        ("bare", vec![node("bare", json!({"providerID": "x"}))]),
        (
            "empty",
            vec![node("empty", json!({"podCIDR": "", "podCIDRs": []}))],
        ),
    ])?;
    for name in ["bare", "empty"] {
        let pod = Pod::new(&api, name, false)?;
        pod.run_fails(
            &[],
            &[
                &format!("node {name} has no pod CIDR"),
                "--allocate-node-cidrs",
            ],
        )?;
        ensure!(
            pod.calls().iter().all(|(a, _)| a[0] != "install"),
            "install ran without a CIDR: {:?}",
            pod.calls()
        );
        ensure!(!pod.ready_file().exists(), "ready without a CIDR");
    }
    Ok(())
}

fn entrypoint_waits_for_the_cidr_to_be_assigned() -> TestResult {
    // A node that has just registered: no CIDR on the first two reads.
    let api = FakeApi::start(vec![(
        "new-node",
        vec![
            node("new-node", json!({})),
            node("new-node", json!({})),
            node("new-node", json!({"podCIDRs": ["10.244.9.0/24"]})),
        ],
    )])?;
    let mut pod = Pod::new(&api, "new-node", false)?;
    pod.set("WASM_CNI_CIDR_WAIT", "30");
    pod.run_ready_then_term(&[], Duration::from_secs(30))?;
    ensure!(
        flag_values(&install_call(&pod)?, "--subnet") == ["10.244.9.0/24"],
        "{:?}",
        pod.calls()
    );
    ensure!(
        api.requests().len() == 3,
        "{} requests",
        api.requests().len()
    );
    Ok(())
}

fn entrypoint_reports_api_errors() -> TestResult {
    let api = FakeApi::start(vec![
        ("node-a", vec![dual_stack_node()]),
        (
            "garbled",
            vec![Value::String("<html>proxy error</html>".into())],
        ),
        (
            "not-a-node",
            vec![json!({"kind": "Status", "status": "Success"})],
        ),
    ])?;
    // Unknown node.
    let pod = Pod::new(&api, "ghost", false)?;
    pod.run_fails(&[], &["node ghost not found", "HTTP 404"])?;
    // Wrong token: names the RBAC the pod needs.
    let pod = Pod::new(&api, "node-a", false)?;
    fs::write(pod.dir.path().join("secrets/token"), "wrong").map_err(fail)?;
    pod.run_fails(&[], &["HTTP 401", "'get' on nodes"])?;
    // No token at all.
    let mut pod = Pod::new(&api, "node-a", false)?;
    pod.set("WASM_CNI_TOKEN_FILE", "/nonexistent/token");
    pod.run_fails(
        &[],
        &["cannot read the service-account token /nonexistent/token"],
    )?;
    // No NODE_NAME.
    let mut pod = Pod::new(&api, "node-a", false)?;
    pod.unset("NODE_NAME");
    pod.run_fails(&[], &["NODE_NAME is not set", "spec.nodeName"])?;
    // Answers that are not a Node.
    let pod = Pod::new(&api, "garbled", false)?;
    pod.run_fails(&[], &["cannot read node garbled", "proxy error"])?;
    let pod = Pod::new(&api, "not-a-node", false)?;
    pod.run_fails(&[], &["cannot read node not-a-node", "not a Node object"])?;
    // Nothing was installed by any of them.
    Ok(())
}

fn entrypoint_default_api_url_is_https_with_the_ca() -> TestResult {
    let api = FakeApi::start(vec![("node-a", vec![dual_stack_node()])])?;
    let port = api.addr.port().to_string();
    // Without WASM_CNI_API_SERVER: the in-cluster https URL from the service
    // environment, verified with the CA. The fake CA is no certificate and the
    // fake API speaks plain http, so curl fails; the message names the URL.
    let mut pod = Pod::new(&api, "node-a", false)?;
    pod.unset("WASM_CNI_API_SERVER");
    pod.set("KUBERNETES_SERVICE_HOST", "127.0.0.1");
    pod.set("KUBERNETES_SERVICE_PORT", &port);
    pod.run_fails(
        &[],
        &[&format!(
            "cannot reach the Kubernetes API (GET https://127.0.0.1:{port}/api/v1/nodes/node-a)"
        )],
    )?;
    // An https API without a CA to verify it: refused before connecting.
    pod.set("WASM_CNI_CA_FILE", "/nonexistent/ca.crt");
    pod.run_fails(
        &[],
        &["cannot read the API server's CA /nonexistent/ca.crt"],
    )?;
    // Outside a pod, with nothing to go on.
    pod.unset("KUBERNETES_SERVICE_HOST");
    pod.run_fails(&[], &["KUBERNETES_SERVICE_HOST is not set"])?;
    Ok(())
}

fn entrypoint_passes_the_settings_as_flags() -> TestResult {
    let api = FakeApi::start(vec![("node-a", vec![dual_stack_node()])])?;
    let mut pod = Pod::new(&api, "node-a", false)?;
    pod.set("WASM_CNI_NETWORK", "podnet");
    pod.set("WASM_CNI_BRIDGE", "br-pods");
    pod.set("WASM_CNI_IP_MASQ", "true");
    pod.set("WASM_CNI_MTU", "1450");
    pod.set("WASM_CNI_CONFLIST_NAME", "05-podnet.conflist");
    pod.set("WASM_CNI_CHAIN", "portmap, bandwidth");
    pod.set("WASM_CNI_REPLACE", "true");
    fs::write(pod.dir.path().join("components/extra.wasm"), b"\0asm").map_err(fail)?;
    pod.run_ready_then_term(&[], Duration::from_secs(30))?;
    let args = install_call(&pod)?;
    let host = pod.host().display().to_string();
    let components = pod.dir.path().join("components").display().to_string();
    let expected: Vec<String> = [
        "install",
        "--root",
        &host,
        "--bin-dir",
        "/opt/cni/bin",
        "--component-dir",
        "/opt/cni/wasm",
        "--cache-dir",
        "/var/cache/wasm-cni",
        "--conf-dir",
        "/etc/cni/net.d",
        "--subnet",
        "10.244.3.0/24",
        "--subnet",
        "fd00:10:244:3::/64",
        "--network",
        "podnet",
        "--bridge",
        "br-pods",
        "--ip-masq",
        "--mtu",
        "1450",
        "--conflist-name",
        "05-podnet.conflist",
        "--chain",
        "portmap",
        "--chain",
        "bandwidth",
        "--replace",
        "--components",
        &components,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ensure!(args == expected, "install {args:?}\nexpected {expected:?}");

    // false and unset add nothing; a chain entry that is not a type is refused.
    let mut pod = Pod::new(&api, "node-a", false)?;
    pod.set("WASM_CNI_IP_MASQ", "false");
    pod.set("WASM_CNI_REPLACE", "");
    pod.run_ready_then_term(&[], Duration::from_secs(30))?;
    let args = install_call(&pod)?;
    ensure!(
        !args.contains(&"--ip-masq".to_string()) && !args.contains(&"--replace".to_string()),
        "{args:?}"
    );
    pod.set("WASM_CNI_CHAIN", "portmap;rm");
    pod.run_fails(&[], &["WASM_CNI_CHAIN: 'portmap;rm' is not a plugin type"])?;
    Ok(())
}

fn entrypoint_installs_settings_from_the_configmap() -> TestResult {
    let api = FakeApi::start(vec![("node-a", vec![dual_stack_node()])])?;
    let pod = Pod::new(&api, "node-a", false)?;
    let src = pod.dir.path().join("config-source");
    let config = r#"{"logLevel": "info"}"#;
    let policy = r#"{"plugins": []}"#;
    fs::write(src.join("config.json"), config).map_err(fail)?;
    fs::write(src.join("policy.json"), policy).map_err(fail)?;
    pod.run_ready_then_term(&[], Duration::from_secs(30))?;
    let settings = pod.host().join("etc/wasm-cni");
    ensure!(
        fs::read_to_string(settings.join("config.json"))
            .ok()
            .as_deref()
            == Some(config),
        "config.json not installed"
    );
    ensure!(
        fs::read_to_string(settings.join("policy.json"))
            .ok()
            .as_deref()
            == Some(policy),
        "policy.json not installed"
    );
    let calls = pod.calls();
    // Validated first (settings through WASM_CNI_CONFIG, policy with policy
    // check), installed before `install` runs.
    let order: Vec<String> = calls.iter().map(|(a, _)| a[0].clone()).collect();
    ensure!(
        order == ["version", "policy", "install"],
        "calls: {calls:?}"
    );
    ensure!(
        calls[0].1 == src.join("config.json").display().to_string(),
        "config.json was validated with WASM_CNI_CONFIG={}",
        calls[0].1
    );
    ensure!(
        calls[1].0
            == [
                "policy",
                "check",
                &src.join("policy.json").display().to_string()
            ],
        "{:?}",
        calls[1]
    );

    // A bad policy (per the stub) stops everything: nothing installed.
    let pod = Pod::new(&api, "node-a", false)?;
    let src = pod.dir.path().join("config-source");
    fs::write(src.join("policy.json"), "bad").map_err(fail)?;
    pod.run_fails(
        &[],
        &[
            "policy.json (ConfigMap wasm-cni-config) is not a valid policy",
            "bad policy",
        ],
    )?;
    ensure!(
        !pod.host().join("etc/wasm-cni").exists(),
        "settings were written"
    );
    ensure!(
        pod.calls().iter().all(|(a, _)| a[0] != "install"),
        "install ran"
    );
    Ok(())
}

fn entrypoint_validates_settings_with_the_real_binary() -> TestResult {
    // `wasm-cni policy check` and the settings loader, for real: both files are
    // refused before anything is written, so this needs no `install`.
    let api = FakeApi::start(vec![("node-a", vec![dual_stack_node()])])?;
    let pod = Pod::new(&api, "node-a", true)?;
    let src = pod.dir.path().join("config-source");
    fs::write(
        src.join("policy.json"),
        r#"{"plugins": [{"intents": ["fly"]}]}"#,
    )
    .map_err(fail)?;
    pod.run_fails(&[], &["is not a valid policy"])?;
    fs::remove_file(src.join("policy.json")).map_err(fail)?;
    fs::write(src.join("config.json"), r#"{"noSuchKey": 1}"#).map_err(fail)?;
    pod.run_fails(&[], &["is not valid wasm-cni settings", "noSuchKey"])?;
    ensure!(
        fs::read_dir(pod.host()).map_err(fail)?.next().is_none(),
        "something was written to the node"
    );
    Ok(())
}

fn entrypoint_uninstall_mode() -> TestResult {
    let api = FakeApi::start(vec![])?;
    let mut pod = Pod::new(&api, "node-a", false)?;
    // The uninstaller has no token and asks the API nothing.
    pod.unset("WASM_CNI_TOKEN_FILE");
    pod.run_ready_then_term(&["uninstall"], Duration::from_secs(30))?;
    let host = pod.host().display().to_string();
    let calls = pod.calls();
    ensure!(calls.len() == 1, "calls: {calls:?}");
    // The rest (components, cache, conflist) is in the install record in the bin
    // directory, as node paths found under --root.
    let expected = ["uninstall", "--root", &host, "--bin-dir", "/opt/cni/bin"];
    ensure!(calls[0].0 == expected, "{:?}", calls[0].0);
    ensure!(api.requests().is_empty(), "the uninstaller asked the API");
    pod.run_fails(&["frobnicate"], &["usage:"])?;
    Ok(())
}

/// Every host-local subnet in a conflist, one entry per range set.
fn range_sets(conflist: &Value) -> Vec<Vec<String>> {
    let mut sets = Vec::new();
    for p in conflist["plugins"].as_array().cloned().unwrap_or_default() {
        let ipam = &p["ipam"];
        if ipam["type"] != "host-local" {
            continue;
        }
        if let Some(s) = ipam["subnet"].as_str() {
            sets.push(vec![s.to_string()]);
        }
        for set in ipam["ranges"].as_array().cloned().unwrap_or_default() {
            sets.push(
                set.as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|r| r["subnet"].as_str().map(str::to_string))
                    .collect(),
            );
        }
    }
    sets
}

fn entrypoint_real_install_writes_the_nodes_conflist() -> TestResult {
    // Needs `wasm-cni install` and `uninstall` (the interface in deploy/README.md).
    let api = FakeApi::start(vec![("node-a", vec![dual_stack_node()])])?;
    let pod = Pod::new(&api, "node-a", true)?;
    let host = pod.host();
    let conflist_path = host.join("etc/cni/net.d/10-wasm-cni.conflist");
    let mut first = None;
    // Twice: a rolling update re-runs the installer over its own install.
    for round in 0..2 {
        pod.run_ready_then_term(&[], Duration::from_secs(180))?;
        let text = read(&conflist_path)?;
        let conflist: Value = serde_json::from_str(&text).map_err(fail)?;
        let sets = range_sets(&conflist);
        ensure!(
            sets == [
                vec!["10.244.3.0/24".to_string()],
                vec!["fd00:10:244:3::/64".to_string()]
            ],
            "host-local range sets {sets:?} in {conflist}"
        );
        let plugins = conflist["plugins"].as_array().cloned().unwrap_or_default();
        ensure!(
            plugins.first().map(|p| p["type"] == "bridge") == Some(true),
            "first plugin: {conflist}"
        );
        let bin = host.join("opt/cni/bin/wasm-cni");
        let meta = fs::metadata(&bin).map_err(|e| fail(format!("{}: {e}", bin.display())))?;
        ensure!(
            meta.permissions().mode() & 0o111 != 0,
            "wasm-cni is not executable"
        );
        for t in ["bridge", "host-local", "loopback"] {
            let entry = host.join("opt/cni/bin").join(t);
            let target =
                fs::canonicalize(&entry).map_err(|e| fail(format!("{}: {e}", entry.display())))?;
            ensure!(
                target == fs::canonicalize(&bin).map_err(fail)?,
                "{t} -> {}",
                target.display()
            );
        }
        let cached = fs::read_dir(host.join("var/cache/wasm-cni"))
            .map_err(fail)?
            .count();
        ensure!(cached > 0, "nothing precompiled");
        // SIGTERM left everything in place.
        ensure!(
            conflist_path.exists() && bin.exists(),
            "SIGTERM uninstalled"
        );
        match &first {
            None => first = Some(text),
            Some(t) => ensure!(*t == text, "round {round}: the conflist changed"),
        }
    }

    // The uninstall DaemonSet's run takes it all away again.
    pod.run_ready_then_term(&["uninstall"], Duration::from_secs(60))?;
    ensure!(!conflist_path.exists(), "the conflist is still there");
    ensure!(
        !host.join("opt/cni/bin/wasm-cni").exists() && !host.join("opt/cni/bin/bridge").exists(),
        "the binaries are still there"
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    run(vec![
        plain(
            "deploy_manifests_parse",
            manifests_parse_with_the_expected_kinds,
        ),
        plain("deploy_rbac_get_nodes_only", rbac_grants_get_on_nodes_only),
        plain(
            "deploy_daemonset_every_node_least_privilege",
            daemonset_runs_everywhere_with_least_privilege,
        ),
        plain(
            "deploy_host_paths_match_entrypoint",
            host_paths_match_the_entrypoint,
        ),
        plain(
            "deploy_containerfile_matches_manifests",
            containerfile_builds_what_the_manifests_run,
        ),
        plain(
            "deploy_build_context_is_complete",
            build_context_is_a_complete_workspace,
        ),
        plain("deploy_glibc_floor", documented_glibc_floor_holds),
        plain(
            "entrypoint_dual_stack",
            entrypoint_installs_with_the_nodes_cidrs,
        ),
        plain(
            "entrypoint_pod_cidr_fallback",
            entrypoint_falls_back_to_pod_cidr,
        ),
        plain(
            "entrypoint_no_pod_cidr_fails",
            entrypoint_fails_loudly_without_a_pod_cidr,
        ),
        plain(
            "entrypoint_waits_for_pod_cidr",
            entrypoint_waits_for_the_cidr_to_be_assigned,
        ),
        plain("entrypoint_api_errors", entrypoint_reports_api_errors),
        plain(
            "entrypoint_default_api_url",
            entrypoint_default_api_url_is_https_with_the_ca,
        ),
        plain(
            "entrypoint_flags_from_env",
            entrypoint_passes_the_settings_as_flags,
        ),
        plain(
            "entrypoint_settings_from_configmap",
            entrypoint_installs_settings_from_the_configmap,
        ),
        plain(
            "entrypoint_settings_validated_for_real",
            entrypoint_validates_settings_with_the_real_binary,
        ),
        plain("entrypoint_uninstall_mode", entrypoint_uninstall_mode),
        plain(
            "entrypoint_real_install_conflist",
            entrypoint_real_install_writes_the_nodes_conflist,
        ),
    ])
}
