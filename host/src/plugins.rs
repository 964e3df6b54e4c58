//! Where components come from: the installed plugin directory first (so an
//! administrator can upgrade one plugin by replacing a file), then the components
//! bundled into the binary at build time.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use cni::{CniError, ErrorCode};
use plan::policy::Subject;

/// Where a component was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Compiled into the `wasm-cni` binary.
    Bundled,
    /// A `<name>.wasm` file in the plugin directory.
    File(PathBuf),
}

/// A component's bytes, name and digest.
#[derive(Debug, Clone)]
pub struct ComponentSource {
    pub name: String,
    pub bytes: Cow<'static, [u8]>,
    /// Lowercase hex sha256 of `bytes`.
    pub sha256: String,
    pub origin: Origin,
}

impl ComponentSource {
    fn new(name: &str, bytes: Cow<'static, [u8]>, origin: Origin) -> Self {
        let sha256 = sha256_hex(&bytes);
        ComponentSource {
            name: name.to_string(),
            bytes,
            sha256,
            origin,
        }
    }

    /// A bundled component, whose digest the build computed.
    fn bundled(name: &str, bytes: &'static [u8], sha256: &str) -> Self {
        ComponentSource {
            name: name.to_string(),
            bytes: Cow::Borrowed(bytes),
            sha256: sha256.to_string(),
            origin: Origin::Bundled,
        }
    }

    /// Who the policy looks up a grant for.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            name: &self.name,
            sha256: &self.sha256,
            bundled: self.origin == Origin::Bundled,
        }
    }

    /// Fail unless the component's digest is `pin` (`sha256:<hex>`).
    pub fn verify_pin(&self, pin: &str) -> Result<(), CniError> {
        let Some(hex) = pin.strip_prefix("sha256:") else {
            return Err(CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!("component digest {pin:?} must have the form sha256:<64 hex digits>"),
            ));
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!("component digest {pin:?} must have the form sha256:<64 hex digits>"),
            ));
        }
        if !hex.eq_ignore_ascii_case(&self.sha256) {
            return Err(CniError::new(
                ErrorCode::DigestMismatch,
                format!(
                    "component {:?} has digest sha256:{}, but the config pins {pin}",
                    self.name, self.sha256
                ),
            )
            .with_details("nothing was run; install the pinned component or update the pin"));
        }
        Ok(())
    }
}

/// Lowercase hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The set of components this host can run.
#[derive(Debug, Clone)]
pub struct PluginStore {
    dir: PathBuf,
}

impl PluginStore {
    /// Components installed in `dir`, plus the bundled ones.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PluginStore { dir: dir.into() }
    }

    /// The plugin directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The component named `name` (a plugin type such as `loopback`).
    pub fn find(&self, name: &str) -> Result<ComponentSource, CniError> {
        validate_name(name)?;
        let path = self.dir.join(format!("{name}.wasm"));
        match fs::read(&path) {
            Ok(bytes) => return Ok(ComponentSource::new(name, bytes.into(), Origin::File(path))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CniError::new(
                    ErrorCode::IoFailure,
                    format!("cannot read component {}: {e}", path.display()),
                ))
            }
        }
        bundled::BUNDLED
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(n, bytes, sha256)| ComponentSource::bundled(n, bytes, sha256))
            .ok_or_else(|| {
                CniError::new(
                    ErrorCode::ComponentNotFound,
                    format!(
                        "no component named {name:?}: not in {} and not bundled",
                        self.dir.display()
                    ),
                )
                .with_details(format!(
                    "install {name}.wasm into the plugin directory, or use one of the bundled \
                     plugins: {}",
                    bundled_names().join(", ")
                ))
            })
    }

    /// Every component: installed files (sorted), then bundled ones not shadowed.
    pub fn list(&self) -> Vec<ComponentSource> {
        let mut found: Vec<ComponentSource> = Vec::new();
        if let Ok(entries) = fs::read_dir(&self.dir) {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".wasm"))
                else {
                    continue;
                };
                if let Ok(c) = self.find(name) {
                    found.push(c);
                }
            }
        }
        for (name, bytes, sha256) in bundled::BUNDLED {
            if !found.iter().any(|c| c.name == *name) {
                found.push(ComponentSource::bundled(name, bytes, sha256));
            }
        }
        found
    }
}

/// Names of the bundled plugins.
pub fn bundled_names() -> Vec<&'static str> {
    bundled::names().collect()
}

/// A component name is a plugin type: it must never reach outside the plugin
/// directory, since configs are written by tenants.
fn validate_name(name: &str) -> Result<(), CniError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::InvalidNetworkConfig,
            format!(
                "invalid component name {name:?}: use letters, digits, '-', '_' or '.', \
                 at most 64, not starting with '.'"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_bundled() {
        let store = PluginStore::new("/nonexistent-wasm-cni-dir");
        let c = store.find("loopback").expect("bundled loopback");
        assert_eq!(c.origin, Origin::Bundled);
        // The build's digest is the digest of the bytes.
        assert_eq!(c.sha256, sha256_hex(&c.bytes));
        assert!(c.bytes.starts_with(b"\0asm"));
    }

    #[test]
    fn names_cannot_escape_the_directory() {
        let store = PluginStore::new("/nonexistent-wasm-cni-dir");
        for bad in ["../loopback", "a/b", "", ".hidden", "x\0y"] {
            let e = store.find(bad).expect_err(bad);
            assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{bad}");
        }
        let e = store.find("nope").expect_err("missing");
        assert_eq!(e.code, ErrorCode::ComponentNotFound);
    }

    #[test]
    fn installed_file_shadows_bundled_and_pins_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = b"\0asm not really".to_vec();
        fs::write(dir.path().join("loopback.wasm"), &bytes).expect("write");
        let store = PluginStore::new(dir.path());
        let c = store.find("loopback").expect("found");
        assert!(matches!(c.origin, Origin::File(_)));
        c.verify_pin(&format!("sha256:{}", sha256_hex(&bytes)))
            .expect("matching pin");
        let e = c
            .verify_pin(&format!("sha256:{}", "0".repeat(64)))
            .expect_err("mismatch");
        assert_eq!(e.code, ErrorCode::DigestMismatch);
        let e = c.verify_pin("md5:abc").expect_err("bad form");
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
        assert_eq!(
            store.list().iter().filter(|c| c.name == "loopback").count(),
            1
        );
    }
}
