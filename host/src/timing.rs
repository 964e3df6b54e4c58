//! Where the time of one invocation goes. Off by default; `WASM_CNI_TIMINGS=1`
//! makes `main` print one line to stderr at the end:
//! `wasm-cni timings {"phases":[["parse",12],...],"total_us":...}`, with each
//! phase in microseconds, in the order they ran.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static PHASES: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

/// Turn recording on (main does this when `WASM_CNI_TIMINGS=1`).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether phases are being recorded.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Records the time until it is dropped under `name`.
pub struct Phase {
    name: Option<String>,
    started: Instant,
}

/// Start timing a phase (a no-op when recording is off).
pub fn phase(name: impl Into<String>) -> Phase {
    Phase {
        name: enabled().then(|| name.into()),
        started: Instant::now(),
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            let us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            if let Ok(mut phases) = PHASES.lock() {
                phases.push((name, us));
            }
        }
    }
}

/// The recorded phases as the JSON line `main` prints.
pub fn report(total_us: u64) -> String {
    let phases = PHASES.lock().map(|p| p.clone()).unwrap_or_default();
    serde_json::json!({"phases": phases, "total_us": total_us}).to_string()
}
