//! A guest instance serving one request: a main plugin's `plan` and `finish`,
//! an IPAM plugin's `run`, and how traps, limits and contract breaches become
//! CNI errors.

use wasmtime::Store;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use cni::{CniResult, ErrorCode};
use plan::{Intent, ObservedLink};

use crate::engine::{is_instance_limit, wasi_runtime};
use crate::failure::{FailureKind, GuestFailure};
use crate::*;

/// A store with its captured output and limits: what every guest instance has.
pub(crate) struct Guest {
    pub(crate) store: Store<GuestState>,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
    pub(crate) limits: Limits,
}

/// A main-plugin instance serving one request.
pub struct PluginInstance {
    pub(crate) guest: Guest,
    pub(crate) plugin: bindings::CniPlugin,
}

impl PluginInstance {
    /// Phase 1: ask the guest for its plan.
    pub fn plan(&mut self, req: &GuestRequest) -> Result<Vec<Intent>, GuestFailure> {
        let guest = &mut self.guest;
        let wit_req = convert::request_to_wit(req);
        let out = self
            .plugin
            .wasm_cni_plugin_plugin()
            .call_plan(&mut guest.store, &wit_req);
        let plan = match out {
            Ok(Ok(plan)) => plan,
            Ok(Err(e)) => return Err(guest.guest_error(e)),
            Err(e) => return Err(guest.classify(e, "plan")),
        };
        guest.check_contract()?;
        if plan.intents.len() > guest.limits.max_intents {
            return Err(GuestFailure::new(FailureKind::TooManyIntents {
                count: plan.intents.len(),
                limit: guest.limits.max_intents,
            }));
        }
        plan.intents
            .into_iter()
            .enumerate()
            .map(|(i, intent)| {
                convert::intent_from_wit(intent).map_err(|msg| {
                    GuestFailure::new(FailureKind::Contract(format!(
                        "intent #{i} is malformed: {msg}"
                    )))
                })
            })
            .collect()
    }

    /// Phase 2: hand back what was observed after applying, get the result.
    pub fn finish(
        &mut self,
        req: &GuestRequest,
        applied: &[ObservedLink],
    ) -> Result<Option<CniResult>, GuestFailure> {
        let guest = &mut self.guest;
        let wit_req = convert::request_to_wit(req);
        let facts: Vec<_> = applied.iter().map(convert::link_to_wit).collect();
        let out =
            self.plugin
                .wasm_cni_plugin_plugin()
                .call_finish(&mut guest.store, &wit_req, &facts);
        let result = match out {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => return Err(guest.guest_error(e)),
            Err(e) => return Err(guest.classify(e, "finish")),
        };
        guest.check_contract()?;
        guest.result_from_wit(result)
    }

    /// Everything the guest wrote to stdout and stderr (capped).
    pub fn captured_output(&self) -> String {
        self.guest.captured_output()
    }
}

/// An IPAM-plugin instance serving one request.
pub struct IpamInstance {
    pub(crate) guest: Guest,
    pub(crate) ipam: ipam_bindings::IpamPlugin,
}

impl IpamInstance {
    /// Serve one IPAM request.
    pub fn run(&mut self, req: &GuestRequest) -> Result<Option<CniResult>, GuestFailure> {
        let guest = &mut self.guest;
        let wit_req = convert::request_to_wit(req);
        let _tokio = wasi_runtime().map(tokio::runtime::Runtime::enter);
        let out = self
            .ipam
            .wasm_cni_plugin_ipam()
            .call_run(&mut guest.store, &wit_req);
        let result = match out {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => return Err(guest.guest_error(e)),
            Err(e) => return Err(guest.classify(e, "run")),
        };
        guest.check_contract()?;
        guest.result_from_wit(result)
    }
}

impl Guest {
    pub(crate) fn result_from_wit(
        &self,
        result: Option<bindings::CniResult>,
    ) -> Result<Option<CniResult>, GuestFailure> {
        result
            .map(convert::result_from_wit)
            .transpose()
            .map_err(|msg| {
                GuestFailure::new(FailureKind::Contract(format!(
                    "plugin returned a malformed result: {msg}"
                )))
            })
    }

    /// Everything the guest wrote to stdout and stderr (capped).
    pub(crate) fn captured_output(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.stderr.contents()).into_owned();
        let stdout = self.stdout.contents();
        if !stdout.is_empty() {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&String::from_utf8_lossy(&stdout));
        }
        out
    }

    pub(crate) fn check_contract(&mut self) -> Result<(), GuestFailure> {
        match self.store.data_mut().contract_error.take() {
            Some(msg) => Err(GuestFailure::new(FailureKind::Contract(msg))),
            None => Ok(()),
        }
    }

    pub(crate) fn guest_error(&self, e: bindings::PluginError) -> GuestFailure {
        // The host's own range is not the guest's to use: a guest claiming "policy
        // rejected" or "out of memory" would mislead the operator.
        let passed_on = self
            .store
            .data()
            .host_errors
            .iter()
            .any(|(code, msg)| *code == e.code && *msg == e.msg);
        let kind = if (100..200).contains(&e.code) && !passed_on {
            FailureKind::Contract(e.msg)
        } else {
            FailureKind::Plugin {
                code: ErrorCode::from_u32(e.code),
                msg: e.msg,
            }
        };
        let mut details = e.details;
        let output = self.captured_output();
        if !output.is_empty() {
            if !details.is_empty() {
                details.push('\n');
            }
            details.push_str(&output);
        }
        GuestFailure { kind, details }
    }

    /// Turn a wasmtime error into the CNI error that names the limit or the trap.
    pub(crate) fn classify(&mut self, e: wasmtime::Error, phase: &str) -> GuestFailure {
        let output = self.captured_output();
        let (memory_denied, tables_denied) = {
            let l = &self.store.data().limiter;
            (l.memory_denied, l.tables_denied)
        };
        let limits = &self.limits;
        let kind = if let Some(msg) = self.store.data_mut().contract_error.take() {
            FailureKind::Contract(msg)
        } else if memory_denied {
            FailureKind::OutOfMemory {
                limit: limits.memory_bytes,
            }
        } else if tables_denied || is_instance_limit(&e) {
            FailureKind::TableLimit {
                phase: phase.to_string(),
                table_elements: limits.table_elements,
                instances: limits.instances,
                resources: limits.resources,
            }
        } else if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            FailureKind::Timeout {
                deadline: limits.deadline,
            }
        } else if format!("{e:#}").contains("fuel allocated for hostcalls has been exhausted") {
            FailureKind::HostcallLimit {
                bytes: limits.hostcall_bytes,
            }
        } else if self.stdout.contents().len() >= limits.output_bytes
            || self.stderr.contents().len() >= limits.output_bytes
        {
            FailureKind::OutputLimit {
                bytes: limits.output_bytes,
            }
        } else if phase == "instantiate" && e.downcast_ref::<wasmtime::Trap>().is_none() {
            FailureKind::Contract(format!(
                "component does not fit the wasm-cni:plugin world: {e:#}"
            ))
        } else {
            FailureKind::Trapped {
                phase: phase.to_string(),
                error: format!("{e:#}"),
            }
        };
        GuestFailure {
            kind,
            details: output,
        }
    }
}
