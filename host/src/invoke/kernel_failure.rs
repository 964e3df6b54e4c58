//! [`KernelFailure`]: where the kernel failed an invocation. The host side of
//! the kernel's one error type ([`NetError`]); its CNI code is decided once, in
//! `From<KernelFailure> for CniError`.

use std::fmt;
use std::path::PathBuf;

use cni::{CniError, ErrorCode};
use kernel::applier::ApplyError;
use kernel::netlink::NetError;

/// Where the kernel failed an invocation.
#[derive(Debug)]
pub enum KernelFailure {
    /// `CNI_NETNS` names no network namespace (missing, or something else).
    NotANetns { path: PathBuf, error: NetError },
    /// `CNI_NETNS` could not be opened for another reason.
    OpenNetns { path: PathBuf, error: NetError },
    /// Our own namespace could not be read.
    OwnNetns(NetError),
    /// `CNI_NETNS` is the namespace wasm-cni runs in.
    SameNetns,
    /// A netlink door could not be opened (`what`: which namespace).
    Doors { what: &'static str, error: NetError },
    /// A step of an ADD's plan failed; every step before it was undone.
    Apply(ApplyError),
    /// Steps of a DEL or GC plan failed; the others were applied.
    BestEffort(Vec<ApplyError>),
}

impl fmt::Display for KernelFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelFailure::NotANetns { path, error } => {
                write!(f, "CNI_NETNS {}: {error}", path.display())
            }
            KernelFailure::OpenNetns { path, error } => {
                write!(f, "failed to open netns {}: {error}", path.display())
            }
            KernelFailure::OwnNetns(error) => write!(f, "cannot read own netns: {error}"),
            KernelFailure::SameNetns => {
                f.write_str("plugin's netns and netns from CNI_NETNS should not be the same")
            }
            KernelFailure::Doors { what, error } => {
                write!(f, "cannot open netlink in {what}: {error}")
            }
            KernelFailure::Apply(e) => write!(f, "{e}"),
            KernelFailure::BestEffort(failures) => {
                let msgs: Vec<String> = failures.iter().map(ToString::to_string).collect();
                f.write_str(&msgs.join("; "))
            }
        }
    }
}

impl From<KernelFailure> for CniError {
    fn from(failure: KernelFailure) -> CniError {
        let msg = failure.to_string();
        match failure {
            KernelFailure::NotANetns { .. } => CniError::new(ErrorCode::InvalidEnvironment, msg),
            KernelFailure::OpenNetns { .. }
            | KernelFailure::OwnNetns(_)
            | KernelFailure::Doors { .. } => CniError::new(ErrorCode::IoFailure, msg),
            KernelFailure::SameNetns => CniError::new(ErrorCode::InvalidNetns, msg),
            // A link that is not the network's, or an address over the
            // node's routes, is a policy matter, not a kernel failure.
            KernelFailure::Apply(ApplyError { source, .. }) if source.is_refusal() => {
                CniError::new(ErrorCode::PolicyRejected, msg)
                    .with_details("every change made before it was undone")
            }
            KernelFailure::Apply(_) => CniError::new(ErrorCode::ApplyFailed, msg)
                .with_details("every change made before the failure was undone"),
            KernelFailure::BestEffort(_) => CniError::new(ErrorCode::ApplyFailed, msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_code() {
        let missing = || NetError::NetnsMissing("/run/netns/x".into());
        let cases = [
            (
                KernelFailure::NotANetns {
                    path: "/run/netns/x".into(),
                    error: missing(),
                },
                4,
            ),
            (
                KernelFailure::OpenNetns {
                    path: "/run/netns/x".into(),
                    error: NetError::Unsupported("x".into()),
                },
                5,
            ),
            (KernelFailure::OwnNetns(missing()), 5),
            (KernelFailure::SameNetns, 8),
            (
                KernelFailure::Doors {
                    what: "the host namespace",
                    error: missing(),
                },
                5,
            ),
            (KernelFailure::BestEffort(Vec::new()), 107),
        ];
        for (failure, code) in cases {
            let shown = failure.to_string();
            let e = CniError::from(failure);
            assert_eq!(e.code.as_u32(), code, "{shown}");
            assert_eq!(e.msg, shown);
        }
    }
}
