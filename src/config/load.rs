//! Reading hosts files and plugin options, and merging them into [`Hosts`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::entry::{config_error, from_provider_host, from_spec};
use super::file::read_regular;
use super::model::{HostSpec, HostsFile, PluginOptions, ProviderHost, ProviderSpec};
use super::{ConfigSources, HostEntry, HostKeyPolicy, Hosts, Refused};
use crate::error::{display_path, Error, Result};

/// What errors in inline options name as their file: the options live in opencode.json, but we are handed
/// only the value, not its path.
pub const INLINE_SOURCE: &str = "opencode.json (plugin options)";

/// Whose config a source is. The user's own (the global config dir, the user's plugin options) defines
/// hosts; a project's (hosts files in the project, plugin options from a project's opencode.json) may
/// only add names the user has not defined, because a cloned repository is not the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    User,
    Project,
}

/// Loads and merges every source: the user's hosts files and plugin options first, then the project's.
/// Within one level a later source replaces a whole host of the same name (fields are not merged); a
/// project source never replaces, shadows (by alias) or re-routes (by provider) a name of the user's:
/// that entry is skipped with a warning naming the file and the host.
pub fn load_hosts(sources: &ConfigSources) -> Result<Hosts> {
    let mut hosts = Hosts::default();
    let inline = sources.inline.as_ref().filter(|v| !v.is_null());
    let inline_level = match sources.inline_from_project {
        Some(_) => Level::Project,
        None => Level::User,
    };
    for path in sources.user_files() {
        if let Some((file, refused)) = read_hosts_file_lenient(&path)? {
            merge(&mut hosts, &path, &file.hosts, &file.providers, Level::User)?;
            refuse_all(&mut hosts, refused, Level::User);
        }
    }
    if let Some(inline) = inline.filter(|_| inline_level == Level::User) {
        merge_inline(&mut hosts, sources, inline, Level::User)?;
    }
    for path in sources.project_files() {
        if let Some((file, refused)) = read_hosts_file_lenient(&path)? {
            merge(
                &mut hosts,
                &path,
                &file.hosts,
                &file.providers,
                Level::Project,
            )?;
            refuse_all(&mut hosts, refused, Level::Project);
        }
    }
    if let Some(inline) = inline.filter(|_| inline_level == Level::Project) {
        merge_inline(&mut hosts, sources, inline, Level::Project)?;
    }
    for warning in &hosts.warnings {
        log::warn!("{warning}");
    }
    Ok(hosts)
}

fn merge_inline(
    hosts: &mut Hosts,
    sources: &ConfigSources,
    inline: &Value,
    level: Level,
) -> Result<()> {
    let path = match &sources.inline_from_project {
        Some(file) => PathBuf::from(format!("{} (plugin options)", display_path(file))),
        None => PathBuf::from(INLINE_SOURCE),
    };
    let mut inline = inline.clone();
    let refused = take_refused(&path, &mut inline);
    warn_seed_options(hosts, &path, &inline);
    let options: PluginOptions = deserialize(&path, inline)?;
    merge(hosts, &path, &options.hosts, &options.providers, level)?;
    refuse_all(hosts, refused, level);
    Ok(())
}

/// Options of the original opencode-remote-provider plugin that have no meaning here: accepted, so an
/// old config still loads, but named in a warning rather than ignored in silence.
fn warn_seed_options(hosts: &mut Hosts, path: &Path, options: &Value) {
    let notes = [
        (
            "installRoot",
            "the stub always lives in ~/.opencode-remote on the host",
        ),
        (
            "tunnel",
            "the tunnel is a channel of the host's one SSH connection (ConnectTimeout in ~/.ssh/config \
             sets the connect timeout)",
        ),
        (
            "defaults",
            "the selection strategy is set per provider (`strategy`), and the stub needs no port",
        ),
    ];
    for (key, why) in notes {
        if options.get(key).is_some() {
            hosts.warnings.push(format!(
                "{}: {key}: ignored: this option of opencode-remote-provider has no effect here ({why}). \
                 Remove it.",
                display_path(path)
            ));
        }
    }
}

/// Record entries that could not be loaded. A project's refused entry never hides a user's host.
fn refuse_all(hosts: &mut Hosts, refused: Vec<Refused>, level: Level) {
    for entry in refused {
        if level == Level::Project && hosts.user_owns(&entry.name) {
            continue;
        }
        hosts.refuse(entry);
    }
}

