//! Applying a validated plan: in order, with a journal of undo steps.
//!
//! ADD is all-or-nothing: a [`Transaction`] records how to undo each step and rolls
//! the journal back in reverse when it is dropped without `commit()`, so an early
//! return or a panic leaves the namespaces as they were. DEL is best-effort: it
//! keeps going past errors, treats "already gone" as done, and reports the rest
//! together at the end.
//!
//! One file per family of intents, each with its apply steps and their undo side
//! by side: [`links`], [`ports`] (bridge ports and VLANs), [`addresses`],
//! [`routes`], [`sysctls`], [`firewall`] (masquerade, anti-spoofing) and
//! [`waits`]; [`observe`] answers the guest's questions. [`apply_one`] is the one
//! place that maps every intent kind to its family.

mod addresses;
mod firewall;
mod links;
mod observe;
mod ports;
mod routes;
mod sysctls;
mod waits;

use std::sync::{Arc, Mutex, MutexGuard};

use plan::{Intent, IntentKind, Side};

pub use firewall::MasqDoors;
pub use waits::WAIT_BUDGET;

use crate::netlink::{NetError, Netlink};
use crate::netns::NetnsHandle;
use crate::spoofcheck::SpoofCheck;

/// The doors of one invocation: netlink in the host namespace and, when the
/// container's namespace exists, in the container's; the masquerade backends of
/// the host namespace, opened on first use.
pub struct Kernel {
    pub host: Box<dyn Netlink>,
    pub host_ns: NetnsHandle,
    pub container: Option<Box<dyn Netlink>>,
    pub masq: MasqDoors,
    /// The anti-spoofing door, opened on first use.
    pub spoof: Option<Box<dyn SpoofCheck>>,
    /// GC only: the attachments that stay (`None` when the runtime sent no list).
    pub valid_attachments: Option<Vec<(String, String)>>,
    /// Whose links this invocation may take up when they exist already.
    pub ownership: Ownership,
    /// What is left of the time all waits of the invocation may take
    /// (starts at [`WAIT_BUDGET`]).
    pub waits_left: std::time::Duration,
}

/// The record kept on every host link wasm-cni creates for a network (its
/// alias, `IFLA_IFALIAS`: stored by the kernel with the link, so a crash
/// cannot lose it and it goes when the link goes), and the existing links the
/// administrator lets this plugin adopt. A link that exists is taken up only
/// when it carries this network's record or the administrator named it.
#[derive(Debug, Clone, Default)]
pub struct Ownership {
    /// The network (`name` of the config) this invocation acts for.
    pub network: String,
    /// Existing links (the node's) that may be adopted without a record.
    pub adopt: Vec<plan::policy::NamePattern>,
}

impl Ownership {
    /// The record a link created for `network` carries.
    pub fn record(network: &str) -> String {
        format!("wasm-cni network={network}")
    }

    /// Whether an existing link may be taken up.
    pub(crate) fn check(&self, name: &str, alias: Option<&str>) -> Result<(), NetError> {
        if alias == Some(Self::record(&self.network).as_str())
            || self.adopt.iter().any(|p| p.matches(name))
        {
            return Ok(());
        }
        Err(NetError::NotOwned {
            link: name.to_string(),
            owner: alias.map(str::to_string),
        })
    }
}

impl Kernel {
    fn side(&mut self, side: Side) -> Result<&mut (dyn Netlink + 'static), NetError> {
        match side {
            Side::Host => Ok(self.host.as_mut()),
            Side::Container => self
                .container
                .as_deref_mut()
                .ok_or_else(|| NetError::NotFound {
                    what: "the container network namespace".into(),
                }),
        }
    }
}

/// A step that failed while applying.
#[derive(Debug, thiserror::Error)]
#[error("intent #{index} ({kind}) failed: {source}")]
pub struct ApplyError {
    pub index: usize,
    pub kind: IntentKind,
    #[source]
    pub source: NetError,
}

/// How to take one applied step back, by family.
#[derive(Debug, Clone)]
enum Undo {
    Link(links::Undo),
    Port(ports::Undo),
    Address(addresses::Undo),
    Route(routes::Undo),
    Sysctl(sysctls::Undo),
    Firewall(firewall::Undo),
}

macro_rules! undo_from {
    ($($family:ident => $variant:ident),*) => {$(
        impl From<$family::Undo> for Undo {
            fn from(step: $family::Undo) -> Self {
                Undo::$variant(step)
            }
        }
    )*};
}
undo_from!(links => Link, ports => Port, addresses => Address, routes => Route, sysctls => Sysctl, firewall => Firewall);

fn undo(k: &mut Kernel, step: &Undo) -> Result<(), NetError> {
    match step {
        Undo::Link(s) => links::undo(k, s),
        Undo::Port(s) => ports::undo(k, s),
        Undo::Address(s) => addresses::undo(k, s),
        Undo::Route(s) => routes::undo(k, s),
        Undo::Sysctl(s) => sysctls::undo(k, s),
        Undo::Firewall(s) => firewall::undo(k, s),
    }
}

/// The undo steps of what was applied, oldest first.
#[derive(Debug, Default)]
struct Journal(Vec<Undo>);

impl Journal {
    fn push(&mut self, step: impl Into<Undo>) {
        self.0.push(step.into());
    }
}

/// Applies intents while journaling their undo; rolls back on drop unless
/// committed. The kernel is shared with the guest's observations (which run
/// between apply and commit), so each step takes the lock on its own.
pub struct Transaction {
    kernel: Arc<Mutex<Kernel>>,
    journal: Journal,
    committed: bool,
}

