//! The sandbox holds: a guest written to attack the host gets a clear CNI error
//! with its own code, in bounded time, and nothing changes in the host or the
//! container namespace.

mod common;

use std::time::{Duration, Instant};

use common::*;

use serde_json::json;

/// Tight limits so that each attack hits its limit quickly.
fn settings_file() -> &'static str {
    static FILE: std::sync::OnceLock<(tempfile::TempDir, String)> = std::sync::OnceLock::new();
    &FILE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("config.json");
            let policy = dir.path().join("policy.json");
            std::fs::write(&policy, hostile_policy().to_string())
            .expect("write policy");
            let settings = json!({"policyFile": policy, "auditLog": dir.path().join("audit.log"), "limits": {
                "deadlineMs": 1000, "memoryBytes": 32 << 20, "outputBytes": 65536,
                "hostcallBytes": 1 << 20, "maxIntents": 256
            }});
            std::fs::write(&path, settings.to_string()).expect("write settings");
            let p = path.display().to_string();
            (dir, p)
        })
        .1
}

fn attack(name: &str, command: &str) -> Result<(Answer, Duration, bool), libtest_mimic::Failed> {
    shared_host().install_test_guest("hostile", "hostile");
    let sb = Sandbox::new("atk")?;
    // A host interface the plugin does not own, for it to covet.
    sb.host.ip(&[
        "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p",
    ])?;
    let host_before = sb.host.snapshot()?;
    let container_before = sb.container.snapshot()?;
    let stdin =
        json!({"cniVersion": "1.0.0", "name": "hostile-net", "type": "hostile", "attack": name})
            .to_string();
    let env = CniEnv::new(command, &sb.container.path()).set("WASM_CNI_CONFIG", settings_file());
    let started = Instant::now();
    let answer = exec(Plugin::Ours("hostile"), &sb.host, &env, &stdin)?;
    let elapsed = started.elapsed();
    let unchanged =
        sb.host.snapshot()? == host_before && sb.container.snapshot()? == container_before;
    Ok((answer, elapsed, unchanged))
}

/// (attack, expected CNI code, text the message or details must contain)
const CASES: &[(&str, u64, &str)] = &[
    ("spin", 102, "ran out of time"),
    ("sleep", 102, "ran out of time"),
    ("recurse", 101, "trapped"),
    ("alloc", 103, "ran out of memory"),
    ("panic", 101, "hostile guest panicked on purpose"),
    ("trap", 101, "trapped"),
    ("output", 110, "bytes of output"),
    ("huge-log", 109, "bytes to the host"),
    ("intents", 109, "bytes"),
    ("many-intents", 108, "300 intents"),
    ("bad-intent", 104, "not-an-ip"),
    ("host-link", 100, "host link is not created by this plan"),
    ("long-name", 100, "veth-name-way-too-long"),
    ("slash-name", 100, "../eth0"),
    ("other-ifname", 100, "eth1"),
    ("host-code", 104, "pretending"),
    ("bad-prefix", 104, "../../x"),
    ("no-result", 104, "no result"),
    ("finish-panic", 101, "panicked after apply"),
    ("outside-grant", 100, "192.168.1.5/24"),
    (
        "host-default-route",
        100,
        "routes in the host namespace are not granted",
    ),
    ("masq-foreign", 100, "10.55.0.0/16"),
    ("masq-other-attachment", 100, "someone-else"),
    ("enslave-uplink", 100, "uplink0"),
    ("rename-host-link", 100, "uplink0"),
    ("delete-host-link", 100, "uplink0"),
    ("readdress-host-link", 100, "uplink0"),
    ("foreign-bridge", 100, "docker0"),
    ("sysctl-escape", 100, "core_pattern"),
    ("peer-clash", 107, "uplink0"),
    ("lying-result", 104, "contradicts what was applied"),
    (
        "lying-route",
        104,
        "neither returned by IPAM nor added by the plan",
    ),
    ("lying-dns", 104, "10.123.0.53"),
    ("host-ip", 104, "not on the interface it names"),
    ("forged-handle", 101, "trapped"),
    ("exhaust-handles", 111, "handle"),
    ("fs", 7, "fs denied"),
    ("env", 7, "env vars visible: 0"),
    ("socket", 7, "socket denied"),
];

