//! The `opencode-remote` command: hosts, doctor and schema. Parsed by clap; run through the addon by
//! `bin/opencode-remote.js`, so the CLI ships with the prebuilt binary and needs no Rust toolchain.
//!
//! Exit codes: 0 success, 1 a check or command failed, 2 usage error (clap's own).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

use crate::config::edit::{self, EditOutcome, Section};
use crate::config::{self, ConfigSources, INLINE_SOURCE};
use crate::doctor::{self, Status};
use crate::error::{display_path, Error};

/// The package name, as it appears in an OpenCode `plugin` entry.
const PACKAGE: &str = "opencode-remote";

#[derive(Parser, Debug)]
#[command(
    name = "opencode-remote",
    version,
    about = "OpenCode over SSH: configure and check remote hosts"
)]
struct Cli {
    /// The project directory whose hosts.json(c) and .opencode/hosts.json(c) also apply.
    #[arg(long, global = true, value_name = "DIR")]
    project: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List, add or remove hosts.
    #[command(subcommand)]
    Hosts(HostsCommand),
    /// Check config, network, host key, auth and the remote opencode, with the fix for each failure.
    Doctor {
        /// Only this host (default: all).
        host: Option<String>,
    },
    /// Install (or find) the remote stub on a host and check it answers through an SSH tunnel.
    Setup {
        host: String,
        /// Upload the stub binaries from DIR instead of this package's stub/dist.
        #[arg(long, value_name = "DIR")]
        stub_dir: Option<PathBuf>,
        /// For a host without our key: read its password from stdin (first line), install a generated
        /// key, and never need the password again. On a terminal the password is asked for instead.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print the JSON Schema of a config file.
    Schema {
        #[arg(value_enum, default_value_t = SchemaKind::Hosts)]
        kind: SchemaKind,
    },
}

#[derive(Subcommand, Debug)]
enum HostsCommand {
    /// Show the configured hosts and where each is defined.
    List,
    /// Add or replace a host (comments and formatting of the file are kept; a backup is made).
    Add(AddArgs),
    /// Remove a host.
    Remove {
        name: String,
        /// The file to edit (default: the file that defines the host).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct AddArgs {
    /// The name the model and you use for this host.
    name: String,
    /// `user@host[:port]`, or an alias from ~/.ssh/config.
    address: String,
    #[arg(long)]
    port: Option<u16>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long, value_name = "PATH")]
    identity_file: Option<PathBuf>,
    #[arg(long, value_name = "HOSTS")]
    proxy_jump: Option<String>,
    /// Agent for the remote run.
    #[arg(long)]
    agent: Option<String>,
    /// Model for the remote run, `provider/model`.
    #[arg(long)]
    model: Option<String>,
    /// Default working directory on the host.
    #[arg(long)]
    directory: Option<String>,
    #[arg(long, value_enum)]
    host_key_policy: Option<PolicyArg>,
    /// Write into hosts.json(c) (default) or into the plugin options of opencode.json(c).
    #[arg(long, value_enum, default_value_t = Destination::Hosts)]
    to: Destination,
    /// The file to edit, instead of the one in the OpenCode config directory.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum SchemaKind {
    Hosts,
    PluginOptions,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Destination {
    Hosts,
    PluginOptions,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum PolicyArg {
    Strict,
    AcceptNew,
}

/// Run the CLI with `args` (without the program name); returns the exit code. `package_stubs` is the
/// package's own stub directory, used unless `setup --stub-dir` names another.
pub async fn run(
    args: Vec<String>,
    package_stubs: Option<PathBuf>,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> i32 {
    let cli = match Cli::try_parse_from(std::iter::once(PACKAGE.to_string()).chain(args)) {
        Ok(cli) => cli,
        Err(error) => {
            let code = error.exit_code();
            let text = error.render().to_string();
            let _ = if code == 0 {
                write!(out, "{text}")
            } else {
                write!(err, "{text}")
            };
            return code;
        }
    };
    // What OpenCode would pass the plugin: the options in the global opencode.json(c).
    let global = ConfigSources::from_env(None, None).config_dir;
    let inline = match edit::read_plugin_options(&existing_or_first(&global, "opencode"), PACKAGE) {
        Ok(inline) => inline,
        Err(error) => {
            let _ = writeln!(
                err,
                "error [{}]: {}",
                error.code(),
                printable(&error.to_string())
            );
            return 1;
        }
    };
    let sources = ConfigSources::from_env(cli.project.clone(), inline);
    let result = match cli.command {
        Command::Hosts(HostsCommand::List) => hosts_list(&sources, cli.json, out),
        Command::Hosts(HostsCommand::Add(args)) => hosts_add(&sources, args, cli.json, out),
        Command::Hosts(HostsCommand::Remove { name, file }) => {
            hosts_remove(&sources, &name, file, cli.json, out)
        }
        Command::Setup {
            host,
            stub_dir,
            password_stdin,
        } => {
            let Some(stub_dir) = stub_dir.or(package_stubs) else {
                let _ = writeln!(
                    err,
                    "error: no stub directory: pass --stub-dir DIR (the package's bin/opencode-remote passes its own)"
                );
                return 2;
            };
            match setup_command(&sources, &host, &stub_dir, cli.json, out).await {
                Err(error)
                    if matches!(error.cause(), Error::AuthFailed { accepted, .. }
                        if accepted.iter().any(|m| m == "password" || m == "keyboard-interactive"))
                        && (password_stdin
                            || std::io::IsTerminal::is_terminal(&std::io::stdin())) =>
                {
                    match install_key(&sources, &host, password_stdin).await {
                        Ok(key) => {
                            let _ = writeln!(
                                err,
                                "installed a new key for {host}: {}",
                                display_path(&key)
                            );
                            setup_command(&sources, &host, &stub_dir, cli.json, out).await
                        }
                        Err(error) => Err(error),
                    }
                }
                other => other,
            }
        }
        Command::Doctor { host } => {
            return doctor_command(&sources, host.as_deref(), cli.json, out).await
        }
        Command::Schema { kind } => {
            let schema = match kind {
                SchemaKind::Hosts => config::hosts_schema(),
                SchemaKind::PluginOptions => config::plugin_options_schema(),
            };
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&schema).expect("schema serializes")
            )
            .map_err(io)
        }
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            let _ = writeln!(
                err,
                "error [{}]: {}",
                error.code(),
                printable(&error.to_string())
            );
            if let Error::Config { fix, .. } = error.cause() {
                let _ = writeln!(err, "fix: {}", printable(fix));
            }
            1
        }
    }
}

