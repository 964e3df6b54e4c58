//! The CNI env/stdin parser; see `wasm_cni_fuzz::targets::cni_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasm_cni_fuzz::targets::cni_parse(data));
