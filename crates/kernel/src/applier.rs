//! Applying a validated plan: in order, with a journal of undo steps.
//!
//! ADD is all-or-nothing: a [`Transaction`] records how to undo each step and rolls
//! the journal back in reverse when it is dropped without `commit()`, so an early
//! return or a panic leaves the namespaces as they were. DEL is best-effort: it
//! keeps going past errors, treats "already gone" as done, and reports the rest
//! together at the end.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipnet::IpNet;

use super::masq::{masquerade_for, MasqError, Masquerade};
use super::netlink::{NetError, Netlink, RouteSpec};
use super::netns::NetnsHandle;
use super::spoofcheck::{open_spoof_check, SpoofCheck};
use plan::{
    AttachmentKey, Intent, IntentKind, MasqBackend, MasqRuleFacts, ObservedLink, ObservedRoute,
    RouteIntent, Side,
};

/// How long a `wait-oper-up` intent may wait for the kernel.
const OPER_UP_TIMEOUT: Duration = Duration::from_secs(5);

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
}

/// The two masquerade backends, each opened when first needed (most invocations
/// need neither).
#[derive(Default)]
pub struct MasqDoors {
    nft: Option<Box<dyn Masquerade>>,
    iptables: Option<Box<dyn Masquerade>>,
    /// Replaces the real backends (tests of ordering and rollback).
    fake: Option<Box<dyn Masquerade>>,
}

impl MasqDoors {
    /// Use `fake` for every backend.
    pub fn fake(fake: Box<dyn Masquerade>) -> Self {
        MasqDoors {
            fake: Some(fake),
            ..Default::default()
        }
    }

    fn door(&mut self, backend: MasqBackend) -> Result<&mut (dyn Masquerade + 'static), NetError> {
        if let Some(fake) = self.fake.as_deref_mut() {
            return Ok(fake);
        }
        let (slot, name) = match backend {
            MasqBackend::Nftables => (&mut self.nft, "nftables"),
            MasqBackend::Iptables => (&mut self.iptables, "iptables"),
        };
        if slot.is_none() {
            *slot = Some(masquerade_for(name).map_err(firewall)?);
        }
        slot.as_deref_mut()
            .ok_or_else(|| NetError::Firewall(format!("{name} backend unavailable")))
    }

