//! Links: bridges, veth pairs, deletion, up/down, MTU and MAC, each with how it
//! is taken back.

use ipnet::IpNet;
use plan::{LinkRef, Mac, Side};

use super::{Journal, Kernel};
use crate::netlink::NetError;

/// How to take one link change back.
#[derive(Debug, Clone)]
pub(super) enum Undo {
    Delete(Side, String),
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
}

pub(super) fn undo(k: &mut Kernel, step: &Undo) -> Result<(), NetError> {
    match step {
        Undo::Delete(side, name) => k.side(*side)?.delete_link(name),
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
    }
}

/// A host bridge: created, or adopted when it exists (and is a bridge).
pub(super) fn ensure_bridge(
    k: &mut Kernel,
    journal: &mut Journal,
    name: &str,
    mtu: Option<u32>,
    vlan_filtering: bool,
    promisc: bool,
) -> Result<(), NetError> {
    let existing = k.host.link_brief(name)?;
    let facts = match existing {
        Some(f) => {
            take_up(k, name, f.alias.as_deref())?;
            f
        }
        None => {
            let created = match k.host.create_bridge(name, mtu, vlan_filtering) {
                Ok(()) => {
                    journal.push(Undo::Delete(Side::Host, name.to_string()));
                    record_owner(k, name)?;
                    pin_mac(k, name)?;
                    true
                }
                // A concurrent ADD created it first: adopt it, as the
                // reference does (plugins#366), if it is this network's.
                Err(e) if e.is_exists() => false,
                Err(e) => return Err(e),
            };
            let facts = k.host.link_brief(name)?.ok_or_else(|| NetError::NotFound {
                what: format!("bridge {name} right after creating it"),
            })?;
            if !created {
                take_up(k, name, facts.alias.as_deref())?;
            }
            facts
        }
    };
    if facts.kind.as_deref() != Some("bridge") {
        return Err(NetError::Conflict(format!(
            "{name:?} already exists but is not a bridge"
        )));
    }
    if promisc && !facts.promisc {
        k.host.set_promisc(name, true)?;
        journal.push(Undo::SetPromisc(name.to_string(), false));
    }
    if !facts.admin_up {
        k.host.set_up(name, true)?;
        journal.push(Undo::SetUp(Side::Host, name.to_string(), false));
    }
    Ok(())
}

/// Whether an existing host link may be taken up: it carries this network's
/// record, or the administrator named it. A link without a record may be one
/// a concurrent ADD of the same network created a moment ago and has not
/// recorded yet (two netlink requests): its record is awaited briefly.
fn take_up(k: &mut Kernel, name: &str, alias: Option<&str>) -> Result<(), NetError> {
    let refused = match k.ownership.check(name, alias) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    if alias.is_some() {
        return Err(refused);
    }
    let until = std::time::Instant::now() + RECORD_GRACE;
    while std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(2));
        let alias = k.host.link_brief(name)?.and_then(|l| l.alias);
        if alias.is_some() {
            return k.ownership.check(name, alias.as_deref());
        }
    }
    Err(refused)
}

/// How long a record is awaited on a link without one.
const RECORD_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Write this network's record on a host link just created (undone with it).
fn record_owner(k: &mut Kernel, name: &str) -> Result<(), NetError> {
    let record = super::Ownership::record(&k.ownership.network);
    k.host.set_alias(name, &record)
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

/// A veth pair: `name` in the container, `peer` on the host.
pub(super) fn create_veth(
    k: &mut Kernel,
    journal: &mut Journal,
    name: &str,
    peer: &str,
    mtu: Option<u32>,
    mac: Option<Mac>,
) -> Result<(), NetError> {
    let host_ns = &k.host_ns;
    let container = k
        .container
        .as_deref_mut()
        .ok_or_else(|| NetError::NotFound {
            what: "the container network namespace".into(),
        })?;
    container
        .create_veth(name, mtu, mac.map(|m| m.0), peer, host_ns)
        .map_err(|e| {
            if e.is_exists() {
                NetError::Conflict(format!(
                    "container veth name {name:?} or peer {peer:?} already exists"
                ))
            } else {
                e
            }
        })?;
    journal.push(Undo::Delete(Side::Container, name.to_string()));
    Ok(())
}

/// A veth pair with both ends on the host: created, or adopted when `name` is a
/// veth already.
pub(super) fn ensure_host_veth(
    k: &mut Kernel,
    journal: &mut Journal,
    name: &str,
    peer: &str,
    mtu: Option<u32>,
) -> Result<(), NetError> {
    match k.host.link_brief(name)? {
        Some(facts) if facts.kind.as_deref() == Some("veth") => {
            // Another network's veth is not taken over by naming it.
            take_up(k, name, facts.alias.as_deref())
        }
        Some(_) => Err(NetError::Conflict(format!(
            "{name:?} already exists but is not a veth"
        ))),
        None => {
            let host_ns = k.host_ns.try_clone()?;
            k.host.create_veth(name, mtu, None, peer, &host_ns)?;
            journal.push(Undo::Delete(Side::Host, name.to_string()));
            record_owner(k, name)
        }
    }
}

/// Delete a link; one already gone is done. Not undone: a deleted link cannot
/// be brought back as it was.
pub(super) fn delete(k: &mut Kernel, link: &LinkRef) -> Result<(), NetError> {
    match k.side(link.side)?.delete_link(&link.name) {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// DEL's deletion of the container's interface: the name is freed at once
/// (down, renamed) and the kernel's unregister, which waits for RCU grace
/// periods (10-30 ms, most of a DEL), runs in the reaper after this process
/// has exited (see `crate::reaper`). Links an earlier, killed DEL retired and
/// never deleted are deleted here first.
pub(super) fn retire_container_link(kernel: &mut Kernel, name: &str) -> Result<(), NetError> {
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

/// Set a link administratively up or down.
pub(super) fn set_up(
    k: &mut Kernel,
    journal: &mut Journal,
    link: &LinkRef,
    up: bool,
) -> Result<(), NetError> {
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
    Ok(())
}

pub(super) fn set_mtu(
    k: &mut Kernel,
    journal: &mut Journal,
    link: &LinkRef,
    mtu: u32,
) -> Result<(), NetError> {
    let nl = k.side(link.side)?;
    let facts = nl
        .link_brief(&link.name)?
        .ok_or_else(|| NetError::NotFound {
            what: format!("link {link}"),
        })?;
    if facts.mtu != mtu {
        nl.set_mtu(&link.name, mtu)?;
        journal.push(Undo::SetMtu(link.side, link.name.clone(), facts.mtu));
    }
    Ok(())
}

pub(super) fn set_mac(
    k: &mut Kernel,
    journal: &mut Journal,
    link: &LinkRef,
    mac: Mac,
) -> Result<(), NetError> {
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
    Ok(())
}
