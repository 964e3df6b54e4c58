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

use wasm_cni::cni::{CniError, CniVersion, ErrorCode, SUPPORTED_VERSIONS};
use wasm_cni::invoke::{self, Outcome};
use wasm_cni::plugins::{Origin, PluginStore};
use wasm_cni::policy::Policy;
use wasm_cni::runtime::{ComponentCache, PluginRuntime};
use wasm_cni::settings::Settings;

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
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // stdout belongs to the CNI answer: logs go to a file or stderr, never stdout.
    let file = settings.log_file.as_ref().and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    });
    let _ = match file {
        Some(f) => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

fn cni_main(invoked_as: Option<&str>, env: &BTreeMap<String, String>) -> ExitCode {
    let started = Instant::now();
    if env.get("WASM_CNI_TIMINGS").is_some_and(|v| v == "1") {
        wasm_cni::timing::enable();
    }
    let code = serve_cni(invoked_as, env);
    if wasm_cni::timing::enabled() {
        let total = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        eprintln!("wasm-cni timings {}", wasm_cni::timing::report(total));
    }
    code
}

fn serve_cni(invoked_as: Option<&str>, env: &BTreeMap<String, String>) -> ExitCode {
    let t_settings = wasm_cni::timing::phase("settings");
    let settings = match load_settings(env) {
        Ok(s) => s,
        Err(e) => return print_error(&e, CniVersion::CURRENT.as_str()),
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

fn print_error(e: &CniError, version: &str) -> ExitCode {
    tracing::warn!(code = e.code.as_u32(), "{}", e.msg);
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
    let settings = match load_settings(env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}", e.msg);
            return ExitCode::FAILURE;
        }
    };
    init_logging(&settings);
    let result = match cli.command {
        Tool::Compile { names } => compile(&settings, &names),
        Tool::Plugins { json } => plugins(&settings, json),
        Tool::Policy {
            command: PolicyTool::Check { file },
        } => policy_check(&file),
        Tool::Plan { plugin, json } => plan(&settings, env, plugin.as_deref(), json),
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
                let kinds: Vec<&str> = g.intents.iter().map(|k| k.0.as_str()).collect();
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
