//! Network namespace handles, and the only place where a thread changes its
//! network namespace.
//!
//! The rule is: a thread that enters a namespace never leaves it. Work that
//! must happen "inside" a namespace runs on a fresh thread that `setns`es
//! once, does the work and exits. Restoring the original namespace
//! afterwards is the classic source of bugs (Go CNI plugins had to lock OS
//! threads for this): if the restoring `setns` fails, or a panic skips it,
//! the thread goes back to a pool while still in the wrong namespace and later
//! work silently acts on the wrong network. A thread that exits takes its
//! namespace membership with it, so there is nothing to restore.
//!
//! What outlives the thread keeps the namespace it was created in: a socket
//! opened inside stays bound to that namespace for its whole life, and so
//! does an open file under `/proc/sys/net`.

// The one module allowed to switch namespaces (clippy.toml forbids it elsewhere).
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::fstat;
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use super::netlink::NetError;

/// The calling thread's own netns; `/proc/self` would name the main thread's.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// An open network namespace: a file descriptor on nsfs, e.g. of
/// `/var/run/netns/NAME` or `/proc/PID/ns/net`. Holding it keeps the
/// namespace alive even after its bind mount is removed or its last process
/// exits.
#[derive(Debug)]
pub struct NetnsHandle {
    file: File,
    path: PathBuf,
}

impl NetnsHandle {
    /// Opens the namespace at `path` and checks that it is one.
    ///
    /// Fails with [`NetError::NetnsMissing`] if nothing is at `path`, and
    /// with [`NetError::NotANetns`] if something is but it is not a network
    /// namespace (a regular file, say a mount point left behind once its
    /// namespace was unmounted, or another kind of namespace).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NetError> {
        let path = path.as_ref();
        let file = match File::open(path) {
            Ok(file) => file,
            // ESRCH: /proc/PID/ns/net of a process that is exiting.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(Errno::ESRCH as i32) =>
            {
                return Err(NetError::NetnsMissing(path.to_path_buf()));
            }
            Err(e) => return Err(NetError::io(format!("open {}", path.display()), e)),
        };
        if !is_net_namespace(&file, path)? {
            return Err(NetError::NotANetns(path.to_path_buf()));
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The network namespace of the calling thread.
    pub fn current() -> Result<Self, NetError> {
        Self::open(THREAD_NETNS)
    }

    /// Creates a new, anonymous network namespace that lives as long as this
    /// handle (or anything else that pins it: a socket or a link moved in).
    /// It starts with only `lo`, down. Nothing is mounted, so nothing is left
    /// behind if the process dies; tests use this.
    pub fn new_unnamed() -> Result<Self, NetError> {
        let file = on_fresh_thread(|| {
            // The thread exits right after, so it never needs to go back.
            unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|errno| NetError::kernel("unshare", "CLONE_NEWNET", errno))?;
            File::open(THREAD_NETNS).map_err(|e| NetError::io(format!("open {THREAD_NETNS}"), e))
        })??;
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        Ok(Self { file, path })
    }

    /// The path this handle was opened from. For [`NetnsHandle::new_unnamed`]
    /// it is `/proc/self/fd/N`, valid in this process while the handle lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Another handle on the same namespace.
    pub fn try_clone(&self) -> Result<Self, NetError> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| NetError::io(format!("dup {}", self.path.display()), e))?;
        Ok(Self {
            file,
            path: self.path.clone(),
        })
    }

    /// Whether both handles refer to the same namespace (same nsfs inode).
    pub fn same_as(&self, other: &NetnsHandle) -> Result<bool, NetError> {
        Ok(self.identity()? == other.identity()?)
    }

    fn identity(&self) -> Result<(nix::libc::dev_t, nix::libc::ino_t), NetError> {
        let st = fstat(&self.file).map_err(|errno| {
            NetError::io(format!("fstat {}", self.path.display()), errno.into())
        })?;
        Ok((st.st_dev, st.st_ino))
    }
}

impl AsFd for NetnsHandle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

fn is_net_namespace(file: &File, path: &Path) -> Result<bool, NetError> {
    let fs = fstatfs(file)
        .map_err(|errno| NetError::io(format!("statfs {}", path.display()), errno.into()))?;
    if fs.filesystem_type() != NSFS_MAGIC {
        return Ok(false);
    }
    // nsfs holds every kind of namespace. The magic link of the open file
    // names it ("net:[...]") only when opened through /proc; a bind mount such as
    // /var/run/netns/NAME reads back as its path. NS_GET_NSTYPE asks the kernel.
    // (libc's constant has the request type of the target's ioctl(2).)
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor,
    // which `file` keeps open for the duration of the call.
    let kind = unsafe { nix::libc::ioctl(file.as_raw_fd(), nix::libc::NS_GET_NSTYPE) };
    if kind < 0 {
        return Err(NetError::io(
            format!("NS_GET_NSTYPE {}", path.display()),
            io::Error::last_os_error(),
        ));
    }
    Ok(kind == nix::libc::CLONE_NEWNET)
}

/// Runs `f` on a fresh thread in `ns` and returns its result. The thread
/// exits afterwards instead of switching back (see the module docs), so the
/// caller's thread never changes namespace. A panic in `f` is propagated.
///
/// Sockets and `/proc/sys/net` files that `f` opens stay bound to `ns` after
/// the thread is gone.
pub fn run_in_netns<T: Send>(
    ns: &NetnsHandle,
    f: impl FnOnce() -> T + Send,
) -> Result<T, NetError> {
    on_fresh_thread(move || {
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|errno| NetError::kernel("setns", ns.path.display().to_string(), errno))?;
        Ok(f())
    })?
}

