//! One CNI request served end to end against a [`Store`] and the host's
//! services, in plain Rust types so that every verb is tested natively
//! (wit-bindgen's imports cannot be called outside a component).
//!
//! Every verb loads and validates the whole configuration first, as the
//! reference does (so DEL and CHECK also fail on a broken config).

use crate::allocator::{self, AddError, AllocError, Owner, ValidAttachment};
use crate::config::{self, Route};
use crate::store::{Store, StoreError};
use cni::{CniError, ErrorCode};

/// The CNI verb (VERSION never reaches a guest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Reserve one address per range set.
    Add,
    /// Release the attachment's addresses.
    Del,
    /// Check that the attachment holds an address.
    Check,
    /// Release addresses of attachments that are no longer valid.
    Gc,
    /// Report whether an ADD could succeed.
    Status,
}

/// One request, as the host parsed it.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The verb.
    pub verb: Verb,
    /// `CNI_CONTAINERID` (empty for GC and STATUS).
    pub container_id: &'a str,
    /// `CNI_IFNAME` (empty for GC and STATUS).
    pub ifname: &'a str,
    /// `CNI_ARGS` as key/value pairs.
    pub cni_args: &'a [(String, String)],
    /// The network configuration JSON.
    pub config: &'a str,
    /// GC only: the attachments still valid; none when the runtime sent no list.
    pub valid_attachments: Option<&'a [ValidAttachment]>,
}

/// DNS settings read from `ipam.resolvConf`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dns {
    /// `nameserver` lines.
    pub nameservers: Vec<String>,
    /// The `domain` line.
    pub domain: Option<String>,
    /// `search` entries.
    pub search: Vec<String>,
    /// `options` entries.
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set (the reference then omits `dns`).
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.as_deref().unwrap_or("").is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// One `ips[]` entry of the abbreviated IPAM result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpConfig {
    /// `<ip>/<prefix>`.
    pub address: String,
    /// The range's gateway.
    pub gateway: String,
}

/// The abbreviated IPAM result of ADD: no interfaces, no interface indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpamResult {
    /// One address per range set, in range-set order.
    pub ips: Vec<IpConfig>,
    /// `ipam.routes`.
    pub routes: Vec<Route>,
    /// From `ipam.resolvConf`, when it names anything.
    pub dns: Option<Dns>,
}

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Routine detail.
    Debug,
    /// Something changed on disk.
    Info,
    /// Something odd that did not stop the request.
    Warn,
}

/// What the host offers besides the store.
pub trait HostServices {
    /// Writes a line to the host's log.
    fn log(&self, level: LogLevel, message: &str);
    /// Reads a resolv.conf-style file; the error is the host's message.
    fn read_resolv_conf(&self, path: &str) -> Result<Dns, String>;
}

/// Serves `call`. ADD returns the result; the other verbs return none.
pub fn serve<S: Store, H: HostServices>(
    call: &Call<'_>,
    store: &mut S,
    host: &H,
) -> Result<Option<IpamResult>, CniError> {
    let cfg = config::load(call.config, call.cni_args)?;
    let owner = Owner {
        container_id: call.container_id,
        ifname: call.ifname,
    };
    match call.verb {
        Verb::Add => add(cfg, owner, store, host).map(Some),
        Verb::Del => del(owner, cfg.range_sets.len(), store, host).map(|()| None),
        Verb::Check => check(owner, cfg.range_sets.len(), store).map(|()| None),
        Verb::Gc => gc(call.valid_attachments, store, host).map(|()| None),
        Verb::Status => status(&cfg, store).map(|()| None),
    }
}

fn add<S: Store, H: HostServices>(
    cfg: config::IpamConfig,
    owner: Owner<'_>,
    store: &mut S,
    host: &H,
) -> Result<IpamResult, CniError> {
    // Read before allocating, as the reference does: a bad path changes nothing.
    let dns = match &cfg.resolv_conf {
        Some(path) => {
            let dns = host.read_resolv_conf(path).map_err(|e| {
                CniError::new(ErrorCode::Internal, e)
                    .with_details(format!("reading ipam.resolvConf {path:?}"))
            })?;
            (!dns.is_empty()).then_some(dns)
        }
        None => None,
    };
    let mut warn = |m: String| host.log(LogLevel::Warn, &m);
    let allocations =
        allocator::allocate(store, &cfg.range_sets, &cfg.requested_ips, owner, &mut warn)
            .map_err(add_failure)?;
    for a in &allocations {
        host.log(
            LogLevel::Info,
            &format!(
                "reserved {} for {}/{} from range set {}",
                a.address, owner.container_id, owner.ifname, a.range_set
            ),
        );
    }
    Ok(IpamResult {
        ips: allocations
            .iter()
            .map(|a| IpConfig {
                address: format!("{}/{}", a.address, a.prefix),
                gateway: a.gateway.to_string(),
            })
            .collect(),
        routes: cfg.routes,
        dns,
    })
}

