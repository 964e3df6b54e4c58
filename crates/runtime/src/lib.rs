//! The WebAssembly side of the host: one wasmtime engine per process, components
//! loaded from the precompiled cache, and one store per invocation with every limit
//! set explicitly and zero ambient authority.

mod bindings;
mod cache;
mod convert;
mod ipam_bindings;
mod limits;
mod wasi_link;

pub use cache::{ComponentCache, LoadedFrom};
pub use limits::Limits;

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use cni::{CniError, CniResult, ErrorCode};
use limits::GuestLimiter;
use plan::{Intent, MasqRuleFacts, ObservedLink, ObservedRoute, Side};

/// How often the epoch ticker advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

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
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The process-wide engine. Linkers are built per component, with only the
/// WASI interfaces it imports.
pub struct PluginRuntime {
    engine: Engine,
}

/// Which host interface a component's world imports.
#[derive(Clone, Copy)]
enum World {
    Plugin,
    Ipam,
}

fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(512 * 1024);
    config
}

impl PluginRuntime {
    /// The engine; cheap (no compilation happens here).
    pub fn new() -> Result<Self, CniError> {
        let _t = timing::phase("engine:new");
        let engine = Engine::new(&engine_config())
            .map_err(|e| internal(format!("cannot create the wasm engine: {e}")))?;
        start_epoch_ticker(&engine);
        Ok(PluginRuntime { engine })
    }

    /// A linker for `component`: the WASI interfaces it imports and the host
    /// interface of its world.
    fn linker(&self, component: &Component, world: World) -> Result<Linker<GuestState>, CniError> {
        let _t = timing::phase(match world {
            World::Plugin => "instantiate:linker",
            World::Ipam => "ipam:linker",
        });
        let mut linker = Linker::new(&self.engine);
        let wasi = wasi_link::imported_wasi(&self.engine, component);
        wasi_link::add_to_linker(&mut linker, &wasi, |state: &mut GuestState| {
            state
                .deadline_at
                .saturating_duration_since(std::time::Instant::now())
        })
        .map_err(|e| internal(format!("cannot link WASI: {e}")))?;
        match world {
            World::Plugin => bindings::add_host_to_linker(&mut linker)
                .map_err(|e| internal(format!("cannot link the host interface: {e}")))?,
            World::Ipam => ipam_bindings::add_host_to_linker(&mut linker)
                .map_err(|e| internal(format!("cannot link the ipam-host interface: {e}")))?,
        }
        Ok(linker)
    }

    /// The engine, for compiling and loading components.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A fresh store: WASI with no authority beyond `state_dir` (IPAM plugins
    /// only), capped output, every limit set.
    fn guest(
        &self,
        services: Box<dyn HostServices>,
        limits: &Limits,
        state_dir: Option<&Path>,
    ) -> Result<Guest, CniError> {
        let stdout = MemoryOutputPipe::new(limits.output_bytes);
        let stderr = MemoryOutputPipe::new(limits.output_bytes);
        // Zero ambient authority: no preopens (but an IPAM plugin's own state
        // directory), no environment, no arguments, no sockets, no name lookups,
        // no inherited stdio; output goes to capped buffers.
        let mut builder = WasiCtx::builder();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(4096)
            // Our embedding is synchronous: do file operations on this thread
            // instead of handing each one to a blocking pool and back (a futex
            // round trip per call; it dominated host-local ADDs on big networks).
            .allow_blocking_current_thread(true);
        if let Some(dir) = state_dir {
            builder
                .preopened_dir(dir, "/", FsPerms::ReadWrite)
                .map_err(|e| {
                    CniError::new(
                        ErrorCode::IoFailure,
                        format!("cannot open IPAM state directory {}: {e}", dir.display()),
                    )
                })?;
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.resources);
        let state = GuestState {
            wasi: builder.build(),
            table,
            limiter: GuestLimiter::new(limits),
            services,
            contract_error: None,
            host_errors: Vec::new(),
            deadline_at: std::time::Instant::now() + limits.deadline,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(limits.hostcall_bytes);
        store.set_epoch_deadline(deadline_ticks(limits.deadline));
        store.epoch_deadline_trap();
        Ok(Guest {
            store,
            stdout,
            stderr,
            limits: limits.clone(),
        })
    }

    /// Instantiate a main plugin with fresh limits and services.
    pub fn instantiate(
        &self,
        component: &Component,
        services: Box<dyn HostServices>,
        limits: &Limits,
    ) -> Result<PluginInstance, CniError> {
        let linker = self.linker(component, World::Plugin)?;
        let mut guest = self.guest(services, limits, None)?;
        match bindings::CniPlugin::instantiate(&mut guest.store, component, &linker) {
            Ok(plugin) => Ok(PluginInstance { guest, plugin }),
            Err(e) => Err(guest.classify(e, "instantiate")),
        }
    }

    /// Instantiate an IPAM plugin whose only state is `state_dir`, preopened as
    /// `/`. The caller holds the directory's lock.
    pub fn instantiate_ipam(
        &self,
        component: &Component,
        services: Box<dyn HostServices>,
        limits: &Limits,
        state_dir: &Path,
    ) -> Result<IpamInstance, CniError> {
        let linker = self.linker(component, World::Ipam)?;
        let mut guest = self.guest(services, limits, Some(state_dir))?;
        match ipam_bindings::IpamPlugin::instantiate(&mut guest.store, component, &linker) {
            Ok(ipam) => Ok(IpamInstance { guest, ipam }),
            Err(e) => Err(guest.classify(e, "instantiate")),
        }
    }
}

/// wasmtime refuses an instantiation past the store's instance, table or
/// memory counts with a "resource limit exceeded" error, and a WASI call past
/// `ResourceTable::set_max_capacity` with "resource table has no free keys".
fn is_instance_limit(e: &wasmtime::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("resource limit exceeded") || text.contains("resource table has no free keys")
}

fn internal(msg: String) -> CniError {
    CniError::new(ErrorCode::Internal, msg)
}

fn deadline_ticks(deadline: Duration) -> u64 {
    let ticks = deadline.as_millis() / EPOCH_TICK.as_millis();
    u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
}

/// The tokio runtime wasmtime-wasi's synchronous bindings run their (already
/// complete, since file operations block the calling thread) futures on while
/// an IPAM plugin works on its state directory. Without one entered,
/// wasmtime-wasi builds its own with a worker per core and a blocking pool:
/// three thread starts per invocation for nothing. One worker keeps timers
/// (a guest's sleep) working. None if it cannot be built: then wasmtime-wasi's.
fn wasi_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .max_blocking_threads(1)
                .enable_time()
                .thread_name("wasi-io")
                .build()
                .map_err(|e| tracing::debug!("no WASI runtime of our own: {e}"))
                .ok()
        })
        .as_ref()
}

