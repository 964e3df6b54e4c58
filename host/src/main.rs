//! The `wasm-cni` binary. Run under a plugin's type name (a symlink such as
//! `loopback`), or as `wasm-cni` with `CNI_COMMAND` set, it speaks the CNI exec
//! protocol; run as `wasm-cni <subcommand>`, it is a tool for administrators.
//!
//! This is the only place that writes to stdout and chooses the exit status.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use cni::{CniError, CniVersion, ErrorCode, SUPPORTED_VERSIONS};
use plan::policy::Policy;
use runtime::{ComponentCache, PluginRuntime};
use wasm_cni::install::{InstallOptions, NetworkOptions};
use wasm_cni::invoke::{self, Outcome};
use wasm_cni::plugins::{Origin, PluginStore};
use wasm_cni::settings::{LogFormat, Settings};

fn main() -> ExitCode {
    let argv0 = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .unwrap_or_default();
    let invoked_as = invoke::invoked_as(&argv0);
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let cni_mode =
        invoked_as.is_some() || (std::env::args_os().len() == 1 && env.contains_key("CNI_COMMAND"));
    if cni_mode {
        cni_main(invoked_as.as_deref(), &env)
    } else {
        tool_main(&env)
    }
}

fn load_settings(env: &BTreeMap<String, String>) -> Result<Settings, CniError> {
    Settings::load(&|k: &str| env.get(k).cloned())
}

fn init_logging(settings: &Settings) {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = tracing_subscriber::EnvFilter::try_new(settings.effective_log_level())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // stdout belongs to the CNI answer: logs go to a file or stderr, never stdout.
    let file = settings.log_file.as_ref().and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| eprintln!("wasm-cni: cannot open log file {}: {e}", path.display()))
            .ok()
    });
    let writer = match file {
        // One write per line on an O_APPEND file: concurrent invocations'
        // lines never interleave.
        Some(f) => BoxMakeWriter::new(std::sync::Mutex::new(f)),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer);
    let _ = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

fn cni_main(invoked_as: Option<&str>, env: &BTreeMap<String, String>) -> ExitCode {
    let started = Instant::now();
    if env.get("WASM_CNI_TIMINGS").is_some_and(|v| v == "1") {
        timing::enable();
    }
    let code = serve_cni(invoked_as, env);
    if timing::enabled() {
        let total = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        eprintln!("wasm-cni timings {}", timing::report(total));
    }
    code
}

fn serve_cni(invoked_as: Option<&str>, env: &BTreeMap<String, String>) -> ExitCode {
    let t_settings = timing::phase("settings");
    let settings = match load_settings(env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wasm-cni: {}", e.msg);
            return print_error(&e, CniVersion::CURRENT.as_str());
        }
    };
    init_logging(&settings);
    drop(t_settings);
    // VERSION ignores stdin (the reference replaces it with nothing), and without
    // a command there is nothing to read: never block on a terminal.
    let command = env.get("CNI_COMMAND").map(String::as_str).unwrap_or("");
    let mut stdin = Vec::new();
    if !command.is_empty() && command != "VERSION" {
        if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
            let e = CniError::new(
                ErrorCode::IoFailure,
                format!("error reading from stdin: {e}"),
            );
            return print_error(&e, CniVersion::CURRENT.as_str());
        }
    }
    let outcome = std::panic::catch_unwind(|| invoke::run(invoked_as, env, &stdin, &settings))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Outcome::Error(
                CniError::internal(format!("wasm-cni internal error: {what}")),
                CniVersion::CURRENT.as_str().to_string(),
            )
        });
    match outcome {
        Outcome::About(text) => {
            eprint!("{text}");
            ExitCode::SUCCESS
        }
        Outcome::Stdout(text) => write_stdout(&text),
        Outcome::Silent => ExitCode::SUCCESS,
        Outcome::Error(e, version) => print_error(&e, &version),
    }
}