/// Makes the child `cmd` spawns enter `ns` between fork and exec, so that a
/// program (`iptables`) acts in that namespace while this process and its
/// threads stay where they are. `ns` must stay open until `cmd` is spawned.
pub fn exec_in(cmd: &mut Command, ns: &impl AsRawFd) {
    let fd = ns.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setns(2), a plain system call that is async-signal-safe and does not
    // allocate. `fd` is open in the child because the caller keeps `ns` open
    // until the command is spawned.
    unsafe {
        cmd.pre_exec(move || {
            let ns = BorrowedFd::borrow_raw(fd);
            setns(ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
        });
    }
}

/// A thread that entered one namespace once and then runs jobs there, for work
/// that must happen inside (opening `/proc/sys/net` files) and is repeated
/// within an invocation: one `setns` instead of one per job. Dropping the worker
/// ends its thread.
pub struct NetnsWorker {
    jobs: Option<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NetnsWorker {
    /// Start a worker inside `ns`.
    pub fn start(ns: &NetnsHandle) -> Result<Self, NetError> {
        let ns = ns.try_clone()?;
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("wcni-netns-worker".into())
            .spawn(move || {
                let entered = setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|errno| {
                    NetError::kernel("setns", ns.path.display().to_string(), errno)
                });
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if ok {
                    // The thread never leaves the namespace; it ends with the worker.
                    while let Ok(job) = queue.recv() {
                        job();
                    }
                }
            })
            .map_err(|e| NetError::io("spawn netns worker", e))?;
        ready
            .recv()
            .map_err(|_| NetError::io("netns worker", io::Error::other("worker died")))??;
        Ok(NetnsWorker {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Run `f` inside the worker's namespace and wait for its result.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NetError> {
        let (done, result) = std::sync::mpsc::channel();
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            let _ = done.send(f());
        });
        let gone = || NetError::io("netns worker", io::Error::other("worker is gone"));
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        result.recv().map_err(|_| gone())
    }
}

impl Drop for NetnsWorker {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether the calling thread is in `ns` already (then no thread is needed).
pub fn is_current(ns: &NetnsHandle) -> bool {
    NetnsHandle::current()
        .and_then(|cur| cur.same_as(ns))
        .unwrap_or(false)
}

fn on_fresh_thread<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, NetError> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("wcni-netns".into())
            .spawn_scoped(scope, f)
            .map_err(|e| NetError::io("spawn netns thread", e))?;
        match worker.join() {
            Ok(value) => Ok(value),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh anonymous namespace, or `None` (after printing SKIP) when this
    /// process may not create one.
    /// With `WASM_CNI_REQUIRE_PRIVILEGED=1` (CI) a test that cannot run fails
    /// instead.
    pub(crate) fn test_netns(test: &str) -> Option<NetnsHandle> {
        if !nix::unistd::Uid::effective().is_root() {
            skip(test, "needs root to create network namespaces");
            return None;
        }
        match NetnsHandle::new_unnamed() {
            Ok(ns) => Some(ns),
            Err(e) => {
                skip(test, &format!("cannot create a network namespace: {e}"));
                None
            }
        }
    }

    fn skip(test: &str, why: &str) {
        if std::env::var("WASM_CNI_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
            panic!("{test} cannot run: {why}");
        }
        eprintln!("SKIP {test}: {why}");
    }

    #[test]
    fn current_is_a_netns() {
        let a = NetnsHandle::current().expect("current");
        let b = NetnsHandle::open("/proc/self/ns/net").expect("open self");
        assert!(a.same_as(&b).expect("compare"));
        assert!(a.same_as(&a.try_clone().expect("clone")).expect("compare"));
    }

    #[test]
    fn missing_path_is_netns_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nope");
        match NetnsHandle::open(&path) {
            Err(NetError::NetnsMissing(p)) => assert_eq!(p, path),
            other => panic!("expected NetnsMissing, got {other:?}"),
        }
    }

    #[test]
    fn regular_file_is_not_a_netns() {
        let file = tempfile::NamedTempFile::new().expect("tempfile");
        match NetnsHandle::open(file.path()) {
            Err(NetError::NotANetns(p)) => assert_eq!(p, file.path()),
            other => panic!("expected NotANetns, got {other:?}"),
        }
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            NetnsHandle::open(dir.path()),
            Err(NetError::NotANetns(_))
        ));
    }

    #[test]
    fn other_namespace_kind_is_not_a_netns() {
        match NetnsHandle::open("/proc/self/ns/mnt") {
            Err(NetError::NotANetns(_)) => {}
            other => panic!("expected NotANetns, got {other:?}"),
        }
    }

    #[test]
    fn run_in_netns_switches_only_the_worker() {
        let Some(ns) = test_netns("run_in_netns_switches_only_the_worker") else {
            return;
        };
        let before = NetnsHandle::current().expect("current");
        assert!(!before.same_as(&ns).expect("compare"));
        let inside = run_in_netns(&ns, NetnsHandle::current)
            .expect("run")
            .expect("current inside");
        assert!(inside.same_as(&ns).expect("compare"));
        let after = NetnsHandle::current().expect("current");
        assert!(after.same_as(&before).expect("compare"));

        // Reopening through the reported path gives the same namespace.
        let reopened = NetnsHandle::open(ns.path()).expect("reopen");
        assert!(reopened.same_as(&ns).expect("compare"));
    }

    #[test]
    fn run_in_netns_propagates_panics() {
        let Some(ns) = test_netns("run_in_netns_propagates_panics") else {
            return;
        };
        let caught = std::panic::catch_unwind(|| run_in_netns(&ns, || panic!("boom")));
        assert!(caught.is_err());
    }
}
