//! The loopback component end to end: the real `wasm-cni` binary, exec'd as
//! `loopback` inside throwaway namespaces, for every CNI version, side by side with
//! the Go reference `/usr/lib/cni/loopback` on the same input.

mod common;

use common::*;
use serde_json::{json, Value};

fn conf(version: &str) -> String {
    json!({"cniVersion": version, "name": "lo-test", "type": "loopback"}).to_string()
}

/// The result with what legitimately differs between runs or between ours and the
/// reference removed: the sandbox path, an empty `dns`, and `ips[].version`, which
/// Debian's reference (v1.1.1) omits in 0.3.x/0.4.0 results although the spec
/// requires it.
fn comparable(mut v: Value) -> Value {
    normalize_sandbox(&mut v);
    if let Some(obj) = v.as_object_mut() {
        if obj
            .get("dns")
            .is_some_and(|d| d.as_object().is_some_and(|m| m.is_empty()))
        {
            obj.remove("dns");
        }
        if let Some(ips) = obj.get_mut("ips").and_then(|i| i.as_array_mut()) {
            for ip in ips {
                if let Some(ip) = ip.as_object_mut() {
                    ip.remove("version");
                }
            }
        }
    }
    v
}

/// Versions the Debian reference supports (1.1.1 knows nothing of 1.1.0).
fn reference_supports(version: &str) -> bool {
    version != "1.1.0"
}

fn add_check_del_every_version() -> TestResult {
    for version in VERSIONS {
        let ours = Sandbox::new("lo")?;
        let theirs = Sandbox::new("lo")?;
        let env = |cmd: &str, ns: &Netns| CniEnv::new(cmd, &ns.path()).ifname("lo").args("none");

        let add = exec(
            Plugin::Ours("loopback"),
            &ours.host,
            &env("ADD", &ours.container),
            &conf(version),
        )?
        .ok()?;
        ensure!(
            ours.container.link_up("lo")?,
            "{version}: lo is not up after ADD"
        );
        let result = add.json()?;
        ensure!(
            result["cniVersion"] == version,
            "{version}: result version {result}"
        );
        match version {
            "0.1.0" | "0.2.0" => {
                // The spec's 0.1/0.2 shape. Debian's reference prints the 1.x shape
                // under a 0.1/0.2 version here, which no 0.2 parser understands.
                ensure!(
                    result
                        == json!({"cniVersion": version, "ip4": {"ip": "127.0.0.1/8"}, "ip6": {"ip": "::1/128"}, "dns": {}}),
                    "{version}: {result}"
                );
            }
            _ => {
                ensure!(
                    result["interfaces"][0]["sandbox"] == ours.container.path(),
                    "{version}: sandbox {result}"
                );
                if version != "1.0.0" && version != "1.1.0" {
                    ensure!(
                        result["ips"][0]["version"] == "4",
                        "{version}: ips[].version missing: {result}"
                    );
                }
                if reference_supports(version) {
                    let reference = exec(
                        Plugin::Reference("loopback"),
                        &theirs.host,
                        &env("ADD", &theirs.container),
                        &conf(version),
                    )?
                    .ok()?;
                    ensure!(
                        theirs.container.link_up("lo")?,
                        "reference did not set lo up"
                    );
                    ensure!(
                        comparable(result.clone()) == comparable(reference.json()?),
                        "{version}: ours {result} vs reference {}",
                        reference.stdout
                    );
                }
            }
        }

        if version >= "0.4.0" {
            exec(
                Plugin::Ours("loopback"),
                &ours.host,
                &env("CHECK", &ours.container),
                &conf(version),
            )?
            .ok()?;
        } else {
            let msg = exec(
                Plugin::Ours("loopback"),
                &ours.host,
                &env("CHECK", &ours.container),
                &conf(version),
            )?
            .error(1)?;
            ensure!(msg.contains("CHECK"), "{version}: {msg}");
        }

        let del = exec(
            Plugin::Ours("loopback"),
            &ours.host,
            &env("DEL", &ours.container),
            &conf(version),
        )?
        .ok()?;
        ensure!(del.stdout.is_empty(), "DEL printed {:?}", del.stdout);
        ensure!(
            !ours.container.link_up("lo")?,
            "{version}: lo still up after DEL"
        );
        if reference_supports(version) {
            exec(
                Plugin::Reference("loopback"),
                &theirs.host,
                &env("DEL", &theirs.container),
                &conf(version),
            )?
            .ok()?;
            ensure!(!theirs.container.link_up("lo")?, "reference left lo up");
        }

        if version >= "0.4.0" {
            let msg = exec(
                Plugin::Ours("loopback"),
                &ours.host,
                &env("CHECK", &ours.container),
                &conf(version),
            )?
            .error(999)?;
            ensure!(msg == "loopback interface is down", "{version}: {msg}");
        }
        if version == "1.1.0" {
            for cmd in ["GC", "STATUS"] {
                let a = exec(
                    Plugin::Ours("loopback"),
                    &ours.host,
                    &CniEnv::new(cmd, ""),
                    &conf(version),
                )?
                .ok()?;
                ensure!(a.stdout.is_empty(), "{cmd} printed {:?}", a.stdout);
            }
        }
    }
    Ok(())
}