fn lock(kernel: &Mutex<Kernel>) -> MutexGuard<'_, Kernel> {
    kernel.lock().unwrap_or_else(|p| p.into_inner())
}

impl Transaction {
    /// Start applying into `kernel`.
    pub fn new(kernel: Arc<Mutex<Kernel>>) -> Self {
        Transaction {
            kernel,
            journal: Journal::default(),
            committed: false,
        }
    }

    /// Apply every intent in order; on the first failure the journal is undone
    /// (when `self` drops) and the failure is returned.
    pub fn apply_all(&mut self, intents: &[Intent]) -> Result<(), ApplyError> {
        let mut kernel = lock(&self.kernel);
        for (index, intent) in intents.iter().enumerate() {
            let _t = timing::phase(format!("apply:{}", intent.kind()));
            apply_one(&mut kernel, intent, &mut self.journal).map_err(|source| ApplyError {
                index,
                kind: intent.kind(),
                source,
            })?;
        }
        Ok(())
    }

    /// Keep what was applied.
    pub fn commit(mut self) {
        self.committed = true;
        self.journal.0.clear();
    }

    /// Undo everything applied so far, newest first. Errors are logged: there is
    /// nothing better to do with a failure to undo than to say so.
    pub fn rollback(&mut self) {
        let mut kernel = lock(&self.kernel);
        while let Some(step) = self.journal.0.pop() {
            if let Err(e) = undo(&mut kernel, &step) {
                if !e.is_not_found() {
                    tracing::error!(?step, "rollback step failed: {e}");
                }
            }
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.committed {
            self.rollback();
        }
    }
}

/// Apply one intent, journaling how to undo each change. Every kind is mapped
/// to its family here and nowhere else.
fn apply_one(k: &mut Kernel, intent: &Intent, journal: &mut Journal) -> Result<(), NetError> {
    match intent {
        Intent::EnsureBridge {
            name,
            mtu,
            vlan_filtering,
            promisc,
        } => links::ensure_bridge(k, journal, name, *mtu, *vlan_filtering, *promisc),
        Intent::CreateVeth {
            name,
            peer,
            mtu,
            mac,
        } => links::create_veth(k, journal, name, peer, *mtu, *mac),
        Intent::EnsureHostVeth { name, peer, mtu } => {
            links::ensure_host_veth(k, journal, name, peer, *mtu)
        }
        Intent::DeleteLink { link } => links::delete(k, link),
        Intent::SetLinkUp { link } => links::set_up(k, journal, link, true),
        Intent::SetLinkDown { link } => links::set_up(k, journal, link, false),
        Intent::SetMtu { link, mtu } => links::set_mtu(k, journal, link, *mtu),
        Intent::SetMac { link, mac } => links::set_mac(k, journal, link, *mac),
        Intent::AttachPort {
            port,
            master,
            hairpin,
            isolated,
        } => ports::attach(k, journal, port, master, *hairpin, *isolated),
        Intent::FlushPortVlans { port } => ports::flush_vlans(k, port),
        Intent::AddPortVlan {
            port,
            vid,
            pvid,
            untagged,
        } => ports::add_vlan(k, journal, port, *vid, *pvid, *untagged),
        Intent::AddAddress {
            link,
            address,
            ensure,
        } => addresses::add(k, journal, link, *address, *ensure),
        Intent::DeleteAddress { link, address } => addresses::delete(k, journal, link, *address),
        Intent::AddRoute(route) => routes::add(k, journal, route),
        Intent::SetSysctl { side, key, value } => sysctls::set(k, journal, *side, key, value),
        Intent::Masquerade {
            source,
            key,
            backend,
        } => firewall::masquerade(k, journal, *source, key, *backend),
        Intent::Unmasquerade { key } => firewall::unmasquerade(k, key),
        Intent::GcMasquerade { network } => firewall::gc_masquerade(k, network),
        Intent::SpoofCheck {
            port,
            mac,
            container_id,
            ifname,
        } => firewall::spoof_check(k, journal, port, *mac, container_id, ifname),
        Intent::UnspoofCheck {
            container_id,
            ifname,
        } => firewall::unspoof_check(k, container_id, ifname),
        Intent::WaitOperUp { link } => waits::oper_up(k, link),
        Intent::WaitAddressesSettled { link } => waits::addresses_settled(k, link),
    }
}

/// Apply a DEL plan: every intent is tried; missing links, addresses, routes and
/// a vanished container namespace count as done. Returns the failures.
pub fn apply_best_effort(kernel: &mut Kernel, intents: &[Intent]) -> Vec<ApplyError> {
    let mut failures = Vec::new();
    for (index, intent) in intents.iter().enumerate() {
        let touches_container = intent.links().iter().any(|l| l.side == Side::Container)
            || matches!(
                intent,
                Intent::SetSysctl {
                    side: Side::Container,
                    ..
                }
            )
            || matches!(intent, Intent::AddRoute(r) if r.side == Side::Container);
        if touches_container && kernel.container.is_none() {
            continue;
        }
        let done = match intent {
            Intent::DeleteLink { link } if link.side == Side::Container => {
                links::retire_container_link(kernel, &link.name)
            }
            // A DEL step is not undone when a later one fails: no journal.
            _ => apply_one(kernel, intent, &mut Journal::default()),
        };
        match done {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(source) => failures.push(ApplyError {
                index,
                kind: intent.kind(),
                source,
            }),
        }
    }
    failures
}

#[cfg(test)]
mod tests;