fn io(error: std::io::Error) -> Error {
    Error::io("writing output", error)
}

fn hosts_list(
    sources: &ConfigSources,
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), Error> {
    let hosts = config::load_hosts(sources)?;
    let rows: Vec<Value> = hosts
        .iter()
        .map(|entry| {
            json!({
                "name": entry.name,
                "address": entry.address,
                "aliases": hosts.aliases_of(&entry.name),
                "agent": entry.agent,
                "model": entry.model,
                "directory": entry.directory,
                "source": hosts.source(&entry.name).map(display_path),
            })
        })
        .collect();
    let refused: Vec<Value> = hosts
        .refused()
        .map(|r| {
            json!({
                "name": r.name,
                "refused": r.error().to_string(),
                "source": display_path(&r.file),
            })
        })
        .collect();
    if as_json {
        let all = rows.into_iter().chain(refused).collect();
        return writeln!(out, "{}", Value::Array(all)).map_err(io);
    }
    if rows.is_empty() && refused.is_empty() {
        return writeln!(
            out,
            "no hosts configured; add one with: opencode-remote hosts add <name> <user@host>"
        )
        .map_err(io);
    }
    for row in rows {
        let extra: Vec<String> = ["agent", "model", "directory"]
            .iter()
            .filter_map(|k| row[*k].as_str().map(|v| format!("{k}={v}")))
            .collect();
        writeln!(
            out,
            "{:<16} {:<32} {:<24} {}",
            row["name"].as_str().unwrap_or_default(),
            row["address"].as_str().unwrap_or_default(),
            extra.join(" "),
            row["source"].as_str().unwrap_or_default()
        )
        .map_err(io)?;
    }
    for row in refused {
        writeln!(
            out,
            "{:<16} refused: {}",
            printable(row["name"].as_str().unwrap_or_default()),
            printable(row["refused"].as_str().unwrap_or_default())
        )
        .map_err(io)?;
    }
    for warning in hosts.warnings() {
        writeln!(out, "warning: {}", printable(warning)).map_err(io)?;
    }
    Ok(())
}

