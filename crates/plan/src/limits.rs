//! Bounds on one guest invocation: the settings give them, a grant may
//! override some; the runtime enforces them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Bounds on one guest invocation. Every knob wasmtime leaves off by default is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock deadline for a guest call (epoch interruption).
    #[serde(with = "millis", rename = "deadlineMs")]
    pub deadline: Duration,
    /// Largest linear memory a guest may grow to, in bytes.
    pub memory_bytes: usize,
    /// Largest table, in elements.
    pub table_elements: usize,
    /// Tables per store.
    pub tables: usize,
    /// Core instances per store (a component is several).
    pub instances: usize,
    /// Bytes a guest may pass to the host in one call or return from an export.
    pub hostcall_bytes: usize,
    /// Host resources (WASI handles) a guest may hold at once.
    pub resources: usize,
    /// Intents in one plan.
    pub max_intents: usize,
    /// Bytes of stdout, and separately of stderr, kept from a guest.
    pub output_bytes: usize,
    /// Bytes of log lines (`host.log`) a guest instance may send in all.
    pub log_bytes: usize,
    /// Wall-clock deadline for a native IPAM plugin (and what it starts).
    #[serde(with = "millis", rename = "delegateMs")]
    pub delegate_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(5),
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            tables: 16,
            instances: 64,
            hostcall_bytes: 4 << 20,
            resources: 1_000,
            max_intents: 256,
            output_bytes: 64 << 10,
            log_bytes: 256 << 10,
            delegate_deadline: Duration::from_secs(60),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