/// One background thread per process advances the engine's epoch; a store's
/// deadline is a number of ticks. Epochs cost next to nothing in guest code, unlike
/// fuel, and wasmtime documents them as safe against malicious guests.
fn start_epoch_ticker(engine: &Engine) {
    static TICKER: OnceLock<()> = OnceLock::new();
    TICKER.get_or_init(|| {
        let engine = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start the epoch ticker: {e}"));
    });
}

/// A store with its captured output and limits: what every guest instance has.
struct Guest {
    store: Store<GuestState>,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    limits: Limits,
}

/// A main-plugin instance serving one request.
pub struct PluginInstance {
    guest: Guest,
    plugin: bindings::CniPlugin,
}

impl PluginInstance {
    /// Phase 1: ask the guest for its plan.
    pub fn plan(&mut self, req: &GuestRequest) -> Result<Vec<Intent>, CniError> {
        let guest = &mut self.guest;
        let wit_req = convert::request_to_wit(req);
        let out = self
            .plugin
            .wasm_cni_plugin_plugin()
            .call_plan(&mut guest.store, &wit_req);
        let plan = match out {
            Ok(Ok(plan)) => plan,
            Ok(Err(e)) => return Err(guest.guest_error(e)),
            Err(e) => return Err(guest.classify(e, "plan")),
        };
        guest.check_contract()?;
        if plan.intents.len() > guest.limits.max_intents {
            return Err(CniError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "plugin returned {} intents, more than the limit of {}",
                    plan.intents.len(),
                    guest.limits.max_intents
                ),
            ));
        }
        plan.intents
            .into_iter()
            .enumerate()
            .map(|(i, intent)| {
                convert::intent_from_wit(intent).map_err(|msg| {
                    CniError::new(
                        ErrorCode::ContractViolation,
                        format!("intent #{i} is malformed: {msg}"),
                    )
                })
            })
            .collect()
    }

    /// Phase 2: hand back what was observed after applying, get the result.
    pub fn finish(
        &mut self,
        req: &GuestRequest,
        applied: &[ObservedLink],
    ) -> Result<Option<CniResult>, CniError> {
        let guest = &mut self.guest;
        let wit_req = convert::request_to_wit(req);
        let facts: Vec<_> = applied.iter().map(convert::link_to_wit).collect();
        let out =
            self.plugin
                .wasm_cni_plugin_plugin()
                .call_finish(&mut guest.store, &wit_req, &facts);
        let result = match out {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => return Err(guest.guest_error(e)),
            Err(e) => return Err(guest.classify(e, "finish")),
        };
        guest.check_contract()?;
        guest.result_from_wit(result)
    }

    /// Everything the guest wrote to stdout and stderr (capped).
    pub fn captured_output(&self) -> String {
        self.guest.captured_output()
    }
}

/// An IPAM-plugin instance serving one request.
pub struct IpamInstance {
    guest: Guest,
    ipam: ipam_bindings::IpamPlugin,
}

