//! IPAM delegation: the main plugin asks the host to run its `ipam.type`. A wasm
//! component of that name runs in-process, with its network's state directory as
//! its only capability and the directory's lock held by the host; otherwise the
//! native binary of that name is exec'd from `CNI_PATH` exactly as the reference
//! plugins delegate, so `static`, `dhcp` or third-party IPAM keep working.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use wasmtime::component::Component;

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
        }
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
            let policy = plan::policy::Policy::load(&self.settings.policy_file)?;
            check_ipam_grant(policy.as_ref(), source)?;
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

    fn run_native(
        &self,
        ipam_type: &str,
        command: GuestCommand,
    ) -> Result<Option<CniResult>, CniError> {
        if self.dry_run {
            return Err(CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!(
                    "cannot plan with the native IPAM plugin {ipam_type:?}: it would allocate for real"
                ),
            ));
        }
        let binary = find_in_path(ipam_type, &self.request.path).ok_or_else(|| {
            CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!(
                    "failed to find plugin {ipam_type:?} in path {:?}",
                    self.request.path
                ),
            )
        })?;
        // The binary under any name looks for the same components and would
        // delegate to itself again: an unbounded fork, not a plugin.
        if is_this_binary(&binary) {
            return Err(CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!(
                    "ipam.type {ipam_type:?} is wasm-cni itself ({}): wasm-cni never delegates to itself",
                    binary.display()
                ),
            )
            .with_details(
                "name an IPAM component (host-local, or one in the plugin directory) or a native \
                 IPAM plugin",
            ));
        }
        let depth = self
            .env
            .get(DELEGATION_DEPTH_ENV)
            .and_then(|d| d.parse::<u32>().ok())
            .unwrap_or(0);
        if depth >= MAX_DELEGATION_DEPTH {
            return Err(CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!(
                    "IPAM delegation to {} is {depth} levels deep (at most {MAX_DELEGATION_DEPTH}): \
                     the delegates lead back to wasm-cni",
                    binary.display()
                ),
            ));
        }
        let verb = match command {
            GuestCommand::Add => Command::Add,
            GuestCommand::Del => Command::Del,
            GuestCommand::Check => Command::Check,
            GuestCommand::Gc => Command::Gc,
            GuestCommand::Status => Command::Status,
        };
        // Its own process group, so that what it starts goes with it when
        // it runs past its deadline.
        let mut child = Process::new(&binary)
            .env_clear()
            .envs(&self.env)
            .env("CNI_COMMAND", verb.as_str())
            .env(DELEGATION_DEPTH_ENV, (depth + 1).to_string())
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                CniError::new(
                    ErrorCode::IoFailure,
                    format!("cannot run IPAM plugin {}: {e}", binary.display()),
                )
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(&self.request.stdin);
        }
        let out = wait_bounded(child, self.settings.limits.delegate_deadline).map_err(|e| {
            CniError::new(
                e.code,
                format!("IPAM plugin {}: {}", binary.display(), e.msg),
            )
        })?;
        if !out.status.success() {
            return Err(
                serde_json::from_slice::<CniError>(&out.stdout).unwrap_or_else(|_| {
                    CniError::internal(format!(
                        "IPAM plugin {ipam_type} failed ({}) with output {:?}",
                        out.status,
                        String::from_utf8_lossy(&out.stdout)
                    ))
                }),
            );
        }
        if command != GuestCommand::Add {
            return Ok(None);
        }
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            CniError::new(
                ErrorCode::DecodingFailure,
                format!("IPAM plugin {ipam_type} printed an unreadable result: {e}"),
            )
        })?;
        cni::parse_result(&value, self.request.config.cni_version).map(Some)
    }
}

/// A throwaway copy of a state directory (for dry runs), removed on drop.
struct ScratchCopy {
    path: PathBuf,
}

impl ScratchCopy {
    /// A copy of the regular files of `dir`; empty when there is no directory.
    fn of(dir: Option<&Path>) -> Result<Self, CniError> {
        let io = |e: std::io::Error| {
            CniError::new(
                ErrorCode::IoFailure,
                format!("cannot copy the IPAM state for a dry run: {e}"),
            )
        };
        let mut suffix = [0u8; 8];
        let _ = getrandom::fill(&mut suffix);
        let path = std::env::temp_dir().join(format!(
            "wasm-cni-plan-{}-{}",
            std::process::id(),
            u64::from_be_bytes(suffix)
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(io)?;
        let copy = ScratchCopy { path };
        let Some(dir) = dir else {
            return Ok(copy);
        };
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(copy),
            Err(e) => return Err(io(e)),
        };
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                fs::copy(entry.path(), copy.path.join(entry.file_name())).map_err(io)?;
            }
        }
        Ok(copy)
    }
}

impl Drop for ScratchCopy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
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

/// What a native delegate printed and how it ended.
struct DelegateOutput {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
}

/// The most a native delegate's result may be.
const MAX_DELEGATE_OUTPUT: u64 = 4 << 20;

