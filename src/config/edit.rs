//! Editing config files the way a careful person would: comments and formatting kept (a concrete syntax
//! tree, not a re-serialization), the result validated before it is written, a timestamped backup of the
//! old file, and an atomic replace (temp file in the same directory, fsync, rename), so a crash at any
//! moment leaves either the old file or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use jsonc_parser::cst::{CstInputValue, CstNode, CstObject, CstRootNode};
use jsonc_parser::ParseOptions;
use serde_json::Value;

use super::entry_problems;
use crate::error::{Error, Result};

/// Where hosts live in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section<'a> {
    /// `hosts.json(c)`: the top-level `hosts` object.
    HostsFile,
    /// `opencode.json(c)`: the `hosts` object of the plugin's options (`"plugin": [["<package>", {…}]]`).
    PluginOptions { package: &'a str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditOutcome {
    pub file: PathBuf,
    /// The copy of the previous contents, when there was a file before.
    pub backup: Option<PathBuf>,
    pub changed: bool,
}

/// Add or replace host `name` with `entry` (a string address or an object).
pub fn set_host(
    file: &Path,
    section: Section<'_>,
    name: &str,
    entry: &Value,
) -> Result<EditOutcome> {
    edit(file, section, |hosts| {
        match hosts.get(name) {
            Some(prop) => prop.set_value(to_cst(entry)),
            None => {
                hosts.append(name, to_cst(entry));
            }
        }
        true
    })
}

/// Set one field of host `name` (a string entry becomes `{"host": "<it>"}` first).
pub fn set_host_field(
    file: &Path,
    section: Section<'_>,
    name: &str,
    field: &str,
    value: &Value,
) -> Result<EditOutcome> {
    edit(file, section, |hosts| {
        let Some(prop) = hosts.get(name) else {
            return false;
        };
        let entry = match prop
            .value()
            .and_then(|v| v.as_string_lit())
            .and_then(|s| s.decoded_value().ok())
        {
            Some(address) => {
                prop.set_value(CstInputValue::Object(vec![("host".into(), address.into())]));
                prop.object_value()
            }
            None => prop.object_value(),
        };
        let Some(entry) = entry else { return false };
        match entry.get(field) {
            Some(existing) => existing.set_value(to_cst(value)),
            None => {
                entry.append(field, to_cst(value));
            }
        }
        true
    })
}

/// Add or replace (by `name`) a host of `provider`; a missing provider is created with the
/// `first_available` strategy, as opencode-remote-ssh's CLI did.
pub fn set_provider_host(
    file: &Path,
    section: Section<'_>,
    provider: &str,
    host: &Value,
) -> Result<EditOutcome> {
    let name = host.get("name").and_then(Value::as_str).unwrap_or_default();
    edit_options(file, section, |options| {
        let providers = options.object_value_or_set("providers");
        let spec = match providers.get(provider) {
            Some(prop) => match prop.object_value() {
                Some(spec) => spec,
                None => return false,
            },
            None => providers
                .append(
                    provider,
                    CstInputValue::Object(vec![("strategy".into(), "first_available".into())]),
                )
                .object_value_or_set(),
        };
        let list = spec.array_value_or_set("hosts");
        match provider_host_node(&list, name) {
            Some(node) => match node.element_index() {
                Some(index) => {
                    node.remove();
                    list.insert(index, to_cst(host));
                }
                None => return false,
            },
            None => {
                list.append(to_cst(host));
            }
        }
        true
    })
}

/// Remove host `name` from `provider` (or from whichever provider lists it); `changed` is false when
/// no provider of this file lists it.
pub fn remove_provider_host(
    file: &Path,
    section: Section<'_>,
    provider: Option<&str>,
    name: &str,
) -> Result<EditOutcome> {
    edit_options(file, section, |options| {
        let Some(providers) = options.object_value("providers") else {
            return false;
        };
        for prop in providers.properties() {
            if provider.is_some_and(|p| prop.decoded_name().as_deref() != Some(p)) {
                continue;
            }
            let list = prop
                .object_value()
                .and_then(|spec| spec.array_value("hosts"));
            if let Some(node) = list.and_then(|list| provider_host_node(&list, name)) {
                node.remove();
                return true;
            }
        }
        false
    })
}

