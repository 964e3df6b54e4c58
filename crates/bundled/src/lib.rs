//! The components built from `guest-plugins/` by this crate's build script, so
//! a binary that links this crate is self-contained and a test never runs
//! against a stale component.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The directory holding the components of `guest-plugins/testing/` (built to
/// attack the host in tests, never embedded).
pub const TEST_GUESTS: &str = env!("WASM_CNI_TEST_GUESTS");

/// The names of the bundled components.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUNDLED.iter().map(|(name, _, _)| *name)
}
