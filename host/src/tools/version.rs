//! `wasm-cni version`.

use cni::SUPPORTED_VERSIONS;

/// The contract package guests are built against.
const WIT_PACKAGE: &str = "wasm-cni:plugin@0.1.0";

/// Print the versions of wasm-cni, the WIT contract, wasmtime and CNI.
pub fn run() {
    println!("wasm-cni {}", env!("CARGO_PKG_VERSION"));
    println!("WIT contract: {WIT_PACKAGE}");
    println!("wasmtime: 48 (LTS)");
    println!("CNI versions: {}", SUPPORTED_VERSIONS.join(", "));
}
