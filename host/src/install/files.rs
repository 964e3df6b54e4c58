//! File steps: atomic writes and symlinks, the bin directory's lock and
//! record, removal.

use super::*;

/// `<name>.wasm` files of `dir`, with their bytes.
pub(super) fn read_components(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, CniError> {
    let entries = fs::read_dir(dir).map_err(|e| io_err("read", dir, e))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wasm"))
        else {
            continue;
        };
        // The same rule the plugin store applies to names.
        PluginStore::new(dir).find(name)?;
        let bytes = fs::read(&path).map_err(|e| io_err("read", &path, e))?;
        out.push((name.to_string(), bytes));
    }
    out.sort();
    Ok(out)
}

pub(super) fn is_our_link(path: &Path) -> bool {
    fs::read_link(path).is_ok_and(|t| t == Path::new(BINARY_NAME))
}

pub(super) fn mkdir(dir: &Path, mode: u32) -> Result<(), CniError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| io_err("create", dir, e))
}

pub(super) fn lock(dir: &Path) -> Result<Flock<fs::File>, CniError> {
    let file = fs::File::open(dir).map_err(|e| io_err("open", dir, e))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io_err("lock", dir, e))
}

pub(super) fn read_manifest(bin_dir: &Path) -> Result<Option<Manifest>, CniError> {
    let path = bin_dir.join(MANIFEST_NAME);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| bad_value(format!("{} is not an install record: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &path, e)),
    }
}

/// A name beside `path` for its next version.
pub(super) fn temp_name(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Replace `path` with `bytes` in one rename.
pub(super) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CniError> {
    let tmp = temp_name(path);
    let _ = fs::remove_file(&tmp);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            // The umask must not narrow the mode a runtime needs to exec it.
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("write", path, e)
    })
}

/// `wrote` after writing `bytes` to `path`, or `kept` when it holds them already.
pub(super) fn write_if_changed(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    note: &str,
) -> Result<Action, CniError> {
    let same = fs::read(path).is_ok_and(|old| old == bytes)
        && fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o7777 == mode);
    if same {
        return Ok(Action::new("kept", path, note));
    }
    write_atomic(path, bytes, mode)?;
    Ok(Action::new("wrote", path, note))
}

/// Point `path` at `target` in one rename.
pub(super) fn symlink_atomic(target: &Path, path: &Path) -> Result<(), CniError> {
    let tmp = temp_name(path);
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err("link", path, e)
        })
}

pub(super) fn remove(path: &Path, actions: &mut Vec<Action>) -> Result<(), CniError> {
    match fs::remove_file(path) {
        Ok(()) => {
            actions.push(Action::new("removed", path, ""));
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path, e)),
    }
}