/// Record `key` as the identity file of host `name`, wherever this file defines it: its `hosts` map
/// (`identityFile`) or a provider's host list (`ssh.identityFile`). `changed` is false when the file
/// defines no such host.
pub fn set_identity_file(
    file: &Path,
    section: Section<'_>,
    name: &str,
    key: &Path,
) -> Result<EditOutcome> {
    let key = Value::String(key.to_string_lossy().into_owned());
    let defined_in_map = {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        jsonc_parser::parse_to_serde_value(&text, &ParseOptions::default())
            .ok()
            .flatten()
            .is_some_and(|value| {
                let options = match section {
                    Section::HostsFile => Some(value),
                    Section::PluginOptions { package } => our_options_in(&value, package),
                };
                options.is_some_and(|o| o.get("hosts").and_then(|h| h.get(name)).is_some())
            })
    };
    if defined_in_map {
        return set_host_field(file, section, name, "identityFile", &key);
    }
    edit_options(file, section, |options| {
        let Some(providers) = options.object_value("providers") else {
            return false;
        };
        for prop in providers.properties() {
            let list = prop
                .object_value()
                .and_then(|spec| spec.array_value("hosts"));
            let Some(host) = list
                .and_then(|list| provider_host_node(&list, name))
                .and_then(|node| node.as_object())
            else {
                continue;
            };
            let ssh = host.object_value_or_set("ssh");
            match ssh.get("identityFile") {
                Some(existing) => existing.set_value(to_cst(&key)),
                None => {
                    ssh.append("identityFile", to_cst(&key));
                }
            }
            return true;
        }
        false
    })
}

/// The element of a provider's `hosts` array whose `name` is `name`.
fn provider_host_node(list: &jsonc_parser::cst::CstArray, name: &str) -> Option<CstNode> {
    list.elements().into_iter().find(|element| {
        element
            .as_object()
            .and_then(|host| host.get("name"))
            .and_then(|prop| prop.value())
            .and_then(|value| value.as_string_lit())
            .and_then(|s| s.decoded_value().ok())
            .is_some_and(|n| n == name)
    })
}

/// The options object of `package`'s first entry in a parsed opencode.json.
fn our_options_in(config: &Value, package: &str) -> Option<Value> {
    config
        .get("plugin")?
        .as_array()?
        .iter()
        .filter(|entry| {
            entry
                .get(0)
                .and_then(Value::as_str)
                .is_some_and(|s| names_package(s, package))
        })
        .find_map(|entry| entry.get(1).cloned())
}

/// opencode.json(c) holds plugin options (of `package`); any other file is a hosts file.
pub fn section_for<'a>(file: &Path, package: &'a str) -> Section<'a> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name.starts_with("opencode.") || name == "config.json" {
        Section::PluginOptions { package }
    } else {
        Section::HostsFile
    }
}

/// Remove host `name`; `changed` is false when it was not there.
pub fn remove_host(file: &Path, section: Section<'_>, name: &str) -> Result<EditOutcome> {
    edit(file, section, |hosts| match hosts.get(name) {
        Some(prop) => {
            prop.remove();
            true
        }
        None => false,
    })
}

fn edit(
    file: &Path,
    section: Section<'_>,
    change: impl FnOnce(&CstObject) -> bool,
) -> Result<EditOutcome> {
    edit_options(file, section, |options| {
        let hosts = options.object_value_or_set("hosts");
        change(&hosts)
    })
}

/// Edit the object that holds `hosts` and `providers` in `section` (the top level of a hosts file, or the
/// plugin's options), then validate the result as that section.
fn edit_options(
    file: &Path,
    section: Section<'_>,
    change: impl FnOnce(&CstObject) -> bool,
) -> Result<EditOutcome> {
    edit_tree(
        file,
        |root| {
            let Some(options) = options_object(root, section) else {
                return Err(invalid(
                    file,
                    "plugin",
                    "the file is not a JSON object",
                    "Make the top level an object.",
                ));
            };
            Ok(change(&options))
        },
        |original, text| validate(file, section, original, text),
    )
}

/// The common path of every edit: lock, parse into a concrete syntax tree (comments and formatting
/// kept), `change` it (false: nothing to do), `check` the new text, back up the old file, replace it
/// atomically. A missing file starts as `{}`.
pub fn edit_tree(
    file: &Path,
    change: impl FnOnce(&CstRootNode) -> Result<bool>,
    check: impl FnOnce(&str, &str) -> Result<()>,
) -> Result<EditOutcome> {
    edit_text(file, |original| {
        let root = CstRootNode::parse(
            if original.trim().is_empty() {
                "{}\n"
            } else {
                original
            },
            &ParseOptions::default(),
        )
        .map_err(|e| syntax_error(file, e))?;
        if !change(&root)? {
            return Ok(None);
        }
        let text = root.to_string();
        check(original, &text)?;
        Ok(Some(text))
    })
}

