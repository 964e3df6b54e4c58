//! `wasm-cni plan`: run a plugin on a request and show its validated plan,
//! applying nothing.

use std::collections::BTreeMap;
use std::io::Read;

use cni::{CniError, ErrorCode};
use wasm_cni::invoke;
use wasm_cni::settings::Settings;

pub fn run(
    settings: &Settings,
    env: &BTreeMap<String, String>,
    plugin: Option<&str>,
    json: bool,
) -> Result<(), CniError> {
    let mut stdin = Vec::new();
    std::io::stdin().read_to_end(&mut stdin).map_err(|e| {
        CniError::new(
            ErrorCode::IoFailure,
            format!("error reading from stdin: {e}"),
        )
    })?;
    let report = invoke::plan_only(plugin, env, &stdin, settings)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "plugin {} (sha256:{}), grant: {}",
        report.plugin, report.sha256, report.grant
    );
    for (i, intent) in report.intents.iter().enumerate() {
        println!("  #{i:<3} {:<22} {intent}", intent.kind());
    }
    match report.code {
        None => println!(
            "verdict: accepted ({} intents); nothing was applied",
            report.intents.len()
        ),
        Some(code) => println!("verdict: rejected (code {code}): {}", report.verdict),
    }
    if report.refusals.len() > 1 {
        println!("every rule the plan breaks ({}):", report.refusals.len());
        for refusal in &report.refusals {
            println!("  {refusal}");
        }
    }
    Ok(())
}
