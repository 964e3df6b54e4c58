//! wasm-cni: CNI plugins as WebAssembly components.
//!
//! The arrows point one way: `cni` (protocol) -> `runtime` (the guest plans) ->
//! `validate` (the plan against the rules) -> `apply` (netlink, journal,
//! rollback). `invoke` strings them together for one invocation; `main` is the only
//! place that touches stdout and the exit status.

pub mod apply;
pub mod audit;
pub mod cni;
pub mod conflist;
pub mod inspect;
pub mod install;
pub mod invoke;
pub mod ipam;
pub mod plan;
pub mod plugins;
pub mod policy;
pub mod reaper;
pub mod runtime;
pub mod settings;
pub mod timing;
pub mod validate;