fn add_failure(e: AddError) -> CniError {
    let (code, details) = match &e {
        AddError::Range { source, .. } => match source {
            AllocError::Store(s) => (store_code(s), String::new()),
            AllocError::Exhausted { .. } => (
                ErrorCode::Internal,
                "every address of the range set is reserved: release stale reservations (DEL, GC) or widen the ranges".to_string(),
            ),
            AllocError::Duplicate { .. } => (
                ErrorCode::Internal,
                "this attachment already holds an address of the range set: DEL it before adding it again".to_string(),
            ),
            AllocError::RequestedIsGateway(_) | AllocError::RequestedUnavailable { .. } => {
                (ErrorCode::Internal, String::new())
            }
        },
        AddError::Unfulfilled(_) => (
            ErrorCode::Internal,
            "each requested IP must lie between rangeStart and rangeEnd of a range set, at most one per set".to_string(),
        ),
    };
    CniError::new(code, e.to_string()).with_details(details)
}

fn store_code(e: &StoreError) -> ErrorCode {
    if e.is_transient() {
        ErrorCode::TryAgainLater
    } else {
        ErrorCode::Internal
    }
}

fn store_failure(e: StoreError) -> CniError {
    CniError::new(store_code(&e), e.to_string())
}

/// Errors of a best-effort walk, joined like the reference joins DEL errors.
fn walk_failure(errors: &[StoreError]) -> CniError {
    let code = if errors.iter().all(StoreError::is_transient) {
        ErrorCode::TryAgainLater
    } else {
        ErrorCode::Internal
    };
    let msg: Vec<String> = errors.iter().map(ToString::to_string).collect();
    CniError::new(code, msg.join("; "))
}

fn del<S: Store, H: HostServices>(
    owner: Owner<'_>,
    sets: usize,
    store: &mut S,
    host: &H,
) -> Result<(), CniError> {
    let report = allocator::release(store, owner, sets).map_err(store_failure)?;
    for entry in &report.released {
        host.log(
            LogLevel::Info,
            &format!(
                "released {} of {}/{}",
                entry.name, owner.container_id, owner.ifname
            ),
        );
    }
    if report.errors.is_empty() {
        Ok(())
    } else {
        Err(walk_failure(&report.errors))
    }
}

fn check<S: Store>(owner: Owner<'_>, sets: usize, store: &S) -> Result<(), CniError> {
    if allocator::find(store, owner, sets).map_err(store_failure)? {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::Internal,
            format!(
                "host-local: Failed to find address added by container {}",
                owner.container_id
            ),
        ))
    }
}

fn gc<S: Store, H: HostServices>(
    valid: Option<&[ValidAttachment]>,
    store: &mut S,
    host: &H,
) -> Result<(), CniError> {
    let Some(valid) = valid else {
        // cnitool sends GC without any list: nothing is known to be stale.
        host.log(
            LogLevel::Debug,
            "GC without valid-attachments: nothing released",
        );
        return Ok(());
    };
    let report = allocator::collect_garbage(store, valid).map_err(store_failure)?;
    for (entry, owner) in &report.released {
        host.log(
            LogLevel::Info,
            &format!("GC released {} of {:?}", entry.name, owner),
        );
    }
    if report.errors.is_empty() {
        Ok(())
    } else {
        Err(walk_failure(&report.errors))
    }
}

fn status<S: Store>(cfg: &config::IpamConfig, store: &S) -> Result<(), CniError> {
    match allocator::first_exhausted(store, &cfg.range_sets) {
        Err(e) => Err(CniError::new(
            ErrorCode::LimitedConnectivity,
            format!("host-local: the IP reservation store is unusable: {e}"),
        )
        .with_details("check the network's directory under ipam.dataDir")),
        Ok(Some((i, set))) => Err(CniError::new(
            ErrorCode::PluginNotAvailable,
            format!("no IP addresses available in range set: {set}"),
        )
        .with_details(format!(
            "range set {i} is fully reserved: release stale reservations (DEL, GC) or widen the ranges"
        ))),
        Ok(None) => Ok(()),
    }
}

#[cfg(test)]
mod tests;