fn hosts_add(
    sources: &ConfigSources,
    args: AddArgs,
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), Error> {
    let mut entry = Map::new();
    entry.insert("host".into(), json!(args.address));
    let optional = [
        ("port", args.port.map(|p| json!(p))),
        ("user", args.user.map(|u| json!(u))),
        ("identityFile", args.identity_file.map(|p| json!(p))),
        ("proxyJump", args.proxy_jump.map(|p| json!(p))),
        ("agent", args.agent.map(|a| json!(a))),
        ("model", args.model.map(|m| json!(m))),
        ("directory", args.directory.map(|d| json!(d))),
        (
            "hostKeyPolicy",
            args.host_key_policy.map(|p| {
                json!(if matches!(p, PolicyArg::AcceptNew) {
                    "accept-new"
                } else {
                    "strict"
                })
            }),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            entry.insert(key.into(), value);
        }
    }
    // The seed's short form when nothing but the address is given.
    let value = if entry.len() == 1 {
        json!(args.address)
    } else {
        Value::Object(entry)
    };
    let (file, section) = match (args.file, args.to) {
        (Some(file), _) => {
            let section = section_for(&file);
            (file, section)
        }
        (None, Destination::Hosts) => (
            existing_or_first(&sources.config_dir, "hosts"),
            Section::HostsFile,
        ),
        (None, Destination::PluginOptions) => (
            existing_or_first(&sources.config_dir, "opencode"),
            Section::PluginOptions { package: PACKAGE },
        ),
    };
    let outcome = edit::set_host(&file, section, &args.name, &value)?;
    report_edit(&outcome, &format!("added {}", args.name), as_json, out)
}

fn hosts_remove(
    sources: &ConfigSources,
    name: &str,
    file: Option<PathBuf>,
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), Error> {
    let file = match file {
        Some(file) => file,
        None => {
            let hosts = config::load_hosts(sources)?;
            let entry = hosts.get(name)?;
            match hosts.source(&entry.name) {
                Some(source) if source != Path::new(INLINE_SOURCE) => source.to_path_buf(),
                _ => existing_or_first(&sources.config_dir, "opencode"),
            }
        }
    };
    let outcome = edit::remove_host(&file, section_for(&file), name)?;
    if !outcome.changed {
        return Err(Error::UnknownHost {
            name: name.into(),
            known: Vec::new(),
        });
    }
    report_edit(&outcome, &format!("removed {name}"), as_json, out)
}

fn section_for(file: &Path) -> Section<'static> {
    edit::section_for(file, PACKAGE)
}

/// `<stem>.jsonc` if it exists, else `<stem>.json`.
fn existing_or_first(dir: &Path, stem: &str) -> PathBuf {
    let jsonc = dir.join(format!("{stem}.jsonc"));
    if jsonc.exists() {
        jsonc
    } else {
        dir.join(format!("{stem}.json"))
    }
}

