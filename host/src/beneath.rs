//! Opening paths a tenant names (`ipam.dataDir`, `ipam.resolvConf`) only
//! beneath directories the administrator opened, as root, without being led
//! elsewhere: the administrator's part of a path is taken as it is (its links
//! are the administrator's), the tenant's part is walked without following any
//! link, and nothing is opened that could block (a FIFO, a terminal, a device).
//!
//! Text checks alone are not enough: a link planted under an allowed root (by
//! a component through its state directory, or by anyone who can write there)
//! would redirect a path that reads as allowed.

use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};

/// Why a path was not opened.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Not absolute, or with `.`/`..` parts.
    #[error("{0:?} is not a clean absolute path")]
    NotClean(PathBuf),
    /// Under none of the allowed directories.
    #[error("{path:?} is not under an allowed directory ({allowed:?})")]
    NotAllowed {
        path: PathBuf,
        allowed: Vec<PathBuf>,
    },
    /// More parts below the allowed directory than a state directory needs.
    #[error("{path:?} is {depth} directories below {root:?}, more than {most}")]
    TooDeep {
        path: PathBuf,
        root: PathBuf,
        depth: usize,
        most: usize,
    },
    /// A link in the tenant's part of the path.
    #[error("{0:?} leads through a symbolic link")]
    Link(PathBuf),
    /// Not a regular file (or, for a state directory, not a directory).
    #[error("{path:?} is a {found}, not a {wanted}")]
    WrongType {
        path: PathBuf,
        found: &'static str,
        wanted: &'static str,
    },
    /// Bigger than the caller reads.
    #[error("{path:?} is larger than {most} bytes")]
    TooLarge { path: PathBuf, most: u64 },
    /// The system said no.
    #[error("{path:?}: {errno}")]
    Io { path: PathBuf, errno: Errno },
}

/// `path` split at the allowed root it lies under: (root, the rest).
/// `roots` entries may name a directory or, exactly, a file.
pub fn split_under<'p>(path: &'p Path, roots: &[PathBuf]) -> Result<(PathBuf, &'p Path), Refused> {
    let clean = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !clean {
        return Err(Refused::NotClean(path.to_path_buf()));
    }
    // The longest matching root, so a more specific entry wins.
    roots
        .iter()
        .filter(|r| path.starts_with(r))
        .max_by_key(|r| r.components().count())
        .map(|r| (r.clone(), path.strip_prefix(r).unwrap_or(Path::new(""))))
        .ok_or_else(|| Refused::NotAllowed {
            path: path.to_path_buf(),
            allowed: roots.to_vec(),
        })
}

fn kind(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "regular file",
        SFlag::S_IFDIR => "directory",
        SFlag::S_IFLNK => "symbolic link",
        SFlag::S_IFIFO => "FIFO",
        SFlag::S_IFCHR => "character device",
        SFlag::S_IFBLK => "block device",
        SFlag::S_IFSOCK => "socket",
        _ => "special file",
    }
}

fn io(path: &Path) -> impl Fn(Errno) -> Refused + '_ {
    move |errno| match errno {
        Errno::ELOOP => Refused::Link(path.to_path_buf()),
        errno => Refused::Io {
            path: path.to_path_buf(),
            errno,
        },
    }
}

