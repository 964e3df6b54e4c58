//! What a plugin may ask for and whether it may: the typed intents a guest's plan
//! is made of ([`intent`]) and their kinds, declared once ([`kind`]), the administrator's policy and grants ([`policy`]),
//! the per-invocation limits a grant may override ([`limits`]), and the validator
//! that checks a plan against both before anything touches the kernel
//! ([`validate`]).
//!
//! Pure: no wasmtime, no netlink, no guest build. The fuzz targets depend on this
//! crate as it is.

pub mod intent;
pub mod kind;
pub mod limits;
pub mod policy;
pub mod validate;

pub use intent::*;
pub use kind::IntentKind;
pub use limits::Limits;
