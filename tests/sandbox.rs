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
            let settings = json!({"limits": {
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
    ("recurse", 101, "trapped"),
    ("alloc", 103, "ran out of memory"),
    ("panic", 101, "hostile guest panicked on purpose"),
    ("trap", 101, "trapped"),
    ("output", 108, "bytes of output"),
    ("huge-log", 108, "bytes to the host"),
    ("intents", 108, "bytes"),
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

fn main() -> std::process::ExitCode {
    run(vec![
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
