//! The audit trail: one JSON line per applied or rejected plan, appended to the
//! file the settings name (`auditLog`), so an operator can answer "what did which
//! plugin do to this node, and what was refused".

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use plan::Intent;

/// What became of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every intent was applied.
    Applied,
    /// The validator (or the contract) refused the plan; nothing was applied.
    Rejected,
    /// Applying failed; ADD was rolled back, DEL reports the failed steps.
    Failed,
}

/// One line of the trail.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// Seconds since the Unix epoch, with milliseconds.
    pub time: f64,
    pub command: &'a str,
    pub container: &'a str,
    pub network: &'a str,
    pub ifname: &'a str,
    pub plugin: &'a str,
    pub sha256: &'a str,
    pub intents: &'a [Intent],
    pub outcome: Outcome,
    /// The error, for rejected and failed plans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

/// Where entries go; `None` = no trail.
#[derive(Debug, Clone, Default)]
pub struct AuditTrail {
    path: Option<PathBuf>,
}

impl AuditTrail {
    /// A trail appended to `path`, or none.
    pub fn new(path: Option<PathBuf>) -> Self {
        AuditTrail { path }
    }

    /// A time in the trail's format: seconds since the epoch, to the millisecond.
    pub fn timestamp(time: SystemTime) -> f64 {
        time.duration_since(UNIX_EPOCH)
            .map(|d| (d.as_millis() as f64) / 1000.0)
            .unwrap_or(0.0)
    }

    /// Append one entry as a single line (one `write` of an `O_APPEND` file, so
    /// concurrent invocations do not interleave). A trail that cannot be written
    /// is logged, not fatal: the network operation already happened.
    pub fn record(&self, entry: &Entry<'_>) {
        let Some(path) = &self.path else {
            return;
        };
        let mut line = match serde_json::to_string(entry) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot encode audit entry: {e}");
                return;
            }
        };
        line.push('\n');
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::error!(path = %path.display(), "cannot write the audit trail: {e}");
        }
    }
}
