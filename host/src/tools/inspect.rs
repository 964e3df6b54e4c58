//! `wasm-cni inspect`: the attachments and addresses held on this node.

use std::path::PathBuf;

use wasm_cni::settings::Settings;

pub fn run(settings: &Settings, network: Option<&str>, data_dirs: Vec<PathBuf>, json: bool) {
    let dirs = if data_dirs.is_empty() {
        settings.ipam_data_dirs.clone()
    } else {
        data_dirs
    };
    let rows = wasm_cni::inspect::attachments(&dirs, network);
    if json {
        println!("{}", serde_json::to_string(&rows).unwrap_or_default());
    } else {
        print!("{}", wasm_cni::inspect::table(&rows));
    }
}
