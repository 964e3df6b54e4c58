//! `wasm-cni gc`: CNI GC of one network by hand.

use std::io::Read;

use cni::{CniError, ErrorCode};
use wasm_cni::settings::Settings;

pub fn run(
    settings: &Settings,
    network: &str,
    valid: &std::path::Path,
    conf_dir: &std::path::Path,
    cni_path: &str,
    json: bool,
) -> Result<(), CniError> {
    use wasm_cni::{conflist, inspect};
    let text = if valid == std::path::Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(valid)
    }
    .map_err(|e| {
        CniError::new(
            ErrorCode::IoFailure,
            format!("cannot read {}: {e}", valid.display()),
        )
    })?;
    let keep = conflist::parse_valid_attachments(&text, &valid.display().to_string())?;
    let (path, list) = conflist::find_network(conf_dir, network)?;
    let before = inspect::attachments(&settings.ipam_data_dirs, Some(network));
    let outcomes = conflist::gc(settings, &list, &keep, cni_path);
    let after = inspect::attachments(&settings.ipam_data_dirs, Some(network));
    let released: Vec<_> = before.into_iter().filter(|a| !after.contains(a)).collect();
    let failed = outcomes.iter().any(|o| o.outcome == "error");
    if json {
        println!(
            "{}",
            serde_json::json!({
                "network": network,
                "conflist": path,
                "plugins": outcomes,
                "released": released,
                "kept": after,
            })
        );
    } else {
        println!("network {network} ({})", path.display());
        for o in &outcomes {
            println!("  {:<16} {:<8} {}", o.plugin_type, o.outcome, o.detail);
        }
        println!("released {} attachment(s):", released.len());
        print!("{}", inspect::table(&released));
        println!("kept {} attachment(s)", after.len());
    }
    if failed {
        return Err(CniError::new(
            ErrorCode::Internal,
            "GC failed for at least one plugin (see above)",
        ));
    }
    Ok(())
}
