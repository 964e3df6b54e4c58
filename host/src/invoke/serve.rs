//! From a request to a plan: the component and its grant, the kernel doors,
//! the engine, the IPAM delegate, then the pipeline; teardown in the order that
//! keeps the runtime from waiting.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cni::{self, CniError, Command, ErrorCode, Request};
use plan::policy::{Grant, Policy};
use runtime::{ComponentCache, GuestCommand, GuestRequest, PluginRuntime};

use super::pipeline::{plan_and_apply, PlanContext, PlanReport};
use super::select::select_component;
use super::world::{self, World};
use crate::audit::AuditTrail;
use crate::ipam::IpamDelegate;
use crate::plugins::PluginStore;
use crate::prefetch::Prefetch;
use crate::settings::Settings;

pub(super) fn guest_command(c: Command) -> Result<GuestCommand, CniError> {
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

pub(super) fn guest_request(request: &Request) -> Result<GuestRequest, CniError> {
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

pub(super) fn grant_origin(grant: &Grant) -> String {
    match (
        grant.intents.is_empty(),
        plan::policy::builtin_grant(grant.matcher.name.as_deref().unwrap_or("")),
    ) {
        (true, _) => "none".to_string(),
        (false, Some(b)) if b == *grant => "built-in".to_string(),
        (false, _) => "policy file".to_string(),
    }
}

pub(super) fn serve(
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
    kernel.ownership = kernel::applier::Ownership {
        network: request.config.name.clone(),
        adopt: grant.adopt.clone(),
    };
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
    .with_prefetch(Arc::clone(&prefetch))
    .with_policy(policy.clone());
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
        crate::ipam::check_ipam_grant(policy.as_ref(), &source)?;
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
    if request.command == Command::Gc && dry_run.is_none() {
        guard_gc(request, &grant, &ipam, &kernel)?;
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

/// GC releases whatever of a network's state the runtime did not list, so it
/// must be the network's own plugin that asks: a tenant's configuration that
/// reused another network's name once wiped that network's reservations and
/// masquerade rules. A network whose addresses (IPAM reservations, masquerade
/// sources) lie outside the plugin's address space is another plugin's: GC is
/// refused and nothing is released. (Tenants with disjoint address spaces are
/// told apart this way; see docs/security.md.)
fn guard_gc(
    request: &Request,
    grant: &plan::policy::Grant,
    ipam: &IpamDelegate,
    kernel: &Mutex<kernel::applier::Kernel>,
) -> Result<(), CniError> {
    let space = grant.address_space();
    let inside = |ip: &std::net::IpAddr| space.iter().any(|s| s.contains(ip));
    let reserved = ipam.held_addresses().into_iter().find(|ip| !inside(ip));
    let masqueraded = || {
        super::services::lock(kernel)
            .masquerade_rules(&request.config.name)
            .into_iter()
            .map(|r| r.source.addr())
            .find(|ip| !inside(ip))
    };
    let Some(foreign) = reserved.or_else(masqueraded) else {
        return Ok(());
    };
    Err(CniError::new(
        ErrorCode::PolicyRejected,
        format!(
            "network {:?} holds {foreign}, outside the address space open to this plugin: \
             it is another plugin's network, and GC was refused",
            request.config.name
        ),
    )
    .with_details(
        "nothing was released; GC a network with the plugin (and configuration) that made it",
    ))
}
