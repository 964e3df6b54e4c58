//! Waiting for the kernel: a link's carrier, its addresses' duplicate address
//! detection. Nothing to undo.

use std::time::Duration;

use plan::LinkRef;

use super::Kernel;
use crate::netlink::NetError;

/// How long a wait may last.
const TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn oper_up(k: &mut Kernel, link: &LinkRef) -> Result<(), NetError> {
    k.side(link.side)?.wait_oper_up(&link.name, TIMEOUT)
}

pub(super) fn addresses_settled(k: &mut Kernel, link: &LinkRef) -> Result<(), NetError> {
    k.side(link.side)?
        .wait_addresses_settled(&link.name, TIMEOUT)
}
