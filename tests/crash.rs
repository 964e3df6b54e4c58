//! Crash safety: `wasm-cni` killed with SIGKILL at random points during ADD and
//! DEL. Afterwards the DEL a runtime sends (ADD must be followed by DEL even when it
//! failed) returns the node to clean, and no IP is ever handed out twice.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const RUNS: usize = 40;

/// A cheap deterministic pseudo-random sequence (the runs must be reproducible).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn killed_at_random_points_leaves_nothing() -> TestResult {
    let dir = tempfile::tempdir().map_err(fail)?;
    let data = dir.path().join("ipam");
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, json!({"ipamDataDirs": [data]}).to_string()).map_err(fail)?;
    let conf = json!({
        "cniVersion": "1.0.0", "name": "crash-net", "type": "bridge", "bridge": "wccrash0",
        "isGateway": true, "ipMasq": true,
        "ipam": {"type": "host-local", "subnet": "10.91.0.0/24", "dataDir": data}
    })
    .to_string();
    let host = Netns::new("crash").map_err(fail)?;
    // A container that stays attached throughout: its IP must never be reused.
    let witness = Netns::new("witness").map_err(fail)?;
    let settings_path = settings.display().to_string();
    let env = |cmd: &str, ns: &str, id: &str| {
        CniEnv::new(cmd, ns)
            .container_id(id)
            .set("WASM_CNI_CONFIG", &settings_path)
    };
    let run = |cmd: &str, ns: &str, id: &str| -> Result<Answer, libtest_mimic::Failed> {
        exec(Plugin::Ours("bridge"), &host, &env(cmd, ns, id), &conf)
    };
    let witness_ip = run("ADD", &witness.path(), "witness")?.ok()?.json()?["ips"][0]["address"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // Calibrate: how long does one ADD take here?
    let probe = Netns::new("probe").map_err(fail)?;
    let started = Instant::now();
    run("ADD", &probe.path(), "probe")?.ok()?;
    let add_us = started.elapsed().as_micros().max(1000) as u64;
    run("DEL", &probe.path(), "probe")?.ok()?;
    drop(probe);

    let mut rng = Lcg(0x5eed);
    let mut kills = 0;
    for i in 0..RUNS {
        let c = Netns::new(&format!("k{i}")).map_err(fail)?;
        let id = format!("victim-{i}");
        let verb = if i % 4 == 3 { "DEL" } else { "ADD" };
        if verb == "DEL" {
            run("ADD", &c.path(), &id)?.ok()?;
        }
        let mut child = spawn(
            Plugin::Ours("bridge"),
            &host,
            &env(verb, &c.path(), &id),
            &conf,
        )?;
        std::thread::sleep(Duration::from_micros(rng.next(add_us + add_us / 2)));
        // Only our own child, by its PID.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let status = child.wait().map_err(fail)?;
        if status.code().is_none() {
            kills += 1;
        }
        // What a runtime does next: DEL (twice is allowed too).
        run("DEL", &c.path(), &id)?.ok()?;
        run("DEL", &c.path(), &id)?.ok()?;
        let links: Vec<String> = c
            .ip_json(&["link", "show"])?
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        ensure!(
            links == ["lo"],
            "run {i} ({verb}): container links left: {links:?}"
        );
    }
    ensure!(
        kills > RUNS / 4,
        "only {kills} of {RUNS} runs were actually killed mid-way"
    );

    // Clean: only the witness holds an IP, a veth and a masquerade rule.
    let files: BTreeSet<String> = std::fs::read_dir(data.join("crash-net"))
        .map_err(fail)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    let witness_addr = witness_ip.split('/').next().unwrap_or_default().to_string();
    ensure!(
        files == BTreeSet::from([witness_addr.clone()]),
        "IPAM files: {files:?}"
    );
    let veths = host
        .ip_json(&["link", "show", "type", "veth"])?
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0);
    ensure!(
        veths == 1,
        "{veths} host veths left (only the witness's should remain)"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &host.name, "nft", "-j", "list", "ruleset"])
        .output()
        .map_err(fail)?;
    let rules: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let comments: Vec<String> = rules["nftables"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["rule"]["comment"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        comments.len() == 1 && comments[0].contains("id: witness"),
        "masquerade rules: {comments:?}"
    );
    // A new container never gets the witness's IP.
    let fresh = Netns::new("fresh").map_err(fail)?;
    let ip = run("ADD", &fresh.path(), "fresh")?.ok()?.json()?["ips"][0]["address"].clone();
    ensure!(
        ip != json!(witness_ip),
        "the witness's IP {witness_ip} was handed out twice"
    );
    run("DEL", &fresh.path(), "fresh")?.ok()?;
    run("DEL", &witness.path(), "witness")?.ok()?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    run(vec![privileged(
        "crash_killed_at_random_points_leaves_nothing",
        killed_at_random_points_leaves_nothing,
    )])
}