fn every_attack_is_contained() -> TestResult {
    let mut failures = Vec::new();
    for (name, code, needle) in CASES {
        let (answer, elapsed, unchanged) = attack(name, "ADD")?;
        let outcome = answer.error(*code).and_then(|msg| {
            let details = answer.json()?["details"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            ensure!(
                msg.contains(needle) || details.contains(needle),
                "message {msg:?} / details {:?} lacks {needle:?}",
                details.chars().take(300).collect::<String>()
            );
            ensure!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
            ensure!(unchanged, "the namespaces changed");
            ensure!(
                answer.stdout.len() < 200_000,
                "stdout is {} bytes: guest output was not capped",
                answer.stdout.len()
            );
            Ok(())
        });
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e:?}"));
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

fn read_only_verbs_cannot_change_anything() -> TestResult {
    // The default hostile plan sets lo up; CHECK must refuse to apply it.
    let (answer, _, unchanged) = attack("none", "CHECK")?;
    let msg = answer.error(104)?;
    ensure!(msg.contains("must not change anything"), "{msg}");
    ensure!(unchanged, "CHECK changed the namespaces");
    Ok(())
}

/// An unknown plugin gets nothing until granted.
fn unknown_plugin_gets_nothing() -> TestResult {
    shared_host().install_test_guest("hostile", "stranger");
    let sb = Sandbox::new("unk")?;
    let before = sb.container.snapshot()?;
    let stdin = json!({"cniVersion": "1.0.0", "name": "n", "type": "stranger"}).to_string();
    let a = exec(
        Plugin::Ours("stranger"),
        &sb.host,
        &CniEnv::new("ADD", &sb.container.path()),
        &stdin,
    )?;
    let msg = a.error(100)?;
    ensure!(msg.contains("not granted to this plugin"), "{msg}");
    ensure!(sb.container.snapshot()? == before, "changed");
    Ok(())
}

fn policy_check_explains_errors() -> TestResult {
    let dir = tempfile::tempdir().map_err(fail)?;
    let file = dir.path().join("policy.json");
    std::fs::write(&file, "{\n  \"plugins\": [\n    {\"match\": {\"name\": \"x\"}, \"sysctls\": [\"kernel/core_pattern\"]}\n  ]\n}\n").map_err(fail)?;
    let a = tool(&["policy", "check", &file.display().to_string()])?;
    ensure!(a.status != 0, "accepted a bad policy");
    ensure!(
        a.stderr.contains("line 3")
            && a.stderr.contains("plugins[0].sysctls[0]")
            && a.stderr.contains("kernel/core_pattern"),
        "{}",
        a.stderr
    );
    std::fs::write(
        &file,
        json!({"plugins": [{"match": {"name": "x"}, "intents": ["set-link-up"]}]}).to_string(),
    )
    .map_err(fail)?;
    let a = tool(&["policy", "check", &file.display().to_string()])?.ok()?;
    ensure!(a.stdout.contains("1 grant"), "{}", a.stdout);
    Ok(())
}

fn audit_log() -> std::path::PathBuf {
    std::path::Path::new(settings_file()).with_file_name("audit.log")
}

/// Every applied or rejected plan is one JSON line in the audit trail.
fn audit_trail_records_plans() -> TestResult {
    let (rejected, _, _) = attack("host-link", "ADD")?;
    rejected.error(100)?;
    let (applied, _, _) = attack("none", "ADD")?;
    applied.ok()?;
    let text = std::fs::read_to_string(audit_log()).map_err(fail)?;
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    let rejected = entries
        .iter()
        .find(|e| e["outcome"] == "rejected" && e["intents"][0]["kind"] == "set-link-down");
    ensure!(rejected.is_some(), "no rejected entry in {text}");
    let e = rejected.expect("checked");
    ensure!(
        e["plugin"] == "hostile" && e["network"] == "hostile-net" && e["command"] == "ADD",
        "{e}"
    );
    ensure!(e["sha256"].as_str().is_some_and(|s| s.len() == 64), "{e}");
    ensure!(
        e["error"].as_str().is_some_and(|m| m.contains("host link")),
        "{e}"
    );
    ensure!(
        entries.iter().any(|e| e["outcome"] == "applied"),
        "no applied entry in {text}"
    );
    Ok(())
}

/// `wasm-cni plan` shows the validated plan and changes nothing, IPAM included.
fn plan_command_applies_nothing() -> TestResult {
    let sb = Sandbox::new("plan")?;
    let dir = tempfile::tempdir().map_err(fail)?;
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, json!({"ipamDataDirs": [dir.path()]}).to_string()).map_err(fail)?;
    let host_before = sb.host.snapshot()?;
    let container_before = sb.container.snapshot()?;
    let conf = json!({"cniVersion": "1.0.0", "name": "plan-net", "type": "bridge",
        "isGateway": true, "ipMasq": true,
        "ipam": {"type": "host-local", "subnet": "10.45.0.0/24", "dataDir": dir.path()}})
    .to_string();
    let env = CniEnv::new("ADD", &sb.container.path())
        .set("WASM_CNI_CONFIG", &settings.display().to_string());
    let out = exec(Plugin::Tool(&["plan", "--json"]), &sb.host, &env, &conf)?.ok()?;
    let report = out.json()?;
    ensure!(
        report["verdict"] == "accepted" && report["grant"] == "built-in",
        "{report}"
    );
    let kinds: Vec<&str> = report["intents"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["kind"].as_str()).collect())
        .unwrap_or_default();
    ensure!(
        kinds.contains(&"ensure-bridge") && kinds.contains(&"masquerade"),
        "{kinds:?}"
    );
    ensure!(
        report["intents"].to_string().contains("10.45.0.2/24"),
        "IPAM ran on a copy: {report}"
    );
    ensure!(sb.host.snapshot()? == host_before, "plan changed the host");
    ensure!(
        sb.container.snapshot()? == container_before,
        "plan changed the container"
    );
    ensure!(
        !dir.path().join("plan-net").exists(),
        "plan touched the IPAM state"
    );
    // A plan the rules refuse is shown with its verdict.
    shared_host().install_test_guest("hostile", "hostile");
    let stdin = json!({"cniVersion": "1.0.0", "name": "hostile-net", "type": "hostile", "attack": "host-link"}).to_string();
    let env = CniEnv::new("ADD", &sb.container.path()).set("WASM_CNI_CONFIG", settings_file());
    let out = exec(Plugin::Tool(&["plan", "--json"]), &sb.host, &env, &stdin)?.ok()?;
    let report = out.json()?;
    ensure!(
        report["code"] == 100 && report["grant"] == "policy file",
        "{report}"
    );
    // Every rule a plan breaks is shown, not only the first: here a bridge
    // outside the granted names and two sysctls not granted.
    let stdin = json!({"cniVersion": "1.0.0", "name": "hostile-net", "type": "hostile", "attack": "sysctl-all"}).to_string();
    let out = exec(Plugin::Tool(&["plan", "--json"]), &sb.host, &env, &stdin)?.ok()?;
    let report = out.json()?;
    let refusals = report["refusals"].as_array().cloned().unwrap_or_default();
    let rules: Vec<&str> = refusals.iter().filter_map(|r| r["rule"].as_str()).collect();
    ensure!(
        rules
            == [
                "bridge name is not granted",
                "sysctl is not granted for this namespace and link",
                "sysctl is not granted for this namespace and link"
            ],
        "{report}"
    );
    ensure!(
        refusals[1]["value"] == "net/ipv4/conf/all/proxy_arp" && refusals[0]["index"] == 0,
        "{report}"
    );
    let text = exec(Plugin::Tool(&["plan"]), &sb.host, &env, &stdin)?.ok()?;
    ensure!(
        text.stdout.contains("every rule the plan breaks (3)"),
        "{}",
        text.stdout
    );
    ensure!(sb.host.snapshot()? == host_before, "plan changed the host");
    Ok(())
}

