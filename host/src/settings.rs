//! Host settings: where components, the cache and the log live, and the default
//! limits. Read from an administrator-owned JSON file, never from the network
//! configuration (which tenants may write).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use cni::{CniError, ErrorCode};
use runtime::Limits;

/// The settings file read when `WASM_CNI_CONFIG` is not set.
pub const DEFAULT_SETTINGS_PATH: &str = "/etc/wasm-cni/config.json";

/// Host-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Installed components (`<type>.wasm`), searched before the bundled ones.
    pub plugin_dir: PathBuf,
    /// Precompiled components.
    pub cache_dir: PathBuf,
    /// Log file; stderr when unset.
    pub log_file: Option<PathBuf>,
    /// `error`, `warn`, `info`, `debug` or `trace` (tracing filter syntax);
    /// unset = `info` with a log file (one line per invocation), else `warn`.
    pub log_level: Option<String>,
    /// `text` (key=value fields) or `json` (one object per line).
    pub log_format: LogFormat,
    /// Limits for every guest invocation.
    pub limits: Limits,
    /// Directories under which an in-process IPAM plugin's `dataDir` may lie.
    pub ipam_data_dirs: Vec<PathBuf>,
    /// The resolv.conf files an IPAM plugin's `resolvConf` may name: each
    /// entry a file (taken as it is, links and all) or a directory (any
    /// regular file below it, reached without links).
    pub resolv_conf_paths: Vec<PathBuf>,
    /// The administrator's policy (grants per plugin); built-in grants for the
    /// bundled plugins when the file does not exist.
    pub policy_file: PathBuf,
    /// Where one JSON line per applied or rejected plan is appended; none = off.
    pub audit_log: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            plugin_dir: PathBuf::from("/opt/cni/wasm"),
            cache_dir: PathBuf::from("/var/cache/wasm-cni"),
            log_file: None,
            log_level: None,
            log_format: LogFormat::Text,
            limits: Limits::default(),
            ipam_data_dirs: vec![
                PathBuf::from("/var/lib/cni/networks"),
                PathBuf::from("/run/cni/networks"),
                PathBuf::from("/var/run/cni/networks"),
            ],
            resolv_conf_paths: vec![
                PathBuf::from("/etc/resolv.conf"),
                PathBuf::from("/run/systemd/resolve"),
            ],
            policy_file: PathBuf::from(plan::policy::DEFAULT_POLICY_PATH),
            audit_log: None,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `time level message key=value...`
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Settings {
    /// The tracing filter in effect.
    pub fn effective_log_level(&self) -> &str {
        match (&self.log_level, &self.log_file) {
            (Some(level), _) => level,
            (None, Some(_)) => "info",
            (None, None) => "warn",
        }
    }

    /// Load the settings: the file named by `WASM_CNI_CONFIG` (which must exist),
    /// else [`DEFAULT_SETTINGS_PATH`] if it exists, else the defaults; then the
    /// `WASM_CNI_PLUGIN_DIR`, `WASM_CNI_CACHE_DIR`, `WASM_CNI_LOG_FILE`,
    /// `WASM_CNI_LOG_LEVEL`, `WASM_CNI_LOG_FORMAT` and `WASM_CNI_POLICY` overrides.
    pub fn load(env: &impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let mut settings = match env("WASM_CNI_CONFIG") {
            Some(path) => Self::from_file(Path::new(&path))?,
            None if Path::new(DEFAULT_SETTINGS_PATH).exists() => {
                Self::from_file(Path::new(DEFAULT_SETTINGS_PATH))?
            }
            None => Settings::default(),
        };
        if let Some(v) = env("WASM_CNI_PLUGIN_DIR") {
            settings.plugin_dir = v.into();
        }
        if let Some(v) = env("WASM_CNI_CACHE_DIR") {
            settings.cache_dir = v.into();
        }
        if let Some(v) = env("WASM_CNI_LOG_FILE") {
            settings.log_file = Some(v.into());
        }
        if let Some(v) = env("WASM_CNI_LOG_LEVEL") {
            settings.log_level = Some(v);
        }
        if let Some(v) = env("WASM_CNI_LOG_FORMAT") {
            settings.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(CniError::new(
                        ErrorCode::InvalidEnvironment,
                        format!("WASM_CNI_LOG_FORMAT={v:?}: use \"text\" or \"json\""),
                    ))
                }
            };
        }
        if let Some(v) = env("WASM_CNI_POLICY") {
            settings.policy_file = v.into();
        }
        Ok(settings)
    }

    /// Parse one settings file.
    pub fn from_file(path: &Path) -> Result<Self, CniError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CniError::new(
                ErrorCode::IoFailure,
                format!("cannot read settings {}: {e}", path.display()),
            )
        })?;
        serde_json::from_str(&text).map_err(|e| {
            CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!("invalid settings {}: {e}", path.display()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.json");
        std::fs::write(
            &file,
            r#"{"pluginDir":"/p","limits":{"deadlineMs":250,"maxIntents":7}}"#,
        )
        .expect("write");
        let file_s = file.display().to_string();
        let env = |k: &str| match k {
            "WASM_CNI_CONFIG" => Some(file_s.clone()),
            "WASM_CNI_CACHE_DIR" => Some("/c".to_string()),
            _ => None,
        };
        let s = Settings::load(&env).expect("loads");
        assert_eq!(s.plugin_dir, PathBuf::from("/p"));
        assert_eq!(s.cache_dir, PathBuf::from("/c"));
        assert_eq!(s.limits.deadline.as_millis(), 250);
        assert_eq!(s.limits.max_intents, 7);
        assert_eq!(s.limits.memory_bytes, Limits::default().memory_bytes);
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.json");
        std::fs::write(&file, r#"{"pluginDirr":"/p"}"#).expect("write");
        let e = Settings::from_file(&file).expect_err("typo");
        assert!(e.msg.contains("pluginDirr"), "{}", e.msg);
    }
}
