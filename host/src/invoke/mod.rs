//! One CNI invocation, start to end: parse, find the component, plan in the guest,
//! validate, apply, let the guest build the result, render it in the config's
//! version. Pure with respect to the process: the caller passes the environment and
//! stdin and prints what comes back.

mod kernel_failure;
mod pipeline;
mod result_check;
mod select;
mod serve;
mod services;
mod world;

pub use kernel_failure::KernelFailure;
pub use pipeline::PlanReport;
pub use world::{KernelAccess, NodeKernel, OpenedKernel, World};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::settings::Settings;
use cni::{self, CniError, CniVersion, ErrorCode, Invocation, Request};
use serve::serve;

/// What the process should do with an invocation's outcome.
#[derive(Debug)]
pub enum Outcome {
    /// Print this to stderr and exit 0 (no `CNI_COMMAND`).
    About(String),
    /// Print this to stdout and exit 0.
    Stdout(String),
    /// Exit 0 printing nothing (DEL, CHECK, GC, STATUS).
    Silent,
    /// Print the error JSON to stdout and exit 1.
    Error(CniError, String),
}

/// Serve one CNI invocation on the node. `invoked_as` is the name the binary
/// was run under (`loopback` for a multi-call symlink), or none when run as
/// `wasm-cni`.
pub fn run(
    invoked_as: Option<&str>,
    env: &BTreeMap<String, String>,
    stdin: &[u8],
    settings: &Settings,
) -> Outcome {
    run_in(&World::real(), invoked_as, env, stdin, settings)
}

/// Serve one CNI invocation in `world`.
pub fn run_in(
    world: &World,
    invoked_as: Option<&str>,
    env: &BTreeMap<String, String>,
    stdin: &[u8],
    settings: &Settings,
) -> Outcome {
    let parsed = {
        let _t = timing::phase("parse");
        cni::parse_invocation(env, stdin)
    };
    let request = match parsed {
        Ok(Invocation::About) => {
            return Outcome::About(cni::about_text(&format!(
                "CNI {} plugin (wasm-cni {})",
                invoked_as.unwrap_or("wasm-cni"),
                env!("CARGO_PKG_VERSION")
            )))
        }
        Ok(Invocation::Version) => return Outcome::Stdout(cni::version_info_json()),
        Ok(Invocation::Request(r)) => r,
        Err(e) => {
            tracing::warn!(
                command = env.get("CNI_COMMAND").map(String::as_str).unwrap_or(""),
                container = env.get("CNI_CONTAINERID").map(String::as_str).unwrap_or(""),
                outcome = "error",
                code = e.code.as_u32(),
                error = %e.msg,
                "invocation"
            );
            return Outcome::Error(e, version_of(stdin));
        }
    };
    let version = request.config.cni_version;
    let started = Instant::now();
    let request = Arc::new(request);
    let outcome = serve(world, invoked_as, &request, settings, env, None);
    log_invocation(&request, &outcome, started);
    match outcome {
        Ok(Some(out)) => Outcome::Stdout(out),
        Ok(None) => Outcome::Silent,
        Err(e) => Outcome::Error(e, version.as_str().to_string()),
    }
}

/// The one line per invocation: who, what, how it ended, how long it took.
fn log_invocation(request: &Request, outcome: &Result<Option<String>, CniError>, started: Instant) {
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let duration_ms = (duration_ms * 1000.0).round() / 1000.0;
    match outcome {
        Ok(_) => tracing::info!(
            command = request.command.as_str(),
            container = %request.container_id,
            ifname = %request.ifname,
            network = %request.config.name,
            outcome = "ok",
            duration_ms,
            "invocation"
        ),
        Err(e) => tracing::warn!(
            command = request.command.as_str(),
            container = %request.container_id,
            ifname = %request.ifname,
            network = %request.config.name,
            outcome = "error",
            code = e.code.as_u32(),
            error = %e.msg,
            duration_ms,
            "invocation"
        ),
    }
}

/// The cniVersion to put in an error when the config could not be parsed.
fn version_of(stdin: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(|s| s.as_str())
                .map(str::to_string)
        })
        .filter(|v| CniVersion::parse(v).is_ok())
        .unwrap_or_else(|| CniVersion::CURRENT.as_str().to_string())
}

/// Run the plugin on a request and return its validated plan without applying
/// anything (`wasm-cni plan`). IPAM components run on a scratch copy of their
/// state; native IPAM binaries are refused.
pub fn plan_only(
    invoked_as: Option<&str>,
    env: &BTreeMap<String, String>,
    stdin: &[u8],
    settings: &Settings,
) -> Result<PlanReport, CniError> {
    let request = match cni::parse_invocation(env, stdin)? {
        Invocation::Request(r) => Arc::new(r),
        _ => {
            return Err(CniError::new(
                ErrorCode::InvalidEnvironment,
                "set CNI_COMMAND to ADD, DEL, CHECK, GC or STATUS to plan a request",
            ))
        }
    };
    let slot = Mutex::new(None);
    serve(
        &World::real(),
        invoked_as,
        &request,
        settings,
        env,
        Some(&slot),
    )?;
    slot.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .ok_or_else(|| {
            CniError::new(
                ErrorCode::InvalidNetworkConfig,
                "this component is an IPAM plugin: it has no plan to show",
            )
        })
}

/// The basename of argv[0] when it names a plugin (a multi-call symlink); none
/// when the binary runs under its own name.
pub fn invoked_as(argv0: &Path) -> Option<String> {
    let base = argv0.file_name()?.to_str()?;
    if base == "wasm-cni" || base.starts_with("wasm-cni-") || base.starts_with("wasm_cni") {
        None
    } else {
        Some(base.to_string())
    }
}

#[cfg(test)]
mod tests;