/// The instance limit has its own code too (a component is several core
/// instances; one is not enough).
fn instance_limit_is_its_own_error() -> TestResult {
    shared_host().install_test_guest("hostile", "hostile");
    let dir = tempfile::tempdir().map_err(fail)?;
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, json!({"limits": {"instances": 1}}).to_string()).map_err(fail)?;
    let sb = Sandbox::new("inst")?;
    let stdin = json!({"cniVersion": "1.0.0", "name": "n", "type": "hostile"}).to_string();
    let env = CniEnv::new("ADD", &sb.container.path())
        .set("WASM_CNI_CONFIG", &settings.display().to_string());
    let msg = exec(Plugin::Ours("hostile"), &sb.host, &env, &stdin)?.error(111)?;
    ensure!(msg.contains("instance (1)"), "{msg}");
    Ok(())
}

fn main() -> std::process::ExitCode {
    run(vec![
        privileged(
            "sandbox_unknown_plugin_gets_nothing",
            unknown_plugin_gets_nothing,
        ),
        privileged(
            "sandbox_instance_limit_is_its_own_error",
            instance_limit_is_its_own_error,
        ),
        plain("policy_check_explains_errors", policy_check_explains_errors),
        privileged(
            "sandbox_audit_trail_records_plans",
            audit_trail_records_plans,
        ),
        privileged(
            "sandbox_plan_command_applies_nothing",
            plan_command_applies_nothing,
        ),
        privileged(
            "sandbox_every_attack_is_contained",
            every_attack_is_contained,
        ),
        privileged(
            "sandbox_read_only_verbs_cannot_change_anything",
            read_only_verbs_cannot_change_anything,
        ),
    ])
}