/// Take out of a hosts file (or plugin options) every host entry that does not load on its own, so one
/// entry this version cannot honour (say `"os": "windows"`) does not take every other host down.
/// Entries of a provider without a usable name stay in, and fail the file as before: nothing could
/// refer to them by name.
fn take_refused(path: &Path, value: &mut Value) -> Vec<Refused> {
    let mut refused = Vec::new();
    let mut refuse =
        |name: &str, field: String, error: serde_path_to_error::Error<serde_json::Error>| {
            let inner = error.path().to_string();
            let field = if inner == "." {
                field
            } else {
                format!("{field}.{inner}")
            };
            let problem = error.into_inner().to_string();
            let fix = fix_for(&problem);
            refused.push(Refused {
                name: name.to_string(),
                file: path.to_path_buf(),
                field,
                problem,
                fix,
            });
        };
    if let Some(Value::Object(specs)) = value.get_mut("hosts") {
        let failing: Vec<(String, _)> = specs
            .iter()
            .filter_map(|(name, spec)| {
                serde_path_to_error::deserialize::<_, HostSpec>(spec.clone())
                    .err()
                    .map(|error| (name.clone(), error))
            })
            .collect();
        for (name, error) in failing {
            specs.remove(&name);
            refuse(&name, format!("hosts.{name}"), error);
        }
    }
    if let Some(Value::Object(providers)) = value.get_mut("providers") {
        for (provider, spec) in providers.iter_mut() {
            let Some(Value::Array(list)) = spec.get_mut("hosts") else {
                continue;
            };
            let mut kept = Vec::new();
            for (index, host) in std::mem::take(list).into_iter().enumerate() {
                let name = host.get("name").and_then(Value::as_str).map(str::to_string);
                match (
                    name,
                    serde_path_to_error::deserialize::<_, ProviderHost>(host.clone()),
                ) {
                    (Some(name), Err(error)) => {
                        refuse(&name, format!("providers.{provider}.hosts[{index}]"), error)
                    }
                    _ => kept.push(host),
                }
            }
            *list = kept;
        }
    }
    refused
}

/// Check every entry of a hosts file (or plugin options) the way loading would, without loading the rest.
pub fn validate_hosts(
    file: &Path,
    hosts: &BTreeMap<String, HostSpec>,
    providers: &BTreeMap<String, ProviderSpec>,
) -> Result<()> {
    let mut checked = Hosts::default();
    merge(&mut checked, file, hosts, providers, Level::User)?;
    let first = checked.refused().next().map(Refused::error);
    first.map_or(Ok(()), Err)
}

/// The entries of a hosts file (`plugin_options` false) or of plugin options that do not load, each as
/// its config error; a problem with the whole value (syntax, an unknown top-level key) is `Err`. Edits
/// compare these before and after, so an entry that was already refused does not block editing another.
pub fn entry_problems(path: &Path, value: Value, plugin_options: bool) -> Result<Vec<Error>> {
    let mut value = value;
    if value.is_null() {
        return Ok(Vec::new());
    }
    let refused = take_refused(path, &mut value);
    let (specs, providers) = if plugin_options {
        let options: PluginOptions = deserialize(path, value)?;
        (options.hosts, options.providers)
    } else {
        let file: HostsFile = deserialize(path, value)?;
        (file.hosts, file.providers)
    };
    let mut checked = Hosts::default();
    merge(&mut checked, path, &specs, &providers, Level::User)?;
    Ok(refused
        .iter()
        .chain(checked.refused())
        .map(Refused::error)
        .collect())
}

/// Largest hosts file we read. Files are read at every call, so a huge one (a mistaken path, a log
/// redirected onto it) would cost memory and time on every tool call; a real one is a few KiB.
pub const MAX_HOSTS_FILE_BYTES: u64 = 1024 * 1024;

/// `Ok(None)` when the file does not exist; an empty file is an empty hosts file.
pub fn read_hosts_file(path: &Path) -> Result<Option<HostsFile>> {
    read_hosts_text(path)?
        .map(|text| parse_hosts_text(path, &text))
        .transpose()
}

