//! Host configuration: hosts.json(c) files and plugin options, merged into one model.
//!
//! Two file formats are accepted side by side: the seed's `{"hosts": {name: address | object}}` and the
//! provider format `{"providers": {name: {"hosts": [...]}}}` reserved for SSH workspaces. Both end up as
//! [`HostEntry`] values looked up by name (or, for provider hosts, by alias).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

pub mod address;
pub mod edit;
mod entry;
pub mod file;
mod load;
pub mod migrate;
pub mod model;
mod trust;

pub use entry::HostEntry;
pub use load::{
    entry_problems, load_hosts, parse_hosts_text, read_hosts_file, validate_hosts, INLINE_SOURCE,
    MAX_HOSTS_FILE_BYTES,
};
pub use model::{HostKeyPolicy, HostsFile, Os, PluginOptions, ProviderSpec};

/// Where hosts come from. Built by [`ConfigSources::from_env`] in production; tests build it directly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSources {
    /// OpenCode's global config directory (`~/.config/opencode`).
    pub config_dir: PathBuf,
    /// The project OpenCode runs in; its `hosts.json(c)` and `.opencode/hosts.json(c)` apply.
    pub project_dir: Option<PathBuf>,
    /// The plugin options from opencode.json.
    pub inline: Option<Value>,
    /// The project's opencode.json that names this plugin, when there is one: OpenCode lets a project's
    /// plugin entry win, so the options then came with the repository and get a project's rights.
    pub inline_from_project: Option<PathBuf>,
}

impl ConfigSources {
    /// Finds the config dir the way OpenCode does: `$OPENCODE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/opencode`,
    /// else `$HOME/.config/opencode` (XDG on macOS too, as OpenCode does).
    pub fn from_env(project_dir: Option<PathBuf>, inline: Option<Value>) -> Self {
        Self::from_vars(project_dir, inline, |key| std::env::var_os(key))
    }

    fn from_vars(
        project_dir: Option<PathBuf>,
        inline: Option<Value>,
        var: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Self {
        let var = |key: &str| var(key).filter(|v| !v.is_empty()).map(PathBuf::from);
        let config_dir = var("OPENCODE_CONFIG_DIR")
            .or_else(|| var("XDG_CONFIG_HOME").map(|dir| dir.join("opencode")))
            .unwrap_or_else(|| {
                var("HOME")
                    .unwrap_or_default()
                    .join(".config")
                    .join("opencode")
            });
        let inline_from_project = project_dir.as_deref().and_then(|project| {
            trust::project_plugin_config(project, &config_dir, var("HOME").as_deref())
        });
        ConfigSources {
            config_dir,
            project_dir,
            inline,
            inline_from_project,
        }
    }

    /// The file to edit for a host whose [`Hosts::source`] is `source`: plugin options live in an
    /// opencode.json(c) (the global one, or the project's that named the plugin).
    pub fn editable_file(&self, source: &Path) -> PathBuf {
        if source == Path::new(INLINE_SOURCE) {
            return existing_or_first(&self.config_dir, "opencode");
        }
        match &self.inline_from_project {
            Some(file) if source.to_string_lossy().ends_with(" (plugin options)") => file.clone(),
            _ => source.to_path_buf(),
        }
    }

    /// The files read, lowest precedence first. Also the list to watch for reloading.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = self.user_files();
        files.extend(self.project_files());
        files
    }

    /// The user's own hosts files (OpenCode's global config dir).
    pub fn user_files(&self) -> Vec<PathBuf> {
        hosts_files_in(&self.config_dir)
    }

    /// Hosts files that come with the project (`<project>/` and `<project>/.opencode/`).
    pub fn project_files(&self) -> Vec<PathBuf> {
        let Some(project) = &self.project_dir else {
            return Vec::new();
        };
        let mut files = hosts_files_in(project);
        files.extend(hosts_files_in(&project.join(".opencode")));
        // A project inside the config dir (or the config dir itself) adds nothing of its own.
        files.retain(|file| !file.starts_with(&self.config_dir));
        files
    }
}

/// `<dir>/<stem>.jsonc` if it exists, else `<dir>/<stem>.json`.
pub fn existing_or_first(dir: &Path, stem: &str) -> PathBuf {
    let jsonc = dir.join(format!("{stem}.jsonc"));
    if jsonc.exists() {
        jsonc
    } else {
        dir.join(format!("{stem}.json"))
    }
}

fn hosts_files_in(dir: &Path) -> Vec<PathBuf> {
    vec![dir.join("hosts.jsonc"), dir.join("hosts.json")]
}

