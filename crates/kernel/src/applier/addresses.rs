//! Addresses on links, each with how it is taken back.

use ipnet::IpNet;
use plan::{LinkRef, Side};

use super::{Journal, Kernel};
use crate::netlink::NetError;

/// How to take one address change back.
#[derive(Debug, Clone)]
pub(super) enum Undo {
    Delete(Side, String, IpNet),
    Add(Side, String, IpNet),
}

pub(super) fn undo(k: &mut Kernel, step: &Undo) -> Result<(), NetError> {
    match step {
        Undo::Delete(side, name, addr) => k.side(*side)?.del_address(name, *addr),
        Undo::Add(side, name, addr) => k.side(*side)?.add_address(name, *addr),
    }
}

pub(super) fn add(
    k: &mut Kernel,
    journal: &mut Journal,
    link: &LinkRef,
    address: IpNet,
    ensure: bool,
) -> Result<(), NetError> {
    match k.side(link.side)?.add_address(&link.name, address) {
        Ok(()) => journal.push(Undo::Delete(link.side, link.name.clone(), address)),
        // Concurrent ADDs put the same gateway address on a shared
        // bridge (plugins#366): identical is fine when asked to ensure.
        Err(e) if ensure && e.is_exists() => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

pub(super) fn delete(
    k: &mut Kernel,
    journal: &mut Journal,
    link: &LinkRef,
    address: IpNet,
) -> Result<(), NetError> {
    match k.side(link.side)?.del_address(&link.name, address) {
        Ok(()) => journal.push(Undo::Add(link.side, link.name.clone(), address)),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    Ok(())
}
