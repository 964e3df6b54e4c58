//! [`Netlink`] over the kernel's rtnetlink, using the `rtnetlink` crate.
//!
//! The netlink socket is opened inside the target namespace (on the
//! [`NetnsWorker`] that also serves its sysctls, or right here for our own
//! namespace) and stays bound to it, so every request made through it
//! acts there without any further namespace switching. The async API is
//! driven by a private current-thread tokio runtime, one `block_on` per verb;
//! therefore these methods must not be called from inside another tokio
//! runtime's async context.

use std::future::Future;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_core::DefaultNla;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    AfSpecBridge, AfSpecInet, AfSpecUnspec, BridgeVlanInfoFlags, InetDevConf, InfoBridge,
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVeth, LinkAttribute, LinkExtentMask,
    LinkFlags, LinkInfo, LinkMessage, LinkProtoInfoBridge, State,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType, RouteVia,
};
use netlink_packet_route::AddressFamily;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::stat::Mode;
use rtnetlink::{
    AddressMessageBuilder, Handle, LinkBridge, LinkBridgeVlan, LinkMessageBuilder, LinkUnspec,
    LinkVeth, RouteMessageBuilder,
};
use tokio::runtime::Runtime;

use super::netlink::{
    retired_name, validate_sysctl_path, BridgeVlanFlags, LinkFacts, NetError, Netlink, RetiredLink,
    RouteFacts, RouteSpec, RETIRED_PREFIX,
};
use super::netns::{is_current, NetnsHandle, NetnsWorker};

/// `IFLA_BRPORT_MODE` (hairpin), from `<linux/if_link.h>`.
const IFLA_BRPORT_MODE: u16 = 4;
/// `IFLA_BRPORT_ISOLATED`, from `<linux/if_link.h>`.
const IFLA_BRPORT_ISOLATED: u16 = 33;

mod messages;
mod sysctl;
mod verbs;

use messages::*;
use sysctl::*;

/// The real [`Netlink`]: one rtnetlink socket bound to one namespace, opened
/// on first use (a loopback ADD never talks to the host namespace, an IPAM
/// plugin to neither).
pub struct RtNetlink {
    pub(super) conn: std::sync::OnceLock<Conn>,
    pub(super) ns: NetnsHandle,
    /// Whether `ns` is the namespace the process runs in (the host side): then
    /// the socket is opened and `/proc/sys/net` looked up directly, with no
    /// thread at all.
    pub(super) local: bool,
    /// For another namespace, one thread that entered it, started on the first
    /// sysctl and reused for the rest of the invocation.
    pub(super) worker: std::sync::OnceLock<NetnsWorker>,
    /// Directories under `/proc/sys/net` of `ns` (by name below it), opened
    /// inside it on first use.
    pub(super) sysctl_dirs: std::sync::Mutex<Vec<(String, std::fs::File)>>,
}

/// An open connection: a private current-thread runtime, one `block_on` per
/// verb, and the request handle.
pub(super) struct Conn {
    pub(super) rt: Runtime,
    pub(super) handle: Handle,
}

impl std::fmt::Debug for RtNetlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtNetlink").field("ns", &self.ns).finish()
    }
}

impl RtNetlink {
    /// An rtnetlink client for `ns`; the socket is opened on first use.
    pub fn open(ns: &NetnsHandle) -> Result<Self, NetError> {
        Ok(Self {
            conn: std::sync::OnceLock::new(),
            ns: ns.try_clone()?,
            local: is_current(ns),
            worker: std::sync::OnceLock::new(),
            sysctl_dirs: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The connection, opened inside the namespace on first use.
    pub(super) fn conn(&self) -> Result<&Conn, NetError> {
        if let Some(conn) = self.conn.get() {
            return Ok(conn);
        }
        // enable_io exists because netlink-sys turns on tokio's "net"
        // feature; the socket needs the IO driver to be woken up.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| NetError::io("build tokio runtime", e))?;
        let rt_handle = rt.handle().clone();
        // socket(2) binds the netlink socket to the creating thread's netns;
        // registering it with the runtime only needs the runtime context,
        // which can be entered from any thread.
        let connect = move || {
            let _entered = rt_handle.enter();
            // Strict checking makes the kernel apply a dump request's filters
            // (the link index of an address dump) instead of sending the whole
            // table: a node's namespace holds one veth per pod. In exchange
            // every dump header must be zero but for the filters it means.
            rtnetlink::new_connection_with_strict_check()
        };
        // In our own namespace no thread is needed: the socket is bound here;
        // elsewhere the namespace's worker, which its sysctls reuse, makes it.
        let opened = if self.local {
            connect()
        } else {
            self.in_netns(connect)?
        };
        let (conn, handle, _unsolicited) =
            opened.map_err(|e| NetError::io("open rtnetlink socket", e))?;
        // Runs only while a block_on is in progress, which is exactly when
        // requests are outstanding.
        rt.spawn(conn);
        Ok(self.conn.get_or_init(|| Conn { rt, handle }))
    }

    /// The namespace this instance acts on.
    pub fn netns(&self) -> &NetnsHandle {
        &self.ns
    }

    /// Runs a request that answers with a bare ack.
    pub(super) fn exec<F>(&self, op: &'static str, target: &str, fut: F) -> Result<(), NetError>
    where
        F: Future<Output = Result<(), rtnetlink::Error>>,
    {
        self.conn()?
            .rt
            .block_on(fut)
            .map_err(|e| nl_error(op, target, e))
    }

    /// Runs `f` inside this instance's namespace: right here for our own, on
    /// the worker (started on first use) for another.
    pub(super) fn in_netns<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NetError> {
        if self.local {
            return Ok(f());
        }
        let worker = match self.worker.get() {
            Some(w) => w,
            None => {
                let started = NetnsWorker::start(&self.ns)?;
                self.worker.get_or_init(|| started)
            }
        };
        worker.run(f)
    }
}

/// Turns a library error into ours, keeping the kernel's errno as data.
pub(super) fn nl_error(op: &'static str, target: &str, e: rtnetlink::Error) -> NetError {
    match e {
        rtnetlink::Error::NetlinkError(msg) if msg.raw_code() != 0 => {
            NetError::kernel(op, target, Errno::from_raw(msg.raw_code().abs()))
        }
        other => NetError::Protocol {
            op,
            target: target.to_string(),
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
