//! Writes the `validate_plan` seed corpus from `wasm_cni_fuzz::plan_input::seeds()`:
//! `cargo run --example plan_seeds` in `fuzz/`. The files are binary (the bytes
//! `arbitrary` decodes), so they are generated rather than written by hand.

use std::fs;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/validate_plan");
    fs::create_dir_all(&dir)?;
    for (name, seed) in wasm_cni_fuzz::plan_input::seeds() {
        let path = dir.join(format!("seed-{name}"));
        fs::write(&path, seed.encode())?;
        println!("{}", path.display());
    }
    Ok(())
}
