//! Network configuration lists on disk, and GC of one network by hand (what a
//! runtime's libcni does with `GCNetworkList`, for an operator's shell).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use crate::invoke::{self, Outcome};
use crate::plugins::PluginStore;
use crate::settings::Settings;
use cni::request::KEY_VALID_ATTACHMENTS;
use cni::{Attachment, CniError, ErrorCode};

/// The network named `name` in `conf_dir`: its file and its list form (a
/// single-plugin `.conf` becomes a list of one, as libcni does). The first file
/// in lexical order wins, as runtimes pick them.
pub fn find_network(conf_dir: &Path, name: &str) -> Result<(PathBuf, Value), CniError> {
    let entries = fs::read_dir(conf_dir).map_err(|e| {
        CniError::new(
            ErrorCode::IoFailure,
            format!("cannot read {}: {e}", conf_dir.display()),
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            )
        })
        .collect();
    paths.sort();
    let mut seen = Vec::new();
    for path in paths {
        let Some(value) = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            continue;
        };
        let Some(list) = as_list(value) else {
            continue;
        };
        let found = list["name"].as_str().unwrap_or("").to_string();
        if found == name {
            return Ok((path, list));
        }
        seen.push(found);
    }
    Err(CniError::new(
        ErrorCode::InvalidNetworkConfig,
        format!("no network named {name:?} in {}", conf_dir.display()),
    )
    .with_details(if seen.is_empty() {
        "no readable network configs there".to_string()
    } else {
        format!("networks there: {}", seen.join(", "))
    }))
}

fn as_list(value: Value) -> Option<Value> {
    if value.get("plugins").is_some_and(Value::is_array) {
        return Some(value);
    }
    let mut plugin = value;
    let obj = plugin.as_object_mut()?;
    obj.get("type")?;
    let name = obj.remove("name")?;
    let version = obj.remove("cniVersion").unwrap_or(json!(""));
    Some(json!({"cniVersion": version, "name": name, "plugins": [plugin]}))
}

/// Parse a valid-attachments file: a JSON array of `{"containerID", "ifname"}`.
pub fn parse_valid_attachments(text: &str, origin: &str) -> Result<Vec<Attachment>, CniError> {
    serde_json::from_str(text).map_err(|e| {
        CniError::new(
            ErrorCode::InvalidNetworkConfig,
            format!(
                "{origin}: expected a JSON array of {{\"containerID\": ..., \"ifname\": ...}}: {e}"
            ),
        )
    })
}

/// How one plugin of the list took the GC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginGc {
    /// The plugin type.
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// `ok`, `error` or `skipped`.
    pub outcome: &'static str,
    /// The error, or why it was skipped.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// GC every wasm-cni plugin of the list `list`, keeping `valid`. Plugins that are
/// not wasm-cni components are skipped (named in the outcome): a native plugin's
/// GC is its runtime's business. The list's cniVersion is raised to 1.1.0 for our
/// plugins, which speak it whatever the file says, so that lists written for
/// older runtimes can be cleaned too.
pub fn gc(
    settings: &Settings,
    list: &Value,
    valid: &[Attachment],
    cni_path: &str,
) -> Vec<PluginGc> {
    let store = PluginStore::new(&settings.plugin_dir);
    let name = list["name"].clone();
    let plugins = list["plugins"].as_array().cloned().unwrap_or_default();
    let mut env = BTreeMap::new();
    env.insert("CNI_COMMAND".to_string(), "GC".to_string());
    env.insert("CNI_PATH".to_string(), cni_path.to_string());
    plugins
        .into_iter()
        .map(|mut plugin| {
            let plugin_type = plugin["type"].as_str().unwrap_or("").to_string();
            if store.find(&plugin_type).is_err() {
                return PluginGc {
                    plugin_type,
                    outcome: "skipped",
                    detail: "not a wasm-cni component".into(),
                };
            }
            plugin["name"] = name.clone();
            plugin["cniVersion"] = json!("1.1.0");
            plugin[KEY_VALID_ATTACHMENTS] = json!(valid);
            let stdin = plugin.to_string();
            match invoke::run(Some(&plugin_type), &env, stdin.as_bytes(), settings) {
                Outcome::Error(e, _) => PluginGc {
                    plugin_type,
                    outcome: "error",
                    detail: format!("code {}: {}", e.code.as_u32(), e.msg),
                },
                _ => PluginGc {
                    plugin_type,
                    outcome: "ok",
                    detail: String::new(),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lists_and_single_configs_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("00-broken.conflist"), "{not json").expect("write");
        fs::write(
            dir.path().join("10-a.conflist"),
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}"#,
        )
        .expect("write");
        fs::write(
            dir.path().join("20-b.conf"),
            r#"{"cniVersion":"0.4.0","name":"b","type":"bridge","bridge":"br9"}"#,
        )
        .expect("write");
        let (path, list) = find_network(dir.path(), "a").expect("a");
        assert!(path.ends_with("10-a.conflist"));
        assert_eq!(list["plugins"][0]["type"], "bridge");
        let (_, b) = find_network(dir.path(), "b").expect("b");
        assert_eq!(b["cniVersion"], "0.4.0");
        assert_eq!(b["plugins"][0]["bridge"], "br9");
        assert!(b["plugins"][0].get("name").is_none());
        let e = find_network(dir.path(), "c").expect_err("none");
        assert!(e.msg.contains("\"c\""), "{}", e.msg);
        assert!(e.details.contains("a, b"), "{}", e.details);
    }

    #[test]
    fn valid_attachment_files() {
        let v =
            parse_valid_attachments(r#"[{"containerID":"c1","ifname":"eth0"}]"#, "f").expect("ok");
        assert_eq!(v[0].container_id, "c1");
        let e = parse_valid_attachments(r#"{"containerID":"c1"}"#, "valid.json").expect_err("x");
        assert!(e.msg.starts_with("valid.json"), "{}", e.msg);
    }
}
