//! wasm-cni, the binary's own room: one invocation strung together from the
//! crates below it, and the node's tools.
//!
//! The arrows point one way: `cni` (protocol) -> `plan` (intents, policy,
//! validation) -> `kernel` (netlink, nftables, journal, rollback), with
//! `runtime` (wasmtime) beside `kernel`, both used only from here. `invoke`
//! strings them together for one invocation; `main` is the only place that
//! touches stdout and the exit status.

pub mod audit;
pub mod beneath;
pub mod conflist;
pub mod inspect;
pub mod install;
pub mod invoke;
pub mod ipam;
pub mod plugins;
pub mod prefetch;
pub mod settings;

/// The largest network configuration read from stdin (prevResult included).
pub const MAX_STDIN_BYTES: usize = 4 << 20;
