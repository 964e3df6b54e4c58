//! The on-disk store, byte-compatible with the reference's `backend/disk`, so
//! that the Go binary and this plugin can take turns on one directory.
//!
//! The directory is one network's `<dataDir>/<network name>`; the host holds
//! the flock on its `lock` file for the whole call, so nothing here locks.
//!
//! - `<ip>` (e.g. `10.1.0.5`, `2001:db8::2`): one reservation, appearing
//!   whole (written as `.<ip>.new`, then hard-linked, which fails if the name
//!   exists), holding exactly `<containerID>\r\n<ifname>`. Older reference
//!   versions wrote only `<containerID>` ("legacy" files).
//! - `last_reserved_ip.<range set index>`: the last address handed out from
//!   that set, for round-robin. Replaced atomically (temp file + rename),
//!   where the reference truncates and rewrites in place.
//! - `.owner.<hash>.<set>`: a symbolic link to the reservation an owner holds
//!   in range set `<set>` (see [`owner_link_name`]), so that ADD, DEL and
//!   CHECK find an attachment's addresses without reading every reservation.
//!   The reference never takes it for a reservation (the name is no address);
//!   read through the link its content is the owner record, so the reference's
//!   release-by-owner removes it along with the reservation.
//! - `lock`: the host's; never touched here.

use std::fmt;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::ip;

/// Prefix of the round-robin files; the range set index follows.
pub const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";

/// Between container ID and interface name in a reservation file.
pub const LINE_BREAK: &str = "\r\n";

/// Prefix of the owner links.
pub const OWNER_LINK_PREFIX: &str = ".owner.";

/// The name of the link to the address that the owner with reservation
/// content `record` holds in range set `set`: `.owner.<hash>.<set>`, the hash
/// being FNV-1a (64 bits, hex) of the record. Two owners with one hash share a
/// name; every reader therefore checks the reservation the link points at
/// and falls back to reading the directory, so a collision costs time, never
/// an address.
pub fn owner_link_name(record: &str, set: usize) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in record.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{OWNER_LINK_PREFIX}{hash:016x}.{set}")
}

/// The range set index of an owner link's name; none for any other name.
pub fn owner_link_set(name: &str) -> Option<usize> {
    let rest = name.strip_prefix(OWNER_LINK_PREFIX)?;
    let (hash, set) = rest.split_once('.')?;
    if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    set.parse().ok()
}

/// The content of a reservation file for `(container_id, ifname)`, as the
/// reference writes it (the ID trimmed, the interface name as is).
pub fn owner_record(container_id: &str, ifname: &str) -> String {
    format!("{}{LINE_BREAK}{ifname}", container_id.trim())
}

/// A file of the store whose name parses as an IP address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The file name as found.
    pub name: String,
    /// The address it names (IPv4-mapped IPv6 names read as IPv4).
    pub ip: IpAddr,
}

impl Entry {
    /// Whether the name is the one this plugin and the reference would create
    /// for `ip`, so that the file really blocks `ip` from being reserved.
    pub fn is_canonical(&self) -> bool {
        self.name == self.ip.to_string()
    }
}

/// A failed store operation: what was done to which file, and the I/O error.
#[derive(Debug)]
pub struct StoreError {
    /// `open`, `read`, `write`, `rename`, `remove` or `list`.
    pub op: &'static str,
    /// The file name inside the network directory (`/` for the directory itself).
    pub name: String,
    /// The underlying error.
    pub source: io::Error,
}

impl StoreError {
    fn new(op: &'static str, name: &str, source: io::Error) -> StoreError {
        StoreError {
            op,
            name: name.to_string(),
            source,
        }
    }

    /// Whether retrying the same call could succeed (CNI code 11).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.source.kind(),
            io::ErrorKind::Interrupted
                | io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::ResourceBusy
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.name, self.source)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// One network's reservations. The allocator and the verbs work only through
/// this trait, so they are tested against an in-memory fake as well as disk.
pub trait Store {
    /// Every regular file whose name parses as an IP address, sorted by name
    /// (the order of the reference's `filepath.Walk`).
    fn entries(&self) -> Result<Vec<Entry>, StoreError>;

