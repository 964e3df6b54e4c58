//! Routes, each with how it is taken back.

use plan::{RouteIntent, Side};

use super::{Journal, Kernel};
use crate::netlink::{NetError, RouteSpec};

/// How to take one route change back.
#[derive(Debug, Clone)]
pub(super) enum Undo {
    Delete(Side, RouteSpec),
}

pub(super) fn undo(k: &mut Kernel, step: &Undo) -> Result<(), NetError> {
    match step {
        Undo::Delete(side, spec) => k.side(*side)?.del_route(spec),
    }
}

pub(super) fn add(
    k: &mut Kernel,
    journal: &mut Journal,
    route: &RouteIntent,
) -> Result<(), NetError> {
    let spec = RouteSpec {
        dst: route.dst,
        gw: route.gw,
        oif_name: route.dev.clone(),
        table: route.table,
        priority: route.priority,
        scope: route.scope,
    };
    match k.side(route.side)?.add_route(&spec) {
        Ok(()) => journal.push(Undo::Delete(route.side, spec)),
        // The reference adds routes with RouteAddEcmp, which accepts an
        // identical route (IPAM's default route and isDefaultGateway's
        // coincide in common configs).
        Err(e) if e.is_exists() => {}
        Err(e) => return Err(e),
    }
    Ok(())
}
