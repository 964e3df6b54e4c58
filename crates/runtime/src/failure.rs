//! [`GuestFailure`]: how a guest failed to serve a request. This layer's
//! error; its CNI code is decided once, in `From<GuestFailure> for CniError`.

use std::fmt;
use std::time::Duration;

use cni::{CniError, ErrorCode};

/// How a guest failed, with what it wrote to stdout and stderr (capped) as
/// the details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestFailure {
    pub kind: FailureKind,
    /// The guest's own details and its captured output.
    pub details: String,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The guest answered with an error of its own: a CNI code it may use
    /// (outside the host's 100-199, or one the host passed on to it).
    Plugin { code: ErrorCode, msg: String },
    /// The guest broke the contract: a malformed plan or result, a host code
    /// it may not claim, a component that does not fit the world.
    Contract(String),
    /// More intents than `limits.maxIntents`.
    TooManyIntents { count: usize, limit: usize },
    /// Its linear memory would grow past `limits.memoryBytes`.
    OutOfMemory { limit: usize },
    /// The table, instance or WASI-handle limits.
    TableLimit {
        phase: String,
        table_elements: usize,
        instances: usize,
        resources: usize,
    },
    /// It ran past its deadline (epoch interruption).
    Timeout { deadline: Duration },
    /// It passed more than `limits.hostcallBytes` to the host in one call.
    HostcallLimit { bytes: usize },
    /// It wrote more than `limits.outputBytes` to stdout or stderr.
    OutputLimit { bytes: usize },
    /// Any other trap.
    Trapped { phase: String, error: String },
}

impl GuestFailure {
    /// A failure with no details.
    pub fn new(kind: FailureKind) -> Self {
        GuestFailure {
            kind,
            details: String::new(),
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Plugin { msg, .. } | FailureKind::Contract(msg) => f.write_str(msg),
            FailureKind::TooManyIntents { count, limit } => write!(
                f,
                "plugin returned {count} intents, more than the limit of {limit}"
            ),
            FailureKind::OutOfMemory { limit } => write!(
                f,
                "plugin ran out of memory: it asked for more than {limit} bytes"
            ),
            FailureKind::TableLimit {
                phase,
                table_elements,
                instances,
                resources,
            } => write!(
                f,
                "plugin exceeded the table ({table_elements} elements), instance ({instances}) \
                 or handle ({resources}) limit during {phase}"
            ),
            FailureKind::Timeout { deadline } => write!(
                f,
                "plugin ran out of time: stopped after the {} ms deadline",
                deadline.as_millis()
            ),
            FailureKind::HostcallLimit { bytes } => write!(
                f,
                "plugin passed more than {bytes} bytes to the host in one call"
            ),
            FailureKind::OutputLimit { bytes } => {
                write!(f, "plugin wrote more than {bytes} bytes of output")
            }
            FailureKind::Trapped { phase, error } => {
                write!(f, "plugin trapped during {phase}: {error}")
            }
        }
    }
}

impl From<GuestFailure> for CniError {
    fn from(failure: GuestFailure) -> CniError {
        let code = match &failure.kind {
            FailureKind::Plugin { code, .. } => *code,
            FailureKind::Contract(_) => ErrorCode::ContractViolation,
            FailureKind::TooManyIntents { .. } => ErrorCode::LimitExceeded,
            FailureKind::OutOfMemory { .. } => ErrorCode::GuestOutOfMemory,
            FailureKind::TableLimit { .. } => ErrorCode::TableLimit,
            FailureKind::Timeout { .. } => ErrorCode::GuestTimeout,
            FailureKind::HostcallLimit { .. } => ErrorCode::HostcallLimit,
            FailureKind::OutputLimit { .. } => ErrorCode::OutputLimit,
            FailureKind::Trapped { .. } => ErrorCode::GuestTrapped,
        };
        CniError::new(code, failure.kind.to_string()).with_details(failure.details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_code_and_keeps_the_output() {
        let cases = [
            (
                FailureKind::Timeout {
                    deadline: Duration::from_millis(250),
                },
                102,
                "plugin ran out of time: stopped after the 250 ms deadline",
            ),
            (
                FailureKind::TooManyIntents { count: 9, limit: 8 },
                108,
                "plugin returned 9 intents, more than the limit of 8",
            ),
            (FailureKind::Contract("bad plan".into()), 104, "bad plan"),
            (
                FailureKind::Plugin {
                    code: ErrorCode::InvalidNetworkConfig,
                    msg: "no subnet".into(),
                },
                7,
                "no subnet",
            ),
        ];
        for (kind, code, msg) in cases {
            let e = CniError::from(GuestFailure {
                kind,
                details: "panicked at x".into(),
            });
            assert_eq!((e.code.as_u32(), e.msg.as_str()), (code, msg));
            assert_eq!(e.details, "panicked at x");
        }
    }
}