/// Like [`read_hosts_file`], but an entry that does not load is taken out and returned as refused.
fn read_hosts_file_lenient(path: &Path) -> Result<Option<(HostsFile, Vec<Refused>)>> {
    let Some(text) = read_hosts_text(path)? else {
        return Ok(None);
    };
    let mut value = parse_jsonc(path, &text)?;
    if value.is_null() {
        return Ok(Some((HostsFile::default(), Vec::new())));
    }
    let refused = take_refused(path, &mut value);
    Ok(Some((deserialize(path, value)?, refused)))
}

fn read_hosts_text(path: &Path) -> Result<Option<String>> {
    let bytes = match read_regular(path, MAX_HOSTS_FILE_BYTES) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) if err.kind() == std::io::ErrorKind::FileTooLarge => {
            let problem = format!("the file is larger than {MAX_HOSTS_FILE_BYTES} bytes");
            let fix =
                "Check that this is the hosts file you meant; it only needs a few lines per host.";
            return Err(config_error(path, "(file)", problem, fix));
        }
        Err(err) if err.kind() == std::io::ErrorKind::InvalidInput => {
            let fix = "Make it a plain JSON file, or remove it.";
            return Err(config_error(
                path,
                "(file)",
                "it is not a regular file",
                fix,
            ));
        }
        Err(err) => return Err(Error::io(format!("reading {}", display_path(path)), err)),
    };
    let text = String::from_utf8(bytes).map_err(|err| {
        let problem = format!("byte {} is not UTF-8 text", err.utf8_error().valid_up_to());
        config_error(path, "(file)", problem, "Save the file as UTF-8.")
    })?;
    Ok(Some(text))
}

fn parse_jsonc(path: &Path, text: &str) -> Result<Value> {
    jsonc_parser::parse_to_serde_value(text, &Default::default()).map_err(|err| {
        let (line, column) = (err.line_display(), err.column_display());
        let fix = format!(
            "Fix the JSON at line {line}, column {column} (comments and trailing commas are fine)."
        );
        config_error(path, "(syntax)", err.to_string(), &fix)
    })
}

/// JSONC (comments, trailing commas) first, then a typed pass that can name the failing field.
pub fn parse_hosts_text(path: &Path, text: &str) -> Result<HostsFile> {
    let value = parse_jsonc(path, text)?;
    if value.is_null() {
        return Ok(HostsFile::default());
    }
    deserialize(path, value)
}

