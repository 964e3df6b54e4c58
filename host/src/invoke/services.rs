//! The host services a main plugin sees during its plan, backed by the
//! invocation's kernel doors and IPAM delegate.

use std::sync::{Arc, Mutex, MutexGuard};

use cni::{CniError, CniResult};
use kernel::applier::Kernel;
use plan::{MasqRuleFacts, ObservedLink, ObservedRoute, Side};
use runtime::{GuestCommand, GuestLogLevel, HostServices};

use crate::ipam::IpamDelegate;

pub(super) fn lock(kernel: &Mutex<Kernel>) -> MutexGuard<'_, Kernel> {
    // A panic while holding the lock leaves netlink state no worse than any other
    // failure; keep serving (and rolling back) rather than cascading.
    kernel.lock().unwrap_or_else(|p| p.into_inner())
}

/// The host services a main plugin sees, backed by the invocation's kernel doors.
pub(super) struct KernelServices {
    pub(super) kernel: Arc<Mutex<Kernel>>,
    pub(super) ipam: Arc<IpamDelegate>,
    pub(super) plugin: String,
    pub(super) container_id: String,
}

impl HostServices for KernelServices {
    fn link(&mut self, side: Side, name: &str) -> Option<ObservedLink> {
        let _t = timing::phase("guest-plan:look");
        lock(&self.kernel).observe_link(side, name)
    }

    fn routes(&mut self, side: Side) -> Vec<ObservedRoute> {
        let _t = timing::phase("guest-plan:look");
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
