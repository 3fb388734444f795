//! The `opencode-remote` command: hosts, providers, setup, doctor, schema, and `init`/`migrate` for
//! OpenCode's own config. Parsed by clap; run through the addon by `bin/opencode-remote.js`, so the CLI
//! ships with the prebuilt binary and needs no Rust toolchain.
//!
//! The commands of opencode-remote-ssh's CLI work here with their own arguments (`add <provider> <host>
//! <user> [port] [identity-file]`, `remove <provider> <host>`, `list`, `init`, `setup <host> <user>
//! [port] [identity-file]`); see [`forms`] for how they are told apart from this CLI's own forms.
//!
//! Exit codes: 0 success, 1 a check or command failed, 2 usage error (clap's own).

mod forms;
mod list;
mod style;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::config::edit::{self, EditOutcome, Section};
use crate::config::migrate::{self, Init};
use crate::config::{self, existing_or_first, ConfigSources};
use crate::doctor::{self, Status};
use crate::error::{display_path, Error};
use forms::{HostPlan, RemovePlan};
use style::Paint;

/// The package name, as it appears in an OpenCode `plugin` entry.
const PACKAGE: &str = "opencode-remote";

#[derive(Parser, Debug)]
#[command(
    name = "opencode-remote",
    version,
    about = "OpenCode over SSH: configure and check remote hosts",
    max_term_width = 100
)]
struct Cli {
    /// The project directory whose hosts.json(c) and .opencode/hosts.json(c) also apply (and, for init
    /// and migrate, whose OpenCode config is edited).
    #[arg(long, global = true, value_name = "DIR")]
    project: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per run
enum Command {
    /// Add this plugin to OpenCode's config (opencode.json(c)), keeping comments; like `opencode plug
    /// opencode-remote`, without installing anything.
    Init {
        /// The OpenCode config file to edit (default: the global one, or the project's with --project).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Replace opencode-remote-login / opencode-remote-provider plugin entries with this package's,
    /// keeping their hosts and providers.
    Migrate {
        /// Only this OpenCode config file (default: the global ones, and the project's with --project).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Show what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List, add or remove hosts.
    #[command(subcommand)]
    Hosts(HostsCommand),
    /// Workspace providers (groups of hosts): list them, add or remove their hosts.
    #[command(subcommand, visible_alias = "provider")]
    Providers(ProvidersCommand),
    /// Add a host: `add <name> <address>`, or `add <provider> <host> <user> [port] [identity-file]`.
    #[command(override_usage = ADD_USAGE_TOP)]
    Add(AddArgs),
    /// Remove a host: `remove <name>`, or `remove <provider> <host>`.
    #[command(visible_alias = "rm", override_usage = REMOVE_USAGE_TOP)]
    Remove(RemoveArgs),
    /// List the hosts (same as `hosts list`).
    #[command(visible_alias = "ls")]
    List,
    /// Check config, network, host key, auth and the remote opencode, with the fix for each failure.
    Doctor {
        /// Only this host (default: all).
        host: Option<String>,
    },
    /// Install (or find) the remote stub on a host and check it answers through an SSH tunnel.
    #[command(override_usage = SETUP_USAGE)]
    Setup(SetupArgs),
    /// Print the JSON Schema of a config file.
    Schema {
        #[arg(value_enum, default_value_t = SchemaKind::Hosts)]
        kind: SchemaKind,
    },
}

// Written out (clap would show one `<ARGS>...`), each line within 80 columns.
const ADD_USAGE_TOP: &str = "opencode-remote add [OPTIONS] <NAME> <ADDRESS>
       opencode-remote add [OPTIONS] <PROVIDER> <HOST> <USER> [PORT] [IDENTITY_FILE]";
const ADD_USAGE_HOSTS: &str = "opencode-remote hosts add [OPTIONS] <NAME> <ADDRESS>
       opencode-remote hosts add [OPTIONS] <PROVIDER> <HOST> <USER>
                                 [PORT] [IDENTITY_FILE]";
const REMOVE_USAGE_TOP: &str = "opencode-remote remove [OPTIONS] <NAME>
       opencode-remote remove [OPTIONS] <PROVIDER> <HOST>";
const REMOVE_USAGE_HOSTS: &str = "opencode-remote hosts remove [OPTIONS] <NAME>
       opencode-remote hosts remove [OPTIONS] <PROVIDER> <HOST>";
const SETUP_USAGE: &str = "opencode-remote setup [OPTIONS] <HOST>
       opencode-remote setup [OPTIONS] <HOST> <USER> [PORT] [IDENTITY_FILE]";

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per run
enum HostsCommand {
    /// Show the configured hosts: where each is defined, its provider, user, port, labels and aliases.
    #[command(visible_alias = "ls")]
    List,
    /// Add or replace a host (comments and formatting of the file are kept; a backup is made).
    #[command(override_usage = ADD_USAGE_HOSTS)]
    Add(AddArgs),
    /// Remove a host (from the hosts map or from its provider).
    #[command(visible_alias = "rm", override_usage = REMOVE_USAGE_HOSTS)]
    Remove(RemoveArgs),
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per run
enum ProvidersCommand {
    /// Show each provider with its strategy and hosts.
    #[command(visible_alias = "ls")]
    List,
    /// Add or replace a host of a provider (the provider is created if needed).
    Add {
        provider: String,
        /// The host's name, and its SSH address unless --address is given.
        host: String,
        user: String,
        port: Option<u16>,
        identity_file: Option<PathBuf>,
        #[command(flatten)]
        more: ProviderHostOptions,
    },
    /// Remove a host from a provider.
    #[command(visible_alias = "rm")]
    Remove {
        provider: String,
        host: String,
        /// The file to edit (default: the file that defines the host).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Default, Clone)]
struct ProviderHostOptions {
    /// The SSH address when it differs from the host's name.
    #[arg(long, value_name = "ADDRESS")]
    address: Option<String>,
    /// A label that provider `labels` filters match (repeatable).
    #[arg(long = "label", value_name = "LABEL")]
    labels: Vec<String>,
    /// Another name for the host (repeatable).
    #[arg(long = "alias", value_name = "NAME")]
    aliases: Vec<String>,
    #[arg(long, value_name = "HOSTS")]
    proxy_jump: Option<String>,
    /// Write into hosts.json(c) or into the plugin options of opencode.json(c) (default: where the
    /// provider is defined, else hosts.json(c)).
    #[arg(long, value_enum)]
    to: Option<Destination>,
    /// The file to edit, instead of the one in the OpenCode config directory.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct AddArgs {
    /// `<name> <address>` (address: `user@host[:port]` or an alias from ~/.ssh/config), or
    /// opencode-remote-ssh's `<provider> <host> <user> [port] [identity-file]`.
    #[arg(value_name = "ARGS", num_args = 2..=5, required = true)]
    args: Vec<String>,
    #[arg(long)]
    port: Option<u16>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long, value_name = "PATH")]
    identity_file: Option<PathBuf>,
    /// Agent for the remote run (hosts-map hosts).
    #[arg(long)]
    agent: Option<String>,
    /// Model for the remote run, `provider/model` (hosts-map hosts).
    #[arg(long)]
    model: Option<String>,
    /// Default working directory on the host (hosts-map hosts).
    #[arg(long)]
    directory: Option<String>,
    #[arg(long, value_enum)]
    host_key_policy: Option<PolicyArg>,
    /// Make `<name> <address>` a host of this workspace provider instead of a hosts-map host.
    #[arg(long, value_name = "PROVIDER")]
    provider: Option<String>,
    #[command(flatten)]
    more: ProviderHostOptions,
}

#[derive(Args, Debug)]
struct RemoveArgs {
    /// `<name>`, or opencode-remote-ssh's `<provider> <host>`.
    #[arg(value_name = "ARGS", num_args = 1..=2, required = true)]
    args: Vec<String>,
    /// The file to edit (default: the file that defines the host).
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct SetupArgs {
    /// A configured host; or, with USER, a host to add first (to provider `default`, as
    /// opencode-remote-ssh's setup did): its name and SSH address.
    host: String,
    /// The remote user: HOST is added to a provider (or replaced there), then set up.
    user: Option<String>,
    /// SSH port of the new host.
    port: Option<u16>,
    /// Private key of the new host (default: ssh-agent and ~/.ssh/config; a password-only host gets a
    /// generated key).
    identity_file: Option<PathBuf>,
    /// The provider a host given with USER goes into.
    #[arg(long, value_name = "NAME", default_value = "default")]
    provider: String,
    /// For a host without our key: read its password from stdin (first line), install a generated
    /// key, and never need the password again. On a terminal the password is asked for instead.
    #[arg(long)]
    password_stdin: bool,
    /// Upload the stub binaries from DIR (optional: by default the ones shipped in this package).
    #[arg(long, value_name = "DIR", help_heading = "Advanced")]
    stub_dir: Option<PathBuf>,
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
            // Help keeps clap's colours on a terminal; errors and pipes get plain text.
            let text = if code == 0 && !Paint::for_stdout().is_off() {
                error.render().ansi().to_string()
            } else {
                error.render().to_string()
            };
            let _ = if code == 0 {
                write!(out, "{text}")
            } else {
                write!(err, "{text}")
            };
            return code;
        }
    };
    let paint = if cli.json {
        Paint::default()
    } else {
        Paint::for_stdout()
    };
    let sources = match load_sources(cli.project.clone()) {
        Ok(sources) => sources,
        Err(error) => return report_error(&error, err),
    };
    let as_json = cli.json;
    let result = match cli.command {
        Command::Hosts(HostsCommand::List) | Command::List => {
            hosts_list(&sources, as_json, paint, out)
        }
        Command::Providers(ProvidersCommand::List) => providers_list(&sources, as_json, out),
        Command::Hosts(HostsCommand::Add(args)) | Command::Add(args) => {
            hosts_add(&sources, &args, as_json, out)
        }
        Command::Providers(ProvidersCommand::Add {
            provider,
            host,
            user,
            port,
            identity_file,
            more,
        }) => {
            let value = forms::provider_host(&host, Some(&user), port, identity_file, &more);
            let plan = HostPlan::Provider {
                provider,
                name: host,
                value,
            };
            add_planned(&sources, plan, &more, as_json, out)
        }
        Command::Hosts(HostsCommand::Remove(args)) | Command::Remove(args) => hosts_remove(
            &sources,
            forms::plan_remove(&args.args),
            args.file,
            as_json,
            out,
        ),
        Command::Providers(ProvidersCommand::Remove {
            provider,
            host,
            file,
        }) => hosts_remove(
            &sources,
            RemovePlan::InProvider { provider, host },
            file,
            as_json,
            out,
        ),
        Command::Init { file } => init_command(&sources, file, as_json, out),
        Command::Migrate { file, dry_run } => {
            migrate_command(&sources, file, dry_run, as_json, out)
        }
        Command::Setup(args) => {
            let Some(stub_dir) = args.stub_dir.clone().or(package_stubs) else {
                let _ = writeln!(
                    err,
                    "error: no stub directory: pass --stub-dir DIR (the package's bin/opencode-remote passes its own)"
                );
                return 2;
            };
            setup_with_key(sources, cli.project, &args, &stub_dir, as_json, out, err).await
        }
        Command::Doctor { host } => {
            return doctor_command(&sources, host.as_deref(), as_json, paint, out).await
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
        Err(error) => report_error(&error, err),
    }
}

fn report_error(error: &Error, err: &mut (dyn Write + Send)) -> i32 {
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

/// What OpenCode would pass the plugin: the options in the global opencode.json(c). Read again after an
/// edit, which may have changed them.
fn load_sources(project: Option<PathBuf>) -> Result<ConfigSources, Error> {
    let global = ConfigSources::from_env(None, None).config_dir;
    let inline = edit::read_plugin_options(&existing_or_first(&global, "opencode"), PACKAGE)?;
    Ok(ConfigSources::from_env(project, inline))
}

fn io(error: std::io::Error) -> Error {
    Error::io("writing output", error)
}

fn hosts_list(
    sources: &ConfigSources,
    as_json: bool,
    paint: Paint,
    out: &mut (dyn Write + Send),
) -> Result<(), Error> {
    let hosts = config::load_hosts(sources)?;
    let rows = list::rows(&hosts);
    if as_json {
        let all = rows.iter().map(list::to_json).collect();
        return writeln!(out, "{}", Value::Array(all)).map_err(io);
    }
    if rows.is_empty() {
        return writeln!(
            out,
            "no hosts configured; add one with: opencode-remote hosts add <name> <user@host>"
        )
        .map_err(io);
    }
    write!(out, "{}", list::render(&rows, hosts.warnings(), paint)).map_err(io)
}

fn providers_list(
    sources: &ConfigSources,
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), Error> {
    let hosts = config::load_hosts(sources)?;
    if as_json {
        let providers: serde_json::Map<String, Value> = hosts
            .providers()
            .iter()
            .map(|(name, spec)| {
                let mut value = serde_json::to_value(spec).unwrap_or_default();
                value["source"] = json!(hosts.provider_source(name).map(display_path));
                (name.clone(), value)
            })
            .collect();
        return writeln!(out, "{}", Value::Object(providers)).map_err(io);
    }
    if hosts.providers().is_empty() {
        return writeln!(
            out,
            "no providers configured; add a host to one with: opencode-remote add <provider> <host> <user> [port] [identity-file]"
        )
        .map_err(io);
    }
    let text = list::render_providers(&hosts, &list::rows(&hosts));
    write!(out, "{}", printable(&text)).map_err(io)
}

fn hosts_add(
    sources: &ConfigSources,
    args: &AddArgs,
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), Error> {
    let plan = forms::plan_add(args)?;
    add_planned(sources, plan, &args.more, as_json, out)
}

/// Write a planned host. A hosts-map host goes to hosts.json(c) unless `--to`/`--file` say otherwise; a
/// provider's host goes where that provider is defined (opencode-remote-ssh kept providers in
/// opencode.json), else to hosts.json(c).
fn add_planned(
    sources: &ConfigSources,
    plan: HostPlan,
    more: &ProviderHostOptions,
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), Error> {
    let explicit = match (&more.file, more.to) {
        (Some(file), _) => Some((file.clone(), section_for(file))),
        (None, Some(Destination::Hosts)) => Some((
            existing_or_first(&sources.config_dir, "hosts"),
            Section::HostsFile,
        )),
        (None, Some(Destination::PluginOptions)) => Some((
            existing_or_first(&sources.config_dir, "opencode"),
            Section::PluginOptions { package: PACKAGE },
        )),
        (None, None) => None,
    };
    match plan {
        HostPlan::Map { name, value } => {
            let (file, section) = explicit.unwrap_or_else(|| {
                (
                    existing_or_first(&sources.config_dir, "hosts"),
                    Section::HostsFile,
                )
            });
            let outcome = edit::set_host(&file, section, &name, &value)?;
            report_edit(&outcome, &format!("added {name}"), as_json, out)
        }
        HostPlan::Provider {
            provider,
            name,
            value,
        } => {
            let (file, section) = match explicit {
                Some(place) => place,
                None => {
                    let hosts = config::load_hosts(sources)?;
                    match hosts.provider_source(&provider) {
                        Some(source) => {
                            let file = sources.editable_file(source);
                            let section = section_for(&file);
                            (file, section)
                        }
                        None => (
                            existing_or_first(&sources.config_dir, "hosts"),
                            Section::HostsFile,
                        ),
                    }
                }
            };
            let outcome = edit::set_provider_host(&file, section, &provider, &value)?;
            report_edit(
                &outcome,
                &format!("added {name} to provider {provider}"),
                as_json,
                out,
            )
        }
    }
}

fn hosts_remove(
    sources: &ConfigSources,
    plan: RemovePlan,
    file: Option<PathBuf>,
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), Error> {
    let hosts = config::load_hosts(sources)?;
    let (provider, name) = match &plan {
        RemovePlan::Name(name) => (None, name.as_str()),
        RemovePlan::InProvider { provider, host } => (Some(provider.as_str()), host.as_str()),
    };
    let unknown = || Error::UnknownHost {
        name: name.to_string(),
        known: hosts.names(),
    };
    if let Some(provider) = provider {
        if !hosts.providers().contains_key(provider) {
            return Err(Error::InvalidArgument {
                field: "provider".into(),
                problem: format!(
                    "no provider '{provider}'; configured providers: {}",
                    names_or_none(hosts.providers().keys())
                ),
            });
        }
        if let Some(other) = hosts.provider_of(name).filter(|p| *p != provider) {
            return Err(Error::InvalidArgument {
                field: "host".into(),
                problem: format!("'{name}' is a host of provider '{other}', not of '{provider}'"),
            });
        }
    }
    let aliased = hosts.get(name).ok().map(|e| e.name.clone());
    if let Some(canonical) = aliased.filter(|c| c != name) {
        return Err(Error::InvalidArgument {
            field: "host".into(),
            problem: format!("'{name}' is an alias of '{canonical}': remove '{canonical}'"),
        });
    }
    let file = match file {
        Some(file) => file,
        None => match hosts.source(name) {
            Some(source) => sources.editable_file(source),
            None => return Err(unknown()),
        },
    };
    let section = section_for(&file);
    let mut outcome = EditOutcome {
        file: file.clone(),
        backup: None,
        changed: false,
    };
    if provider.is_none() {
        outcome = edit::remove_host(&file, section, name)?;
    }
    if !outcome.changed {
        outcome = edit::remove_provider_host(&file, section, provider, name)?;
    }
    if !outcome.changed {
        return Err(unknown());
    }
    let what = match provider.or(hosts.provider_of(name)) {
        Some(provider) => format!("removed {name} from provider {provider}"),
        None => format!("removed {name}"),
    };
    report_edit(&outcome, &what, as_json, out)
}

fn names_or_none<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}

fn section_for(file: &Path) -> Section<'static> {
    edit::section_for(file, PACKAGE)
}

/// The OpenCode config `init` edits: the global opencode.json(c); with --project the project's own
/// (opencode.json(c), else .opencode/opencode.json(c), which is where `opencode plug` writes).
fn init_target(sources: &ConfigSources) -> PathBuf {
    let Some(project) = &sources.project_dir else {
        return existing_or_first(&sources.config_dir, "opencode");
    };
    let candidates = [
        project.join("opencode.jsonc"),
        project.join("opencode.json"),
        project.join(".opencode").join("opencode.jsonc"),
        project.join(".opencode").join("opencode.json"),
    ];
    candidates
        .iter()
        .find(|f| f.is_file())
        .cloned()
        .unwrap_or_else(|| project.join(".opencode").join("opencode.json"))
}

fn init_command(
    sources: &ConfigSources,
    file: Option<PathBuf>,
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), Error> {
    let file = file.unwrap_or_else(|| init_target(sources));
    let (outcome, found) = migrate::init_file(&file)?;
    if let Init::OldEntries(old) = &found {
        return Err(Error::InvalidArgument {
            field: "plugin".into(),
            problem: format!(
                "{} already loads {}, which this package replaces; run `opencode-remote migrate` to \
                 rewrite it with its hosts and providers",
                display_path(&file),
                old.join(", ")
            ),
        });
    }
    if as_json {
        let value =
            json!({"file": outcome.file, "backup": outcome.backup, "changed": outcome.changed});
        return writeln!(out, "{value}").map_err(io);
    }
    if found == Init::AlreadyThere {
        return writeln!(
            out,
            "{PACKAGE} is already in the plugin list of {}",
            display_path(&file)
        )
        .map_err(io);
    }
    report_edit(
        &outcome,
        &format!("added {PACKAGE} to the plugin list"),
        false,
        out,
    )?;
    writeln!(
        out,
        "next: opencode-remote hosts add <name> <user@host>, or opencode-remote add <provider> <host> <user>"
    )
    .map_err(io)
}

fn migrate_command(
    sources: &ConfigSources,
    file: Option<PathBuf>,
    dry_run: bool,
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), Error> {
    let files = match file {
        Some(file) => vec![file],
        None => migrate::opencode_config_files(&sources.config_dir, sources.project_dir.as_deref()),
    };
    let mut results = Vec::new();
    for file in &files {
        let (outcome, migration) = migrate::migrate_file(file, dry_run)?;
        if let Some(migration) = migration {
            results.push((outcome, migration));
        }
    }
    if as_json {
        let all: Vec<Value> = results
            .iter()
            .map(|(o, m)| {
                json!({"file": o.file, "backup": o.backup, "changed": o.changed, "dryRun": dry_run,
                       "replaced": m.replaced, "notes": m.notes})
            })
            .collect();
        return writeln!(out, "{}", Value::Array(all)).map_err(io);
    }
    if results.is_empty() {
        let looked: Vec<String> = files.iter().map(|f| display_path(f)).collect();
        return writeln!(
            out,
            "nothing to migrate: no opencode-remote-login or opencode-remote-provider entry in {}",
            if looked.is_empty() {
                "any OpenCode config file".to_string()
            } else {
                looked.join(", ")
            }
        )
        .map_err(io);
    }
    for (outcome, migration) in &results {
        let verb = if dry_run { "would replace" } else { "replaced" };
        let line = format!(
            "{}: {verb} {} with {PACKAGE}",
            display_path(&outcome.file),
            migration.replaced.join(", ")
        );
        write!(out, "{}", list::wrap(&line, "")).map_err(io)?;
        for note in &migration.notes {
            write!(out, "{}", list::wrap(&format!("note: {note}"), "  ")).map_err(io)?;
        }
        if let Some(backup) = &outcome.backup {
            writeln!(out, "  backup: {}", display_path(backup)).map_err(io)?;
        }
    }
    Ok(())
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
    paint: Paint,
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
                    Status::Ok => paint.ok("ok  "),
                    Status::Warn => paint.warn("warn"),
                    Status::Fail => paint.fail("FAIL"),
                    Status::Skip => paint.dim("skip"),
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

/// `setup`, with opencode-remote-ssh's form (`setup <host> <user> [port] [identity-file]`: add the host
/// to a provider first) and the password-only path: with a password to hand (a terminal, or
/// `--password-stdin`) a generated key is installed with it; without one, the manual steps are printed.
async fn setup_with_key(
    sources: ConfigSources,
    project: Option<PathBuf>,
    args: &SetupArgs,
    stub_dir: &Path,
    as_json: bool,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<(), Error> {
    let host = args.host.as_str();
    let sources = match &args.user {
        Some(user) => {
            let value = forms::provider_host(
                host,
                Some(user),
                args.port,
                args.identity_file.clone(),
                &ProviderHostOptions::default(),
            );
            let plan = HostPlan::Provider {
                provider: args.provider.clone(),
                name: host.to_string(),
                value,
            };
            add_planned(&sources, plan, &ProviderHostOptions::default(), false, err)?;
            load_sources(project.clone())?
        }
        None => sources,
    };
    match setup_command(&sources, host, stub_dir, as_json, out).await {
        Err(error)
            if matches!(error.cause(), Error::AuthFailed { accepted, .. }
                if accepted.iter().any(|m| m == "password" || m == "keyboard-interactive")) =>
        {
            if args.password_stdin || std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                let key = install_key(&sources, host, args.password_stdin).await?;
                let _ = writeln!(
                    err,
                    "installed a new key for {host}: {}",
                    display_path(&key)
                );
                // The key may have been recorded in the plugin options, which were read before.
                let sources = load_sources(project)?;
                setup_command(&sources, host, stub_dir, as_json, out).await
            } else {
                let manual = crate::workspace::prepare_manual_key(host, &sources)?;
                let _ = write!(err, "{}", printable(&manual_steps(host, &manual)));
                Err(error)
            }
        }
        other => other,
    }
}

/// What to do by hand when no password can be asked for (opencode-remote-ssh printed the same kind of
/// steps when it had no sshpass).
fn manual_steps(host: &str, key: &crate::workspace::ManualKey) -> String {
    let at = format!("{}@{}", key.user, key.hostname);
    let public = &key.public;
    let private = display_path(&key.key);
    format!(
        "{host} accepts a password, but none can be asked for here (no terminal; --password-stdin reads it \
         from stdin).\n\
         Install this key for {at} (port {port}) once, by hand:\n\n    {public}\n\n\
         from a terminal that can take the password:\n\n    \
         ssh-copy-id -i {private}.pub -p {port} {at}\n\n\
         or on {host} itself, as {user}:\n\n    \
         mkdir -p ~/.ssh && chmod 700 ~/.ssh\n    \
         echo '{public}' >> ~/.ssh/authorized_keys\n    \
         chmod 600 ~/.ssh/authorized_keys\n\n\
         The key {private} is recorded as {host}'s identityFile in {file}; then run again: \
         opencode-remote setup {host}\n",
        port = key.port,
        user = key.user,
        file = display_path(&key.recorded_in),
    )
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
