//! A bridge's IPAM component, mapped from the precompiled cache on a second
//! thread while the main one instantiates the bridge and lets it start
//! planning: by the time the bridge asks for IPAM, the component is there.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use wasmtime::component::Component;
use wasmtime::Engine;

use crate::plugins::PluginStore;
use cni::CniError;
use runtime::ComponentCache;

/// The loading thread, then what it loaded.
enum State {
    Loading(JoinHandle<Option<(String, Result<Component, CniError>)>>),
    Loaded(Option<(String, Result<Component, CniError>)>),
}

/// A component being loaded on another thread, handed out once.
pub struct Prefetch {
    state: Mutex<State>,
}

impl Prefetch {
    /// Start loading the component of type `ipam` from `store` and `cache`
    /// for `engine`, unless there is no such type, it is `plugin` itself (an
    /// IPAM plugin invoked directly), or it is not a component (a native
    /// binary).
    pub fn ipam(
        engine: &Engine,
        cache: ComponentCache,
        store: PluginStore,
        ipam: Option<&str>,
        plugin: &str,
    ) -> Arc<Prefetch> {
        let engine = engine.clone();
        let ipam = ipam.filter(|t| *t != plugin).map(str::to_string);
        let work = move || {
            let source = store.find(&ipam?).ok()?;
            let loaded = cache
                .load(&engine, &source.bytes, &source.sha256)
                .map(|(component, _)| component);
            Some((source.name, loaded))
        };
        let state = match std::thread::Builder::new()
            .name("wcni-prefetch".into())
            .spawn(work)
        {
            Ok(thread) => State::Loading(thread),
            Err(e) => {
                tracing::debug!("no prefetch thread: {e}");
                State::Loaded(None)
            }
        };
        Arc::new(Prefetch {
            state: Mutex::new(state),
        })
    }

    /// The component of type `name` if this is what was loaded (handed out
    /// once); `None` means: load it yourself.
    pub fn component(&self, name: &str) -> Option<Result<Component, CniError>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let loaded = match std::mem::replace(&mut *state, State::Loaded(None)) {
            State::Loading(thread) => thread.join().ok().flatten(),
            State::Loaded(loaded) => loaded,
        };
        match loaded {
            Some((loaded_name, component)) if loaded_name == name => Some(component),
            other => {
                *state = State::Loaded(other);
                None
            }
        }
    }
}

impl Drop for Prefetch {
    /// Waits for the thread: a cache entry it may be writing is complete
    /// before the process exits.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let State::Loading(thread) = std::mem::replace(state, State::Loaded(None)) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipam_component_is_loaded_once_for_its_name_only() {
        let dir = std::env::temp_dir().join(format!("wcni-prefetch-{}", std::process::id()));
        let runtime = runtime::PluginRuntime::new().expect("engine");
        let engine = runtime.engine();
        let store = PluginStore::new(&dir);
        let cache = ComponentCache::new(&dir);
        let p = Prefetch::ipam(
            engine,
            cache.clone(),
            store.clone(),
            Some("host-local"),
            "bridge",
        );
        assert!(p.component("loopback").is_none(), "another name");
        let loaded = p.component("host-local").expect("loaded").expect("valid");
        assert!(loaded.component_type().imports(engine).count() > 0);
        assert!(p.component("host-local").is_none(), "handed out once");
        // An IPAM plugin invoked directly, no IPAM, a native IPAM: nothing.
        for (ipam, plugin) in [
            (Some("host-local"), "host-local"),
            (None, "bridge"),
            (Some("dhcp"), "bridge"),
        ] {
            let p = Prefetch::ipam(engine, cache.clone(), store.clone(), ipam, plugin);
            assert!(p.component(ipam.unwrap_or("host-local")).is_none());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
