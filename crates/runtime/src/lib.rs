//! The WebAssembly side of the host: one wasmtime engine per process, components
//! loaded from the precompiled cache, and one store per invocation with every limit
//! set explicitly and zero ambient authority.

mod bindings;
mod cache;
mod convert;
mod engine;
mod failure;
mod instance;
mod ipam_bindings;
mod limits;
mod wasi_link;

pub use cache::{ComponentCache, LoadedFrom};
pub use engine::PluginRuntime;
pub use failure::{FailureKind, GuestFailure};
pub use instance::{IpamInstance, PluginInstance};
pub use limits::Limits;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use cni::{CniError, CniResult, ErrorCode};
use limits::GuestLimiter;
use plan::{MasqRuleFacts, ObservedLink, ObservedRoute, Side};

/// The verbs a guest serves (VERSION never reaches a guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestCommand {
    Add,
    Del,
    Check,
    Gc,
    Status,
}

/// One request as a guest receives it.
#[derive(Debug, Clone)]
pub struct GuestRequest {
    pub command: GuestCommand,
    pub container_id: String,
    pub netns_path: Option<String>,
    pub ifname: String,
    pub cni_args: Vec<(String, String)>,
    pub config: String,
    pub prev_result: Option<CniResult>,
    pub valid_attachments: Option<Vec<(String, String)>>,
}

/// Severity of a guest log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestLogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// What the host offers a main plugin while it plans: read-only observations and
/// IPAM delegation. The runtime knows nothing of netlink; `invoke` provides this.
pub trait HostServices: Send {
    /// Facts about one link, or none.
    fn link(&mut self, side: Side, name: &str) -> Option<ObservedLink>;
    /// The main-table routes of one namespace.
    fn routes(&mut self, side: Side) -> Vec<ObservedRoute>;
    /// A free `prefix` + 8 random hex digits name in the host namespace.
    fn fresh_link_name(&mut self, prefix: &str) -> String;
    /// The masquerade rules held for one network.
    fn masquerade_rules(&mut self, network: &str) -> Vec<MasqRuleFacts>;
    /// Run the configured IPAM plugin for `command`.
    fn ipam(&mut self, command: GuestCommand) -> Result<Option<CniResult>, CniError>;
    /// A guest log line.
    fn log(&mut self, level: GuestLogLevel, message: &str);
    /// The text of the resolv.conf file `path` (an IPAM plugin's
    /// `resolvConf`); the host decides which files are open to plugins.
    fn resolv_conf(&mut self, path: &str) -> Result<String, String> {
        Err(format!("{path:?}: no resolv.conf is open to this plugin"))
    }
}

/// Host services for guests that may not observe anything (IPAM plugins, tests).
pub struct NoServices;

impl HostServices for NoServices {
    fn link(&mut self, _: Side, _: &str) -> Option<ObservedLink> {
        None
    }
    fn routes(&mut self, _: Side) -> Vec<ObservedRoute> {
        Vec::new()
    }
    fn fresh_link_name(&mut self, prefix: &str) -> String {
        format!("{prefix}00000000")
    }
    fn masquerade_rules(&mut self, _: &str) -> Vec<MasqRuleFacts> {
        Vec::new()
    }
    fn ipam(&mut self, _: GuestCommand) -> Result<Option<CniResult>, CniError> {
        Err(CniError::new(
            ErrorCode::InvalidNetworkConfig,
            "this plugin may not delegate to IPAM",
        ))
    }
    fn log(&mut self, level: GuestLogLevel, message: &str) {
        tracing::info!(?level, "guest: {message}");
    }
}

/// The per-store state: WASI with no authority, the limiter and the host services.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: GuestLimiter,
    services: Box<dyn HostServices>,
    /// Set when a host call received a value the contract forbids.
    contract_error: Option<String>,
    /// Errors the host itself returned to the guest (from IPAM delegation): a
    /// guest passing one of these on may use the host's own codes.
    host_errors: Vec<(u32, String)>,
    /// When the guest's deadline passes: no clock subscription waits beyond it.
    deadline_at: std::time::Instant,
    /// Bytes of log lines the guest may still send (`limits.logBytes` for the
    /// whole instance, whatever its calls): a guest looping on `log` once
    /// wrote 354 MiB within one deadline.
    log_left: usize,
    /// Whether a line was dropped for the budget (and the warning sent).
    log_spent: bool,
}

impl GuestState {
    /// A guest's log line, within its budget; the first line past it is
    /// replaced by one warning, the rest are dropped.
    fn guest_log(&mut self, level: GuestLogLevel, message: &str) {
        if !self.log_spent && message.len() <= self.log_left {
            self.log_left -= message.len();
            self.services.log(level, message);
        } else if !self.log_spent {
            self.log_spent = true;
            self.services.log(
                GuestLogLevel::Warn,
                "the plugin's log budget (limits.logBytes) is spent: its further log lines are dropped",
            );
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
