//! The plan validator; see `wasm_cni_fuzz::targets::validate_plan_target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasm_cni_fuzz::targets::validate_plan_target(data));
