//! Shared code of the fuzz targets in `fuzz_targets/`, which are one-line wrappers
//! around [`targets`], so that `cargo test` here replays the seed corpus through the
//! same checks on a stable toolchain, without libFuzzer.
//!
//! The code under test is the protocol crate (`crates/cni`) and the plan crate
//! (`crates/plan`), as they are.

pub use cni;
pub use plan;
pub use plan::{policy, validate};

pub mod framing;
pub mod plan_input;
pub mod promises;
pub mod targets;
