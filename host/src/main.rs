//! The `wasm-cni` binary. Run under a plugin's type name (a symlink such as
//! `loopback`), or as `wasm-cni` with `CNI_COMMAND` set, it speaks the CNI exec
//! protocol; run as `wasm-cni <subcommand>`, it is a tool for administrators.
//!
//! This file is the only place that writes a CNI answer to stdout and chooses
//! the exit status; the tools (`tools/`, one file per verb) print their own
//! output.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use cni::{CniError, CniVersion, ErrorCode};
use wasm_cni::invoke::{self, Outcome};
use wasm_cni::settings::{LogFormat, Settings};

mod tools;

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
        // A network configuration is kilobytes; 100 MB on stdin once cost
        // 2.1 GB of memory to parse. Read one byte past the bound to know.
        let read = std::io::stdin()
            .take(wasm_cni::MAX_STDIN_BYTES as u64 + 1)
            .read_to_end(&mut stdin);
        let e = match read {
            Err(e) => Some(CniError::new(
                ErrorCode::IoFailure,
                format!("error reading from stdin: {e}"),
            )),
            Ok(n) if n > wasm_cni::MAX_STDIN_BYTES => Some(CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!(
                    "the network configuration on stdin is larger than {} bytes",
                    wasm_cni::MAX_STDIN_BYTES
                ),
            )),
            Ok(_) => None,
        };
        if let Some(e) = e {
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
fn tool_main(env: &BTreeMap<String, String>) -> ExitCode {
    let cli = tools::Cli::parse();
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
    match tools::run(cli.command, &settings, env) {
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
