//! `wasm-cni policy check`: validate a policy file.

use cni::{CniError, ErrorCode};
use plan::policy::Policy;

pub fn check(file: &std::path::Path) -> Result<(), CniError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CniError::new(
            ErrorCode::IoFailure,
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    match Policy::parse(&text) {
        Ok(policy) => {
            println!("{}: ok, {} grant(s)", file.display(), policy.plugins.len());
            for g in &policy.plugins {
                let who = match (&g.matcher.name, &g.matcher.digest) {
                    (Some(n), Some(d)) => format!("{n} (sha256:{d})"),
                    (Some(n), None) => n.clone(),
                    (None, Some(d)) => format!("sha256:{d}"),
                    (None, None) => "(matches nothing: give a name or a digest)".to_string(),
                };
                let kinds: Vec<&str> = g.intents.iter().map(|k| k.name()).collect();
                println!(
                    "  {who}: {}",
                    if kinds.is_empty() {
                        "no intents".to_string()
                    } else {
                        kinds.join(", ")
                    }
                );
            }
            Ok(())
        }
        Err(e) => Err(CniError::new(
            ErrorCode::InvalidNetworkConfig,
            format!("{}: {e}", file.display()),
        )),
    }
}