fn prev_result_passes_through() -> TestResult {
    for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let sb = Sandbox::new("prev")?;
        let ip_version = if version.starts_with('0') {
            json!({"version": "4"})
        } else {
            json!({})
        };
        let mut ip = json!({"address": "10.1.2.3/24", "gateway": "10.1.2.1", "interface": 0});
        for (k, v) in ip_version.as_object().expect("object") {
            ip[k] = v.clone();
        }
        let prev = json!({
            "cniVersion": version,
            "interfaces": [{"name": "eth0", "sandbox": sb.container.path()}],
            "ips": [ip],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}],
            "dns": {"nameservers": ["10.1.2.1"]}
        });
        let stdin = json!({"cniVersion": version, "name": "lo-test", "type": "loopback", "prevResult": prev}).to_string();
        let out = exec(
            Plugin::Ours("loopback"),
            &sb.host,
            &CniEnv::new("ADD", &sb.container.path()).ifname("lo"),
            &stdin,
        )?
        .ok()?;
        ensure!(out.json()? == prev, "{version}: {} != {prev}", out.stdout);
        ensure!(sb.container.link_up("lo")?, "lo not up");
    }
    // A prevResult in an older shape than the config is accepted and converted.
    let sb = Sandbox::new("prev")?;
    let stdin = json!({"cniVersion": "1.0.0", "name": "lo-test", "type": "loopback",
        "prevResult": {"cniVersion": "0.2.0", "ip4": {"ip": "10.9.0.2/16"}}})
    .to_string();
    let out = exec(
        Plugin::Ours("loopback"),
        &sb.host,
        &CniEnv::new("ADD", &sb.container.path()).ifname("lo"),
        &stdin,
    )?
    .ok()?;
    ensure!(
        out.json()?["ips"][0]["address"] == "10.9.0.2/16",
        "{}",
        out.stdout
    );
    Ok(())
}

fn del_is_idempotent() -> TestResult {
    let sb = Sandbox::new("del")?;
    let scratch = tempfile::tempdir().map_err(fail)?;
    let plain_file = not_a_netns(scratch.path());
    let gone = Netns::new("gone").map_err(fail)?;
    let gone_path = gone.path();
    drop(gone);
    for netns in [
        String::new(),
        gone_path,
        plain_file.display().to_string(),
        sb.container.path(),
        sb.container.path(),
    ] {
        for plugin in [Plugin::Ours("loopback"), Plugin::Reference("loopback")] {
            let a = exec(
                plugin,
                &sb.host,
                &CniEnv::new("DEL", &netns).ifname("lo"),
                &conf("1.0.0"),
            )?;
            // The reference fails on a path that is not a netns ("unknown FS
            // magic", plugins#69); ours treats it as gone, as DEL must.
            if matches!(plugin, Plugin::Reference(_)) && netns == plain_file.display().to_string() {
                ensure!(a.status != 0, "reference now accepts a non-netns path");
                continue;
            }
            a.ok()?;
        }
    }
    Ok(())
}

fn version_and_about() -> TestResult {
    let sb = Sandbox::new("ver")?;
    let env = CniEnv::new("VERSION", "");
    let v = exec(Plugin::Ours("loopback"), &sb.host, &env, "")?.ok()?;
    ensure!(
        v.json()? == json!({"cniVersion": "1.1.0", "supportedVersions": VERSIONS}),
        "{}",
        v.stdout
    );
    let about = exec(
        Plugin::Ours("loopback"),
        &sb.host,
        &CniEnv::new("", "").unset("CNI_COMMAND"),
        "",
    )?
    .ok()?;
    ensure!(
        about.stdout.is_empty(),
        "about went to stdout: {:?}",
        about.stdout
    );
    ensure!(
        about.stderr.contains("CNI protocol versions supported"),
        "{}",
        about.stderr
    );
    Ok(())
}

