//! Where the time of one invocation goes. Off by default; `WASM_CNI_TIMINGS=1`
//! makes `main` print one line to stderr at the end:
//! `wasm-cni timings {"phases":[["parse",12],...],"total_us":...,"memory_kib":{...}}`,
//! with each phase in microseconds, in the order they ran, and resident memory
//! at the end (peak and current, by kind).

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
    serde_json::json!({"phases": phases, "total_us": total_us, "memory_kib": memory_kib()})
        .to_string()
}

/// Resident memory so far, from `/proc/self/status`: the peak (`VmHWM`) and
/// what is resident now by kind (`RssAnon`, `RssFile`, `RssShmem`), in KiB.
fn memory_kib() -> serde_json::Map<String, serde_json::Value> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            if !matches!(key, "VmHWM" | "RssAnon" | "RssFile" | "RssShmem") {
                return None;
            }
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some((key.to_string(), kib.into()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_report_carries_phases_total_and_memory() {
        super::enable();
        drop(super::phase("unit-test-phase"));
        let report: serde_json::Value =
            serde_json::from_str(&super::report(42)).expect("report is JSON");
        assert_eq!(report["total_us"], 42);
        assert!(report["phases"]
            .as_array()
            .expect("phases")
            .iter()
            .any(|p| p[0] == "unit-test-phase"));
        let memory = &report["memory_kib"];
        assert!(memory["VmHWM"].as_u64().expect("VmHWM") > 0, "{memory}");
        assert!(memory["RssFile"].as_u64().is_some(), "{memory}");
    }
}
