//! [`RecordingNetlink`]: an in-memory [`Netlink`] that records every call and
//! answers like the kernel where callers care (`EEXIST`, `ENODEV`, `ESRCH`,
//! `EADDRNOTAVAIL`, ...), for unit and rollback tests of the applier.
//!
//! It is chosen by construction wherever a `Netlink` is injected, never by
//! `cfg(test)`. The model is deliberately small: it does not add the
//! kernel's own prefix routes, does not check that a gateway is reachable,
//! treats a link as operationally up whenever it is administratively up,
//! considers IPv6 addresses settled at once (no duplicate address detection),
//! and behaves like a kernel with bridge VLAN filtering built in.
//!
//! [`RecordingFirewall`] does the same for the masquerade and anti-spoofing
//! rules: one in-memory set of rules behind both traits.

mod firewall;
mod kernel;
mod netlink;
mod op;
mod shared;

pub use firewall::RecordingFirewall;
pub use netlink::RecordingNetlink;
pub use op::Op;
pub use shared::SharedNetlink;

#[cfg(test)]
mod tests;
