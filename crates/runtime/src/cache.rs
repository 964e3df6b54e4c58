//! The precompiled-component cache. Compiling is the expensive step (tens of ms to
//! seconds), so it happens once per component and engine, off the hot path.
//!
//! Entries are keyed by the component's sha256 and the engine's compatibility hash,
//! written atomically (temp file + rename) into a directory that must be owned by
//! the effective user and writable by nobody else. Deserializing turns bytes into
//! executable code, so only files that pass that ownership check are ever loaded;
//! anything that fails to load is a miss, never a crash.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

use cni::{CniError, ErrorCode};

/// Where a component came from on this load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadedFrom {
    /// A precompiled artifact was mapped from the cache.
    Cache,
    /// The component was compiled now (and stored, if the cache is usable).
    Compiled,
}

/// A held lock on compiling one entry. Its file is removed before the lock
/// is let go, once the artifact is stored: a process still waiting on it then
/// finds the artifact, one arriving later finds it before looking for a lock,
/// and the cache holds only artifacts.
struct CompileLock {
    path: PathBuf,
    _held: nix::fcntl::Flock<fs::File>,
}

impl Drop for CompileLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The on-disk cache of precompiled components.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    /// A cache in `dir` (created on first store, mode 0700).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ComponentCache { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds (or would hold) the artifact of `digest` for `engine`.
    pub fn entry_path(&self, engine: &Engine, digest_hex: &str) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir
            .join(format!("{digest_hex}-{:016x}.cwasm", hasher.finish()))
    }

    /// Load the component, from the cache when a trusted entry exists, else by
    /// compiling it and storing the artifact.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest_hex: &str,
    ) -> Result<(Component, LoadedFrom), CniError> {
        let path = self.entry_path(engine, digest_hex);
        if let Some(component) = self.cached(engine, &path) {
            return Ok((component, LoadedFrom::Cache));
        }
        // One process compiles, the others wait for its artifact: thirty
        // first ADDs at once each compiling on two cores ran guests out of
        // their deadlines.
        let _compiling = self.compile_lock(&path);
        if let Some(component) = self.cached(engine, &path) {
            return Ok((component, LoadedFrom::Cache));
        }
        let artifact = engine.precompile_component(wasm).map_err(|e| {
            CniError::new(
                ErrorCode::ContractViolation,
                format!("component is not a valid WebAssembly component: {e:#}"),
            )
        })?;
        if let Err(e) = self.store(&path, &artifact) {
            tracing::warn!(dir = %self.dir.display(), "cannot store compiled component: {e}");
        }
        // SAFETY: `artifact` was produced by `precompile_component` on this very
        // engine a moment ago; it never left this process.
        let component = unsafe { Component::deserialize(engine, &artifact) }.map_err(|e| {
            CniError::new(ErrorCode::Internal, format!("cannot load component: {e}"))
        })?;
        Ok((component, LoadedFrom::Compiled))
    }

    /// The cached artifact at `path`, when there is a trusted, usable one.
    fn cached(&self, engine: &Engine, path: &Path) -> Option<Component> {
        if !self.is_trusted(path) {
            return None;
        }
        // SAFETY: the file is owned by this user, in a directory only this user
        // can write, under a name only `store` creates: its bytes are an
        // artifact this host wrote. wasmtime still checks the header and the
        // engine compatibility and returns an error on a mismatch.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    "ignoring unusable cache entry, recompiling: {e}"
                );
                None
            }
        }
    }

    /// An exclusive lock on compiling the entry at `path`, held until the
    /// guard drops; none when the cache directory is not usable (then each
    /// process compiles for itself, as before).
    fn compile_lock(&self, path: &Path) -> Option<CompileLock> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .ok()?;
        if !self.is_dir_trusted() {
            return None;
        }
        let lock_path = path.with_extension("lock");
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&lock_path)
            .ok()?;
        let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).ok()?;
        Some(CompileLock {
            path: lock_path,
            _held: held,
        })
    }

    /// Compile and store unconditionally (for `wasm-cni compile`); returns the entry.
    pub fn precompile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest_hex: &str,
    ) -> Result<PathBuf, CniError> {
        let path = self.entry_path(engine, digest_hex);
        let artifact = engine.precompile_component(wasm).map_err(|e| {
            CniError::new(
                ErrorCode::ContractViolation,
                format!("component is not a valid WebAssembly component: {e:#}"),
            )
        })?;
        self.store(&path, &artifact).map_err(|e| {
            CniError::new(
                ErrorCode::IoFailure,
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
        Ok(path)
    }

    fn is_trusted(&self, path: &Path) -> bool {
        let euid = nix::unistd::geteuid().as_raw();
        let safe = |p: &Path| {
            fs::symlink_metadata(p)
                .map(|m| m.uid() == euid && m.mode() & 0o022 == 0 && !m.file_type().is_symlink())
                .unwrap_or(false)
        };
        safe(&self.dir) && safe(path)
    }

    fn store(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        if !self.is_dir_trusted() {
            return Err(std::io::Error::other(
                "cache directory is not owned by this user or is writable by others",
            ));
        }
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            path.file_name().and_then(|n| n.to_str()).unwrap_or("entry")
        ));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let written = file.write_all(artifact).and_then(|()| file.sync_all());
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(())
    }

    fn is_dir_trusted(&self) -> bool {
        let euid = nix::unistd::geteuid().as_raw();
        fs::symlink_metadata(&self.dir)
            .map(|m| m.is_dir() && m.uid() == euid && m.mode() & 0o022 == 0)
            .unwrap_or(false)
    }
}