/// Read a regular file under one of `roots`, at most `most` bytes. The root is
/// opened as the administrator wrote it; below it no link is followed. Opened
/// non-blocking and checked to be a regular file before the first read, so a
/// FIFO or a device is refused instead of waited on.
pub fn read_file(path: &Path, roots: &[PathBuf], most: u64) -> Result<Vec<u8>, Refused> {
    let (root, rest) = split_under(path, roots)?;
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let fd = if rest.as_os_str().is_empty() {
        // The administrator named this very file.
        openat(AT_FDCWD, &root, flags, Mode::empty()).map_err(io(path))?
    } else {
        let dir = openat(
            AT_FDCWD,
            &root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io(path))?;
        let how = OpenHow::new()
            .flags(flags)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        openat2(dir.as_fd(), rest, how).map_err(io(path))?
    };
    let stat = fstat(&fd).map_err(io(path))?;
    if kind(stat.st_mode) != "regular file" {
        return Err(Refused::WrongType {
            path: path.to_path_buf(),
            found: kind(stat.st_mode),
            wanted: "regular file",
        });
    }
    if stat.st_size as u64 > most {
        return Err(Refused::TooLarge {
            path: path.to_path_buf(),
            most,
        });
    }
    let mut bytes = Vec::new();
    File::from(fd)
        .take(most)
        .read_to_end(&mut bytes)
        .map_err(|e| Refused::Io {
            path: path.to_path_buf(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
    Ok(bytes)
}

/// A directory opened beneath an allowed root, and the directories this call
/// created for it (outermost first), so a failed invocation can take them back.
pub struct OpenedDir {
    pub fd: OwnedFd,
    pub created: Vec<PathBuf>,
}

impl OpenedDir {
    /// A path that names exactly this directory for APIs that take paths
    /// (`/proc/self/fd/N` resolves to the open directory itself, not to
    /// whatever its old path leads to now).
    pub fn proc_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd as _;
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Remove the directories this call created, innermost first, while they
    /// are empty.
    pub fn remove_created(&self) {
        for dir in self.created.iter().rev() {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

/// Open (and, with `create`, make with `mode`) the directory `path` under one
/// of `roots`, at most `most_depth` parts below it, without following a link
/// anywhere below the root.
pub fn open_dir(
    path: &Path,
    roots: &[PathBuf],
    most_depth: usize,
    create: bool,
    mode: Mode,
) -> Result<OpenedDir, Refused> {
    let (root, rest) = split_under(path, roots)?;
    let depth = rest.components().count();
    if depth > most_depth {
        return Err(Refused::TooDeep {
            path: path.to_path_buf(),
            root,
            depth,
            most: most_depth,
        });
    }
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut created = Vec::new();
    let mut at = root.clone();
    if create && !at.exists() {
        // The administrator's root itself, made as the reference makes dataDir.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode.bits())
            .create(&root)
            .map_err(|e| Refused::Io {
                path: root.clone(),
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            })?;
    }
    let mut fd = openat(AT_FDCWD, &root, dir_flags, Mode::empty()).map_err(io(&root))?;
    for part in rest.components() {
        at.push(part);
        if create {
            match mkdirat(fd.as_fd(), part.as_os_str(), mode) {
                Ok(()) => created.push(at.clone()),
                Err(Errno::EEXIST) => {}
                Err(errno) => {
                    let opened = OpenedDir { fd, created };
                    opened.remove_created();
                    return Err(io(&at)(errno));
                }
            }
        }
        match openat(
            fd.as_fd(),
            part.as_os_str(),
            dir_flags | OFlag::O_NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(next) => fd = next,
            Err(errno) => {
                let opened = OpenedDir { fd, created };
                opened.remove_created();
                // O_DIRECTORY|O_NOFOLLOW on a link fails with ENOTDIR or ELOOP.
                let link = std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink());
                return Err(if link {
                    Refused::Link(at)
                } else if errno == Errno::ENOTDIR {
                    Refused::WrongType {
                        path: at,
                        found: "file that is not a directory",
                        wanted: "directory",
                    }
                } else {
                    io(&at)(errno)
                });
            }
        }
    }
    Ok(OpenedDir { fd, created })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> Vec<PathBuf> {
        vec![dir.join("allowed")]
    }

    #[test]
    fn files_are_read_only_beneath_a_root_without_links() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let allowed = tmp.path().join("allowed");
        std::fs::create_dir(&allowed).expect("mkdir");
        std::fs::write(allowed.join("resolv.conf"), "nameserver 10.0.0.1\n").expect("write");
        std::fs::write(tmp.path().join("secret"), "root only").expect("write");
        std::os::unix::fs::symlink(tmp.path().join("secret"), allowed.join("link")).expect("ln");
        let r = roots(tmp.path());
        assert_eq!(
            read_file(&allowed.join("resolv.conf"), &r, 100).expect("reads"),
            b"nameserver 10.0.0.1\n"
        );
        assert!(matches!(
            read_file(&allowed.join("link"), &r, 100),
            Err(Refused::Link(_))
        ));
        assert!(matches!(
            read_file(&tmp.path().join("secret"), &r, 100),
            Err(Refused::NotAllowed { .. })
        ));
        assert!(matches!(
            read_file(&allowed.join("../secret"), &r, 100),
            Err(Refused::NotClean(_))
        ));
        assert!(matches!(
            read_file(&allowed.join("resolv.conf"), &r, 4),
            Err(Refused::TooLarge { .. })
        ));
        // A FIFO is refused, not waited on.
        nix::unistd::mkfifo(&allowed.join("fifo"), Mode::from_bits_truncate(0o600)).expect("fifo");
        let e = read_file(&allowed.join("fifo"), &r, 100).expect_err("fifo");
        assert!(e.to_string().contains("is a FIFO"), "{e}");
        // A root naming a file exactly is read as the administrator set it.
        let exact = vec![tmp.path().join("secret")];
        assert!(read_file(&tmp.path().join("secret"), &exact, 100).is_ok());
    }

    #[test]
    fn directories_are_made_beneath_a_root_without_links() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let allowed = tmp.path().join("allowed");
        let r = roots(tmp.path());
        let mode = Mode::from_bits_truncate(0o755);
        let opened = open_dir(&allowed.join("a/b"), &r, 4, true, mode).expect("made");
        assert_eq!(opened.created, vec![allowed.join("a"), allowed.join("a/b")]);
        std::os::unix::fs::symlink(tmp.path(), allowed.join("a/evil")).expect("ln");
        let e = open_dir(&allowed.join("a/evil/x"), &r, 4, true, mode).err();
        assert!(matches!(e, Some(Refused::Link(_))), "{e:?}");
        assert!(!tmp.path().join("x").exists(), "followed the link");
        let e = open_dir(&allowed.join("1/2/3/4/5"), &r, 4, true, mode).err();
        assert!(
            matches!(e, Some(Refused::TooDeep { depth: 5, .. })),
            "{e:?}"
        );
        assert!(!allowed.join("1").exists(), "a refusal left directories");
        opened.remove_created();
        assert!(!allowed.join("a/b").exists());
    }
}
