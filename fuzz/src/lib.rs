//! Shared code of the fuzz targets in `fuzz_targets/`, which are one-line wrappers
//! around [`targets`], so that `cargo test` here replays the seed corpus through the
//! same checks on a stable toolchain, without libFuzzer.
//!
//! The code under test comes from `wasm-cni-pure` (`pure/`), which compiles the
//! host's pure modules from source; see its crate doc.

pub use wasm_cni_pure::{cni, plan, policy, validate};

pub mod framing;
pub mod plan_input;
pub mod promises;
pub mod targets;
