//! Native IPAM delegates: exec'd from `CNI_PATH` as the reference plugins
//! delegate, never wasm-cni itself, at most four deep, each in its own process
//! group and bounded by `limits.delegateMs`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt as _;
use std::process::{Command as Process, Stdio};

use super::*;

impl IpamDelegate {
    pub(super) fn run_native(
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
