//! `CNI_ARGS`, read as the reference's `types.LoadArgs` reads it into
//! `IPAMEnvArgs`: the key `IP`, and `IgnoreUnknown`; the shared reader does the
//! rest (`cni::CniArgs::load`, which also tolerates `K8S_*` keys without
//! `IgnoreUnknown`, cni#126, cni#560).

use std::net::IpAddr;

use cni::{CniArgs, CniError};

use super::raw::parse_ip_arg;

/// The `IP` the runtime asked for, if any.
pub(super) fn parse_cni_args(pairs: &[(String, String)]) -> Result<Option<IpAddr>, CniError> {
    let mut requested = None;
    CniArgs::from_pairs(pairs).load(&["IP"], |_, value| {
        requested = parse_ip_arg(value)?;
        Ok(())
    })?;
    Ok(requested)
}
