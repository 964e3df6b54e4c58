//! Addresses on links, each with how it is taken back.

use ipnet::IpNet;
use plan::{LinkRef, Side};

use super::{Journal, Kernel};
use crate::netlink::{NetError, RouteSpec};

/// How to take one address change back.
#[derive(Debug, Clone)]
pub(super) enum Undo {
    Delete(Side, String, IpNet),
    Add(Side, String, IpNet),
    /// A route the kernel dropped with a deleted address (one through a
    /// gateway only that address reached), put back after the address.
    Route(Side, RouteSpec),
}

pub(super) fn undo(k: &mut Kernel, step: &Undo) -> Result<(), NetError> {
    match step {
        Undo::Delete(side, name, addr) => k.side(*side)?.del_address(name, *addr),
        Undo::Add(side, name, addr) => k.side(*side)?.add_address(name, *addr),
        Undo::Route(side, spec) => match k.side(*side)?.add_route(spec) {
            Err(e) if e.is_exists() => Ok(()),
            other => other,
        },
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
        Ok(()) => {
            journal.push(Undo::Delete(link.side, link.name.clone(), address));
            // Checked once, when the address is new (it is then undone with
            // the rest); the ADDs after it find it there.
            if link.side == Side::Host {
                check_overlap(k, &link.name, address)?;
            }
        }
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
    let before = routes_through(k, link)?;
    match k.side(link.side)?.del_address(&link.name, address) {
        Ok(()) => {
            // Undone in reverse: the address comes back first, then the
            // routes the kernel dropped with it.
            let after = routes_through(k, link)?;
            for lost in before.into_iter().filter(|r| !after.contains(r)) {
                journal.push(Undo::Route(link.side, lost));
            }
            journal.push(Undo::Add(link.side, link.name.clone(), address));
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// The main-table routes out of `link`, as specs to add back.
fn routes_through(k: &mut Kernel, link: &LinkRef) -> Result<Vec<RouteSpec>, NetError> {
    const MAIN: u32 = 254;
    let nl = k.side(link.side)?;
    let Some(index) = nl.link_brief(&link.name)?.map(|l| l.index) else {
        return Ok(Vec::new());
    };
    Ok(nl
        .routes()?
        .into_iter()
        .filter(|r| r.table == MAIN && r.oif == Some(index))
        .map(|r| RouteSpec {
            dst: r.dst,
            gw: r.gw,
            oif_name: Some(link.name.clone()),
            table: Some(r.table),
            priority: r.priority,
            scope: Some(r.scope),
        })
        .collect())
}

/// A host address must not overlap the node's own routes: the subnets of its
/// other links (connected routes), its own addresses (local routes) and what
/// it routes elsewhere. Default routes and link-local or multicast space do
/// not count; neither do routes through the link itself.
fn check_overlap(k: &mut Kernel, name: &str, address: IpNet) -> Result<(), NetError> {
    const MAIN: u32 = 254;
    const LOCAL: u32 = 255;
    let index = k.host.link_brief(name)?.map(|l| l.index);
    let ours = address.trunc();
    for route in k.host.routes()? {
        let elsewhere = route.oif.is_none() || route.oif != index;
        let counts = matches!(route.table, MAIN | LOCAL)
            && route.dst.prefix_len() > 0
            && !is_link_local_or_multicast(&route.dst);
        let overlaps = route.dst.contains(&ours.network()) || ours.contains(&route.dst.network());
        if elsewhere && counts && overlaps {
            let via = match route.oif {
                Some(i) => k.host.link_by_index(i)?.map(|l| l.name),
                None => None,
            };
            return Err(NetError::Overlaps {
                address,
                link: name.to_string(),
                existing: route.dst,
                via,
            });
        }
    }
    Ok(())
}

fn is_link_local_or_multicast(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => {
            n.addr().is_link_local() || n.addr().is_multicast() || n.addr().is_broadcast()
        }
        IpNet::V6(n) => {
            let first = n.addr().segments()[0];
            first & 0xffc0 == 0xfe80 || first & 0xff00 == 0xff00
        }
    }
}
