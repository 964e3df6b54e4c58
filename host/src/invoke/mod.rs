//! One CNI invocation, start to end: parse, find the component, plan in the guest,
//! validate, apply, let the guest build the result, render it in the config's
//! version. Pure with respect to the process: the caller passes the environment and
//! stdin and prints what comes back.

mod result_check;
mod select;
mod services;
mod world;

pub use world::{KernelAccess, NodeKernel, OpenedKernel, World};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::audit::{self, AuditTrail};
use crate::ipam::IpamDelegate;
use crate::plugins::PluginStore;
use crate::prefetch::Prefetch;
use crate::settings::Settings;
use cni::{self, CniError, CniResult, CniVersion, Command, ErrorCode, Invocation, Request};
use kernel::applier::{apply_best_effort, Kernel, Transaction};
use plan::policy::{Grant, Policy};
use plan::validate;
use plan::{Intent, ObservedLink};
use result_check::check_result;
use runtime::Limits;
use runtime::{ComponentCache, GuestCommand, GuestRequest, PluginRuntime};
use select::select_component;
use services::{lock, KernelServices};

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

fn guest_command(c: Command) -> Result<GuestCommand, CniError> {
    Ok(match c {
        Command::Add => GuestCommand::Add,
        Command::Del => GuestCommand::Del,
        Command::Check => GuestCommand::Check,
        Command::Gc => GuestCommand::Gc,
        Command::Status => GuestCommand::Status,
        Command::Version => {
            return Err(CniError::internal("VERSION never reaches a plugin"));
        }
    })
}

fn guest_request(request: &Request) -> Result<GuestRequest, CniError> {
    Ok(GuestRequest {
        command: guest_command(request.command)?,
        container_id: request.container_id.clone(),
        netns_path: request.netns.as_ref().map(|p| p.display().to_string()),
        ifname: request.ifname.clone(),
        cni_args: request.args.pairs().to_vec(),
        config: String::from_utf8_lossy(&request.stdin).into_owned(),
        prev_result: request.config.prev_result.clone(),
        valid_attachments: request.config.valid_attachments.as_ref().map(|list| {
            list.iter()
                .map(|a| (a.container_id.clone(), a.ifname.clone()))
                .collect()
        }),
    })
}