fn write_stdout(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// The error JSON on stdout (`invoke` has logged the invocation already).
fn print_error(e: &CniError, version: &str) -> ExitCode {
    let _ = write_stdout(&e.to_json(version));
    ExitCode::FAILURE
}

/// Administrator commands.
#[derive(Parser)]
#[command(
    name = "wasm-cni",
    version,
    about = "CNI plugins as WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Tool,
    /// Log level (tracing filter), over the settings and WASM_CNI_LOG_LEVEL.
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Log file, over the settings and WASM_CNI_LOG_FILE (default: stderr).
    #[arg(long, global = true)]
    log_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Tool {
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

#[derive(clap::Args)]
struct InstallArgs {
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

#[derive(Subcommand)]
enum PolicyTool {
    /// Validate a policy file; errors name the line, column and key.
    Check {
        /// The policy file.
        file: PathBuf,
    },
}

const WIT_PACKAGE: &str = "wasm-cni:plugin@0.1.0";

fn tool_main(env: &BTreeMap<String, String>) -> ExitCode {
    let cli = Cli::parse();
    let mut settings = match load_settings(env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}", e.msg);
            return ExitCode::FAILURE;
        }
    };
    if cli.log_level.is_some() {
        settings.log_level = cli.log_level;
    }
    if cli.log_file.is_some() {
        settings.log_file = cli.log_file;
    }
    init_logging(&settings);
    let result = match cli.command {
        Tool::Compile { names } => compile(&settings, &names),
        Tool::Plugins { json } => plugins(&settings, json),
        Tool::Policy {
            command: PolicyTool::Check { file },
        } => policy_check(&file),
        Tool::Plan { plugin, json } => plan(&settings, env, plugin.as_deref(), json),
        Tool::Install(args) => install(&settings, *args),
        Tool::Uninstall {
            root,
            bin_dir,
            json,
        } => wasm_cni::install::uninstall(&root, &bin_dir)
            .map(|actions| print_actions(&actions, json)),
        Tool::Inspect {
            network,
            data_dirs,
            json,
        } => {
            inspect(&settings, network.as_deref(), data_dirs, json);
            Ok(())
        }
        Tool::Gc {
            network,
            valid,
            conf_dir,
            cni_path,
            json,
        } => gc(&settings, &network, &valid, &conf_dir, &cni_path, json),
        Tool::Version => {
            println!("wasm-cni {}", env!("CARGO_PKG_VERSION"));
            println!("WIT contract: {WIT_PACKAGE}");
            println!("wasmtime: 48 (LTS)");
            println!("CNI versions: {}", SUPPORTED_VERSIONS.join(", "));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.msg);
            if !e.details.is_empty() {
                eprintln!("{}", e.details);
            }
            ExitCode::FAILURE
        }
    }
}

fn plan(
    settings: &Settings,
    env: &BTreeMap<String, String>,
    plugin: Option<&str>,
    json: bool,
) -> Result<(), CniError> {
    let mut stdin = Vec::new();
    std::io::stdin().read_to_end(&mut stdin).map_err(|e| {
        CniError::new(
            ErrorCode::IoFailure,
            format!("error reading from stdin: {e}"),
        )
    })?;
    let report = invoke::plan_only(plugin, env, &stdin, settings)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "plugin {} (sha256:{}), grant: {}",
        report.plugin, report.sha256, report.grant
    );
    for (i, intent) in report.intents.iter().enumerate() {
        println!("  #{i:<3} {:<22} {intent}", intent.kind());
    }
    match report.code {
        None => println!(
            "verdict: accepted ({} intents); nothing was applied",
            report.intents.len()
        ),
        Some(code) => println!("verdict: rejected (code {code}): {}", report.verdict),
    }
    Ok(())
}

