//! IPAM delegation: the main plugin asks the host to run its `ipam.type`. A wasm
//! component of that name runs in-process, with its network's state directory as
//! its only capability and the directory's lock held by the host; otherwise the
//! native binary of that name is exec'd from `CNI_PATH` exactly as the reference
//! plugins delegate, so `static`, `dhcp` or third-party IPAM keep working.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::stat::Mode;
use wasmtime::component::Component;

mod native;
mod services;
mod store;

use services::IpamServices;
use store::{lock_dir, ScratchCopy};

use crate::beneath;
use crate::plugins::PluginStore;
use crate::prefetch::Prefetch;
use crate::settings::Settings;
use cni::{self, CniError, CniResult, Command, ErrorCode, Request};
use runtime::{ComponentCache, GuestCommand, GuestRequest, NoServices, PluginRuntime};

/// host-local's default `dataDir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// How many native delegations deep this invocation is, passed on to each
/// delegate: a delegate that leads back to wasm-cni (a wrapper script, say)
/// meets the bound instead of forking without end.
pub const DELEGATION_DEPTH_ENV: &str = "WASM_CNI_DELEGATION_DEPTH";

/// The deepest chain of native IPAM delegates wasm-cni takes part in.
pub const MAX_DELEGATION_DEPTH: u32 = 4;

/// Runs the configured IPAM plugin on behalf of one invocation.
pub struct IpamDelegate {
    request: Arc<Request>,
    guest_request: GuestRequest,
    settings: Arc<Settings>,
    env: BTreeMap<String, String>,
    runtime: Arc<PluginRuntime>,
    added: AtomicBool,
    /// Every result IPAM returned in this invocation: the validator allows
    /// exactly these addresses.
    results: Mutex<Vec<CniResult>>,
    /// `wasm-cni plan`: run IPAM components on a scratch copy of their state, and
    /// never exec a native IPAM binary (it would allocate for real).
    dry_run: bool,
    /// Where the IPAM component may already be loaded.
    prefetch: Option<Arc<Prefetch>>,
    /// The policy the invocation loaded (outer `None`: not given, read the
    /// file when an installed IPAM component needs its grant).
    policy: Option<Option<plan::policy::Policy>>,
}

impl IpamDelegate {
    /// A delegate for `request`; `env` is the process environment handed to a
    /// native IPAM binary.
    pub fn new(
        request: Arc<Request>,
        guest_request: GuestRequest,
        settings: Arc<Settings>,
        env: BTreeMap<String, String>,
        runtime: Arc<PluginRuntime>,
    ) -> Self {
        IpamDelegate {
            request,
            guest_request,
            settings,
            env,
            runtime,
            added: AtomicBool::new(false),
            results: Mutex::new(Vec::new()),
            dry_run: false,
            prefetch: None,
            policy: None,
        }
    }