    /// Every backend in which rules may exist: nftables always; iptables only when
    /// the tools are installed (a node without them cannot hold such rules).
    fn all(&mut self) -> Vec<&mut (dyn Masquerade + 'static)> {
        if let Some(fake) = self.fake.as_deref_mut() {
            return vec![fake];
        }
        if self.nft.is_none() {
            self.nft = masquerade_for("nftables").ok();
        }
        if self.iptables.is_none() && iptables_installed() {
            self.iptables = masquerade_for("iptables").ok();
        }
        let mut doors: Vec<&mut (dyn Masquerade + 'static)> = Vec::new();
        if let Some(n) = self.nft.as_deref_mut() {
            doors.push(n);
        }
        if let Some(i) = self.iptables.as_deref_mut() {
            doors.push(i);
        }
        doors
    }
}

fn iptables_installed() -> bool {
    ["/usr/sbin/iptables", "/sbin/iptables", "/usr/bin/iptables"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
}

fn firewall(e: MasqError) -> NetError {
    NetError::Firewall(e.to_string())
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

    /// Facts about one link, with its master resolved to a name.
    pub fn observe_link(&mut self, side: Side, name: &str) -> Option<ObservedLink> {
        let nl = self.side(side).ok()?;
        let facts = nl.link(name).ok()??;
        let master = match facts.master {
            Some(index) => nl.link_by_index(index).ok().flatten().map(|l| l.name),
            None => None,
        };
        Some(ObservedLink {
            side,
            name: facts.name,
            index: facts.index,
            kind: facts.kind,
            mac: facts.mac.map(plan::Mac),
            mtu: facts.mtu,
            admin_up: facts.admin_up,
            oper_up: facts.oper_up,
            promisc: facts.promisc,
            master,
            peer_index: facts.peer_index,
            addresses: facts.addresses,
        })
    }

    fn spoof_door(&mut self) -> Result<&mut (dyn SpoofCheck + 'static), NetError> {
        if self.spoof.is_none() {
            self.spoof = Some(open_spoof_check()?);
        }
        self.spoof
            .as_deref_mut()
            .ok_or_else(|| NetError::Unsupported("anti-spoofing unavailable".into()))
    }

    /// The masquerade rules of one network, in every backend.
    pub fn masquerade_rules(&mut self, network: &str) -> Vec<MasqRuleFacts> {
        let mut out = Vec::new();
        for door in self.masq.all() {
            for r in door.rules(network).unwrap_or_default() {
                out.push(MasqRuleFacts {
                    source: r.source,
                    key: AttachmentKey {
                        network: r.network,
                        container_id: r.container_id,
                        ifname: r.ifname,
                    },
                });
            }
        }
        out
    }

    /// The main-table unicast routes of one namespace, with device names.
    pub fn observe_routes(&mut self, side: Side) -> Vec<ObservedRoute> {
        let Ok(nl) = self.side(side) else {
            return Vec::new();
        };
        let routes: Vec<_> = nl
            .routes()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.table == super::netlink::RT_TABLE_MAIN)
            .collect();
        // Names of the few devices the routes use, one lookup each: a dump of
        // every link would cost one entry per pod on a node's namespace.
        let mut names: Vec<(u32, Option<String>)> = Vec::new();
        for oif in routes.iter().filter_map(|r| r.oif) {
            if !names.iter().any(|(i, _)| *i == oif) {
                let name = nl.link_by_index(oif).ok().flatten().map(|l| l.name);
                names.push((oif, name));
            }
        }
        routes
            .into_iter()
            .map(|r| ObservedRoute {
                dst: r.dst,
                gw: r.gw,
                dev: r
                    .oif
                    .and_then(|i| names.iter().find(|(n, _)| *n == i))
                    .and_then(|(_, name)| name.clone()),
                priority: r.priority,
            })
            .collect()
    }
}

/// How to take one applied step back.
#[derive(Debug, Clone)]
enum Undo {
    DeleteLink(Side, String),
    SetUp(Side, String, bool),
    /// Take a link back down and remove the addresses the kernel added when it
    /// came up (bringing `lo` up adds 127.0.0.1/8 and ::1, and setting it down
    /// again keeps 127.0.0.1/8).
    SetDown {
        side: Side,
        name: String,
        addresses_before: Vec<IpNet>,
    },
    SetMtu(Side, String, u32),
    SetMac(Side, String, [u8; 6]),
    SetPromisc(String, bool),
    SetMaster(String, Option<String>),
    SetHairpin(String, bool),
    SetIsolated(String, bool),
    VlanDel(String, u16),
    DelAddress(Side, String, IpNet),
    DelRoute(Side, RouteSpec),
    AddAddress(Side, String, IpNet),
    Unmasquerade(AttachmentKey, MasqBackend),
    Unspoof(String, String),
    Sysctl(Side, String, String),
}

/// Applies intents while journaling their undo; rolls back on drop unless
/// committed. The kernel is shared with the guest's observations (which run
/// between apply and commit), so each step takes the lock on its own.
pub struct Transaction {
    kernel: Arc<Mutex<Kernel>>,
    journal: Vec<Undo>,
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
            journal: Vec::new(),
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
        self.journal.clear();
    }

    /// Undo everything applied so far, newest first. Errors are logged: there is
    /// nothing better to do with a failure to undo than to say so.
    pub fn rollback(&mut self) {
        let mut kernel = lock(&self.kernel);
        while let Some(step) = self.journal.pop() {
            if let Err(e) = undo(&mut kernel, &step) {
                if !e.is_not_found() {
                    tracing::error!(?step, "rollback step failed: {e}");
                }
            }
        }
    }
}

