//! The CNI error this plugin returns, and the codes it uses.

use std::fmt;

/// CNI error codes used by host-local (SPEC.md "Error"; cni `pkg/types/types.go`).
pub mod code {
    /// `CNI_ARGS` could not be parsed or names keys this plugin does not know.
    pub const INVALID_ENVIRONMENT: u32 = 4;
    /// The network configuration is not JSON.
    pub const DECODING_FAILURE: u32 = 6;
    /// The network configuration is JSON but not a valid host-local configuration.
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// A transient failure of the store (interrupted, busy, timed out): retrying may work.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: an ADD would fail now (a range set has no free address).
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    /// STATUS: the store itself is unusable, so existing attachments are affected too.
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    /// Everything else; the reference reports all of its (untyped) errors as 999.
    pub const INTERNAL: u32 = 999;
}

/// A CNI error: what the guest hands back as `plugin-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The CNI error code (see [`code`]).
    pub code: u32,
    /// The message, worded as the reference words it where it has one.
    pub msg: String,
    /// What to do about it, or which key was involved; may be empty.
    pub details: String,
}

impl Failure {
    /// A failure without details.
    pub fn new(code: u32, msg: impl Into<String>) -> Failure {
        Failure {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// An invalid-configuration failure (code 7).
    pub fn config(msg: impl Into<String>) -> Failure {
        Failure::new(code::INVALID_NETWORK_CONFIG, msg)
    }

    /// The same failure with `details` set.
    pub fn with_details(mut self, details: impl Into<String>) -> Failure {
        self.details = details.into();
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "code {}: {}", self.code, self.msg)?;
        if !self.details.is_empty() {
            write!(f, "; {}", self.details)?;
        }
        Ok(())
    }
}