/// Wait for a native delegate at most `deadline`; past it, its whole process
/// group (it leads one) is killed and reaped.
fn wait_bounded(
    mut child: std::process::Child,
    deadline: std::time::Duration,
) -> Result<DelegateOutput, CniError> {
    use std::io::Read as _;
    let io = |e: std::io::Error| CniError::new(ErrorCode::IoFailure, e.to_string());
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| CniError::internal("no stdout"))?;
    let (sender, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = (&mut stdout)
            .take(MAX_DELEGATE_OUTPUT)
            .read_to_end(&mut bytes);
        let _ = sender.send(bytes);
    });
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            break status;
        }
        if started.elapsed() >= deadline {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            return Err(CniError::new(
                ErrorCode::GuestTimeout,
                format!(
                    "did not finish within {} ms; it and its processes were killed",
                    deadline.as_millis()
                ),
            )
            .with_details("limits.delegateMs in the settings bounds native IPAM plugins"));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(20));
    };
    // Processes it left behind may hold stdout open: they go after a grace.
    let stdout = match output.recv_timeout(std::time::Duration::from_millis(200)) {
        Ok(bytes) => bytes,
        Err(_) => {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            output.recv().unwrap_or_default()
        }
    };
    Ok(DelegateOutput { status, stdout })
}

/// Whether `path` (followed through links) is the file this process runs.
fn is_this_binary(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (fs::metadata(path), fs::metadata("/proc/self/exe")) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The first executable `name` in `dirs`.
fn find_in_path(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    if name.contains('/') {
        return None;
    }
    dirs.iter().map(|d| d.join(name)).find(|p| {
        fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// Take the reference's lock: flock on `<dir>/lock`, held until the guard drops,
/// so our processes and the Go host-local exclude each other on one network.
/// The file is opened in the directory already open, never through a link (a
/// component can plant one in its state directory), and without blocking.
fn lock_dir(
    dir: &beneath::OpenedDir,
    path: &Path,
    wait: std::time::Duration,
) -> Result<Flock<fs::File>, CniError> {
    use std::os::fd::AsFd as _;
    let lock = path.join("lock");
    let flags = OFlag::O_WRONLY
        | OFlag::O_CREAT
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(
        dir.fd.as_fd(),
        "lock",
        flags,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|errno| {
        let why = match errno {
            nix::errno::Errno::ELOOP => "it is a symbolic link".to_string(),
            errno => errno.to_string(),
        };
        CniError::new(
            ErrorCode::IoFailure,
            format!("cannot open {}: {why}", lock.display()),
        )
        .with_details("the IPAM state directory was tampered with; nothing was changed")
    })?;
    let file = fs::File::from(fd);
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(CniError::new(
            ErrorCode::IoFailure,
            format!("cannot lock {}: not a regular file", lock.display()),
        ));
    }
    // Waited for at most the guest's deadline: every holder is bounded, but a
    // host call must be too.
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(held) => return Ok(held),
            Err((back, nix::errno::Errno::EWOULDBLOCK)) if started.elapsed() < wait => {
                file = back;
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(10));
            }
            Err((_, errno)) => {
                let why = match errno {
                    nix::errno::Errno::EWOULDBLOCK => format!(
                        "held by another invocation for more than {} ms",
                        wait.as_millis()
                    ),
                    errno => errno.to_string(),
                };
                return Err(CniError::new(
                    ErrorCode::TryAgainLater,
                    format!("cannot lock {}: {why}", lock.display()),
                ));
            }
        }
    }
}

/// What an IPAM component may ask of the host besides its state directory:
/// the resolv.conf files the administrator opened.
struct IpamServices {
    resolv_conf_paths: Vec<PathBuf>,
}

impl runtime::HostServices for IpamServices {
    fn link(&mut self, side: plan::Side, name: &str) -> Option<plan::ObservedLink> {
        NoServices.link(side, name)
    }
    fn routes(&mut self, side: plan::Side) -> Vec<plan::ObservedRoute> {
        NoServices.routes(side)
    }
    fn fresh_link_name(&mut self, prefix: &str) -> String {
        NoServices.fresh_link_name(prefix)
    }
    fn masquerade_rules(&mut self, network: &str) -> Vec<plan::MasqRuleFacts> {
        NoServices.masquerade_rules(network)
    }
    fn ipam(&mut self, command: GuestCommand) -> Result<Option<CniResult>, CniError> {
        NoServices.ipam(command)
    }
    fn log(&mut self, level: runtime::GuestLogLevel, message: &str) {
        NoServices.log(level, message)
    }
    /// Only regular files under `resolvConfPaths`, without following a link
    /// below an entry and without blocking; a path outside is refused before
    /// anything is opened (so it does not tell whether a file exists).
    fn resolv_conf(&mut self, path: &str) -> Result<String, String> {
        beneath::read_file(Path::new(path), &self.resolv_conf_paths, MAX_RESOLV_CONF)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|refused| match refused {
                beneath::Refused::NotAllowed { .. } | beneath::Refused::NotClean(_) => format!(
                    "{refused}: resolvConf may name only files the administrator opened \
                     (settings key resolvConfPaths)"
                ),
                other => other.to_string(),
            })
    }
}

/// resolv.conf files are small; a bigger one is not a resolv.conf.
const MAX_RESOLV_CONF: u64 = 64 << 10;

/// The deepest a state directory lies below its allowed root (its network's
/// own directory included).
pub const MAX_STATE_DEPTH: usize = 8;
