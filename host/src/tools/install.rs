//! `wasm-cni install` and `uninstall`.

use std::path::{Path, PathBuf};

use cni::{CniError, ErrorCode};
use wasm_cni::install::{InstallOptions, NetworkOptions};
use wasm_cni::settings::Settings;

#[derive(clap::Args)]
pub struct InstallArgs {
    /// Where the node's file system is mounted (an installer container's
    /// hostPath root); every other path is a path on the node.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Where runtimes look for plugins (CNI_PATH).
    #[arg(long, default_value = "/opt/cni/bin")]
    bin_dir: PathBuf,
    /// Where components are installed (the settings' pluginDir).
    #[arg(long)]
    component_dir: Option<PathBuf>,
    /// A directory of extra <type>.wasm components to install.
    #[arg(long)]
    components: Option<PathBuf>,
    /// Where precompiled components go (the settings' cacheDir).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Replace plugin binaries that are not wasm-cni's (kept; uninstall restores them).
    #[arg(long)]
    replace: bool,
    /// Where runtimes read network configs.
    #[arg(long, default_value = "/etc/cni/net.d")]
    conf_dir: PathBuf,
    /// Pod range for host-local (repeatable, IPv4 and/or IPv6); writes a conflist.
    #[arg(long = "subnet")]
    subnets: Vec<ipnet::IpNet>,
    /// The network name in the conflist.
    #[arg(long, default_value = "wasm-cni")]
    network: String,
    /// The bridge device.
    #[arg(long, default_value = "cni0")]
    bridge: String,
    /// Masquerade traffic from the pods that leaves their subnets.
    #[arg(long)]
    ip_masq: bool,
    /// MTU of the bridge and the pods' interfaces.
    #[arg(long)]
    mtu: Option<u32>,
    /// The conflist's cniVersion (1.0.0 suits every runtime since containerd 1.6).
    #[arg(long, default_value = "1.0.0")]
    cni_version: String,
    /// The conflist's file name.
    #[arg(long, default_value = "10-wasm-cni.conflist")]
    conflist_name: String,
    /// A native plugin appended to the chain (repeatable, in order), e.g. portmap.
    #[arg(long = "chain")]
    chain: Vec<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn run(settings: &Settings, args: InstallArgs) -> Result<(), CniError> {
    let binary = std::env::current_exe().map_err(|e| {
        CniError::new(
            ErrorCode::IoFailure,
            format!("cannot find the running binary: {e}"),
        )
    })?;
    let network = (!args.subnets.is_empty()).then_some(NetworkOptions {
        conf_dir: args.conf_dir,
        file_name: args.conflist_name,
        name: args.network,
        cni_version: args.cni_version,
        bridge: args.bridge,
        subnets: args.subnets,
        ip_masq: args.ip_masq,
        mtu: args.mtu,
        chain: args.chain,
    });
    let opts = InstallOptions {
        root: args.root,
        binary,
        bin_dir: args.bin_dir,
        component_dir: args
            .component_dir
            .unwrap_or_else(|| settings.plugin_dir.clone()),
        components: args.components,
        cache_dir: args.cache_dir.unwrap_or_else(|| settings.cache_dir.clone()),
        replace: args.replace,
        network,
    };
    let actions = wasm_cni::install::install(&opts)?;
    print_actions(&actions, args.json);
    Ok(())
}

/// Remove what `install` put in place.
pub fn uninstall(root: &Path, bin_dir: &Path, json: bool) -> Result<(), CniError> {
    let actions = wasm_cni::install::uninstall(root, bin_dir)?;
    print_actions(&actions, json);
    Ok(())
}

fn print_actions(actions: &[wasm_cni::install::Action], json: bool) {
    if json {
        println!("{}", serde_json::to_string(actions).unwrap_or_default());
        return;
    }
    if actions.is_empty() {
        println!("nothing to do");
    }
    for a in actions {
        let note = if a.note.is_empty() {
            String::new()
        } else {
            format!("  ({})", a.note)
        };
        println!("{:<10} {}{note}", a.action, a.path.display());
    }
}
