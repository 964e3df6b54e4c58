//! One plan-validate-apply round: instantiate the plugin, let it plan,
//! validate the plan, apply it in a transaction (ADD) or best-effort (DEL, GC),
//! let the guest build the result, check it, and audit the outcome.

use std::sync::{Arc, Mutex};

use cni::{self, CniError, CniResult, Command, ErrorCode, Request};
use kernel::applier::{apply_best_effort, Kernel, Transaction};
use plan::policy::Grant;
use plan::validate;
use plan::{Intent, ObservedLink};
use runtime::{GuestRequest, Limits, PluginRuntime};

use super::kernel_failure::KernelFailure;
use super::result_check::check_result;
use super::serve::grant_origin;
use super::services::{lock, KernelServices};
use crate::audit::{self, AuditTrail};
use crate::ipam::IpamDelegate;

/// Verbs that only look: their plans must be empty.
fn is_read_only(c: Command) -> bool {
    matches!(c, Command::Check | Command::Status)
}

/// Everything one plan-validate-apply round needs.
pub(super) struct PlanContext<'a> {
    pub(super) request: &'a Request,
    pub(super) limits: &'a Limits,
    pub(super) grant: &'a Grant,
    pub(super) runtime: &'a PluginRuntime,
    pub(super) component: &'a wasmtime::component::Component,
    pub(super) kernel: &'a Arc<Mutex<Kernel>>,
    pub(super) ipam: &'a Arc<IpamDelegate>,
    pub(super) plugin: &'a str,
    pub(super) sha256: &'a str,
    pub(super) audit: &'a AuditTrail,
    pub(super) guest_req: &'a GuestRequest,
    pub(super) has_container: bool,
    pub(super) clock: fn() -> std::time::SystemTime,
    /// `wasm-cni plan`: stop after validation and leave the plan here.
    pub(super) dry_run: Option<&'a Mutex<Option<PlanReport>>>,
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
    /// Every rule the plan breaks, not only the first (the verdict's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<validate::Refusal>,
}

pub(super) fn plan_and_apply(ctx: &PlanContext<'_>) -> Result<Option<String>, CniError> {
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
        ifname: request.ifname.clone(),
        network: request.config.name.clone(),
        grant: grant.clone(),
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
        validate::validate_plan(&intents, &inv).map_err(CniError::from)
    };
    if let Some(slot) = dry_run {
        let refusals = if is_read_only(request.command) {
            Vec::new()
        } else {
            validate::refusals(&intents, &inv, usize::MAX)
        };
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
            refusals,
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
        tx.apply_all(intents).map_err(KernelFailure::Apply)?;
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
        check_result(&result, request, &observed, ipam_results, intents)?;
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
                return Err(KernelFailure::BestEffort(failures).into());
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