/// Apply one intent, pushing how to undo each change onto `journal`.
fn apply_one(k: &mut Kernel, intent: &Intent, journal: &mut Vec<Undo>) -> Result<(), NetError> {
    match intent {
        Intent::EnsureBridge {
            name,
            mtu,
            vlan_filtering,
            promisc,
        } => {
            let existing = k.host.link_brief(name)?;
            let facts = match existing {
                Some(f) => f,
                None => {
                    match k.host.create_bridge(name, *mtu, *vlan_filtering) {
                        Ok(()) => {
                            journal.push(Undo::DeleteLink(Side::Host, name.clone()));
                            pin_mac(k, name)?;
                        }
                        // A concurrent ADD created it first: adopt it, as the
                        // reference does (plugins#366).
                        Err(e) if e.is_exists() => {}
                        Err(e) => return Err(e),
                    }
                    k.host.link_brief(name)?.ok_or_else(|| NetError::NotFound {
                        what: format!("bridge {name} right after creating it"),
                    })?
                }
            };
            if facts.kind.as_deref() != Some("bridge") {
                return Err(NetError::Conflict(format!(
                    "{name:?} already exists but is not a bridge"
                )));
            }
            if *promisc && !facts.promisc {
                k.host.set_promisc(name, true)?;
                journal.push(Undo::SetPromisc(name.clone(), false));
            }
            if !facts.admin_up {
                k.host.set_up(name, true)?;
                journal.push(Undo::SetUp(Side::Host, name.clone(), false));
            }
        }
        Intent::CreateVeth {
            name,
            peer,
            mtu,
            mac,
        } => {
            let host_ns = &k.host_ns;
            let container = k
                .container
                .as_deref_mut()
                .ok_or_else(|| NetError::NotFound {
                    what: "the container network namespace".into(),
                })?;
            container
                .create_veth(name, *mtu, mac.map(|m| m.0), peer, host_ns)
                .map_err(|e| {
                    if e.is_exists() {
                        NetError::Conflict(format!(
                            "container veth name {name:?} or peer {peer:?} already exists"
                        ))
                    } else {
                        e
                    }
                })?;
            journal.push(Undo::DeleteLink(Side::Container, name.clone()));
        }
        Intent::EnsureHostVeth { name, peer, mtu } => match k.host.link_brief(name)? {
            Some(facts) if facts.kind.as_deref() == Some("veth") => {}
            Some(_) => {
                return Err(NetError::Conflict(format!(
                    "{name:?} already exists but is not a veth"
                )))
            }
            None => {
                let host_ns = k.host_ns.try_clone()?;
                k.host.create_veth(name, *mtu, None, peer, &host_ns)?;
                journal.push(Undo::DeleteLink(Side::Host, name.clone()));
            }
        },
        Intent::DeleteLink { link } => match k.side(link.side)?.delete_link(&link.name) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        },
        Intent::SetLinkUp { link } | Intent::SetLinkDown { link } => {
            let up = matches!(intent, Intent::SetLinkUp { .. });
            let nl = k.side(link.side)?;
            let facts = if link.side == Side::Host {
                nl.link_brief(&link.name)?
            } else {
                nl.link(&link.name)?
            }
            .ok_or_else(|| NetError::NotFound {
                what: format!("link {link}"),
            })?;
            if facts.admin_up != up {
                nl.set_up(&link.name, up)?;
                if up {
                    journal.push(Undo::SetDown {
                        side: link.side,
                        name: link.name.clone(),
                        addresses_before: facts.addresses,
                    });
                } else {
                    journal.push(Undo::SetUp(link.side, link.name.clone(), true));
                }
            }
        }
        Intent::SetMtu { link, mtu } => {
            let nl = k.side(link.side)?;
            let facts = nl
                .link_brief(&link.name)?
                .ok_or_else(|| NetError::NotFound {
                    what: format!("link {link}"),
                })?;
            if facts.mtu != *mtu {
                nl.set_mtu(&link.name, *mtu)?;
                journal.push(Undo::SetMtu(link.side, link.name.clone(), facts.mtu));
            }
        }
        Intent::SetMac { link, mac } => {
            let nl = k.side(link.side)?;
            let facts = nl
                .link_brief(&link.name)?
                .ok_or_else(|| NetError::NotFound {
                    what: format!("link {link}"),
                })?;
            if facts.mac != Some(mac.0) {
                nl.set_mac(&link.name, mac.0)?;
                if let Some(old) = facts.mac {
                    journal.push(Undo::SetMac(link.side, link.name.clone(), old));
                }
            }
        }
        Intent::AttachPort {
            port,
            master,
            hairpin,
            isolated,
        } => {
            let before = k.host.link_brief(port)?.ok_or_else(|| NetError::NotFound {
                what: format!("link host:{port}"),
            })?;
            let old_master = match before.master {
                Some(i) => k
                    .host
                    .links()?
                    .into_iter()
                    .find(|l| l.index == i)
                    .map(|l| l.name),
                None => None,
            };
            if old_master.as_deref() != Some(master.as_str()) {
                k.host.set_master(port, Some(master))?;
                journal.push(Undo::SetMaster(port.clone(), old_master));
            }
            if *hairpin {
                k.host.set_hairpin(port, true)?;
                journal.push(Undo::SetHairpin(port.clone(), false));
            }
            if *isolated {
                k.host.set_isolated(port, true)?;
                journal.push(Undo::SetIsolated(port.clone(), false));
            }
        }
        Intent::FlushPortVlans { port } => {
            for (vid, _) in k.host.bridge_vlans(port)? {
                k.host.bridge_vlan_del(port, vid)?;
            }
        }
        Intent::AddPortVlan {
            port,
            vid,
            pvid,
            untagged,
        } => {
            k.host.bridge_vlan_add(port, *vid, *pvid, *untagged)?;
            journal.push(Undo::VlanDel(port.clone(), *vid));
        }
        Intent::AddAddress {
            link,
            address,
            ensure,
        } => {
            let nl = k.side(link.side)?;
            match nl.add_address(&link.name, *address) {
                Ok(()) => journal.push(Undo::DelAddress(link.side, link.name.clone(), *address)),
                // Concurrent ADDs put the same gateway address on a shared
                // bridge (plugins#366): identical is fine when asked to ensure.
                Err(e) if *ensure && e.is_exists() => {}
                Err(e) => return Err(e),
            }
        }
        Intent::DeleteAddress { link, address } => {
            match k.side(link.side)?.del_address(&link.name, *address) {
                Ok(()) => journal.push(Undo::AddAddress(link.side, link.name.clone(), *address)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Intent::AddRoute(route) => {
            let spec = route_spec(route);
            match k.side(route.side)?.add_route(&spec) {
                Ok(()) => journal.push(Undo::DelRoute(route.side, spec)),
                // The reference adds routes with RouteAddEcmp, which accepts an
                // identical route (IPAM's default route and isDefaultGateway's
                // coincide in common configs).
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(e),
            }
        }
        Intent::SetSysctl { side, key, value } => {
            let nl = k.side(*side)?;
            let old = match nl.sysctl(key) {
                Ok(old) => old,
                // A key that does not exist (IPv6 disabled, say) is skipped, as the
                // reference ignores these sysctl errors.
                Err(e) if e.is_not_found() || is_enoent(&e) => {
                    tracing::debug!(key, "sysctl does not exist here; skipped");
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            if old.trim() != value.trim() {
                nl.set_sysctl(key, value)?;
                journal.push(Undo::Sysctl(*side, key.clone(), old.trim().to_string()));
            }
        }
        Intent::Masquerade {
            source,
            key,
            backend,
        } => {
            k.masq.door(*backend)?.add(key, *source).map_err(firewall)?;
            journal.push(Undo::Unmasquerade(key.clone(), *backend));
        }
        Intent::Unmasquerade { key } => {
            let mut failures = Vec::new();
            for door in k.masq.all() {
                if let Err(e) = door.remove(key) {
                    failures.push(e.to_string());
                }
            }
            if !failures.is_empty() {
                return Err(NetError::Firewall(failures.join("; ")));
            }
        }
        Intent::GcMasquerade { network } => {
            // Without a list there is nothing to compare against: keep everything.
            if let Some(valid) = k.valid_attachments.clone() {
                let mut failures = Vec::new();
                for door in k.masq.all() {
                    if let Err(e) = door.gc(network, &valid) {
                        failures.push(e.to_string());
                    }
                }
                if !failures.is_empty() {
                    return Err(NetError::Firewall(failures.join("; ")));
                }
            }
        }
        Intent::WaitAddressesSettled { link } => {
            k.side(link.side)?
                .wait_addresses_settled(&link.name, OPER_UP_TIMEOUT)?;
        }
        Intent::SpoofCheck {
            port,
            mac,
            container_id,
            ifname,
        } => {
            k.spoof_door()?.install(port, mac.0, container_id, ifname)?;
            journal.push(Undo::Unspoof(container_id.clone(), ifname.clone()));
        }
        Intent::UnspoofCheck {
            container_id,
            ifname,
        } => k.spoof_door()?.remove(container_id, ifname)?,
        Intent::WaitOperUp { link } => {
            k.side(link.side)?
                .wait_oper_up(&link.name, OPER_UP_TIMEOUT)?;
        }
    }
    Ok(())
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.committed {
            self.rollback();
        }
    }
}

/// A bridge without an explicitly set MAC takes the lowest MAC of its ports, so
/// it changes as containers come and go and a CHECK against an older result fails.
/// Setting its current (random) MAC explicitly freezes it; the reference pins it
/// the same way when it adds the gateway address.
fn pin_mac(k: &mut Kernel, name: &str) -> Result<(), NetError> {
    if let Some(mac) = k.host.link_brief(name)?.and_then(|l| l.mac) {
        k.host.set_mac(name, mac)?;
    }
    Ok(())
}

fn is_enoent(e: &NetError) -> bool {
    matches!(e, NetError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

fn route_spec(r: &RouteIntent) -> RouteSpec {
    RouteSpec {
        dst: r.dst,
        gw: r.gw,
        oif_name: r.dev.clone(),
        table: r.table,
        priority: r.priority,
        scope: r.scope,
    }
}

fn undo(k: &mut Kernel, step: &Undo) -> Result<(), NetError> {
    match step {
        Undo::DeleteLink(side, name) => k.side(*side)?.delete_link(name),
        Undo::SetUp(side, name, up) => k.side(*side)?.set_up(name, *up),
        Undo::SetDown {
            side,
            name,
            addresses_before,
        } => {
            let nl = k.side(*side)?;
            nl.set_up(name, false)?;
            let now = nl.link(name)?.map(|l| l.addresses).unwrap_or_default();
            for addr in now.iter().filter(|a| !addresses_before.contains(a)) {
                nl.del_address(name, *addr)?;
            }
            Ok(())
        }
        Undo::SetMtu(side, name, mtu) => k.side(*side)?.set_mtu(name, *mtu),
        Undo::SetMac(side, name, mac) => k.side(*side)?.set_mac(name, *mac),
        Undo::SetPromisc(name, on) => k.host.set_promisc(name, *on),
        Undo::SetMaster(name, master) => k.host.set_master(name, master.as_deref()),
        Undo::SetHairpin(name, on) => k.host.set_hairpin(name, *on),
        Undo::SetIsolated(name, on) => k.host.set_isolated(name, *on),
        Undo::VlanDel(port, vid) => k.host.bridge_vlan_del(port, *vid),
        Undo::DelAddress(side, name, addr) => k.side(*side)?.del_address(name, *addr),
        Undo::DelRoute(side, spec) => k.side(*side)?.del_route(spec),
        Undo::AddAddress(side, name, addr) => k.side(*side)?.add_address(name, *addr),
        Undo::Unspoof(container_id, ifname) => k.spoof_door()?.remove(container_id, ifname),
        Undo::Unmasquerade(key, backend) => k.masq.door(*backend)?.remove(key).map_err(firewall),
        Undo::Sysctl(side, key, value) => k.side(*side)?.set_sysctl(key, value),
    }
}

/// Apply a DEL plan: every intent is tried; missing links, addresses, routes and
/// a vanished container namespace count as done. Returns the failures.
/// DEL's deletion of the container's interface: the name is freed at once
/// (down, renamed) and the kernel's unregister, which waits for RCU grace
/// periods (10-30 ms, most of a DEL), runs in the reaper after this process
/// has exited (see `crate::reaper`). Links an earlier, killed DEL retired and
/// never deleted are deleted here first.
fn retire_container_link(kernel: &mut Kernel, name: &str) -> Result<(), NetError> {
    let Some(nl) = kernel.container.as_deref_mut() else {
        return Ok(());
    };
    for stale in nl.retired_links().unwrap_or_default() {
        if let Err(e) = nl.delete_link(&stale) {
            tracing::warn!(link = stale, "cannot delete a retired link: {e}");
        }
    }
    if let Some(retired) = nl.retire_link(name)? {
        crate::reaper::defer_link_delete(retired);
    }
    Ok(())
}

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
                retire_container_link(kernel, &link.name)
            }
            // A DEL step is not undone when a later one fails: no journal.
            _ => apply_one(kernel, intent, &mut Vec::new()),
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
mod tests {
    use super::*;
    use crate::fake::RecordingNetlink;
    use crate::masq::MasqRule;
    use nix::errno::Errno;
    use plan::LinkRef;
    use std::sync::Arc;

    /// Masquerade rules in memory, shared with the test through an `Arc`.
    #[derive(Clone, Default)]
    struct FakeMasq(Arc<Mutex<Vec<MasqRule>>>);

    impl Masquerade for FakeMasq {
        fn add(&mut self, key: &AttachmentKey, source: IpNet) -> Result<(), MasqError> {
            lock_vec(&self.0).push(MasqRule {
                network: key.network.clone(),
                container_id: key.container_id.clone(),
                ifname: key.ifname.clone(),
                source,
            });
            Ok(())
        }
        fn remove(&mut self, key: &AttachmentKey) -> Result<(), MasqError> {
            lock_vec(&self.0).retain(|r| {
                !(r.network == key.network
                    && r.container_id == key.container_id
                    && r.ifname == key.ifname)
            });
            Ok(())
        }
        fn rules(&mut self, network: &str) -> Result<Vec<MasqRule>, MasqError> {
            Ok(lock_vec(&self.0)
                .iter()
                .filter(|r| r.network == network)
                .cloned()
                .collect())
        }
        fn gc(&mut self, _: &str, _: &[(String, String)]) -> Result<Vec<MasqRule>, MasqError> {
            Ok(Vec::new())
        }
    }

    fn lock_vec(v: &Mutex<Vec<MasqRule>>) -> MutexGuard<'_, Vec<MasqRule>> {
        v.lock().unwrap_or_else(|p| p.into_inner())
    }

    const SYSCTLS: [&str; 3] = [
        "net/ipv6/conf/br0/accept_ra",
        "net/ipv4/ip_forward",
        "net/ipv4/conf/lo/arp_notify",
    ];

    /// Two fresh fake namespaces; `fail` makes the n-th call on one side fail.
    fn kernel(masq: &FakeMasq, fail: Option<(Side, usize)>) -> Kernel {
        let mut host = RecordingNetlink::new()
            .with_sysctl(SYSCTLS[0], "1")
            .with_sysctl(SYSCTLS[1], "0");
        let mut container = RecordingNetlink::new().with_sysctl(SYSCTLS[2], "0");
        match fail {
            Some((Side::Host, n)) => {
                host.fail_at(n, Errno::EIO);
            }
            Some((Side::Container, n)) => {
                container.fail_at(n, Errno::EIO);
            }
            None => {}
        }
        Kernel {
            host: Box::new(host),
            host_ns: NetnsHandle::current().expect("own netns"),
            container: Some(Box::new(container)),
            masq: MasqDoors::fake(Box::new(masq.clone())),
            spoof: None,
            valid_attachments: None,
        }
    }

    /// What the two fake namespaces and the rules look like.
    fn state(k: &mut Kernel, masq: &FakeMasq) -> String {
        let mut out = String::new();
        for side in [Side::Host, Side::Container] {
            let nl = k.side(side).expect("side");
            out += &format!(
                "{:?}\n{:?}\n",
                nl.links().expect("links"),
                nl.routes().expect("routes")
            );
        }
        for (side, key) in [
            (Side::Host, SYSCTLS[0]),
            (Side::Host, SYSCTLS[1]),
            (Side::Container, SYSCTLS[2]),
        ] {
            out += &format!("{key}={:?}\n", k.side(side).expect("side").sysctl(key).ok());
        }
        out + &format!("{:?}", lock_vec(&masq.0))
    }

    /// A bridge-style ADD: every kind of undo the journal knows, except the veth
    /// pair (whose two ends the fake keeps in separate models).
    fn plan() -> Vec<Intent> {
        let key = AttachmentKey {
            network: "net".into(),
            container_id: "ctr".into(),
            ifname: "lo".into(),
        };
        vec![
            Intent::EnsureBridge {
                name: "br0".into(),
                mtu: Some(1400),
                vlan_filtering: false,
                promisc: true,
            },
            Intent::SetSysctl {
                side: Side::Host,
                key: SYSCTLS[0].into(),
                value: "0".into(),
            },
            Intent::SetSysctl {
                side: Side::Container,
                key: SYSCTLS[2].into(),
                value: "1".into(),
            },
            Intent::AddAddress {
                link: LinkRef::container("lo"),
                address: "10.7.0.5/24".parse().expect("cidr"),
                ensure: false,
            },
            Intent::SetLinkUp {
                link: LinkRef::container("lo"),
            },
            Intent::AddRoute(RouteIntent {
                side: Side::Container,
                dst: "0.0.0.0/0".parse().expect("cidr"),
                gw: Some("10.7.0.1".parse().expect("ip")),
                dev: Some("lo".into()),
                priority: None,
                table: None,
                scope: None,
            }),
            Intent::AddAddress {
                link: LinkRef::host("br0"),
                address: "10.7.0.1/24".parse().expect("cidr"),
                ensure: true,
            },
            Intent::SetSysctl {
                side: Side::Host,
                key: SYSCTLS[1].into(),
                value: "1".into(),
            },
            Intent::Masquerade {
                source: "10.7.0.5/24".parse().expect("cidr"),
                key,
                backend: MasqBackend::Nftables,
            },
        ]
    }

    #[test]
    fn a_failure_at_every_step_returns_to_the_prior_state() {
        // Count the calls a successful run makes on each side.
        let masq = FakeMasq::default();
        let mut k = kernel(&masq, None);
        let before = state(&mut k, &masq);
        let mut journal = Vec::new();
        for intent in plan() {
            apply_one(&mut k, &intent, &mut journal).expect("clean run");
        }
        assert_ne!(state(&mut k, &masq), before, "the plan changes something");

        let mut injected = 0;
        for side in [Side::Host, Side::Container] {
            for n in 1..=40 {
                let masq = FakeMasq::default();
                let mut probe = kernel(&masq, None);
                let before = state(&mut probe, &masq);
                let k = Arc::new(Mutex::new(kernel(&masq, Some((side, n)))));
                let mut tx = Transaction::new(Arc::clone(&k));
                let outcome = tx.apply_all(&plan());
                if outcome.is_ok() {
                    tx.commit();
                    break;
                }
                injected += 1;
                drop(tx); // rolls back
                let mut guard = lock(&k);
                assert_eq!(
                    state(&mut guard, &masq),
                    before,
                    "failure at call {n} on the {side} side left changes: {:?}",
                    outcome.err()
                );
            }
        }
        assert!(
            injected >= 10,
            "only {injected} failure points were exercised"
        );
    }
}