/// All configured hosts, by name.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    entries: BTreeMap<String, HostEntry>,
    /// alias -> host name, for provider hosts.
    aliases: BTreeMap<String, String>,
    /// Which file each host came from, so the CLI can edit or name the right one.
    sources: BTreeMap<String, PathBuf>,
    providers: BTreeMap<String, ProviderSpec>,
    /// Which file each provider was (last) defined in, so the CLI adds hosts to it there.
    provider_sources: BTreeMap<String, PathBuf>,
    /// Provider names the user's own config defines: a project may not replace them.
    user_providers: BTreeSet<String>,
    /// Hosts whose entry this version cannot load, by name: refused one by one, so the other hosts of
    /// the same file keep working.
    refused: BTreeMap<String, Refused>,
    /// What was ignored while loading (a project shadowing a user's host), for the CLI and the log.
    warnings: Vec<String>,
}

/// A host entry that could not be loaded, with the config error that says why and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub name: String,
    pub file: PathBuf,
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl Refused {
    /// Only a config error is about one entry; any other error is handed back.
    fn from_error(name: &str, error: Error) -> std::result::Result<Self, Error> {
        match error {
            Error::Config {
                file,
                field,
                problem,
                fix,
            } => Ok(Refused {
                name: name.to_string(),
                file,
                field,
                problem,
                fix,
            }),
            other => Err(other),
        }
    }

    pub fn error(&self) -> Error {
        Error::Config {
            file: self.file.clone(),
            field: self.field.clone(),
            problem: self.problem.clone(),
            fix: self.fix.clone(),
        }
    }
}

impl Hosts {
    /// Problems that did not stop loading, e.g. a project file that tried to redefine a user's host.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether `name` (a host or alias) is defined by the user's own config, not by a project.
    fn user_owns(&self, name: &str) -> bool {
        let canonical = self.aliases.get(name).map_or(name, String::as_str);
        self.entries
            .get(canonical)
            .is_some_and(|entry| !entry.project)
    }

    /// Host names, sorted (aliases not included).
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Looks a host up by name or alias.
    pub fn get(&self, name: &str) -> Result<&HostEntry> {
        let canonical = self.aliases.get(name).map_or(name, String::as_str);
        if let Some(refused) = self.refused.get(canonical) {
            return Err(refused.error());
        }
        self.entries
            .get(canonical)
            .ok_or_else(|| Error::UnknownHost {
                name: name.to_string(),
                known: self.names(),
            })
    }

    /// Entries that could not be loaded (the other hosts are unaffected), by name.
    pub fn refused(&self) -> impl Iterator<Item = &Refused> {
        self.refused.values()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &HostEntry> {
        self.entries.values()
    }

    /// The file (or [`INLINE_SOURCE`]) a host or alias was defined in.
    pub fn source(&self, name: &str) -> Option<&Path> {
        let canonical = self.aliases.get(name).map_or(name, String::as_str);
        self.sources.get(canonical).map(PathBuf::as_path)
    }

    /// Aliases that resolve to `name`.
    pub fn aliases_of(&self, name: &str) -> Vec<String> {
        self.aliases
            .iter()
            .filter(|(_, target)| *target == name)
            .map(|(alias, _)| alias.clone())
            .collect()
    }

    /// Provider groups for SSH workspaces, as written (their hosts are also in this map by name).
    pub fn providers(&self) -> &BTreeMap<String, ProviderSpec> {
        &self.providers
    }

    /// The file (or [`INLINE_SOURCE`]) that defines provider `name`.
    pub fn provider_source(&self, name: &str) -> Option<&Path> {
        self.provider_sources.get(name).map(PathBuf::as_path)
    }

    /// The provider that lists host `name`.
    pub fn provider_of(&self, name: &str) -> Option<&str> {
        self.providers
            .iter()
            .find(|(_, spec)| spec.hosts.iter().any(|h| h.name == name))
            .map(|(provider, _)| provider.as_str())
    }

    fn insert(&mut self, entry: HostEntry, file: &Path) {
        self.refused.remove(&entry.name);
        self.aliases.remove(&entry.name);
        self.sources.insert(entry.name.clone(), file.to_path_buf());
        self.entries.insert(entry.name.clone(), entry);
    }

    /// A later source's entry that cannot be loaded replaces an earlier one of the same name: it was meant
    /// to, and quietly using the earlier one could connect somewhere the user no longer wants.
    fn refuse(&mut self, refused: Refused) {
        self.entries.remove(&refused.name);
        self.aliases.remove(&refused.name);
        self.sources
            .insert(refused.name.clone(), refused.file.clone());
        self.refused.insert(refused.name.clone(), refused);
    }

    /// An alias shadows an earlier host of the same name: the later definition wins.
    fn insert_alias(&mut self, alias: &str, name: &str) {
        self.refused.remove(alias);
        self.entries.remove(alias);
        self.sources.remove(alias);
        self.aliases.insert(alias.to_string(), name.to_string());
    }
}

/// JSON Schema of hosts.json, as published in `schema/hosts.schema.json`.
pub fn hosts_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(HostsFile)).unwrap_or_default()
}

/// JSON Schema of the plugin options, as published in `schema/plugin-options.schema.json`.
pub fn plugin_options_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(PluginOptions)).unwrap_or_default()
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