/// Verbs that only look: their plans must be empty.
fn is_read_only(c: Command) -> bool {
    matches!(c, Command::Check | Command::Status)
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

fn grant_origin(grant: &Grant) -> String {
    match (
        grant.intents.is_empty(),
        plan::policy::builtin_grant(grant.matcher.name.as_deref().unwrap_or("")),
    ) {
        (true, _) => "none".to_string(),
        (false, Some(b)) if b == *grant => "built-in".to_string(),
        (false, _) => "policy file".to_string(),
    }
}

fn serve(
    world: &World,
    invoked_as: Option<&str>,
    request: &Arc<Request>,
    settings: &Settings,
    env: &BTreeMap<String, String>,
    dry_run: Option<&Mutex<Option<PlanReport>>>,
) -> Result<Option<String>, CniError> {
    let store = PluginStore::new(&settings.plugin_dir);
    let source = {
        let _t = timing::phase("find-component");
        select_component(invoked_as, request, &store)?
    };

    let policy = {
        let _t = timing::phase("policy");
        Policy::load(&settings.policy_file)?
    };
    let grant = Policy::grant_for(policy.as_ref(), &source.subject());
    let limits = grant.limits.apply(&settings.limits);
    let t_netns = timing::phase("open-netns");
    let netns = world::container_netns(request)?;
    let world::OpenedKernel {
        mut kernel,
        has_container,
    } = world.kernel.open(request, netns)?;
    kernel.valid_attachments = request.config.valid_attachments.as_ref().map(|list| {
        list.iter()
            .map(|a| (a.container_id.clone(), a.ifname.clone()))
            .collect()
    });
    let kernel = Arc::new(Mutex::new(kernel));
    drop(t_netns);

    let t_engine = timing::phase("engine");
    let runtime = match &world.runtime {
        Some(runtime) => Arc::clone(runtime),
        None => Arc::new(PluginRuntime::new()?),
    };
    drop(t_engine);
    let cache = ComponentCache::new(&settings.cache_dir);
    let t_load = timing::phase("component-load");
    let (component, from) = cache.load(runtime.engine(), &source.bytes, &source.sha256)?;
    drop(t_load);
    tracing::debug!(plugin = %source.name, sha256 = %source.sha256, ?from, "component loaded");
    // The IPAM component (a bridge's host-local) loads on another thread while
    // this one instantiates the plugin and lets it plan.
    let prefetch = Prefetch::ipam(
        runtime.engine(),
        cache,
        store.clone(),
        request.config.ipam_type.as_deref(),
        &source.name,
    );
    let guest_req = guest_request(request)?;
    let mut delegate = IpamDelegate::new(
        Arc::clone(request),
        guest_req.clone(),
        Arc::new(settings.clone()),
        env.clone(),
        Arc::clone(&runtime),
    )
    .with_prefetch(Arc::clone(&prefetch));
    if dry_run.is_some() {
        delegate = delegate.dry_run();
    }
    let ipam = Arc::new(delegate);
    if runtime.is_ipam_component(&component) {
        if dry_run.is_some() {
            return Ok(None);
        }
        // Invoked directly as an IPAM plugin (`host-local` symlink): serve it as
        // the reference binary would, with no links to touch.
        let result = ipam.run_loaded(&component, guest_command(request.command)?)?;
        return match (request.command, result) {
            (Command::Add, Some(r)) => Ok(Some(cni::render_result_string(
                &r,
                request.config.cni_version,
            )?)),
            (Command::Add, None) => Err(CniError::new(
                ErrorCode::ContractViolation,
                "IPAM plugin returned no result for ADD",
            )),
            _ => Ok(None),
        };
    }
    let ctx = PlanContext {
        request,
        limits: &limits,
        grant: &grant,
        runtime: &runtime,
        component: &component,
        kernel: &kernel,
        ipam: &ipam,
        plugin: &source.name,
        sha256: &source.sha256,
        audit: &AuditTrail::new(settings.audit_log.clone()),
        guest_req: &guest_req,
        has_container,
        clock: world.clock,
        dry_run,
    };
    let outcome = plan_and_apply(&ctx);
    if outcome.is_err() && request.command == Command::Add && ipam.added() && dry_run.is_none() {
        // A failed ADD releases what IPAM gave, as the spec asks.
        if let Err(e) = ipam.run(GuestCommand::Del) {
            tracing::error!("releasing IPAM after a failed ADD: {}", e.msg);
        }
    }
    // The guest side first: the IPAM delegate's store lock goes with it.
    let t = timing::phase("teardown:wasm");
    drop(ipam);
    drop(component);
    drop(runtime);
    drop(t);
    // Closing an nftables socket after a transaction waits for the kernel's
    // cleanup of it (an RCU grace period), and so does deleting a link: both
    // happen in a child after this process has exited (see `reaper`).
    let t = timing::phase("teardown:kernel");
    if dry_run.is_none() {
        world.kernel.finish();
    }
    drop(kernel);
    drop(t);
    outcome
}

/// Everything one plan-validate-apply round needs.
struct PlanContext<'a> {
    request: &'a Request,
    limits: &'a Limits,
    grant: &'a Grant,
    runtime: &'a PluginRuntime,
    component: &'a wasmtime::component::Component,
    kernel: &'a Arc<Mutex<Kernel>>,
    ipam: &'a Arc<IpamDelegate>,
    plugin: &'a str,
    sha256: &'a str,
    audit: &'a AuditTrail,
    guest_req: &'a GuestRequest,
    has_container: bool,
    clock: fn() -> std::time::SystemTime,
    /// `wasm-cni plan`: stop after validation and leave the plan here.
    dry_run: Option<&'a Mutex<Option<PlanReport>>>,
}

/// What `wasm-cni plan` shows: the plan, who granted it, and the verdict.
#[derive(Debug, serde::Serialize)]
pub struct PlanReport {
    pub plugin: String,
    pub sha256: String,
    /// `policy file`, `built-in` or `none`.
    pub grant: String,
    pub intents: Vec<Intent>,
    /// `accepted`, or the error that refused the plan.
    pub verdict: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
}