impl IpamInstance {
    /// Serve one IPAM request.
    pub fn run(&mut self, req: &GuestRequest) -> Result<Option<CniResult>, CniError> {
        let guest = &mut self.guest;
        let wit_req = convert::request_to_wit(req);
        let _tokio = wasi_runtime().map(tokio::runtime::Runtime::enter);
        let out = self
            .ipam
            .wasm_cni_plugin_ipam()
            .call_run(&mut guest.store, &wit_req);
        let result = match out {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => return Err(guest.guest_error(e)),
            Err(e) => return Err(guest.classify(e, "run")),
        };
        guest.check_contract()?;
        guest.result_from_wit(result)
    }
}

impl Guest {
    fn result_from_wit(
        &self,
        result: Option<bindings::CniResult>,
    ) -> Result<Option<CniResult>, CniError> {
        result
            .map(convert::result_from_wit)
            .transpose()
            .map_err(|msg| {
                CniError::new(
                    ErrorCode::ContractViolation,
                    format!("plugin returned a malformed result: {msg}"),
                )
            })
    }

    /// Everything the guest wrote to stdout and stderr (capped).
    fn captured_output(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.stderr.contents()).into_owned();
        let stdout = self.stdout.contents();
        if !stdout.is_empty() {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&String::from_utf8_lossy(&stdout));
        }
        out
    }

    fn check_contract(&mut self) -> Result<(), CniError> {
        match self.store.data_mut().contract_error.take() {
            Some(msg) => Err(CniError::new(ErrorCode::ContractViolation, msg)),
            None => Ok(()),
        }
    }

    fn guest_error(&self, e: bindings::PluginError) -> CniError {
        // The host's own range is not the guest's to use: a guest claiming "policy
        // rejected" or "out of memory" would mislead the operator.
        let passed_on = self
            .store
            .data()
            .host_errors
            .iter()
            .any(|(code, msg)| *code == e.code && *msg == e.msg);
        let code = if (100..200).contains(&e.code) && !passed_on {
            ErrorCode::ContractViolation
        } else {
            ErrorCode::from_u32(e.code)
        };
        let mut details = e.details;
        let output = self.captured_output();
        if !output.is_empty() {
            if !details.is_empty() {
                details.push('\n');
            }
            details.push_str(&output);
        }
        CniError::new(code, e.msg).with_details(details)
    }

    /// Turn a wasmtime error into the CNI error that names the limit or the trap.
    fn classify(&mut self, e: wasmtime::Error, phase: &str) -> CniError {
        let output = self.captured_output();
        let (memory_denied, tables_denied) = {
            let l = &self.store.data().limiter;
            (l.memory_denied, l.tables_denied)
        };
        let (code, msg) = if let Some(msg) = self.store.data_mut().contract_error.take() {
            (ErrorCode::ContractViolation, msg)
        } else if memory_denied {
            (
                ErrorCode::GuestOutOfMemory,
                format!(
                    "plugin ran out of memory: it asked for more than {} bytes",
                    self.limits.memory_bytes
                ),
            )
        } else if tables_denied || is_instance_limit(&e) {
            (
                ErrorCode::TableLimit,
                format!(
                    "plugin exceeded the table ({} elements), instance ({}) or handle ({}) limit during {phase}",
                    self.limits.table_elements, self.limits.instances, self.limits.resources
                ),
            )
        } else if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            (
                ErrorCode::GuestTimeout,
                format!(
                    "plugin ran out of time: stopped after the {} ms deadline",
                    self.limits.deadline.as_millis()
                ),
            )
        } else if format!("{e:#}").contains("fuel allocated for hostcalls has been exhausted") {
            (
                ErrorCode::HostcallLimit,
                format!(
                    "plugin passed more than {} bytes to the host in one call",
                    self.limits.hostcall_bytes
                ),
            )
        } else if self.stdout.contents().len() >= self.limits.output_bytes
            || self.stderr.contents().len() >= self.limits.output_bytes
        {
            (
                ErrorCode::OutputLimit,
                format!(
                    "plugin wrote more than {} bytes of output",
                    self.limits.output_bytes
                ),
            )
        } else if phase == "instantiate" && e.downcast_ref::<wasmtime::Trap>().is_none() {
            (
                ErrorCode::ContractViolation,
                format!("component does not fit the wasm-cni:plugin world: {e:#}"),
            )
        } else {
            (
                ErrorCode::GuestTrapped,
                format!("plugin trapped during {phase}: {e:#}"),
            )
        };
        CniError::new(code, msg).with_details(output)
    }
}

impl PluginRuntime {
    /// Whether a component is an IPAM plugin (exports the `ipam` interface).
    pub fn is_ipam_component(&self, component: &Component) -> bool {
        self.exported_interfaces(component)
            .iter()
            .any(|e| e.starts_with("wasm-cni:plugin/ipam@"))
    }

    /// The interfaces a component exports (e.g. `wasm-cni:plugin/plugin@0.1.0`).
    pub fn exported_interfaces(&self, component: &Component) -> Vec<String> {
        component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }
}
