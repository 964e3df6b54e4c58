//! Bridge ports: enslaving a host veth end (with hairpin and isolation) and
//! its VLANs, each with how it is taken back.

use super::{Journal, Kernel};
use crate::netlink::NetError;

/// How to take one port change back.
#[derive(Debug, Clone)]
pub(super) enum Undo {
    SetMaster(String, Option<String>),
    SetHairpin(String, bool),
    SetIsolated(String, bool),
    VlanDel(String, u16),
}

pub(super) fn undo(k: &mut Kernel, step: &Undo) -> Result<(), NetError> {
    match step {
        Undo::SetMaster(name, master) => k.host.set_master(name, master.as_deref()),
        Undo::SetHairpin(name, on) => k.host.set_hairpin(name, *on),
        Undo::SetIsolated(name, on) => k.host.set_isolated(name, *on),
        Undo::VlanDel(port, vid) => k.host.bridge_vlan_del(port, *vid),
    }
}

pub(super) fn attach(
    k: &mut Kernel,
    journal: &mut Journal,
    port: &str,
    master: &str,
    hairpin: bool,
    isolated: bool,
) -> Result<(), NetError> {
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
    if old_master.as_deref() != Some(master) {
        k.host.set_master(port, Some(master))?;
        journal.push(Undo::SetMaster(port.to_string(), old_master));
    }
    if hairpin {
        k.host.set_hairpin(port, true)?;
        journal.push(Undo::SetHairpin(port.to_string(), false));
    }
    if isolated {
        k.host.set_isolated(port, true)?;
        journal.push(Undo::SetIsolated(port.to_string(), false));
    }
    Ok(())
}

/// Remove every VLAN of a port (the kernel gives a new port VLAN 1). Not undone:
/// the port is one this plan created.
pub(super) fn flush_vlans(k: &mut Kernel, port: &str) -> Result<(), NetError> {
    for (vid, _) in k.host.bridge_vlans(port)? {
        k.host.bridge_vlan_del(port, vid)?;
    }
    Ok(())
}

pub(super) fn add_vlan(
    k: &mut Kernel,
    journal: &mut Journal,
    port: &str,
    vid: u16,
    pvid: bool,
    untagged: bool,
) -> Result<(), NetError> {
    k.host.bridge_vlan_add(port, vid, pvid, untagged)?;
    journal.push(Undo::VlanDel(port.to_string(), vid));
    Ok(())
}
