//! `wasm-cni install` and `wasm-cni uninstall`: put the binary, its per-type
//! entries, the components, their precompiled artifacts and optionally a
//! conflist on a node, and take them away again.
//!
//! Every file appears atomically (written under a temporary name in the same
//! directory, then renamed), so a runtime exec'ing a plugin or reading the
//! conflist mid-install sees the old file or the new one, never half of one.
//! Order matters for the same reason: binary, components and cache first, then
//! the `<type>` entries, then the conflist; uninstall goes the other way. What
//! was done is recorded in `<bin-dir>/.wasm-cni-install.json`, which is how
//! uninstall knows what is ours (and which replaced reference plugins to put
//! back). Both hold an flock on the bin directory, so two installers in a row
//! never interleave.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

mod conflist;
mod files;

pub use conflist::build_conflist;
use files::*;

use crate::plugins::{sha256_hex, PluginStore};
use cni::{CniError, ErrorCode};
use runtime::{ComponentCache, LoadedFrom, PluginRuntime};

/// The installed binary's name in the bin directory.
pub const BINARY_NAME: &str = "wasm-cni";
/// The record of an installation, in the bin directory.
pub const MANIFEST_NAME: &str = ".wasm-cni-install.json";
/// Where replaced plugin binaries are kept, in the bin directory.
pub const BACKUP_DIR: &str = ".wasm-cni-backup";

/// What to install, and where. Every directory is a path on the node, found
/// under `root` (an installer container sees the node's `/` at, say, `/host`).
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Where the node's file system is mounted (`/` when run on the node).
    pub root: PathBuf,
    /// The binary to install (normally the running executable).
    pub binary: PathBuf,
    /// Where runtimes look for plugin binaries (`CNI_PATH`).
    pub bin_dir: PathBuf,
    /// Where installed components live (the settings' `pluginDir`).
    pub component_dir: PathBuf,
    /// A directory of extra `<type>.wasm` components to install.
    pub components: Option<PathBuf>,
    /// Where precompiled components go (the settings' `cacheDir`).
    pub cache_dir: PathBuf,
    /// Replace plugin binaries that are not ours (kept, and restored by uninstall).
    pub replace: bool,
    /// The network conflist to write, if any.
    pub network: Option<NetworkOptions>,
}

/// A conflist: wasm-cni `bridge` with host-local IPAM, then native plugins.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// Where runtimes read network configs.
    pub conf_dir: PathBuf,
    /// The file name in `conf_dir`.
    pub file_name: String,
    /// The network name.
    pub name: String,
    /// The config's `cniVersion`.
    pub cni_version: String,
    /// The bridge device.
    pub bridge: String,
    /// host-local ranges, one range set each.
    pub subnets: Vec<IpNet>,
    /// Masquerade traffic leaving the subnets.
    pub ip_masq: bool,
    /// MTU of the bridge and veths.
    pub mtu: Option<u32>,
    /// Plugin types appended to the chain (e.g. `portmap`).
    pub chain: Vec<String>,
}

/// What an installation created: the manifest's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The version of wasm-cni that wrote it.
    pub version: String,
    /// The installed binary.
    pub binary: PathBuf,
    /// `<type>` entries (symlinks to the binary).
    pub links: Vec<PathBuf>,
    /// Entries that replaced someone else's file: (entry, where the original is).
    pub backups: Vec<(PathBuf, PathBuf)>,
    /// Copied components, with their sha256.
    pub components: Vec<(PathBuf, String)>,
    /// Precompiled artifacts.
    pub cache_entries: Vec<PathBuf>,
    /// The written conflist and its sha256.
    pub conflist: Option<(PathBuf, String)>,
}

/// One thing install or uninstall did, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// `wrote`, `linked`, `kept`, `backed-up`, `compiled`, `removed`, `restored`, `left`.
    pub action: &'static str,
    /// The path concerned.
    pub path: PathBuf,
    /// Extra words (a digest, a reason).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl Action {
    fn new(action: &'static str, path: &Path, note: impl Into<String>) -> Self {
        Action {
            action,
            path: path.to_path_buf(),
            note: note.into(),
        }
    }
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> CniError {
    CniError::new(
        ErrorCode::IoFailure,
        format!("cannot {what} {}: {e}", path.display()),
    )
}

fn bad_value(msg: String) -> CniError {
    CniError::new(ErrorCode::InvalidNetworkConfig, msg)
}

/// `node` (a path on the node) as seen under `root`.
fn under(root: &Path, node: &Path) -> PathBuf {
    root.join(node.strip_prefix("/").unwrap_or(node))
}

/// `real` (a path under `root`) as a path on the node.
fn on_node(root: &Path, real: &Path) -> PathBuf {
    match real.strip_prefix(root) {
        Ok(rel) if root != Path::new("/") => Path::new("/").join(rel),
        _ => real.to_path_buf(),
    }
}

