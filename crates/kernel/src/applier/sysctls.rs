//! Sysctls, each with how it is taken back.

use plan::Side;

use super::{Journal, Kernel};
use crate::netlink::NetError;

/// How to take one sysctl change back: its old value.
#[derive(Debug, Clone)]
pub(super) enum Undo {
    Restore(Side, String, String),
}

pub(super) fn undo(k: &mut Kernel, step: &Undo) -> Result<(), NetError> {
    match step {
        Undo::Restore(side, key, value) => k.side(*side)?.set_sysctl(key, value),
    }
}

pub(super) fn set(
    k: &mut Kernel,
    journal: &mut Journal,
    side: Side,
    key: &str,
    value: &str,
) -> Result<(), NetError> {
    let nl = k.side(side)?;
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
        journal.push(Undo::Restore(side, key.to_string(), old.trim().to_string()));
    }
    Ok(())
}

fn is_enoent(e: &NetError) -> bool {
    matches!(e, NetError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}