    /// The content of file `name`, or none when it does not exist.
    fn read(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Creates the file for `ip` exclusively with `content`. `Ok(false)` when
    /// it already exists (someone holds the address).
    fn reserve(&mut self, ip: IpAddr, content: &str) -> Result<bool, StoreError>;

    /// Removes file `name`; a missing file is not an error.
    fn release(&mut self, name: &str) -> Result<(), StoreError>;

    /// The address in `last_reserved_ip.<set>`, or none when the file is
    /// missing or does not hold an address.
    fn last_reserved(&self, set: usize) -> Result<Option<IpAddr>, StoreError>;

    /// Replaces `last_reserved_ip.<set>` with `ip`, atomically.
    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<(), StoreError>;

    /// The name owner link `name` points at; none when there is no such link.
    fn owner_link(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Makes owner link `name` point at `target`, replacing any file of that
    /// name. Removed with [`Store::release`].
    fn set_owner_link(&mut self, name: &str, target: &str) -> Result<(), StoreError>;

    /// The names of every owner link.
    fn owner_links(&self) -> Result<Vec<String>, StoreError>;
}

/// The store in a directory: `/` inside the component (the host's preopen of
/// the network directory), a temporary directory in native tests.
#[derive(Clone, Debug)]
pub struct DiskStore {
    root: PathBuf,
}

impl DiskStore {
    /// A store over the network directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> DiskStore {
        DiskStore { root: root.into() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn last_reserved_name(set: usize) -> String {
        format!("{LAST_RESERVED_PREFIX}{set}")
    }
}

impl Store for DiskStore {
    fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        let list_err = |e| StoreError::new("list", "/", e);
        let mut entries = Vec::new();
        for dirent in fs::read_dir(&self.root).map_err(list_err)? {
            let dirent = dirent.map_err(list_err)?;
            // `lock`, `last_reserved_ip.*`, temp files and anything foreign do not
            // parse as addresses and are never considered reservations.
            let Some(name) = dirent.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Some(ip) = ip::parse_ip(&name) else {
                continue;
            };
            let is_file = dirent.file_type().map(|t| t.is_file()).unwrap_or(false);
            if is_file {
                entries.push(Entry { name, ip });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn read(&self, name: &str) -> Result<Option<String>, StoreError> {
        match fs::read(self.path(name)) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::new("read", name, e)),
        }
    }

    fn reserve(&mut self, ip: IpAddr, content: &str) -> Result<bool, StoreError> {
        // The reservation appears whole or not at all: the record is written to
        // a dot-file (never taken for an address) and hard-linked to the
        // address's name, which fails if the name exists. The reference
        // creates the file and then writes it, so a crash in between leaves an
        // empty reservation that no DEL can match; this leaves at most a
        // dot-file. The host's lock makes this the only writer.
        let name = ip.to_string();
        let path = self.path(&name);
        // Taken already: no need to write anything (one system call, where a
        // full attempt takes five).
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(false);
        }
        let tmp_name = format!(".{name}.new");
        let tmp = self.path(&tmp_name);
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        // The reference creates reservations 0600. Inside the component the
        // host's preopen decides the mode; natively (tests) set it here.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let file = options
            .open(&tmp)
            .map_err(|e| StoreError::new("open", &name, e))?;
        if let Err(e) = write_all_at(&file, content.as_bytes()) {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::new("write", &name, e));
        }
        drop(file);
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(StoreError::new("open", &name, e)),
        }
    }

    fn release(&mut self, name: &str) -> Result<(), StoreError> {
        match fs::remove_file(self.path(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::new("remove", name, e)),
        }
    }

