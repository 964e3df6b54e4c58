//! Builds every guest plugin for `wasm32-wasip2` and embeds the components in the
//! host binary, so `target/<profile>/wasm-cni` is self-contained and a test never
//! runs against a stale component.
//!
//! The guests are their own workspace with their own target directory: a nested
//! cargo sharing the outer target directory would wait forever on the outer build's
//! lock.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("crates/bundled/ lives two levels below the workspace root");
    let guests = root.join("guest-plugins");
    let wit = root.join("wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    for entry in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", guests.join(entry).display());
    }
    let crates = guest_crates(&guests);
    for (dir, _) in &crates {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    require_tests(&guests, &crates);

    let target_dir = env::var_os("WASM_CNI_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("wasm-guests"));
    build_guests(&guests, &target_dir);

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    let wasm_dir = target_dir.join(TARGET).join("release");
    // Guests under `testing/` exist only to attack the host in tests: they are
    // copied next to the build output for the tests, never embedded.
    let test_dir = out.join("test-guests");
    fs::create_dir_all(&test_dir).expect("create test-guests dir");
    let mut bundled = String::from(
        "/// The components built from `guest-plugins/`: (type name, component bytes,\n\
         /// lowercase hex sha256 of the bytes, computed at build time).\n\
         pub static BUNDLED: &[(&str, &[u8], &str)] = &[\n",
    );
    for (dir, name) in &crates {
        let file = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
        if dir.starts_with(guests.join("testing")) {
            let copy = test_dir.join(format!("{name}.wasm"));
            fs::copy(&file, &copy).unwrap_or_else(|e| {
                panic!("guest {name} was not built at {}: {e}", file.display())
            });
            continue;
        }
        let copy = out.join(format!("{name}.wasm"));
        fs::copy(&file, &copy)
            .unwrap_or_else(|e| panic!("guest {name} was not built at {}: {e}", file.display()));
        let bytes = fs::read(&copy).expect("read the copied guest");
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        writeln!(
            bundled,
            "    ({name:?}, include_bytes!({:?}), {digest:?}),",
            copy.display()
        )
        .expect("writing to a String");
    }
    bundled.push_str("];\n");
    fs::write(out.join("bundled.rs"), bundled).expect("write bundled.rs");
    println!(
        "cargo:rustc-env=WASM_CNI_TEST_GUESTS={}",
        test_dir.display()
    );
}

/// Every guest crate directory with its package name: direct children of
/// `guest-plugins/` and of `guest-plugins/testing/` that hold a `Cargo.toml`
/// with a cdylib.
fn guest_crates(guests: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for parent in [guests.to_path_buf(), guests.join("testing")] {
        let Ok(entries) = fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let manifest = entry.path().join("Cargo.toml");
            let Ok(text) = fs::read_to_string(&manifest) else {
                continue;
            };
            if !text.contains("cdylib") {
                continue;
            }
            let name = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("name = "))
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_else(|| panic!("{} has no package name", manifest.display()));
            found.push((entry.path(), name));
        }
    }
    found.sort();
    found
}

/// Every plugin that ships must have unit tests (as wasmtime makes an untested
/// test program a compile error): the build fails naming the plugin otherwise.
/// Guests under `testing/` exist to attack the host and are tested by it.
fn require_tests(guests: &Path, crates: &[(PathBuf, String)]) {
    for (dir, name) in crates {
        if dir.starts_with(guests.join("testing")) {
            continue;
        }
        if !has_test(&dir.join("src")) {
            panic!(
                "guest plugin {name} has no #[test] under {}: every bundled plugin \
                 needs unit tests (see guest-plugins/README.md)",
                dir.join("src").display()
            );
        }
    }
}

fn has_test(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            has_test(&path)
        } else {
            path.extension().is_some_and(|e| e == "rs")
                && fs::read_to_string(&path).is_ok_and(|text| text.contains("#[test]"))
        }
    })
}

fn build_guests(guests: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(guests.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // The outer build's settings are for the host target; the nested build must not
    // inherit them.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo for the guest plugins");
    if !status.success() {
        panic!(
            "building the guest plugins failed; if the error says the `{TARGET}` target is \
             missing, run `rustup target add {TARGET}` (the README's set-up does it)"
        );
    }
}