/// Each bad input gets its CNI code and a message naming the bad value, and
/// leaves the container exactly as it was.
fn bad_input_is_refused_and_changes_nothing() -> TestResult {
    let sb = Sandbox::new("bad")?;
    std::fs::write(
        shared_host().plugins.path().join("broken.wasm"),
        b"\0asm\x0d\0\x01\0 truncated garbage",
    )
    .map_err(fail)?;
    let before = sb.container.snapshot()?;
    let scratch = tempfile::tempdir().map_err(fail)?;
    let plain_file = not_a_netns(scratch.path()).display().to_string();
    let ns = sb.container.path();
    let good = conf("1.0.0");
    let cases: Vec<(&str, CniEnv, String, u64, &str)> = vec![
        (
            "malformed json",
            CniEnv::new("ADD", &ns).ifname("lo"),
            "{\"cniVersion\":".into(),
            6,
            "unmarshal",
        ),
        (
            "not an object",
            CniEnv::new("ADD", &ns).ifname("lo"),
            "[1,2]".into(),
            6,
            "",
        ),
        (
            "missing name",
            CniEnv::new("ADD", &ns).ifname("lo"),
            r#"{"cniVersion":"1.0.0"}"#.into(),
            7,
            "missing network name",
        ),
        (
            "bad name",
            CniEnv::new("ADD", &ns).ifname("lo"),
            r#"{"cniVersion":"1.0.0","name":"a b"}"#.into(),
            7,
            "invalid characters",
        ),
        (
            "name wrong type",
            CniEnv::new("ADD", &ns).ifname("lo"),
            r#"{"cniVersion":"1.0.0","name":7}"#.into(),
            6,
            "",
        ),
        (
            "unknown version",
            CniEnv::new("ADD", &ns).ifname("lo"),
            r#"{"cniVersion":"9.9.9","name":"x"}"#.into(),
            1,
            "incompatible CNI versions",
        ),
        (
            "unknown verb",
            CniEnv::new("FROB", &ns).ifname("lo"),
            good.clone(),
            4,
            "FROB",
        ),
        (
            "missing netns",
            CniEnv::new("ADD", &ns).unset("CNI_NETNS"),
            good.clone(),
            4,
            "CNI_NETNS",
        ),
        (
            "missing ifname+path",
            CniEnv::new("ADD", &ns)
                .unset("CNI_IFNAME")
                .unset("CNI_PATH"),
            good.clone(),
            4,
            "CNI_IFNAME",
        ),
        (
            "bad container id",
            CniEnv::new("ADD", &ns).container_id("-bad/id"),
            good.clone(),
            4,
            "containerID",
        ),
        (
            "ifname too long",
            CniEnv::new("ADD", &ns).ifname("sixteen-chars-xx"),
            good.clone(),
            4,
            "sixteen-chars-xx",
        ),
        (
            "netns is a file",
            CniEnv::new("ADD", &plain_file).ifname("lo"),
            good.clone(),
            4,
            &plain_file,
        ),
        (
            "netns missing",
            CniEnv::new("ADD", "/var/run/netns/wcni-does-not-exist").ifname("lo"),
            good.clone(),
            4,
            "wcni-does-not-exist",
        ),
        (
            "netns is ours",
            CniEnv::new("ADD", "/proc/self/ns/net").ifname("lo"),
            good.clone(),
            8,
            "should not be the same",
        ),
        (
            "unknown component",
            CniEnv::new("ADD", &ns).ifname("lo"),
            r#"{"cniVersion":"1.0.0","name":"x","wasm":{"component":"no-such-plugin"}}"#.into(),
            105,
            "no-such-plugin",
        ),
        (
            "component path escape",
            CniEnv::new("ADD", &ns).ifname("lo"),
            r#"{"cniVersion":"1.0.0","name":"x","wasm":{"component":"../../bin/sh"}}"#.into(),
            7,
            "../../bin/sh",
        ),
        (
            "digest mismatch",
            CniEnv::new("ADD", &ns).ifname("lo"),
            format!(
                r#"{{"cniVersion":"1.0.0","name":"x","wasm":{{"digest":"sha256:{}"}}}}"#,
                "0".repeat(64)
            ),
            106,
            "sha256:",
        ),
        (
            "malformed digest",
            CniEnv::new("ADD", &ns).ifname("lo"),
            r#"{"cniVersion":"1.0.0","name":"x","wasm":{"digest":"md5:1"}}"#.into(),
            7,
            "md5:1",
        ),
        (
            "corrupt component",
            CniEnv::new("ADD", &ns).ifname("lo"),
            r#"{"cniVersion":"1.0.0","name":"x","wasm":{"component":"broken"}}"#.into(),
            104,
            "not a valid WebAssembly component",
        ),
        (
            "bad prevResult",
            CniEnv::new("ADD", &ns).ifname("lo"),
            r#"{"cniVersion":"1.0.0","name":"x","prevResult":{"ips":[{"address":"nope"}]}}"#.into(),
            7,
            "prevResult",
        ),
    ];
    for (what, env, stdin, code, needle) in cases {
        let a = exec(Plugin::Ours("loopback"), &sb.host, &env, &stdin)?;
        let msg = a.error(code).map_err(|e| fail(format!("{what}: {e:?}")))?;
        let details = a.json()?["details"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        ensure!(
            msg.contains(needle) || details.contains(needle),
            "{what}: message {msg:?} / details {details:?} does not name {needle:?}"
        );
        ensure!(
            sb.container.snapshot()? == before,
            "{what} changed the container"
        );
    }
    Ok(())
}

fn digest_pin_and_installed_component() -> TestResult {
    let sb = Sandbox::new("pin")?;
    let listed = tool(&["plugins", "--json"])?.ok()?.json()?;
    let lo = listed
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "loopback"))
        .ok_or_else(|| fail(format!("loopback not listed: {listed}")))?;
    ensure!(
        lo["exports"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x == "wasm-cni:plugin/plugin@0.1.0")),
        "exports: {lo}"
    );
    let digest = lo["sha256"].as_str().unwrap_or_default();
    let stdin = json!({"cniVersion": "1.0.0", "name": "x", "type": "whatever",
        "wasm": {"component": "loopback", "digest": format!("sha256:{digest}")}})
    .to_string();
    exec(
        Plugin::Ours("wasm-cni"),
        &sb.host,
        &CniEnv::new("ADD", &sb.container.path()).ifname("lo"),
        &stdin,
    )?
    .ok()?;
    ensure!(sb.container.link_up("lo")?, "pinned component did not run");
    Ok(())
}