    fn last_reserved(&self, set: usize) -> Result<Option<IpAddr>, StoreError> {
        let name = DiskStore::last_reserved_name(set);
        // Trimming is lenient where the reference is not: a trailing newline
        // written by hand still counts.
        Ok(self.read(&name)?.and_then(|text| ip::parse_ip(text.trim())))
    }

    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<(), StoreError> {
        let name = DiskStore::last_reserved_name(set);
        // A dot-file never parses as an address, so a temp file left by a crash
        // is never taken for a reservation.
        let tmp_name = format!(".{name}.tmp");
        let tmp = self.path(&tmp_name);
        let written =
            fs::File::create(&tmp).and_then(|f| write_all_at(&f, ip.to_string().as_bytes()));
        written.map_err(|e| StoreError::new("write", &tmp_name, e))?;
        fs::rename(&tmp, self.path(&name)).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StoreError::new("rename", &name, e)
        })
    }

    fn owner_link(&self, name: &str) -> Result<Option<String>, StoreError> {
        match fs::read_link(self.path(name)) {
            Ok(target) => Ok(target.to_str().map(str::to_string)),
            // Missing, or not a link (a foreign file): no link.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::InvalidInput =>
            {
                Ok(None)
            }
            Err(e) => Err(StoreError::new("readlink", name, e)),
        }
    }

    fn set_owner_link(&mut self, name: &str, target: &str) -> Result<(), StoreError> {
        let path = self.path(name);
        // `std::os::wasi::fs::symlink_path` is unstable; this is the same call.
        #[allow(deprecated)]
        let link = || fs::soft_link(target, &path);
        match link() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // A stale link (its owner released by another writer) or a
                // hash twin's: replaced.
                let _ = fs::remove_file(&path);
                link()
            }
            other => other,
        }
        .map_err(|e| StoreError::new("symlink", name, e))
    }

    fn owner_links(&self) -> Result<Vec<String>, StoreError> {
        let list_err = |e| StoreError::new("list", "/", e);
        let mut names = Vec::new();
        for dirent in fs::read_dir(&self.root).map_err(list_err)? {
            let dirent = dirent.map_err(list_err)?;
            if let Some(name) = dirent.file_name().to_str() {
                if owner_link_set(name).is_some() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Writes `bytes` at the start of `file`. In the component this is pwrite(2):
/// wasi-libc turns it into one `descriptor.write`, which the host performs on
/// the calling thread, where `write` goes through an output stream that the
/// host hands to a thread pool (a thread start and two wake-ups per write).
#[cfg(target_os = "wasi")]
fn write_all_at(file: &fs::File, bytes: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let mut done = 0;
    while done < bytes.len() {
        let rest = &bytes[done..];
        let offset = libc::off_t::try_from(done).map_err(io::Error::other)?;
        // SAFETY: `rest` is valid for `rest.len()` bytes for the whole call and
        // the descriptor belongs to `file`, which outlives it.
        let n = unsafe { libc::pwrite(file.as_raw_fd(), rest.as_ptr().cast(), rest.len(), offset) };
        match usize::try_from(n) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Natively (the unit tests) a plain write does the same.
#[cfg(not(target_os = "wasi"))]
fn write_all_at(mut file: &fs::File, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    file.write_all(bytes)
}

/// An in-memory store with fault injection, for tests of the allocator and verbs.
#[cfg(test)]
pub mod mem {
    use std::collections::BTreeMap;
    use std::io;
    use std::net::IpAddr;

    use super::{Entry, Store, StoreError, LAST_RESERVED_PREFIX};
    use crate::ip;

    /// Files by name; while a `fail_*` switch is set, that operation fails
    /// with the given kind.
    #[derive(Debug, Default)]
    pub struct MemStore {
        /// Every file of the directory, reservations and others alike.
        pub files: BTreeMap<String, String>,
        /// Owner links: name to target.
        pub links: BTreeMap<String, String>,
        /// Makes the owner-link operations fail.
        pub fail_links: Option<io::ErrorKind>,
        /// Makes `entries` fail.
        pub fail_entries: Option<io::ErrorKind>,
        /// Makes `read` fail.
        pub fail_read: Option<io::ErrorKind>,
        /// Makes `reserve` fail.
        pub fail_reserve: Option<io::ErrorKind>,
        /// Makes `release` fail.
        pub fail_release: Option<io::ErrorKind>,
        /// Makes `set_last_reserved` fail.
        pub fail_set_last: Option<io::ErrorKind>,
        /// Makes `last_reserved` fail.
        pub fail_last_reserved: Option<io::ErrorKind>,
        /// How many `reserve` calls were made.
        pub reserve_calls: usize,
        /// How many `read` calls were made (to check what the verbs read).
        pub reads: std::cell::Cell<usize>,
    }

    fn err(op: &'static str, name: &str, kind: io::ErrorKind) -> StoreError {
        StoreError::new(op, name, io::Error::from(kind))
    }

    impl MemStore {
        /// Adds a file.
        pub fn put(&mut self, name: &str, content: &str) {
            self.files.insert(name.to_string(), content.to_string());
        }
    }

    impl Store for MemStore {
        fn entries(&self) -> Result<Vec<Entry>, StoreError> {
            if let Some(kind) = self.fail_entries {
                return Err(err("list", "/", kind));
            }
            Ok(self
                .files
                .keys()
                .filter_map(|name| {
                    ip::parse_ip(name).map(|ip| Entry {
                        name: name.clone(),
                        ip,
                    })
                })
                .collect())
        }

        fn read(&self, name: &str) -> Result<Option<String>, StoreError> {
            self.reads.set(self.reads.get() + 1);
            if let Some(kind) = self.fail_read {
                return Err(err("read", name, kind));
            }
            Ok(self.files.get(name).cloned())
        }

        fn reserve(&mut self, ip: IpAddr, content: &str) -> Result<bool, StoreError> {
            let name = ip.to_string();
            self.reserve_calls += 1;
            if let Some(kind) = self.fail_reserve {
                return Err(err("open", &name, kind));
            }
            if self.files.contains_key(&name) {
                return Ok(false);
            }
            self.files.insert(name, content.to_string());
            Ok(true)
        }

        fn release(&mut self, name: &str) -> Result<(), StoreError> {
            if let Some(kind) = self.fail_release {
                return Err(err("remove", name, kind));
            }
            self.files.remove(name);
            self.links.remove(name);
            Ok(())
        }

        fn last_reserved(&self, set: usize) -> Result<Option<IpAddr>, StoreError> {
            if let Some(kind) = self.fail_last_reserved {
                return Err(err("read", &format!("{LAST_RESERVED_PREFIX}{set}"), kind));
            }
            Ok(self
                .files
                .get(&format!("{LAST_RESERVED_PREFIX}{set}"))
                .and_then(|t| ip::parse_ip(t.trim())))
        }

        fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<(), StoreError> {
            let name = format!("{LAST_RESERVED_PREFIX}{set}");
            if let Some(kind) = self.fail_set_last {
                return Err(err("rename", &name, kind));
            }
            self.files.insert(name, ip.to_string());
            Ok(())
        }

        fn owner_link(&self, name: &str) -> Result<Option<String>, StoreError> {
            if let Some(kind) = self.fail_links {
                return Err(err("readlink", name, kind));
            }
            Ok(self.links.get(name).cloned())
        }

        fn set_owner_link(&mut self, name: &str, target: &str) -> Result<(), StoreError> {
            if let Some(kind) = self.fail_links {
                return Err(err("symlink", name, kind));
            }
            self.files.remove(name);
            self.links.insert(name.to_string(), target.to_string());
            Ok(())
        }

        fn owner_links(&self) -> Result<Vec<String>, StoreError> {
            if let Some(kind) = self.fail_entries {
                return Err(err("list", "/", kind));
            }
            Ok(self.links.keys().cloned().collect())
        }
    }
}

#[cfg(test)]
mod tests;