/// Only an object is a hosts file or plugin options: serde would also read a struct from an array of its
/// fields in order, so `[null, {"pi": "h"}]` would quietly load as `{"hosts": {"pi": "h"}}`.
fn deserialize<T: DeserializeOwned>(path: &Path, value: Value) -> Result<T> {
    if !value.is_object() {
        let problem = format!("expected an object, found {}", json_kind(&value));
        let fix = r#"Write it as a JSON object, such as {"hosts": {"pi": "user@host"}}."#;
        return Err(config_error(path, "(top level)", problem, fix));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let field = match err.path().to_string() {
            root if root == "." => "(top level)".to_string(),
            field => field,
        };
        let problem = err.into_inner().to_string();
        config_error(path, &field, &problem, &fix_for(&problem))
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fix is all the model sees of a config error (`Error::public_message`), so it repeats what is
/// expected, taken from serde's message, in words.
fn fix_for(problem: &str) -> String {
    let expected = problem.rsplit_once(", expected ").map(|(_, e)| e);
    let expected = expected.map(|e| match e {
        "u16" => "a number from 1 to 65535",
        "u64" => "a whole number greater than 0",
        other => other,
    });
    if problem.starts_with("unknown field") {
        let keys = expected
            .map(|e| e.trim_start_matches("one of "))
            .unwrap_or("(none)");
        format!("Remove or correct that key; keys are camelCase, one of: {keys}.")
    } else if problem.contains("not supported yet") {
        "Set it to \"linux\" or \"macos\"; Windows hosts are not supported yet.".to_string()
    } else if let Some(expected) = expected {
        format!("Use {expected} there.")
    } else {
        "Correct that value; the JSON Schema (`opencode-remote schema`) describes every field."
            .into()
    }
}

/// A hosts file inside a project comes with the repository, and a cloned repository is not the user.
/// It may name hosts, but not weaken host-key checking or choose the program run on the remote: with
/// those, a hostile repo could send the user's session to its own server or run its own command there.
fn check_project_entry(file: &Path, field: &str, entry: &HostEntry) -> Result<()> {
    let fix = "Set it in the global hosts file (~/.config/opencode/hosts.json) instead.";
    if entry.host_key_policy == HostKeyPolicy::AcceptNew {
        let problem = "a project's hosts file may not set hostKeyPolicy \"accept-new\"";
        return Err(config_error(
            file,
            &format!("{field}.hostKeyPolicy"),
            problem.to_string(),
            fix,
        ));
    }
    if entry.opencode.is_some() {
        let problem = "a project's hosts file may not choose the remote opencode program";
        return Err(config_error(
            file,
            &format!("{field}.opencode"),
            problem.to_string(),
            fix,
        ));
    }
    Ok(())
}

/// The warning for a project entry that names something of the user's; the entry is skipped.
fn shadowed(hosts: &Hosts, file: &Path, field: &str, name: &str, what: &str) -> String {
    let owner = hosts
        .source(name)
        .map_or_else(|| "your own config".to_string(), display_path);
    format!(
        "{}: {field}: ignored: the {what} '{name}' is defined in {owner}, and a project's config may not \
         redefine or shadow it. Rename it in the project file, or remove it.",
        display_path(file)
    )
}

/// Adds one source's hosts. Within one source a name may be defined once (as a host, provider host or
/// alias); across sources the later one wins, except that a project source never replaces a user's name.
fn merge(
    hosts: &mut Hosts,
    file: &Path,
    specs: &BTreeMap<String, HostSpec>,
    providers: &BTreeMap<String, ProviderSpec>,
    level: Level,
) -> Result<()> {
    let project = level == Level::Project;
    let mut claimed = BTreeSet::new();
    let mut claim = |name: &str, field: &str| -> Result<()> {
        if claimed.insert(name.to_string()) {
            return Ok(());
        }
        let fix = "Give every host and alias in one file its own name.";
        Err(config_error(
            file,
            field,
            format!("the name '{name}' is defined twice"),
            fix,
        ))
    };
    for (name, spec) in specs {
        let field = format!("hosts.{name}");
        claim(name, &field)?;
        if project && hosts.user_owns(name) {
            let warning = shadowed(hosts, file, &field, name, "host");
            hosts.warnings.push(warning);
            continue;
        }
        let entry = from_spec(file, name, spec).and_then(|mut entry| {
            if project {
                check_project_entry(file, &field, &entry)?;
                entry.project = true;
            }
            Ok(entry)
        });
        match entry {
            Ok(entry) => hosts.insert(entry, file),
            Err(error) => hosts.refuse(Refused::from_error(name, error)?),
        }
    }
    for (provider, spec) in providers {
        if project && hosts.user_providers.contains(provider) {
            let field = format!("providers.{provider}");
            let warning = shadowed(hosts, file, &field, provider, "provider");
            hosts.warnings.push(warning);
            continue;
        }
        let mut kept = spec.clone();
        kept.hosts.clear();
        for (i, host) in spec.hosts.iter().enumerate() {
            let field = format!("providers.{provider}.hosts[{i}]");
            claim(&host.name, &format!("{field}.name"))?;
            for (j, alias) in host.aliases.iter().enumerate() {
                claim(alias, &format!("{field}.aliases[{j}]"))?;
            }
            let mut entry = match from_provider_host(file, &field, host) {
                Ok(entry) => entry,
                Err(error) => {
                    if !(project && hosts.user_owns(&host.name)) {
                        hosts.refuse(Refused::from_error(&host.name, error)?);
                    }
                    continue;
                }
            };
            if project {
                if hosts.user_owns(&host.name) {
                    let warning =
                        shadowed(hosts, file, &format!("{field}.name"), &host.name, "host");
                    hosts.warnings.push(warning);
                    continue;
                }
                entry.project = true;
            }
            hosts.insert(entry, file);
            let mut host = host.clone();
            for (j, alias) in std::mem::take(&mut host.aliases).into_iter().enumerate() {
                if project && hosts.user_owns(&alias) {
                    let field = format!("{field}.aliases[{j}]");
                    let warning = shadowed(hosts, file, &field, &alias, "host");
                    hosts.warnings.push(warning);
                    continue;
                }
                hosts.insert_alias(&alias, &host.name);
                host.aliases.push(alias);
            }
            kept.hosts.push(host);
        }
        if !project {
            hosts.user_providers.insert(provider.clone());
        }
        hosts.providers.insert(provider.clone(), kept);
        hosts
            .provider_sources
            .insert(provider.clone(), file.to_path_buf());
    }
    Ok(())
}