    /// The same delegate, with the policy the invocation already loaded.
    pub fn with_policy(mut self, policy: Option<plan::policy::Policy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The same delegate, taking its component from `prefetch` when loaded there.
    pub fn with_prefetch(mut self, prefetch: Arc<Prefetch>) -> Self {
        self.prefetch = Some(prefetch);
        self
    }

    /// The same delegate, for a dry run.
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// Whether an IPAM ADD succeeded during this invocation (so a failed ADD must
    /// release it).
    pub fn added(&self) -> bool {
        self.added.load(Ordering::SeqCst)
    }

    /// What IPAM returned so far in this invocation.
    pub fn results(&self) -> Vec<CniResult> {
        self.results.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Run IPAM `command`.
    pub fn run(&self, command: GuestCommand) -> Result<Option<CniResult>, CniError> {
        let _t = timing::phase("ipam");
        let Some(ipam_type) = self.request.config.ipam_type.as_deref() else {
            return Err(CniError::new(
                ErrorCode::InvalidNetworkConfig,
                "no IPAM plugin configured (ipam.type is empty)",
            ));
        };
        let store = PluginStore::new(&self.settings.plugin_dir);
        let result = match store.find(ipam_type) {
            Ok(source) => self.run_component(&source, command),
            Err(e) if e.code == ErrorCode::ComponentNotFound => self.run_native(ipam_type, command),
            Err(e) => Err(e),
        }?;
        if command == GuestCommand::Del {
            // Released addresses are no longer this invocation's to use: a
            // component that asked and released could otherwise plan an
            // address IPAM was free to give another container.
            if let Ok(mut results) = self.results.lock() {
                results.clear();
            }
        }
        if command == GuestCommand::Add {
            self.added.store(true, Ordering::SeqCst);
            match &result {
                Some(r) if !r.ips.is_empty() => {
                    if let Ok(mut results) = self.results.lock() {
                        results.push(r.clone());
                    }
                }
                _ => return Err(CniError::internal("IPAM plugin returned missing IP config")),
            }
        }
        Ok(result)
    }

    fn run_component(
        &self,
        source: &crate::plugins::ComponentSource,
        command: GuestCommand,
    ) -> Result<Option<CniResult>, CniError> {
        if !source.subject().bundled {
            let loaded;
            let policy = match &self.policy {
                Some(given) => given.as_ref(),
                None => {
                    loaded = plan::policy::Policy::load(&self.settings.policy_file)?;
                    loaded.as_ref()
                }
            };
            check_ipam_grant(policy, source)?;
        }
        let cache = ComponentCache::new(&self.settings.cache_dir);
        let t = timing::phase("ipam:load");
        let prefetched = self
            .prefetch
            .as_ref()
            .and_then(|p| p.component(&source.name));
        let component = match prefetched {
            Some(loaded) => loaded?,
            None => {
                cache
                    .load(self.runtime.engine(), &source.bytes, &source.sha256)?
                    .0
            }
        };
        drop(t);
        self.run_loaded(&component, command)
    }

    /// Run an already loaded IPAM component (also how `wasm-cni` serves a
    /// `host-local` invocation directly).
    pub fn run_loaded(
        &self,
        component: &Component,
        command: GuestCommand,
    ) -> Result<Option<CniResult>, CniError> {
        let path = self.state_path()?;
        // A dry run reads the real state under its lock, then works on a copy.
        let (_lock, _dir, scratch) = if self.dry_run {
            // A store not made yet is an empty one; a refused path is refused.
            let copy = match self.open_state_dir(&path, false) {
                Ok(dir) => {
                    let _held = lock_dir(&dir, &path, self.lock_wait())?;
                    ScratchCopy::of(Some(&dir.proc_path()))?
                }
                Err(beneath::Refused::Io {
                    errno: nix::errno::Errno::ENOENT,
                    ..
                }) => ScratchCopy::of(None)?,
                Err(refused) => return Err(self.state_dir_error(refused)),
            };
            (None, None, Some(copy))
        } else {
            let dir = self
                .open_state_dir(&path, true)
                .map_err(|r| self.state_dir_error(r))?;
            (
                Some(lock_dir(&dir, &path, self.lock_wait())?),
                Some(dir),
                None,
            )
        };
        // The guest's preopen names the directory opened above, not its path
        // again (which a link could have redirected since).
        let preopen = match (&scratch, &_dir) {
            (Some(s), _) => s.path.clone(),
            (None, Some(dir)) => dir.proc_path(),
            (None, None) => return Err(CniError::internal("no IPAM state directory")),
        };
        let t = timing::phase("ipam:instantiate");
        let mut instance = self.runtime.instantiate_ipam(
            component,
            Box::new(IpamServices {
                resolv_conf_paths: self.settings.resolv_conf_paths.clone(),
            }),
            &self.settings.limits,
            &preopen,
        )?;
        drop(t);
        let _t = timing::phase("ipam:guest");
        let mut req = self.guest_request.clone();
        req.command = command;
        // The reference creates reservation files 0600; a guest cannot choose a
        // mode through WASI, so the host narrows the umask for the call.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let result = instance.run(&req);
        nix::sys::stat::umask(old);
        Ok(result?)
    }

    /// How long the network's lock is waited for: half the guest's deadline,
    /// so that the plugin that asked still has time to answer with the error.
    fn lock_wait(&self) -> std::time::Duration {
        self.settings.limits.deadline / 2
    }

    /// The addresses the network's IPAM store holds, when its IPAM is a
    /// component (host-local's on-disk format: one file per address); empty
    /// when there is no store yet or the IPAM is a native plugin.
    pub fn held_addresses(&self) -> Vec<std::net::IpAddr> {
        let Some(ipam_type) = self.request.config.ipam_type.as_deref() else {
            return Vec::new();
        };
        if PluginStore::new(&self.settings.plugin_dir)
            .find(ipam_type)
            .is_err()
        {
            return Vec::new();
        }
        let Ok(path) = self.state_path() else {
            return Vec::new();
        };
        let Ok(dir) = self.open_state_dir(&path, false) else {
            return Vec::new();
        };
        let Ok(entries) = fs::read_dir(dir.proc_path()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect()
    }

    /// `<dataDir>/<network name>`. `dataDir` comes from the (tenant-written)
    /// config, so it must lie under a root the administrator allowed: otherwise
    /// a config could make the host write files anywhere.
    fn state_path(&self) -> Result<PathBuf, CniError> {
        // Keys are matched like Go's JSON decoder (case-insensitively; null is
        // absent), as the guest and the reference host-local match them: both
        // must agree on the directory.
        let ipam = cni::json::field(&self.request.config.raw, "ipam").and_then(|v| v.as_object());
        let data_dir = match ipam.and_then(|i| cni::json::field(i, "dataDir")) {
            None => PathBuf::from(DEFAULT_DATA_DIR),
            Some(serde_json::Value::String(s)) if s.is_empty() => PathBuf::from(DEFAULT_DATA_DIR),
            Some(serde_json::Value::String(s)) => PathBuf::from(s),
            Some(other) => {
                return Err(CniError::new(
                    ErrorCode::InvalidNetworkConfig,
                    format!("ipam.dataDir must be a string, got {other}"),
                ))
            }
        };
        Ok(data_dir.join(&self.request.config.name))
    }

    /// The state directory, opened (and made, with `create`) beneath an
    /// allowed root without following a link below it and at most
    /// [`MAX_STATE_DEPTH`] directories deep: a text check alone let a link
    /// planted under an allowed root redirect it, and a deep `dataDir` left
    /// thousands of directories behind.
    fn open_state_dir(
        &self,
        path: &Path,
        create: bool,
    ) -> Result<beneath::OpenedDir, beneath::Refused> {
        beneath::open_dir(
            path,
            &self.settings.ipam_data_dirs,
            MAX_STATE_DEPTH,
            create,
            Mode::from_bits_truncate(0o755),
        )
    }

    /// The CNI error for a state directory that was not opened.
    fn state_dir_error(&self, refused: beneath::Refused) -> CniError {
        let roots = &self.settings.ipam_data_dirs;
        match refused {
            beneath::Refused::NotClean(_)
            | beneath::Refused::NotAllowed { .. }
            | beneath::Refused::TooDeep { .. }
            | beneath::Refused::Link(_) => CniError::new(
                ErrorCode::PolicyRejected,
                format!("ipam.dataDir: {refused}"),
            )
            .with_details(format!(
                "the IPAM state directory <dataDir>/<network name> must lie under {roots:?} \
                 (settings key ipamDataDirs), without links; nothing was changed"
            )),
            other => CniError::new(
                ErrorCode::IoFailure,
                format!("cannot open the IPAM state directory: {other}"),
            ),
        }
    }
}

/// Refuse an IPAM component that is neither bundled nor granted.
pub fn check_ipam_grant(
    policy: Option<&plan::policy::Policy>,
    source: &crate::plugins::ComponentSource,
) -> Result<(), CniError> {
    if plan::policy::Policy::may_run_ipam(policy, &source.subject()) {
        return Ok(());
    }
    Err(CniError::new(
        ErrorCode::PolicyRejected,
        format!(
            "IPAM component {:?} (sha256:{}) is installed, not bundled, and no policy grant matches it",
            source.name, source.sha256
        ),
    )
    .with_details(format!(
        "grant it in the policy ({{\"match\": {{\"name\": {:?}, \"digest\": \"sha256:{}\"}}}}) or remove it from the plugin directory",
        source.name, source.sha256
    )))
}

/// The deepest a state directory lies below its allowed root (its network's
/// own directory included).
pub const MAX_STATE_DEPTH: usize = 8;
