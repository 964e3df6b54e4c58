//! The host services a main plugin sees during its plan, backed by the
//! invocation's kernel doors and IPAM delegate.

use std::sync::{Arc, Mutex, MutexGuard};

use cni::{CniError, CniResult};
use kernel::applier::{Kernel, Ownership};
use plan::policy::Grant;
use plan::{MasqRuleFacts, ObservedLink, ObservedRoute, Side};
use runtime::{GuestCommand, GuestLogLevel, HostServices};

use crate::ipam::IpamDelegate;

pub(super) fn lock(kernel: &Mutex<Kernel>) -> MutexGuard<'_, Kernel> {
    // A panic while holding the lock leaves netlink state no worse than any other
    // failure; keep serving (and rolling back) rather than cascading.
    kernel.lock().unwrap_or_else(|p| p.into_inner())
}

/// The host services a main plugin sees, backed by the invocation's kernel
/// doors. A plugin sees only what it could act on: in the container, its
/// interface and `lo`; on the host, links its grant names (bridges, uplinks,
/// links to adopt), links recorded as its network's and their ports, routes
/// only with `hostRoutes`, and its own network's masquerade rules.
pub(super) struct KernelServices {
    pub(super) kernel: Arc<Mutex<Kernel>>,
    pub(super) ipam: Arc<IpamDelegate>,
    pub(super) plugin: String,
    pub(super) container_id: String,
    pub(super) ifname: String,
    pub(super) network: String,
    pub(super) grant: Grant,
}

impl KernelServices {
    /// Whether the plugin may see host link `name`.
    fn may_see_host_link(&self, kernel: &mut Kernel, name: &str) -> bool {
        let g = &self.grant;
        if g.bridges
            .iter()
            .chain(&g.uplinks)
            .chain(&g.adopt)
            .any(|p| p.matches(name))
        {
            return true;
        }
        let record = Ownership::record(&self.network);
        let Ok(Some(link)) = kernel.host.link_brief(name) else {
            return false;
        };
        if link.alias.as_deref() == Some(record.as_str()) {
            return true;
        }
        // A port of one of its bridges (a veth peer it created).
        let master = link
            .master
            .and_then(|m| kernel.host.link_by_index(m).ok().flatten());
        master.is_some_and(|m| {
            m.alias.as_deref() == Some(record.as_str())
                || g.bridges.iter().any(|p| p.matches(&m.name))
        })
    }
}

impl HostServices for KernelServices {
    fn link(&mut self, side: Side, name: &str) -> Option<ObservedLink> {
        let _t = timing::phase("guest-plan:look");
        let mut kernel = lock(&self.kernel);
        let visible = match side {
            Side::Container => name == self.ifname || name == "lo",
            Side::Host => self.may_see_host_link(&mut kernel, name),
        };
        if visible {
            kernel.observe_link(side, name)
        } else {
            None
        }
    }

    fn routes(&mut self, side: Side) -> Vec<ObservedRoute> {
        let _t = timing::phase("guest-plan:look");
        if side == Side::Host && !self.grant.host_routes {
            return Vec::new();
        }
        lock(&self.kernel).observe_routes(side)
    }

    fn fresh_link_name(&mut self, prefix: &str) -> String {
        let _t = timing::phase("guest-plan:look");
        let mut kernel = lock(&self.kernel);
        let mut name = String::new();
        // The reference retries random names ten times; with 32 random bits a
        // collision on a node is already rare, and we check before answering.
        for _ in 0..10 {
            let mut bytes = [0u8; 4];
            if getrandom::fill(&mut bytes).is_err() {
                break;
            }
            name = format!("{prefix}{:08x}", u32::from_be_bytes(bytes));
            if matches!(kernel.host.link_brief(&name), Ok(None)) {
                break;
            }
        }
        name
    }

    fn masquerade_rules(&mut self, network: &str) -> Vec<MasqRuleFacts> {
        let _t = timing::phase("guest-plan:look");
        if network != self.network {
            return Vec::new();
        }
        lock(&self.kernel).masquerade_rules(network)
    }

    fn ipam(&mut self, command: GuestCommand) -> Result<Option<CniResult>, CniError> {
        self.ipam.run(command)
    }

    fn log(&mut self, level: GuestLogLevel, message: &str) {
        let (plugin, container) = (&self.plugin, &self.container_id);
        match level {
            GuestLogLevel::Debug => tracing::debug!(plugin, container, "{message}"),
            GuestLogLevel::Info => tracing::info!(plugin, container, "{message}"),
            GuestLogLevel::Warn => tracing::warn!(plugin, container, "{message}"),
            GuestLogLevel::Error => tracing::error!(plugin, container, "{message}"),
        }
    }
}