impl Manifest {
    fn map_paths(mut self, f: impl Fn(&Path) -> PathBuf) -> Self {
        self.binary = f(&self.binary);
        self.links.iter_mut().for_each(|p| *p = f(p));
        for (a, b) in &mut self.backups {
            *a = f(a);
            *b = f(b);
        }
        self.components.iter_mut().for_each(|(p, _)| *p = f(p));
        self.cache_entries.iter_mut().for_each(|p| *p = f(p));
        if let Some((p, _)) = &mut self.conflist {
            *p = f(p);
        }
        self
    }
}

/// Install. Checks everything first, so a refused install changes nothing.
/// The record and the report name paths on the node.
pub fn install(opts: &InstallOptions) -> Result<Vec<Action>, CniError> {
    let root = opts.root.clone();
    let real = InstallOptions {
        bin_dir: under(&root, &opts.bin_dir),
        component_dir: under(&root, &opts.component_dir),
        cache_dir: under(&root, &opts.cache_dir),
        network: opts.network.clone().map(|n| NetworkOptions {
            conf_dir: under(&root, &n.conf_dir),
            ..n
        }),
        ..opts.clone()
    };
    let actions = install_real(&real)?;
    Ok(actions
        .into_iter()
        .map(|a| Action {
            path: on_node(&root, &a.path),
            ..a
        })
        .collect())
}

fn install_real(opts: &InstallOptions) -> Result<Vec<Action>, CniError> {
    let root = opts.root.clone();
    let conflist = opts.network.as_ref().map(build_conflist).transpose()?;
    mkdir(&opts.bin_dir, 0o755)?;
    let _lock = lock(&opts.bin_dir)?;
    let mut manifest = read_manifest(&opts.bin_dir)?
        .unwrap_or_default()
        .map_paths(|p| under(&root, p));
    let mut actions = Vec::new();

    // Extra components: each must compile before anything is written.
    let runtime = PluginRuntime::new()?;
    let extra = match &opts.components {
        Some(dir) => read_components(dir)?,
        None => Vec::new(),
    };
    for (name, bytes) in &extra {
        runtime
            .engine()
            .precompile_component(bytes)
            .map_err(|e| bad_value(format!("{name}.wasm is not a usable component: {e}")))?;
    }

    // Every type that will have an entry, and the conflicts among them.
    let mut types: Vec<String> = PluginStore::new(&opts.component_dir)
        .list()
        .into_iter()
        .map(|c| c.name)
        .collect();
    for (name, _) in &extra {
        if !types.contains(name) {
            types.push(name.clone());
        }
    }
    types.sort();
    let mut to_back_up = Vec::new();
    for t in &types {
        let entry = opts.bin_dir.join(t);
        match fs::symlink_metadata(&entry) {
            Err(_) => {}
            Ok(_) if is_our_link(&entry) => {}
            Ok(m) if m.is_dir() => {
                return Err(bad_value(format!(
                    "{} is a directory; cannot install the {t} entry there",
                    entry.display()
                )))
            }
            Ok(_) if opts.replace => {
                let kept = opts.bin_dir.join(BACKUP_DIR).join(t);
                if kept.exists() {
                    return Err(bad_value(format!(
                        "{} is already kept as a backup; nothing was changed (resolve it by hand)",
                        kept.display()
                    )));
                }
                to_back_up.push(entry)
            }
            Ok(_) => {
                return Err(CniError::new(
                    ErrorCode::InvalidNetworkConfig,
                    format!(
                        "{} exists and is not wasm-cni's; nothing was changed",
                        entry.display()
                    ),
                )
                .with_details(
                    "pass --replace to put wasm-cni in its place (the original is kept in \
                     .wasm-cni-backup/ and restored by uninstall)",
                ))
            }
        }
    }
    if let (Some(net), Some((_, text))) = (&opts.network, &conflist) {
        let path = net.conf_dir.join(&net.file_name);
        let ours = manifest.conflist.as_ref().is_some_and(|(p, _)| p == &path);
        if let Ok(existing) = fs::read(&path) {
            if !ours && existing != text.as_bytes() && !opts.replace {
                return Err(bad_value(format!(
                    "{} exists and was not written by wasm-cni; nothing was changed \
                     (pass --replace to overwrite it)",
                    path.display()
                )));
            }
        }
    }

    // 1. The binary.
    let binary = opts.bin_dir.join(BINARY_NAME);
    let bytes = fs::read(&opts.binary).map_err(|e| io_err("read", &opts.binary, e))?;
    actions.push(write_if_changed(&binary, &bytes, 0o755, "")?);
    manifest.binary = binary;

    // 2. Components and their artifacts.
    if !extra.is_empty() {
        mkdir(&opts.component_dir, 0o755)?;
    }
    for (name, bytes) in &extra {
        let path = opts.component_dir.join(format!("{name}.wasm"));
        let digest = sha256_hex(bytes);
        actions.push(write_if_changed(
            &path,
            bytes,
            0o644,
            &format!("sha256:{digest}"),
        )?);
        manifest.components.retain(|(p, _)| p != &path);
        manifest.components.push((path, digest));
    }
    let cache = ComponentCache::new(&opts.cache_dir);
    for source in PluginStore::new(&opts.component_dir).list() {
        let entry = cache.entry_path(runtime.engine(), &source.sha256);
        // An existing entry is kept only if this engine loads it; a miss is
        // compiled and stored by `load` itself.
        match cache.load(runtime.engine(), &source.bytes, &source.sha256) {
            Ok((_, LoadedFrom::Cache)) => actions.push(Action::new("kept", &entry, source.name)),
            Ok((_, LoadedFrom::Compiled)) if entry.exists() => {
                actions.push(Action::new("compiled", &entry, source.name))
            }
            // Not stored: `precompile` says why.
            _ => {
                cache.precompile(runtime.engine(), &source.bytes, &source.sha256)?;
                actions.push(Action::new("compiled", &entry, source.name));
            }
        }
        if !manifest.cache_entries.contains(&entry) {
            manifest.cache_entries.push(entry);
        }
    }

    // 3. The per-type entries.
    let backup_dir = opts.bin_dir.join(BACKUP_DIR);
    for entry in to_back_up {
        mkdir(&backup_dir, 0o700)?;
        let kept = backup_dir.join(entry.file_name().unwrap_or_default());
        fs::rename(&entry, &kept).map_err(|e| io_err("back up", &entry, e))?;
        actions.push(Action::new("backed-up", &entry, kept.display().to_string()));
        manifest.backups.push((entry, kept));
    }
    for t in &types {
        let entry = opts.bin_dir.join(t);
        if is_our_link(&entry) {
            actions.push(Action::new("kept", &entry, ""));
        } else {
            symlink_atomic(Path::new(BINARY_NAME), &entry)?;
            actions.push(Action::new("linked", &entry, BINARY_NAME));
        }
        if !manifest.links.contains(&entry) {
            manifest.links.push(entry);
        }
    }

    // 4. The conflist, last: a runtime that sees it finds everything in place.
    if let (Some(net), Some((value, text))) = (&opts.network, conflist) {
        mkdir(&net.conf_dir, 0o755)?;
        let path = net.conf_dir.join(&net.file_name);
        let ranges = value["plugins"][0]["ipam"]["ranges"].to_string();
        actions.push(write_if_changed(
            &path,
            text.as_bytes(),
            0o644,
            &format!("ranges {ranges}"),
        )?);
        let digest = sha256_hex(text.as_bytes());
        manifest.conflist = Some((path, digest));
    }

    manifest.version = env!("CARGO_PKG_VERSION").to_string();
    let manifest = manifest.map_paths(|p| on_node(&root, p));
    let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    write_atomic(&opts.bin_dir.join(MANIFEST_NAME), text.as_bytes(), 0o644)?;
    Ok(actions)
}

