//! What an invocation acts on, passed in as values so that the whole pipeline
//! runs in unit tests: the kernel (the node's namespaces over netlink, or the
//! recording fakes), the wasm runtime (one engine, shared by tests), and the
//! clock the audit trail stamps.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use cni::{CniError, Command, ErrorCode, Request};
use kernel::applier::{Kernel, MasqDoors};
use kernel::netlink::{NetError, Netlink};
use kernel::netns::NetnsHandle;
use kernel::rtnl::RtNetlink;
use runtime::PluginRuntime;

use super::kernel_failure::KernelFailure;

/// The kernel doors of one invocation.
pub struct OpenedKernel {
    pub kernel: Kernel,
    /// Whether the container's namespace is there (DEL may find it gone).
    pub has_container: bool,
}

/// Where an invocation's kernel comes from.
pub trait KernelAccess: Send + Sync {
    /// The doors for one request: the host's, and the container's when
    /// `netns` (the request's `CNI_NETNS`, for the verbs that have one) names
    /// a namespace that exists.
    fn open(&self, request: &Request, netns: Option<&Path>) -> Result<OpenedKernel, KernelFailure>;

    /// The answer is complete: deferred kernel work may be handed off.
    fn finish(&self);
}

/// What one invocation acts on.
pub struct World {
    pub kernel: Box<dyn KernelAccess>,
    /// The engine to run components on; made per invocation when `None`.
    pub runtime: Option<Arc<PluginRuntime>>,
    pub clock: fn() -> SystemTime,
}

impl World {
    /// The node: its namespaces over netlink, a fresh engine, the system clock.
    pub fn real() -> Self {
        World {
            kernel: Box::new(NodeKernel),
            runtime: None,
            clock: SystemTime::now,
        }
    }
}

/// The container namespace a verb works in: ADD and CHECK need one, GC and
/// STATUS have none, DEL works without.
pub(super) fn container_netns(request: &Request) -> Result<Option<&Path>, CniError> {
    match (&request.netns, request.command) {
        (None, Command::Add | Command::Check) => Err(CniError::new(
            ErrorCode::InvalidEnvironment,
            "required env variables [CNI_NETNS] missing",
        )),
        (_, Command::Gc | Command::Status) | (None, _) => Ok(None),
        (Some(path), _) => Ok(Some(path)),
    }
}

/// The node's kernel: namespaces opened by path, rtnetlink in each, and the
/// reaper for work the kernel defers.
pub struct NodeKernel;

impl KernelAccess for NodeKernel {
    fn open(&self, request: &Request, netns: Option<&Path>) -> Result<OpenedKernel, KernelFailure> {
        let container_ns = match netns {
            Some(path) => open_container_ns(request, path)?,
            None => None,
        };
        if let Some(ns) = &container_ns {
            let own = NetnsHandle::current().map_err(KernelFailure::OwnNetns)?;
            if !request.netns_override && ns.same_as(&own).unwrap_or(false) {
                return Err(KernelFailure::SameNetns);
            }
        }
        Ok(OpenedKernel {
            has_container: container_ns.is_some(),
            kernel: open_kernel(container_ns.as_ref())?,
        })
    }

    fn finish(&self) {
        kernel::reaper::finish();
    }
}

/// Open the container namespace at `path`. `Ok(None)` means "gone", which only
/// DEL accepts.
fn open_container_ns(request: &Request, path: &Path) -> Result<Option<NetnsHandle>, KernelFailure> {
    match NetnsHandle::open(path) {
        Ok(ns) => Ok(Some(ns)),
        // DEL must succeed when the container is already gone, including the
        // tmpfs leftovers whose "unknown FS magic" wedges the reference (plugins#69).
        Err(NetError::NetnsMissing(_) | NetError::NotANetns(_))
            if request.command == Command::Del =>
        {
            Ok(None)
        }
        Err(error @ (NetError::NetnsMissing(_) | NetError::NotANetns(_))) => {
            Err(KernelFailure::NotANetns {
                path: path.to_path_buf(),
                error,
            })
        }
        Err(error) => Err(KernelFailure::OpenNetns {
            path: path.to_path_buf(),
            error,
        }),
    }
}

fn open_kernel(container_ns: Option<&NetnsHandle>) -> Result<Kernel, KernelFailure> {
    let io = |what: &'static str, error: NetError| KernelFailure::Doors { what, error };
    let host_ns = NetnsHandle::current().map_err(|e| io("the host namespace", e))?;
    // Sockets open on first use: a loopback ADD never needs the host's, an
    // IPAM plugin neither.
    let host = RtNetlink::open(&host_ns).map_err(|e| io("the host namespace", e))?;
    let container = match container_ns {
        Some(ns) => Some(Box::new(
            RtNetlink::open(ns).map_err(|e| io("the container namespace", e))?,
        ) as Box<dyn Netlink>),
        None => None,
    };
    Ok(Kernel {
        host: Box::new(host),
        host_ns,
        container,
        masq: MasqDoors::default(),
        spoof: None,
        valid_attachments: None,
        ownership: Default::default(),
        waits_left: kernel::applier::WAIT_BUDGET,
    })
}