fn install(settings: &Settings, args: InstallArgs) -> Result<(), CniError> {
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

fn inspect(settings: &Settings, network: Option<&str>, data_dirs: Vec<PathBuf>, json: bool) {
    let dirs = if data_dirs.is_empty() {
        settings.ipam_data_dirs.clone()
    } else {
        data_dirs
    };
    let rows = wasm_cni::inspect::attachments(&dirs, network);
    if json {
        println!("{}", serde_json::to_string(&rows).unwrap_or_default());
    } else {
        print!("{}", wasm_cni::inspect::table(&rows));
    }
}

fn gc(
    settings: &Settings,
    network: &str,
    valid: &std::path::Path,
    conf_dir: &std::path::Path,
    cni_path: &str,
    json: bool,
) -> Result<(), CniError> {
    use wasm_cni::{conflist, inspect};
    let text = if valid == std::path::Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(valid)
    }
    .map_err(|e| {
        CniError::new(
            ErrorCode::IoFailure,
            format!("cannot read {}: {e}", valid.display()),
        )
    })?;
    let keep = conflist::parse_valid_attachments(&text, &valid.display().to_string())?;
    let (path, list) = conflist::find_network(conf_dir, network)?;
    let before = inspect::attachments(&settings.ipam_data_dirs, Some(network));
    let outcomes = conflist::gc(settings, &list, &keep, cni_path);
    let after = inspect::attachments(&settings.ipam_data_dirs, Some(network));
    let released: Vec<_> = before.into_iter().filter(|a| !after.contains(a)).collect();
    let failed = outcomes.iter().any(|o| o.outcome == "error");
    if json {
        println!(
            "{}",
            serde_json::json!({
                "network": network,
                "conflist": path,
                "plugins": outcomes,
                "released": released,
                "kept": after,
            })
        );
    } else {
        println!("network {network} ({})", path.display());
        for o in &outcomes {
            println!("  {:<16} {:<8} {}", o.plugin_type, o.outcome, o.detail);
        }
        println!("released {} attachment(s):", released.len());
        print!("{}", inspect::table(&released));
        println!("kept {} attachment(s)", after.len());
    }
    if failed {
        return Err(CniError::new(
            ErrorCode::Internal,
            "GC failed for at least one plugin (see above)",
        ));
    }
    Ok(())
}

fn policy_check(file: &std::path::Path) -> Result<(), CniError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CniError::new(
            ErrorCode::IoFailure,
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    match Policy::parse(&text) {
        Ok(policy) => {
            println!("{}: ok, {} grant(s)", file.display(), policy.plugins.len());
            for g in &policy.plugins {
                let who = match (&g.matcher.name, &g.matcher.digest) {
                    (Some(n), Some(d)) => format!("{n} (sha256:{d})"),
                    (Some(n), None) => n.clone(),
                    (None, Some(d)) => format!("sha256:{d}"),
                    (None, None) => "(matches nothing: give a name or a digest)".to_string(),
                };
                let kinds: Vec<&str> = g.intents.iter().map(|k| k.name()).collect();
                println!(
                    "  {who}: {}",
                    if kinds.is_empty() {
                        "no intents".to_string()
                    } else {
                        kinds.join(", ")
                    }
                );
            }
            Ok(())
        }
        Err(e) => Err(CniError::new(
            ErrorCode::InvalidNetworkConfig,
            format!("{}: {e}", file.display()),
        )),
    }
}

fn compile(settings: &Settings, names: &[String]) -> Result<(), CniError> {
    let store = PluginStore::new(&settings.plugin_dir);
    let runtime = PluginRuntime::new()?;
    let cache = ComponentCache::new(&settings.cache_dir);
    let sources = if names.is_empty() {
        store.list()
    } else {
        names
            .iter()
            .map(|n| store.find(n))
            .collect::<Result<Vec<_>, _>>()?
    };
    for source in sources {
        let started = Instant::now();
        let path = cache.precompile(runtime.engine(), &source.bytes, &source.sha256)?;
        println!(
            "{:<16} sha256:{}  {} ms  {}",
            source.name,
            source.sha256,
            started.elapsed().as_millis(),
            path.display()
        );
    }
    Ok(())
}

fn plugins(settings: &Settings, json: bool) -> Result<(), CniError> {
    let store = PluginStore::new(&settings.plugin_dir);
    let runtime = PluginRuntime::new()?;
    let cache = ComponentCache::new(&settings.cache_dir);
    let mut rows = Vec::new();
    for source in store.list() {
        let interfaces = cache
            .load(runtime.engine(), &source.bytes, &source.sha256)
            .map(|(c, _)| runtime.exported_interfaces(&c))
            .unwrap_or_default();
        let origin = match &source.origin {
            Origin::Bundled => "bundled".to_string(),
            Origin::File(p) => p.display().to_string(),
        };
        rows.push(serde_json::json!({
            "name": source.name,
            "sha256": source.sha256,
            "origin": origin,
            "exports": interfaces,
        }));
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        println!("{:<16} {:<24} {:<71} ORIGIN", "NAME", "EXPORTS", "DIGEST");
        for r in rows {
            let exports = r["exports"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            println!(
                "{:<16} {:<24} sha256:{:<64} {}",
                r["name"].as_str().unwrap_or(""),
                if exports.is_empty() {
                    "-".to_string()
                } else {
                    exports
                },
                r["sha256"].as_str().unwrap_or(""),
                r["origin"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}
