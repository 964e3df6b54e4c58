//! The process-wide engine: configuration, the epoch ticker that enforces
//! deadlines, per-component linkers, and instantiation with every limit set.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx};

use cni::{CniError, ErrorCode};

use crate::instance::Guest;
use crate::limits::GuestLimiter;
use crate::*;

/// How often the epoch ticker advances; deadlines are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The process-wide engine. Linkers are built per component, with only the
/// WASI interfaces it imports.
pub struct PluginRuntime {
    engine: Engine,
}

/// Which host interface a component's world imports.
#[derive(Clone, Copy)]
pub(crate) enum World {
    Plugin,
    Ipam,
}

pub(crate) fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(512 * 1024);
    // Every proposal the components do not use is off: less code a hostile
    // guest can reach. GC first: wasmtime 47.0.0-48.0.8 built without the `gc`
    // feature (ours) aborts the whole process when a guest uses call_indirect,
    // ref.test or ref.cast on a declared subtype (GHSA-rc4p-x33f-vpr2; fixed in
    // 48.0.9, which wasmtime-wasi 48.0.8 does not allow). With GC off such a
    // component fails to compile instead. (Threads, GHSA-2674-w29h-wqvj, need the
    // `threads` feature to be switched on at all; it is not built in.)
    config.wasm_gc(false);
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
    pub(crate) fn linker(
        &self,
        component: &Component,
        world: World,
    ) -> Result<Linker<GuestState>, CniError> {
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
    pub(crate) fn guest(
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
            log_left: limits.log_bytes,
            log_spent: false,
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
            Err(e) => Err(guest.classify(e, "instantiate").into()),
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
            Err(e) => Err(guest.classify(e, "instantiate").into()),
        }
    }
}

/// wasmtime refuses an instantiation past the store's instance, table or
/// memory counts with a "resource limit exceeded" error, and a WASI call past
/// `ResourceTable::set_max_capacity` with "resource table has no free keys".
pub(crate) fn is_instance_limit(e: &wasmtime::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("resource limit exceeded") || text.contains("resource table has no free keys")
}

pub(crate) fn internal(msg: String) -> CniError {
    CniError::new(ErrorCode::Internal, msg)
}

pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
    let ticks = deadline.as_millis() / EPOCH_TICK.as_millis();
    u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
}

/// The tokio runtime wasmtime-wasi's synchronous bindings run their (already
/// complete, since file operations block the calling thread) futures on while
/// an IPAM plugin works on its state directory. Without one entered,
/// wasmtime-wasi builds its own with a worker per core and a blocking pool:
/// three thread starts per invocation for nothing. One worker keeps timers
/// (a guest's sleep) working. None if it cannot be built: then wasmtime-wasi's.
pub(crate) fn wasi_runtime() -> Option<&'static tokio::runtime::Runtime> {
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
pub(crate) fn start_epoch_ticker(engine: &Engine) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A component whose core module declares a non-final function type: what a
    /// guest needs to reach GHSA-rc4p-x33f-vpr2. It must not compile.
    pub(crate) fn subtype_component() -> Vec<u8> {
        // (module (type (sub (func))))
        let module: &[u8] = b"\0asm\x01\0\0\0\x01\x06\x01\x50\x00\x60\x00\x00";
        let mut component = b"\0asm\x0d\x00\x01\x00".to_vec();
        component.push(0x01); // core module section
        component.push(u8::try_from(module.len()).expect("a short module"));
        component.extend_from_slice(module);
        component
    }

    #[test]
    fn gc_types_do_not_compile() {
        let engine = Engine::new(&engine_config()).expect("engine");
        let e = Component::new(&engine, subtype_component()).expect_err("gc is off");
        assert!(format!("{e:#}").contains("gc"), "{e:#}");
    }
}
