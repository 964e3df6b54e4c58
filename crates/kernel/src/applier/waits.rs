//! Waiting for the kernel: a link's carrier, its addresses' duplicate address
//! detection. Nothing to undo.

use std::time::{Duration, Instant};

use plan::LinkRef;

use super::Kernel;
use crate::netlink::NetError;

/// How long one wait may last.
const TIMEOUT: Duration = Duration::from_secs(5);

/// How long all the waits of one invocation may last together: a plan of 256
/// waits once took 21 minutes in DEL, where nothing else bounds them.
pub const WAIT_BUDGET: Duration = Duration::from_secs(10);

/// Run one wait within what is left of the invocation's budget.
fn within_budget(
    k: &mut Kernel,
    link: &LinkRef,
    wait: impl FnOnce(&mut Kernel, Duration) -> Result<(), NetError>,
) -> Result<(), NetError> {
    if k.waits_left.is_zero() {
        return Err(NetError::Timeout {
            what: format!(
                "{} (the invocation's waits used up {WAIT_BUDGET:?})",
                link.name
            ),
            waited: Duration::ZERO,
        });
    }
    let started = Instant::now();
    let result = wait(k, TIMEOUT.min(k.waits_left));
    k.waits_left = k.waits_left.saturating_sub(started.elapsed());
    result
}

pub(super) fn oper_up(k: &mut Kernel, link: &LinkRef) -> Result<(), NetError> {
    within_budget(k, link, |k, timeout| {
        k.side(link.side)?.wait_oper_up(&link.name, timeout)
    })
}

pub(super) fn addresses_settled(k: &mut Kernel, link: &LinkRef) -> Result<(), NetError> {
    within_budget(k, link, |k, timeout| {
        k.side(link.side)?
            .wait_addresses_settled(&link.name, timeout)
    })
}