fn corrupt_cache_entry_is_a_miss() -> TestResult {
    let host = Host::new();
    let env = host.env();
    let compile = std::process::Command::new(BIN)
        .args(["compile", "loopback"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(fail)?;
    ensure!(
        compile.status.success(),
        "compile failed: {}",
        String::from_utf8_lossy(&compile.stderr)
    );
    let stdout = String::from_utf8_lossy(&compile.stdout).into_owned();
    let entry = stdout
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string();
    ensure!(entry.ends_with(".cwasm"), "compile printed {stdout:?}");
    for garbage in [
        &b"definitely not an ELF artifact"[..],
        b"\x7fELF\x02\x01\x01\0truncated",
        b"",
    ] {
        std::fs::write(&entry, garbage).map_err(fail)?;
        let sb = Sandbox::new("cache")?;
        let mut cmd_env = CniEnv::new("ADD", &sb.container.path()).ifname("lo");
        for (k, v) in &env {
            cmd_env = cmd_env.set(k, v);
        }
        exec(Plugin::Ours("loopback"), &sb.host, &cmd_env, &conf("1.0.0"))?.ok()?;
        ensure!(
            sb.container.link_up("lo")?,
            "ADD with a corrupt cache entry did nothing"
        );
        let rewritten = std::fs::read(&entry).map_err(fail)?;
        ensure!(
            rewritten.starts_with(b"\x7fELF") && rewritten.len() > 1000,
            "entry was not rewritten"
        );
    }
    Ok(())
}

fn multi_call_symlink() -> TestResult {
    let dir = tempfile::tempdir().map_err(fail)?;
    let link = dir.path().join("loopback");
    std::os::unix::fs::symlink(BIN, &link).map_err(fail)?;
    let out = std::process::Command::new(&link)
        .env("CNI_COMMAND", "VERSION")
        .output()
        .map_err(fail)?;
    ensure!(out.status.success(), "symlink VERSION failed");
    let about = std::process::Command::new(&link)
        .env_remove("CNI_COMMAND")
        .output()
        .map_err(fail)?;
    ensure!(
        String::from_utf8_lossy(&about.stderr).contains("CNI loopback plugin"),
        "about: {}",
        String::from_utf8_lossy(&about.stderr)
    );
    Ok(())
}

fn tool_version() -> TestResult {
    let v = tool(&["version"])?.ok()?;
    ensure!(
        v.stdout.contains("wasm-cni:plugin@0.1.0") && v.stdout.contains("1.1.0"),
        "{}",
        v.stdout
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    run(vec![
        privileged(
            "loopback_add_check_del_every_version_vs_reference",
            add_check_del_every_version,
        ),
        privileged(
            "loopback_prev_result_passes_through",
            prev_result_passes_through,
        ),
        privileged("loopback_del_is_idempotent", del_is_idempotent),
        privileged("loopback_version_and_about", version_and_about),
        privileged(
            "loopback_bad_input_is_refused_and_changes_nothing",
            bad_input_is_refused_and_changes_nothing,
        ),
        privileged(
            "loopback_digest_pin_and_listing",
            digest_pin_and_installed_component,
        ),
        privileged(
            "loopback_corrupt_cache_entry_is_a_miss",
            corrupt_cache_entry_is_a_miss,
        ),
        plain("loopback_multi_call_symlink", multi_call_symlink),
        plain("tool_version", tool_version),
    ])
}