/// Lock, `change` the file's text (`None`: nothing to do), back up the old file and replace it
/// atomically. A missing file is empty text. For edits the syntax tree cannot express alone.
pub fn edit_text(
    file: &Path,
    change: impl FnOnce(&str) -> Result<Option<String>>,
) -> Result<EditOutcome> {
    let _lock = lock_for_edit(file)?;
    let existed = file.exists();
    let original = if existed {
        std::fs::read_to_string(file)
            .map_err(|e| Error::io(format!("reading {}", file.display()), e))?
    } else {
        String::new()
    };
    let Some(text) = change(&original)? else {
        return Ok(EditOutcome {
            file: file.to_path_buf(),
            backup: None,
            changed: false,
        });
    };
    let backup = if existed {
        Some(backup(file, &original)?)
    } else {
        None
    };
    write_atomically(file, text.as_bytes())?;
    Ok(EditOutcome {
        file: file.to_path_buf(),
        backup,
        changed: true,
    })
}

/// The object holding `hosts` and `providers` in `section`, created when missing.
fn options_object(root: &CstRootNode, section: Section<'_>) -> Option<CstObject> {
    let top = root.object_value_or_set();
    match section {
        Section::HostsFile => Some(top),
        Section::PluginOptions { package } => {
            let plugins = top.array_value_or_set("plugin");
            let entry = plugins
                .elements()
                .into_iter()
                .find(|element| plugin_spec(element).is_some_and(|s| names_package(&s, package)));
            let options = match entry {
                // `["opencode-remote", {…}]`: use its options object.
                Some(element) if element.as_array().is_some() => {
                    let tuple = element.as_array()?;
                    match tuple.elements().get(1).and_then(|o| o.as_object()) {
                        Some(options) => options,
                        None => tuple
                            .append(CstInputValue::Object(Vec::new()))
                            .as_object()?,
                    }
                }
                // `"opencode-remote"`: becomes `["opencode-remote", {}]`.
                Some(element) => {
                    let spec = plugin_spec(&element)?;
                    let index = element.element_index()?;
                    element.remove();
                    let tuple = plugins.insert(
                        index,
                        CstInputValue::Array(vec![spec.into(), CstInputValue::Object(Vec::new())]),
                    );
                    tuple.as_array()?.elements().get(1)?.as_object()?
                }
                None => {
                    let tuple = plugins.append(CstInputValue::Array(vec![
                        package.into(),
                        CstInputValue::Object(Vec::new()),
                    ]));
                    tuple.as_array()?.elements().get(1)?.as_object()?
                }
            };
            Some(options)
        }
    }
}

/// The package spec of a `plugin` array element (a string, or the first item of a tuple).
pub(crate) fn plugin_spec(element: &jsonc_parser::cst::CstNode) -> Option<String> {
    let node = match element.as_array() {
        Some(tuple) => tuple.elements().into_iter().next()?,
        None => element.clone(),
    };
    node.as_string_lit()?.decoded_value().ok()
}

/// `opencode-remote`, `opencode-remote@1.2.3`, or a path/URL ending in the package directory.
pub(crate) fn names_package(spec: &str, package: &str) -> bool {
    let bare = spec
        .rsplit_once('@')
        .filter(|(name, _)| !name.is_empty())
        .map_or(spec, |(name, _)| name);
    bare == package || spec.trim_end_matches('/').ends_with(&format!("/{package}"))
}

/// The options of `package`'s entry in an opencode.json(c) `plugin` list, if the file has one.
pub fn read_plugin_options(file: &Path, package: &str) -> Result<Option<Value>> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(Error::io(format!("reading {}", file.display()), error)),
    };
    Ok(our_plugin_options(file, &text, package)?.into_iter().next())
}

/// The options objects of every `plugin` entry in `text` that names `package`.
fn our_plugin_options(file: &Path, text: &str, package: &str) -> Result<Vec<Value>> {
    let value: Value = jsonc_parser::parse_to_serde_value(text, &ParseOptions::default())
        .map_err(|e| syntax_error(file, e))?;
    let entries = value
        .get("plugin")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(entries
        .into_iter()
        .filter(|entry| {
            entry
                .get(0)
                .and_then(Value::as_str)
                .is_some_and(|s| names_package(s, package))
        })
        .filter_map(|entry| entry.get(1).cloned())
        .collect())
}

