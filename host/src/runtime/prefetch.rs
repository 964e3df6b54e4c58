//! The engine and the components an invocation will run, prepared on a second
//! thread while the main one reads the settings, the request and the policy and
//! opens the namespaces: creating the engine and mapping a precompiled
//! component are most of what the sandbox costs before the first guest call,
//! and none of it depends on that other work. A bridge's IPAM component is
//! loaded while the bridge guest starts planning.
//!
//! `main` calls [`Prefetch::begin`] first thing for a CNI invocation; the
//! engine is made at once, the components once [`Prefetch::load`] names them.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

use wasmtime::component::Component;
use wasmtime::Engine;

use super::{engine_config, internal, ComponentCache};
use crate::cni::CniError;
use crate::plugins::{ComponentSource, PluginStore};

/// Components to load: the plugin's, then its IPAM's if `ipam` names a
/// component of `store`.
struct LoadRequest {
    cache: ComponentCache,
    store: PluginStore,
    plugin: ComponentSource,
    ipam: Option<String>,
}

/// What the thread hands back, as each is ready.
enum Ready {
    Engine(Result<Engine, String>),
    Component(String, Result<Component, CniError>),
}

#[derive(Default)]
struct Received {
    engine: Option<Result<Engine, String>>,
    components: Vec<(String, Result<Component, CniError>)>,
    /// The thread has sent everything it will.
    finished: bool,
}

/// The second thread and what it has sent so far.
pub struct Prefetch {
    requests: Mutex<Option<Sender<LoadRequest>>>,
    ready: Mutex<Receiver<Ready>>,
    received: Mutex<Received>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

static CURRENT: OnceLock<Arc<Prefetch>> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Prefetch {
    /// Start the thread (once per process): it makes the engine, then waits
    /// for [`Prefetch::load`].
    pub fn begin() -> Arc<Prefetch> {
        Arc::clone(CURRENT.get_or_init(Prefetch::spawn))
    }

    fn spawn() -> Arc<Prefetch> {
        let (request_tx, request_rx) = std::sync::mpsc::channel::<LoadRequest>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Ready>();
        let work = move || {
            let engine = Engine::new(&engine_config()).map_err(|e| e.to_string());
            let made = engine.as_ref().ok().cloned();
            if ready_tx.send(Ready::Engine(engine)).is_err() {
                return;
            }
            let (Some(engine), Ok(req)) = (made, request_rx.recv()) else {
                return;
            };
            let load = |source: &ComponentSource| {
                req.cache
                    .load(&engine, &source.bytes, &source.sha256)
                    .map(|(component, _)| component)
            };
            let loaded = load(&req.plugin);
            if ready_tx
                .send(Ready::Component(req.plugin.name.clone(), loaded))
                .is_err()
            {
                return;
            }
            let ipam = req.ipam.filter(|t| *t != req.plugin.name);
            if let Some(source) = ipam.and_then(|t| req.store.find(&t).ok()) {
                let loaded = load(&source);
                let _ = ready_tx.send(Ready::Component(source.name.clone(), loaded));
            }
        };
        let thread = std::thread::Builder::new()
            .name("wcni-prefetch".into())
            .spawn(work)
            .map_err(|e| tracing::debug!("no prefetch thread: {e}"))
            .ok();
        Arc::new(Prefetch {
            requests: Mutex::new(Some(request_tx)),
            ready: Mutex::new(ready_rx),
            received: Mutex::new(Received::default()),
            thread: Mutex::new(thread),
        })
    }

    /// Ask for the plugin's component and its IPAM's (`ipam`, if a component
    /// of `store`). Only the first request of a process is served.
    pub fn load(
        &self,
        cache: ComponentCache,
        store: PluginStore,
        plugin: ComponentSource,
        ipam: Option<String>,
    ) {
        if let Some(tx) = lock(&self.requests).take() {
            let _ = tx.send(LoadRequest {
                cache,
                store,
                plugin,
                ipam,
            });
        }
    }

    /// Wait for the next message; false once the thread has sent everything.
    fn receive_one(&self, received: &mut Received) -> bool {
        if received.finished {
            return false;
        }
        match lock(&self.ready).recv() {
            Ok(Ready::Engine(engine)) => received.engine = Some(engine),
            Ok(Ready::Component(name, loaded)) => received.components.push((name, loaded)),
            Err(_) => received.finished = true,
        }
        !received.finished
    }

    /// The engine, made here if the thread could not make one.
    pub fn engine(&self) -> Result<Engine, CniError> {
        let mut received = lock(&self.received);
        while received.engine.is_none() && self.receive_one(&mut received) {}
        match &received.engine {
            Some(Ok(engine)) => Ok(engine.clone()),
            Some(Err(e)) => Err(internal(format!("cannot create the wasm engine: {e}"))),
            None => Engine::new(&engine_config())
                .map_err(|e| internal(format!("cannot create the wasm engine: {e}"))),
        }
    }

    /// The component of type `name`, handed out once, if it was asked for with
    /// [`Prefetch::load`]; `None` means: load it yourself.
    pub fn component(&self, name: &str) -> Option<Result<Component, CniError>> {
        let mut received = lock(&self.received);
        loop {
            if let Some(i) = received.components.iter().position(|(n, _)| n == name) {
                return Some(received.components.swap_remove(i).1);
            }
            if lock(&self.requests).is_some() || !self.receive_one(&mut received) {
                // Never asked for, or the thread is done without it.
                return None;
            }
        }
    }

    /// Let the thread finish: a cache entry it may be writing is complete
    /// before the process exits.
    pub fn finish(&self) {
        drop(lock(&self.requests).take());
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_and_the_asked_components_come_once() {
        let dir = std::env::temp_dir().join(format!("wcni-prefetch-{}", std::process::id()));
        let store = PluginStore::new(&dir);
        let plugin = store.find("bridge").expect("bundled bridge");
        let prefetch = Prefetch::spawn();
        let engine = prefetch.engine().expect("engine");
        // Not asked for yet: load it yourself.
        assert!(prefetch.component("bridge").is_none());
        prefetch.load(
            ComponentCache::new(&dir),
            store.clone(),
            plugin,
            Some("host-local".into()),
        );
        let bridge = prefetch
            .component("bridge")
            .expect("asked")
            .expect("loaded");
        assert!(
            bridge.component_type().imports(&engine).count() > 0,
            "loaded for this engine"
        );
        assert!(prefetch.component("bridge").is_none(), "handed out once");
        assert!(prefetch.component("host-local").expect("asked").is_ok());
        assert!(prefetch.component("loopback").is_none(), "never asked for");
        prefetch.finish();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
