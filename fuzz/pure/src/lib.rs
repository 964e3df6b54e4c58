//! The host's pure modules, compiled from `host/src` as they are. They sit at the
//! crate root under their own names so that their `crate::cni`, `crate::plan` and
//! `crate::policy` paths resolve as they do in the host crate.
//!
//! `policy` also names two things from host modules that cannot come along:
//! `plugins` embeds the bundled components at build time and `runtime` is wasmtime.
//! [`plugins`] and [`runtime`] here are stand-ins with just what `policy` uses of
//! them; the compiler says so if it starts to use more.

#[path = "../../../host/src/cni/mod.rs"]
pub mod cni;
#[path = "../../../host/src/plan.rs"]
pub mod plan;
#[path = "../../../host/src/policy.rs"]
pub mod policy;
#[path = "../../../host/src/validate.rs"]
pub mod validate;

/// Stand-in for the host's `plugins`: where a component comes from.
pub mod plugins {
    use std::borrow::Cow;
    use std::path::PathBuf;

    /// Where a component was found.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Origin {
        Bundled,
        File(PathBuf),
    }

    /// A component's bytes, name and digest.
    #[derive(Debug, Clone)]
    pub struct ComponentSource {
        pub name: String,
        pub bytes: Cow<'static, [u8]>,
        pub sha256: String,
        pub origin: Origin,
    }
}

/// Stand-in for the host's `runtime`: the limits a grant may override.
pub mod runtime {
    use std::time::Duration;

    /// Bounds on one guest invocation (the fields a grant overrides).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Limits {
        pub deadline: Duration,
        pub memory_bytes: usize,
        pub max_intents: usize,
    }
}
