//! `wasm-cni <verb>`: the administrator's tools, one file per verb. Each
//! prints its own output (text, or JSON with `--json`); `main.rs` parses the
//! command line, loads the settings and turns an error into the exit status.

mod compile;
mod gc;
mod inspect;
mod install;
mod plan;
mod plugins;
mod policy;
mod version;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use cni::CniError;
use wasm_cni::settings::Settings;

pub use install::InstallArgs;

#[derive(Parser)]
#[command(
    name = "wasm-cni",
    version,
    about = "CNI plugins as WebAssembly components"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Tool,
    /// Log level (tracing filter), over the settings and WASM_CNI_LOG_LEVEL.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Log file, over the settings and WASM_CNI_LOG_FILE (default: stderr).
    #[arg(long, global = true)]
    pub log_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Tool {
    /// Precompile components into the cache, so no invocation ever compiles.
    Compile {
        /// Component names (default: every installed and bundled component).
        names: Vec<String>,
    },
    /// List the components this host can run, with digest and WIT interface.
    Plugins {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print the versions of wasm-cni, the WIT contract, wasmtime and CNI.
    Version,
    /// Run a plugin on a CNI request (the CNI_* environment and the config on
    /// stdin, as a runtime would send them) and print its validated plan, without
    /// applying anything.
    Plan {
        /// The plugin type to run (default: the config's `type` or `wasm.component`).
        #[arg(long = "as")]
        plugin: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Work with the administrator's policy file.
    Policy {
        #[command(subcommand)]
        command: PolicyTool,
    },
    /// Install wasm-cni on this node: the binary, a `<type>` entry per component,
    /// precompiled components and, with --subnet, a conflist. Idempotent; every
    /// file appears atomically.
    Install(Box<InstallArgs>),
    /// Remove what `install` put in place, restoring replaced plugins.
    Uninstall {
        /// Where the node's file system is mounted (as given to `install`).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// The bin directory given to `install`.
        #[arg(long, default_value = "/opt/cni/bin")]
        bin_dir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List the attachments and IPs held on this node, per network, from the
    /// IPAM state on disk.
    Inspect {
        /// Only this network.
        #[arg(long)]
        network: Option<String>,
        /// IPAM data directories (default: the settings' ipamDataDirs).
        #[arg(long = "data-dir")]
        data_dirs: Vec<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run CNI GC on one network by hand: release everything not in the valid list.
    Gc {
        /// The network's name (as in its conflist).
        #[arg(long)]
        network: String,
        /// A JSON array of {"containerID": ..., "ifname": ...} to keep; `-` = stdin.
        #[arg(long)]
        valid: PathBuf,
        /// Where the network's conflist is.
        #[arg(long, default_value = "/etc/cni/net.d")]
        conf_dir: PathBuf,
        /// CNI_PATH for plugins that delegate (IPAM).
        #[arg(long, default_value = "/opt/cni/bin")]
        cni_path: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum PolicyTool {
    /// Validate a policy file; errors name the line, column and key.
    Check {
        /// The policy file.
        file: PathBuf,
    },
}

/// Run one tool.
pub fn run(
    command: Tool,
    settings: &Settings,
    env: &BTreeMap<String, String>,
) -> Result<(), CniError> {
    match command {
        Tool::Compile { names } => compile::run(settings, &names),
        Tool::Plugins { json } => plugins::run(settings, json),
        Tool::Policy {
            command: PolicyTool::Check { file },
        } => policy::check(&file),
        Tool::Plan { plugin, json } => plan::run(settings, env, plugin.as_deref(), json),
        Tool::Install(args) => install::run(settings, *args),
        Tool::Uninstall {
            root,
            bin_dir,
            json,
        } => install::uninstall(&root, &bin_dir, json),
        Tool::Inspect {
            network,
            data_dirs,
            json,
        } => {
            inspect::run(settings, network.as_deref(), data_dirs, json);
            Ok(())
        }
        Tool::Gc {
            network,
            valid,
            conf_dir,
            cni_path,
            json,
        } => gc::run(settings, &network, &valid, &conf_dir, &cni_path, json),
        Tool::Version => {
            version::run();
            Ok(())
        }
    }
}
