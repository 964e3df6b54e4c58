//! `wasm-cni plugins`: the components this host can run.

use cni::CniError;
use runtime::{ComponentCache, PluginRuntime};
use wasm_cni::plugins::{Origin, PluginStore};
use wasm_cni::settings::Settings;

pub fn run(settings: &Settings, json: bool) -> Result<(), CniError> {
    let store = PluginStore::new(&settings.plugin_dir);
    let runtime = PluginRuntime::new()?;
    let cache = ComponentCache::new(&settings.cache_dir);
    let mut rows = Vec::new();
    for source in store.list() {
        let interfaces = cache
            .load(runtime.engine(), &source.bytes, &source.sha256)
            .map(|(c, _)| runtime.exported_interfaces(&c))
            .unwrap_or_default();
        let origin = match &source.origin {
            Origin::Bundled => "bundled".to_string(),
            Origin::File(p) => p.display().to_string(),
        };
        rows.push(serde_json::json!({
            "name": source.name,
            "sha256": source.sha256,
            "origin": origin,
            "exports": interfaces,
        }));
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        println!("{:<16} {:<24} {:<71} ORIGIN", "NAME", "EXPORTS", "DIGEST");
        for r in rows {
            let exports = r["exports"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            println!(
                "{:<16} {:<24} sha256:{:<64} {}",
                r["name"].as_str().unwrap_or(""),
                if exports.is_empty() {
                    "-".to_string()
                } else {
                    exports
                },
                r["sha256"].as_str().unwrap_or(""),
                r["origin"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}