fn plan_and_apply(ctx: &PlanContext<'_>) -> Result<Option<String>, CniError> {
    let PlanContext {
        request,
        limits,
        grant,
        runtime,
        component,
        kernel,
        ipam,
        plugin,
        sha256,
        audit,
        guest_req,
        has_container,
        clock,
        dry_run,
    } = *ctx;
    let services = KernelServices {
        kernel: Arc::clone(kernel),
        ipam: Arc::clone(ipam),
        plugin: plugin.to_string(),
        container_id: request.container_id.clone(),
    };
    let mut instance = {
        let _t = timing::phase("instantiate");
        runtime.instantiate(component, Box::new(services), limits)?
    };

    let planned = {
        let _t = timing::phase("guest-plan");
        instance.plan(guest_req)
    };
    let output = instance.captured_output();
    if !output.is_empty() {
        tracing::info!(plugin, container = %request.container_id, "guest output: {output}");
    }
    let intents = planned?;
    let ipam_results = ipam.results();
    let inv = validate::Invocation {
        ifname: &request.ifname,
        container: match (has_container, request.command) {
            (true, _) => validate::ContainerNs::Present,
            (false, Command::Del) => validate::ContainerNs::Gone,
            (false, _) => validate::ContainerNs::Absent,
        },
        max_intents: limits.max_intents,
        network: &request.config.name,
        container_id: &request.container_id,
        grant,
        ipam: &ipam_results,
    };
    let record = |outcome: audit::Outcome, error: Option<&str>| {
        audit.record(&audit::Entry {
            time: AuditTrail::timestamp(clock()),
            command: request.command.as_str(),
            container: &request.container_id,
            network: &request.config.name,
            ifname: &request.ifname,
            plugin,
            sha256,
            intents: &intents,
            outcome,
            error,
        })
    };
    let checked = if is_read_only(request.command) && !intents.is_empty() {
        Err(CniError::new(
            ErrorCode::ContractViolation,
            format!(
                "{:?} must not change anything, but the plugin planned {} intents",
                request.command,
                intents.len()
            ),
        ))
    } else {
        let _t = timing::phase("validate");
        validate::validate_plan(&intents, &inv)
    };
    if let Some(slot) = dry_run {
        let report = PlanReport {
            plugin: plugin.to_string(),
            sha256: sha256.to_string(),
            grant: grant_origin(grant),
            intents,
            verdict: match &checked {
                Ok(()) => "accepted".to_string(),
                Err(e) => e.msg.clone(),
            },
            code: checked.as_ref().err().map(|e| e.code.as_u32()),
        };
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
        return Ok(None);
    }
    if let Err(e) = checked {
        record(audit::Outcome::Rejected, Some(&e.msg));
        return Err(e);
    }
    let outcome = apply_and_finish(&mut instance, ctx, &intents, &ipam_results);
    match &outcome {
        Ok(_) => record(audit::Outcome::Applied, None),
        Err(e) => record(audit::Outcome::Failed, Some(&e.msg)),
    }
    outcome
}

/// Apply a validated plan and let the guest build the result.
fn apply_and_finish(
    instance: &mut runtime::PluginInstance,
    ctx: &PlanContext<'_>,
    intents: &[Intent],
    ipam_results: &[CniResult],
) -> Result<Option<String>, CniError> {
    let PlanContext {
        request,
        kernel,
        guest_req,
        ..
    } = *ctx;
    let result = if request.command == Command::Add {
        let mut tx = Transaction::new(Arc::clone(kernel));
        let t_apply = timing::phase("apply");
        tx.apply_all(intents).map_err(|e| {
            CniError::new(ErrorCode::ApplyFailed, e.to_string())
                .with_details("every change made before the failure was undone")
        })?;
        drop(t_apply);
        let observed = {
            let _t = timing::phase("observe");
            observe(kernel, intents)
        };
        let result = {
            let _t = timing::phase("guest-finish");
            instance.finish(guest_req, &observed)?
        };
        let result = result.ok_or_else(|| {
            CniError::new(
                ErrorCode::ContractViolation,
                "plugin returned no result for ADD",
            )
        })?;
        check_result(&result, request, &observed, ipam_results)?;
        let rendered = {
            let _t = timing::phase("render");
            cni::render_result_string(&result, request.config.cni_version)?
        };
        tx.commit();
        Some(rendered)
    } else {
        if matches!(request.command, Command::Del | Command::Gc) {
            let _t = timing::phase("apply");
            let failures = apply_best_effort(&mut lock(kernel), intents);
            if !failures.is_empty() {
                let msgs: Vec<String> = failures.iter().map(|f| f.to_string()).collect();
                return Err(CniError::new(ErrorCode::ApplyFailed, msgs.join("; ")));
            }
        }
        let observed = observe(kernel, intents);
        instance.finish(guest_req, &observed)?;
        None
    };
    Ok(result)
}

/// Facts about every link the plan named, after applying it.
fn observe(kernel: &Mutex<Kernel>, intents: &[Intent]) -> Vec<ObservedLink> {
    let mut seen = Vec::new();
    let mut kernel = lock(kernel);
    for intent in intents {
        for link in intent.links() {
            if seen
                .iter()
                .any(|l: &ObservedLink| l.side == link.side && l.name == link.name)
            {
                continue;
            }
            if let Some(facts) = kernel.observe_link(link.side, &link.name) {
                seen.push(facts);
            }
        }
    }
    seen
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
