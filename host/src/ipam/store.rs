//! The IPAM state directory's lock, and the scratch copy a dry run works on.

use std::os::unix::fs::DirBuilderExt;

use nix::fcntl::{Flock, FlockArg, OFlag};

use super::*;

/// A throwaway copy of a state directory (for dry runs), removed on drop.
pub(super) struct ScratchCopy {
    pub(super) path: PathBuf,
}

impl ScratchCopy {
    /// A copy of the regular files of `dir`; empty when there is no directory.
    pub(super) fn of(dir: Option<&Path>) -> Result<Self, CniError> {
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

/// Take the reference's lock: flock on `<dir>/lock`, held until the guard drops,
/// so our processes and the Go host-local exclude each other on one network.
/// The file is opened in the directory already open, never through a link (a
/// component can plant one in its state directory), and without blocking.
pub(super) fn lock_dir(
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