/// The new text must load at least as well as the old: no new problem at the top level or in any
/// entry. An entry that was already refused (say `"os": "windows"`, kept until it is supported) does
/// not stop an edit elsewhere in the file.
fn validate(file: &Path, section: Section<'_>, original: &str, text: &str) -> Result<()> {
    let before = problems(file, section, original).unwrap_or_default();
    let after = problems(file, section, text)?;
    let before: Vec<String> = before.iter().map(ToString::to_string).collect();
    match after.into_iter().find(|p| !before.contains(&p.to_string())) {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

fn problems(file: &Path, section: Section<'_>, text: &str) -> Result<Vec<Error>> {
    match section {
        Section::HostsFile => {
            let value =
                jsonc_parser::parse_to_serde_value::<Option<Value>>(text, &ParseOptions::default())
                    .map_err(|e| syntax_error(file, e))?;
            entry_problems(file, value.unwrap_or(Value::Null), false)
        }
        Section::PluginOptions { package } => {
            let mut all = Vec::new();
            for options in our_plugin_options(file, text, package)? {
                all.extend(entry_problems(file, options, true)?);
            }
            Ok(all)
        }
    }
}

/// A file that is not valid JSONC: nothing in it can be edited or read until it is fixed.
pub(crate) fn syntax_error(file: &Path, error: impl std::fmt::Display) -> Error {
    invalid(
        file,
        "(file)",
        &error.to_string(),
        "Fix the syntax error first.",
    )
}

pub(crate) fn invalid(file: &Path, field: &str, problem: &str, fix: &str) -> Error {
    Error::Config {
        file: file.to_path_buf(),
        field: field.into(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

fn backup(file: &Path, original: &str) -> Result<PathBuf> {
    let stamp = chrono::Local::now().format("%Y%m%dT%H%M%S%.3f");
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".bak-{stamp}"));
    let path = file.with_file_name(name);
    write_file(&path, original.as_bytes(), mode_of(file))?;
    Ok(path)
}

/// An exclusive lock held from reading `file` to replacing it: two editors at once (two `hosts add`
/// run in parallel) would otherwise each write their change over the other's, and one host would be
/// lost. The file itself is replaced by a rename, so the lock lives on a companion `.<name>.lock`.
fn lock_for_edit(file: &Path) -> Result<std::fs::File> {
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    let mut name = std::ffi::OsString::from(".");
    name.push(file.file_name().unwrap_or_default());
    name.push(".lock");
    let path = file.with_file_name(name);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    lock.lock()
        .map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
    Ok(lock)
}

/// Set by crash tests only: pause after the new contents are durable and before they replace the old,
/// so a test can kill the process exactly there.
const PAUSE_BEFORE_RENAME_ENV: &str = "OPENCODE_REMOTE_TEST_PAUSE_BEFORE_RENAME_MS";

fn write_atomically(file: &Path, data: &[u8]) -> Result<()> {
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file.file_name().unwrap_or_default());
    temp_name.push(format!(".tmp-{:016x}", rand::random::<u64>()));
    let temp = file.with_file_name(temp_name);
    write_file(&temp, data, mode_of(file))?;
    if let Some(ms) = std::env::var(PAUSE_BEFORE_RENAME_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    std::fs::rename(&temp, file).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        Error::io(format!("replacing {}", file.display()), e)
    })
}

fn write_file(path: &Path, data: &[u8], mode: Option<u32>) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode.unwrap_or(0o644));
    let mut handle = options
        .open(path)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    handle
        .write_all(data)
        .and_then(|_| handle.sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

fn mode_of(file: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(file)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        None
    }
}

pub(crate) fn to_cst(value: &Value) -> CstInputValue {
    match value {
        Value::Null => CstInputValue::Null,
        Value::Bool(b) => CstInputValue::Bool(*b),
        Value::Number(n) => CstInputValue::Number(n.to_string()),
        Value::String(s) => CstInputValue::String(s.clone()),
        Value::Array(items) => CstInputValue::Array(items.iter().map(to_cst).collect()),
        Value::Object(map) => {
            CstInputValue::Object(map.iter().map(|(k, v)| (k.clone(), to_cst(v))).collect())
        }
    }
}

#[cfg(test)]
#[path = "edit/tests.rs"]
mod tests;
