//! What wasm-cni holds on a node, read from the on-disk IPAM state: host-local's
//! `<dataDir>/<network>/<ip>` reservation files, each holding
//! `<containerID>\r\n<ifname>` (or only the ID, from older reference versions).
//! Read-only: nothing here takes the store's lock or changes a file.

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// One attachment's addresses on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The network name (the store directory's name).
    pub network: String,
    /// The container ID.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name; empty in legacy records.
    pub ifname: String,
    /// Its reserved addresses, sorted.
    pub ips: Vec<IpAddr>,
    /// Seconds since the oldest reservation was made.
    pub age_seconds: u64,
    /// The store directory.
    pub store: PathBuf,
}

/// Every attachment in the stores under `data_dirs`, optionally of one network,
/// sorted by network, container and interface.
pub fn attachments(data_dirs: &[PathBuf], network: Option<&str>) -> Vec<Attachment> {
    let now = SystemTime::now();
    let mut found: BTreeMap<(String, String, String), Attachment> = BTreeMap::new();
    for data_dir in data_dirs {
        let Ok(networks) = fs::read_dir(data_dir) else {
            continue;
        };
        for net in networks.flatten() {
            let name = net.file_name().to_string_lossy().into_owned();
            // A link here is not a store (anyone who can write under the
            // data directory, a component included, could plant one).
            let is_dir = net.file_type().is_ok_and(|t| t.is_dir());
            if network.is_some_and(|n| n != name) || !is_dir {
                continue;
            }
            read_store(&net.path(), &name, now, &mut found);
        }
    }
    found.into_values().collect()
}

/// A reservation holds a container ID and an interface name.
const MAX_RESERVATION_BYTES: u64 = 4096;

fn read_store(
    store: &Path,
    network: &str,
    now: SystemTime,
    found: &mut BTreeMap<(String, String, String), Attachment>,
) {
    let Ok(entries) = fs::read_dir(store) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(ip) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<IpAddr>().ok())
        else {
            continue;
        };
        // Only a small regular file, reached without a link and without
        // blocking: a planted link to a root-only file or to /dev/zero is
        // skipped, not printed or read without end.
        let Ok(bytes) =
            crate::beneath::read_file(&entry.path(), &[store.to_path_buf()], MAX_RESERVATION_BYTES)
        else {
            continue;
        };
        let content = String::from_utf8_lossy(&bytes);
        let (id, ifname) = match content.split_once("\r\n") {
            Some((id, ifname)) => (id.trim(), ifname.trim()),
            None => (content.trim(), ""),
        };
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let key = (network.to_string(), id.to_string(), ifname.to_string());
        let a = found.entry(key).or_insert_with(|| Attachment {
            network: network.to_string(),
            container_id: id.to_string(),
            ifname: ifname.to_string(),
            ips: Vec::new(),
            age_seconds: age,
            store: store.to_path_buf(),
        });
        a.ips.push(ip);
        a.ips.sort();
        a.age_seconds = a.age_seconds.max(age);
    }
}

/// `42s`, `7m`, `3h12m`, `5d4h`.
pub fn human_age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A plain-text table of `rows`.
pub fn table(rows: &[Attachment]) -> String {
    let mut out = String::new();
    let header = ["NETWORK", "CONTAINER", "IFNAME", "IPS", "AGE"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|a| {
            let ips: Vec<String> = a.ips.iter().map(IpAddr::to_string).collect();
            [
                a.network.clone(),
                a.container_id.clone(),
                if a.ifname.is_empty() {
                    "-".into()
                } else {
                    a.ifname.clone()
                },
                ips.join(","),
                human_age(a.age_seconds),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut line = |cols: [&str; 5]| {
        let mut l = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i + 1 == cols.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &cells {
        line(row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_reservations_by_attachment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("pods");
        fs::create_dir(&store).expect("mkdir");
        fs::write(store.join("10.1.0.2"), "c1\r\neth0").expect("write");
        fs::write(store.join("fd00::2"), "c1\r\neth0").expect("write");
        fs::write(store.join("10.1.0.3"), "c2\r\neth0").expect("write");
        fs::write(store.join("10.1.0.4"), "legacy").expect("write");
        fs::write(store.join("last_reserved_ip.0"), "10.1.0.4").expect("write");
        fs::write(store.join("lock"), "").expect("write");
        fs::create_dir(dir.path().join("other")).expect("mkdir");
        fs::write(dir.path().join("other").join("10.9.0.2"), "c9\r\nnet1").expect("write");
        // Planted links are skipped: to a file outside, to a device (read
        // without end), and a network directory that is a link.
        let secret = tempfile::tempdir().expect("tempdir");
        fs::write(secret.path().join("shadow"), "root:secret").expect("write");
        std::os::unix::fs::symlink(secret.path().join("shadow"), store.join("10.1.0.9"))
            .expect("ln");
        std::os::unix::fs::symlink("/dev/zero", store.join("10.1.0.10")).expect("ln");
        std::os::unix::fs::symlink(secret.path(), dir.path().join("linked")).expect("ln");
        fs::write(secret.path().join("10.7.0.7"), "c7\r\neth0").expect("write");

        let all = attachments(&[dir.path().to_path_buf()], None);
        assert_eq!(all.len(), 4, "{all:?}");
        assert!(
            all.iter()
                .all(|a| !a.container_id.contains("secret") && a.network != "linked"),
            "{all:?}"
        );
        let c1 = all.iter().find(|a| a.container_id == "c1").expect("c1");
        assert_eq!(c1.ifname, "eth0");
        assert_eq!(
            c1.ips,
            vec![
                "10.1.0.2".parse::<IpAddr>().expect("ip"),
                "fd00::2".parse().expect("ip")
            ]
        );
        let legacy = all.iter().find(|a| a.container_id == "legacy").expect("l");
        assert_eq!(legacy.ifname, "");
        let pods = attachments(&[dir.path().to_path_buf()], Some("pods"));
        assert_eq!(pods.len(), 3);
        let text = table(&pods);
        assert!(text.starts_with("NETWORK"), "{text}");
        assert!(text.contains("10.1.0.2,fd00::2"), "{text}");
        assert!(text
            .lines()
            .any(|l| l.contains("legacy") && l.contains(" - ")));
        assert_eq!(attachments(&[dir.path().join("missing")], None), vec![]);
    }

    #[test]
    fn ages_read_like_people_write_them() {
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(420), "7m");
        assert_eq!(human_age(3 * 3600 + 12 * 60), "3h12m");
        assert_eq!(human_age(5 * 86_400 + 4 * 3600), "5d4h");
    }
}