/// Uninstall what the manifest in `bin_dir` (a node path, under `root`)
/// records. Files changed since install (a conflist edited by hand, an entry
/// that is no longer our link) are left.
pub fn uninstall(root: &Path, bin_dir: &Path) -> Result<Vec<Action>, CniError> {
    let bin_dir = &under(root, bin_dir);
    if !bin_dir.is_dir() {
        return Ok(Vec::new());
    }
    let _lock = lock(bin_dir)?;
    let Some(manifest) = read_manifest(bin_dir)? else {
        return Ok(Vec::new());
    };
    let manifest = manifest.map_paths(|p| under(root, p));
    let actions = uninstall_real(bin_dir, &manifest)?;
    Ok(actions
        .into_iter()
        .map(|a| Action {
            path: on_node(root, &a.path),
            ..a
        })
        .collect())
}

fn uninstall_real(bin_dir: &Path, manifest: &Manifest) -> Result<Vec<Action>, CniError> {
    let mut actions = Vec::new();
    if let Some((path, digest)) = &manifest.conflist {
        match fs::read(path) {
            Ok(bytes) if &sha256_hex(&bytes) == digest => {
                remove(path, &mut actions)?;
            }
            Ok(_) => actions.push(Action::new("left", path, "changed since install")),
            Err(_) => {}
        }
    }
    for entry in &manifest.links {
        if is_our_link(entry) {
            remove(entry, &mut actions)?;
        } else if entry.exists() {
            actions.push(Action::new("left", entry, "not wasm-cni's any more"));
        }
    }
    for (entry, kept) in &manifest.backups {
        if kept.exists() && fs::symlink_metadata(entry).is_err() {
            fs::rename(kept, entry).map_err(|e| io_err("restore", entry, e))?;
            actions.push(Action::new("restored", entry, ""));
        }
    }
    let _ = fs::remove_dir(bin_dir.join(BACKUP_DIR));
    for (path, digest) in &manifest.components {
        match fs::read(path) {
            Ok(bytes) if &sha256_hex(&bytes) == digest => remove(path, &mut actions)?,
            Ok(_) => actions.push(Action::new("left", path, "changed since install")),
            Err(_) => {}
        }
    }
    for path in &manifest.cache_entries {
        if path.exists() {
            remove(path, &mut actions)?;
        }
    }
    if manifest.binary.exists() {
        remove(&manifest.binary, &mut actions)?;
    }
    remove(&bin_dir.join(MANIFEST_NAME), &mut actions)?;
    Ok(actions)
}

#[cfg(test)]
mod tests;
