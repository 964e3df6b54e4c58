//! `wasm-cni compile`: precompile components into the cache.

use std::time::Instant;

use cni::CniError;
use runtime::{ComponentCache, PluginRuntime};
use wasm_cni::plugins::PluginStore;
use wasm_cni::settings::Settings;

pub fn run(settings: &Settings, names: &[String]) -> Result<(), CniError> {
    let store = PluginStore::new(&settings.plugin_dir);
    let runtime = PluginRuntime::new()?;
    let cache = ComponentCache::new(&settings.cache_dir);
    let sources = if names.is_empty() {
        store.list()
    } else {
        names
            .iter()
            .map(|n| store.find(n))
            .collect::<Result<Vec<_>, _>>()?
    };
    for source in sources {
        let started = Instant::now();
        let path = cache.precompile(runtime.engine(), &source.bytes, &source.sha256)?;
        println!(
            "{:<16} sha256:{}  {} ms  {}",
            source.name,
            source.sha256,
            started.elapsed().as_millis(),
            path.display()
        );
    }
    Ok(())
}