fn report_edit(
    outcome: &EditOutcome,
    what: &str,
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), Error> {
    if as_json {
        let value = json!({
            "file": outcome.file,
            "backup": outcome.backup,
            "changed": outcome.changed,
        });
        return writeln!(out, "{value}").map_err(io);
    }
    writeln!(out, "{what} in {}", display_path(&outcome.file)).map_err(io)?;
    if let Some(backup) = &outcome.backup {
        writeln!(out, "backup: {}", display_path(backup)).map_err(io)?;
    }
    Ok(())
}

async fn doctor_command(
    sources: &ConfigSources,
    host: Option<&str>,
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> i32 {
    let reports = doctor::doctor(sources, host, "opencode").await;
    let healthy = reports.iter().all(|r| r.healthy());
    if as_json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&reports).expect("reports serialize")
        );
    } else {
        for report in &reports {
            let _ = writeln!(out, "{}", printable(&report.host));
            for check in &report.checks {
                let mark = match check.status {
                    Status::Ok => "ok  ",
                    Status::Warn => "warn",
                    Status::Fail => "FAIL",
                    Status::Skip => "skip",
                };
                let _ = writeln!(
                    out,
                    "  {mark} {:<9} {}",
                    check.name,
                    printable(&check.detail)
                );
                if let Some(fix) = check.fix.as_ref().filter(|_| check.status != Status::Ok) {
                    let _ = writeln!(out, "       fix: {}", printable(fix));
                }
            }
        }
    }
    if healthy {
        0
    } else {
        1
    }
}

/// Ask for the password once (terminal) or read it from stdin, then install a key with it.
async fn install_key(
    sources: &ConfigSources,
    host: &str,
    from_stdin: bool,
) -> Result<PathBuf, Error> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Error::io("reading the password", e))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        rpassword::prompt_password(format!(
            "password for {host} (used once, to install a key): "
        ))
        .map_err(|e| Error::io("reading the password", e))?
    };
    crate::workspace::install_key_with_password(host, sources, &password).await
}

async fn setup_command(
    sources: &ConfigSources,
    host: &str,
    stub_dir: &Path,
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), Error> {
    // Progress goes to stderr (a live bar on a terminal, one line per step otherwise), so `--json`
    // output on stdout stays parseable.
    let bar = indicatif::ProgressBar::new_spinner();
    let lines = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    if lines {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let started = std::time::Instant::now();
    let progress = |step: crate::workspace::bootstrap::Step| {
        use crate::workspace::bootstrap::Step::*;
        let message = match step {
            Connected => "connected".to_string(),
            Probed { os, arch } => format!("remote is {os} {arch}"),
            Reused => "a healthy stub of this version is already running: reusing it".to_string(),
            Uploading { done, total } => {
                if done == 0 {
                    bar.set_length(total);
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "uploading the stub {bar:30} {bytes}/{total_bytes}",
                        )
                        .expect("valid template"),
                    );
                }
                bar.set_position(done);
                if done != 0 {
                    return;
                }
                format!("uploading the stub ({} KiB)", total / 1024)
            }
            Uploaded => "uploaded and verified (sha256)".to_string(),
            Started => "stub started".to_string(),
            Healthy => "stub healthy through the tunnel".to_string(),
        };
        let message = printable(&message);
        if lines {
            eprintln!("[{:>5.1}s] {message}", started.elapsed().as_secs_f64());
        } else {
            bar.set_style(indicatif::ProgressStyle::default_spinner());
            bar.set_message(message.into_owned());
            bar.tick();
        }
    };
    let report = crate::workspace::setup(host, sources, stub_dir, &progress).await;
    bar.finish_and_clear();
    let report = report?;
    if as_json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        )
        .map_err(io)
    } else {
        let how = if report.reused { "reused" } else { "installed" };
        writeln!(
            out,
            "{host}: stub {} ready ({how})",
            printable(&report.version)
        )
        .map_err(io)
    }
}

/// Text that came from a remote host (its `uname`, versions, error details, log tails) printed to a
/// terminal: control characters, which could move the cursor, rewrite earlier lines or set the window
/// title, are shown escaped (`\u{1b}`). Line breaks and tabs stay.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}
