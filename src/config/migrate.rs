//! OpenCode's own config (`opencode.json(c)`): adding this package's plugin entry (`init`), and
//! rewriting the entries of the two tools this package replaces (`migrate`): `opencode-remote-login`
//! (hosts for `remote_login`) and `opencode-remote-provider` (providers for SSH workspaces, from the
//! opencode-remote-ssh repository). Both are edited in the concrete syntax tree, so comments and
//! formatting stay, through [`super::edit::edit_text`] (lock, backup, atomic replace). Options moved
//! into an entry that is already ours keep their text and comments too ([`moved`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use jsonc_parser::cst::{CstArray, CstInputValue, CstNode, CstObject, CstObjectProp, CstRootNode};
use jsonc_parser::ParseOptions;
use serde_json::Value;

use super::edit::{self, invalid, names_package, plugin_spec, syntax_error, EditOutcome};
use crate::error::Result;

/// This package's plugin spec.
pub const PACKAGE: &str = "opencode-remote";

/// The tool an old plugin entry loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    /// `opencode-remote-login`: `{"hosts": {…}}` for `remote_login`.
    Login,
    /// `opencode-remote-provider` (repository opencode-remote-ssh): `{"providers": {…}, …}`.
    Provider,
}

impl Seed {
    pub fn package(self) -> &'static str {
        match self {
            Seed::Login => "opencode-remote-login",
            Seed::Provider => "opencode-remote-provider",
        }
    }
}

/// Which old tool a plugin spec loads: a package name (`opencode-remote-login`,
/// `opencode-remote-provider@1.1.0`, `npm:…`), or a path or `file:` URL into a checkout of either
/// (`/abs/opencode-remote-login`, `/abs/opencode-remote/plugin`, as opencode-remote-ssh's README shows
/// for local development).
pub fn seed_of(spec: &str) -> Option<Seed> {
    let spec = spec.strip_prefix("npm:").unwrap_or(spec);
    let bare = spec
        .rsplit_once('@')
        .filter(|(name, _)| !name.is_empty() && !name.contains('/'))
        .map_or(spec, |(name, _)| name);
    for seed in [Seed::Login, Seed::Provider] {
        if bare == seed.package() {
            return Some(seed);
        }
    }
    let path = spec
        .strip_prefix("file://")
        .or_else(|| spec.strip_prefix("file:"))
        .unwrap_or(spec);
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    if parts.len() < 2 && !path.starts_with(['/', '.', '~']) {
        return None;
    }
    for (i, part) in parts.iter().enumerate() {
        match *part {
            "opencode-remote-login" => return Some(Seed::Login),
            "opencode-remote-provider" | "opencode-remote-ssh" => return Some(Seed::Provider),
            // opencode-remote-ssh's checkout, often cloned as `opencode-remote`: its plugin lives in
            // `plugin/` (this package's own `plugin/` has no package.json and is never a spec).
            "opencode-remote" if parts.get(i + 1) == Some(&"plugin") => {
                return Some(Seed::Provider)
            }
            _ => {}
        }
    }
    None
}

/// An old entry found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldEntry {
    pub file: PathBuf,
    pub spec: String,
    pub seed: Seed,
}

/// The OpenCode config files that may name plugins: the global ones, and with a project its own and
/// its `.opencode/` ones. Only those that exist.
pub fn opencode_config_files(config_dir: &Path, project: Option<&Path>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["config.json", "opencode.json", "opencode.jsonc"]
        .iter()
        .map(|name| config_dir.join(name))
        .collect();
    if let Some(project) = project {
        for dir in [project.to_path_buf(), project.join(".opencode")] {
            files.extend(["opencode.json", "opencode.jsonc"].map(|n| dir.join(n)));
        }
    }
    let mut seen = Vec::new();
    files.retain(|f| {
        let keep = f.is_file() && !seen.contains(f);
        seen.push(f.clone());
        keep
    });
    files
}

/// The old entries of `files` (read only; a file that does not parse is skipped: doctor reports
/// config errors elsewhere).
pub fn old_entries(files: &[PathBuf]) -> Vec<OldEntry> {
    let mut found = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let Ok(value) =
            jsonc_parser::parse_to_serde_value::<Value>(&text, &ParseOptions::default())
        else {
            continue;
        };
        let entries = value.get("plugin").and_then(Value::as_array);
        for entry in entries.into_iter().flatten() {
            let spec = entry
                .as_str()
                .or_else(|| entry.get(0).and_then(Value::as_str));
            if let Some((spec, seed)) = spec.and_then(|s| seed_of(s).map(|seed| (s, seed))) {
                found.push(OldEntry {
                    file: file.clone(),
                    spec: spec.to_string(),
                    seed,
                });
            }
        }
    }
    found
}

/// For `doctor`: each old entry in OpenCode's config (global, and the project's), as (detail, fix).
pub fn doctor_findings(sources: &super::ConfigSources) -> Vec<(String, String)> {
    let files = opencode_config_files(&sources.config_dir, sources.project_dir.as_deref());
    old_entries(&files)
        .into_iter()
        .map(|old| {
            let what = if old.spec == old.seed.package() {
                old.spec.clone()
            } else {
                format!("{} ({})", old.spec, old.seed.package())
            };
            let detail = format!(
                "{} loads {what}, which opencode-remote replaces",
                crate::error::display_path(&old.file),
            );
            let project = match &sources.project_dir {
                Some(dir) => format!(" --project {}", dir.display()),
                None => String::new(),
            };
            let fix = format!(
                "opencode-remote migrate{project} (rewrites it into opencode-remote's entry, keeping \
                 its hosts and providers)"
            );
            (detail, fix)
        })
        .collect()
}

/// Options of opencode-remote-provider that have no effect here, and why.
const DROPPED: [(&str, &str); 3] = [
    (
        "installRoot",
        "the stub always lives in ~/.opencode-remote on the host",
    ),
    (
        "tunnel",
        "the tunnel is a channel of the host's one SSH connection; ConnectTimeout in ~/.ssh/config \
         sets the connect timeout",
    ),
    (
        "defaults",
        "first_available is the strategy, set per provider; the stub needs no port",
    ),
];

/// What `migrate` did (or, with a dry run, would do) to one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migration {
    /// The old specs replaced.
    pub replaced: Vec<String>,
    /// What the user should know: options dropped, hosts that will be refused, names that clashed.
    pub notes: Vec<String>,
}

/// Rewrite the old entries of a config file's text into this package's entry, comments kept.
/// `Ok(None)`: nothing to do.
pub fn migrate_text(text: &str, file: &Path) -> Result<Option<(String, Migration)>> {
    let root =
        CstRootNode::parse(text, &ParseOptions::default()).map_err(|e| syntax_error(file, e))?;
    let mut moves = Moves::for_text(text);
    let Some(migration) = migrate_tree(&root, &mut moves)? else {
        return Ok(None);
    };
    let migrated = moves.render(&root).ok_or_else(|| {
        invalid(
            file,
            "plugin",
            "the old entries' options could not be moved with their comments",
            "Move them into the opencode-remote entry by hand; nothing was written.",
        )
    })?;
    check_parses(file, &migrated)?;
    Ok(Some((migrated, migration)))
}

/// Rewrite the old entries of one config tree into this package's entry; parts moved into an entry
/// that is already ours are marked in `moves`. `Ok(None)`: nothing to do.
fn migrate_tree(root: &CstRootNode, moves: &mut Moves) -> Result<Option<Migration>> {
    let Some(plugins) = root
        .object_value()
        .and_then(|top| top.array_value("plugin"))
    else {
        return Ok(None);
    };
    let olds: Vec<(CstNode, String, Seed)> = plugins
        .elements()
        .into_iter()
        .filter_map(|element| {
            let spec = plugin_spec(&element)?;
            seed_of(&spec).map(|seed| (element, spec, seed))
        })
        .collect();
    if olds.is_empty() {
        return Ok(None);
    }
    let shared = shared_parts(&olds);
    let mut migration = Migration::default();
    let mut target = plugins
        .elements()
        .into_iter()
        .find(|e| plugin_spec(e).is_some_and(|s| names_package(&s, PACKAGE)));
    for (element, spec, seed) in olds {
        let options = element
            .as_array()
            .and_then(|tuple| tuple.elements().get(1).cloned())
            .and_then(|o| o.as_object());
        if let Some(options) = &options {
            note_options(options, seed, &mut migration.notes);
        }
        match &target {
            // The first old entry becomes ours in place: its comments and options' layout stay.
            None => {
                rename(&element, PACKAGE);
                if let Some(options) = &options {
                    drop_ignored(options);
                }
                target = Some(element);
            }
            // Another entry is already ours: move these options into it, then drop the old entry.
            Some(ours) => {
                if let Some(options) = &options {
                    drop_ignored(options);
                    let ours = options_of(&plugins, ours)?;
                    let mut merge = Merge {
                        spec: &spec,
                        shared: &shared,
                        moves,
                        notes: &mut migration.notes,
                    };
                    merge.options(&ours, options);
                    target = plugin_node(&plugins);
                }
                element.remove();
            }
        }
        migration.replaced.push(spec);
    }
    Ok(Some(migration))
}

/// What `init` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    Added,
    AlreadyThere,
    /// Old entries are there: `migrate` replaces them (with their options); adding ours beside them
    /// would load both.
    OldEntries(Vec<String>),
}

/// Add `"opencode-remote"` to the `plugin` list, unless it (or an old entry) is already there.
pub fn init_tree(root: &CstRootNode, file: &Path) -> Result<Init> {
    let top = root.object_value_or_set();
    let Some(plugins) = top.array_value_or_create("plugin") else {
        return Err(invalid(
            file,
            "plugin",
            "\"plugin\" is not a list",
            "Make it a list of plugin names, such as [\"opencode-remote\"].",
        ));
    };
    let specs: Vec<String> = plugins.elements().iter().filter_map(plugin_spec).collect();
    if specs.iter().any(|s| names_package(s, PACKAGE)) {
        return Ok(Init::AlreadyThere);
    }
    let old: Vec<String> = specs.into_iter().filter(|s| seed_of(s).is_some()).collect();
    if !old.is_empty() {
        return Ok(Init::OldEntries(old));
    }
    plugins.append(CstInputValue::String(PACKAGE.into()));
    Ok(Init::Added)
}

/// `init` on a file: the outcome, and what was found.
pub fn init_file(file: &Path) -> Result<(EditOutcome, Init)> {
    let mut found = Init::AlreadyThere;
    let outcome = edit::edit_tree(
        file,
        |root| {
            found = init_tree(root, file)?;
            Ok(found == Init::Added)
        },
        |_, text| check_parses(file, text),
    )?;
    Ok((outcome, found))
}

/// `migrate` on a file; with `dry_run` nothing is written (`outcome.changed` says whether it would be).
pub fn migrate_file(file: &Path, dry_run: bool) -> Result<(EditOutcome, Option<Migration>)> {
    let mut migration = None;
    if dry_run {
        let text = std::fs::read_to_string(file)
            .map_err(|e| crate::error::Error::io(format!("reading {}", file.display()), e))?;
        let migration = migrate_text(&text, file)?.map(|(_, migration)| migration);
        let outcome = EditOutcome {
            file: file.to_path_buf(),
            backup: None,
            changed: migration.is_some(),
        };
        return Ok((outcome, migration));
    }
    let outcome = edit::edit_text(file, |text| {
        Ok(migrate_text(text, file)?.map(|(migrated, found)| {
            migration = Some(found);
            migrated
        }))
    })?;
    Ok((outcome, migration))
}

/// The migrated file must still parse. Host entries are not checked here: one this version cannot load
/// (`"os": "windows"`) is refused on its own when loading, and `migrate` has already named it.
fn check_parses(file: &Path, text: &str) -> Result<()> {
    jsonc_parser::parse_to_serde_value::<Value>(text, &ParseOptions::default())
        .map(drop)
        .map_err(|e| invalid(file, "(file)", &e.to_string(), "This is a bug: report it."))
}

fn rename(element: &CstNode, to: &str) {
    let node = match element.as_array() {
        Some(tuple) => tuple.elements().into_iter().next(),
        None => Some(element.clone()),
    };
    if let Some(literal) = node.and_then(|n| n.as_string_lit()) {
        literal.set_raw_value(format!("\"{to}\""));
    }
}

fn drop_ignored(options: &CstObject) {
    for (key, _) in DROPPED {
        if let Some(prop) = options.get(key) {
            prop.remove();
        }
    }
}

fn note_options(options: &CstObject, seed: Seed, notes: &mut Vec<String>) {
    for (key, why) in DROPPED {
        if options.get(key).is_some() {
            notes.push(format!(
                "{}: removed `{key}`: it has no effect here ({why})",
                seed.package()
            ));
        }
    }
    let Ok(value) = to_value(&options.clone().into()) else {
        return;
    };
    for (name, host) in value
        .get("hosts")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if host.get("os").and_then(Value::as_str) == Some("windows") {
            notes.push(format!(
                "host {name}: kept, but refused until Windows remotes are supported (\"os\": \"windows\"); \
                 the other hosts work"
            ));
        }
    }
}

/// This package's element (after an edit, nodes may have been replaced).
fn plugin_node(plugins: &CstArray) -> Option<CstNode> {
    plugins
        .elements()
        .into_iter()
        .find(|e| plugin_spec(e).is_some_and(|s| names_package(&s, PACKAGE)))
}

/// The options object of our entry, turning `"opencode-remote"` into `["opencode-remote", {}]` first.
fn options_of(plugins: &CstArray, ours: &CstNode) -> Result<CstObject> {
    let broken = || {
        crate::error::Error::io(
            "editing the plugin list",
            std::io::Error::other("unexpected plugin entry shape"),
        )
    };
    if let Some(tuple) = ours.as_array() {
        return match tuple.elements().get(1) {
            Some(options) => options.as_object().ok_or_else(broken),
            None => tuple
                .append(CstInputValue::Object(Vec::new()))
                .as_object()
                .ok_or_else(broken),
        };
    }
    let spec = plugin_spec(ours).ok_or_else(broken)?;
    let index = ours.element_index().ok_or_else(broken)?;
    ours.clone().remove();
    let tuple = plugins.insert(
        index,
        CstInputValue::Array(vec![spec.into(), CstInputValue::Object(Vec::new())]),
    );
    tuple
        .as_array()
        .and_then(|t| t.elements().get(1).and_then(|o| o.as_object()))
        .ok_or_else(broken)
}

/// The options keys (`hosts`, `providers`) and providers (`providers/<name>`) that more than one old
/// entry defines: these are built up part by part in ours, the others move whole (with every comment).
fn shared_parts(olds: &[(CstNode, String, Seed)]) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut shared = HashSet::new();
    for (element, _, _) in olds {
        let Some(options) = element
            .as_array()
            .and_then(|t| t.elements().get(1).cloned())
        else {
            continue;
        };
        let Ok(Value::Object(options)) = to_value(&options) else {
            continue;
        };
        let providers = options.get("providers").and_then(Value::as_object);
        let names = providers
            .into_iter()
            .flatten()
            .map(|(name, _)| format!("providers/{name}"));
        for part in options.keys().cloned().chain(names) {
            if !seen.insert(part.clone()) {
                shared.insert(part);
            }
        }
    }
    shared
}

/// Moving one old entry's options into ours.
struct Merge<'a> {
    spec: &'a str,
    shared: &'a HashSet<String>,
    moves: &'a mut Moves,
    notes: &'a mut Vec<String>,
}

impl Merge<'_> {
    /// Move `from` (an old entry's options) into our options, as written: hosts and providers by name,
    /// other keys as a whole; a name ours already has stays as it is, with a note.
    fn options(&mut self, ours: &CstObject, from: &CstObject) {
        for prop in from.properties() {
            let key = prop.decoded_name().unwrap_or_default();
            let existing = ours.get(&key);
            let container = matches!(key.as_str(), "hosts" | "providers");
            let existing = match existing {
                None if container && self.shared.contains(&key) => {
                    let created = ours.append(&key, CstInputValue::Object(Vec::new()));
                    self.moves.created(&created, &prop);
                    created
                }
                None => {
                    self.moves.property(ours, &prop);
                    continue;
                }
                Some(existing) => existing,
            };
            match (key.as_str(), existing.object_value(), prop.object_value()) {
                ("hosts", Some(hosts), Some(new)) => {
                    for host in new.properties() {
                        let name = host.decoded_name().unwrap_or_default();
                        if hosts.get(&name).is_some() {
                            self.notes.push(format!(
                                "{}: host {name}: not moved, opencode-remote already defines it",
                                self.spec
                            ));
                        } else {
                            self.moves.property(&hosts, &host);
                        }
                    }
                }
                ("providers", Some(providers), Some(new)) => {
                    for provider in new.properties() {
                        self.provider(&providers, &provider);
                    }
                }
                _ => self.notes.push(format!(
                    "{}: `{key}`: not moved, opencode-remote already sets it",
                    self.spec
                )),
            }
        }
    }

    fn provider(&mut self, providers: &CstObject, provider: &CstObjectProp) {
        let name = provider.decoded_name().unwrap_or_default();
        let existing = match providers.get(&name).and_then(|p| p.object_value()) {
            Some(existing) => existing,
            None if self.shared.contains(&format!("providers/{name}")) => {
                // Built up here, so a later old entry's hosts can join it.
                let created = providers.append(&name, CstInputValue::Object(Vec::new()));
                self.moves.created(&created, provider);
                let created = created.object_value_or_set();
                let settings = provider.object_value().map(|p| p.properties());
                for setting in settings.into_iter().flatten() {
                    if setting.decoded_name().as_deref() != Some("hosts") {
                        self.moves.property(&created, &setting);
                    }
                }
                created
            }
            None => {
                self.moves.property(providers, provider);
                return;
            }
        };
        let fresh = existing.get("hosts").is_none();
        let list = existing.array_value_or_set("hosts");
        if fresh {
            // One host per line, so the comments after them stay line comments.
            list.ensure_multiline();
        }
        let taken: Vec<String> = list.elements().iter().filter_map(host_name).collect();
        let hosts = provider
            .object_value()
            .and_then(|p| p.array_value("hosts"))
            .map(|a| a.elements())
            .unwrap_or_default();
        for host in hosts {
            let host_name = host_name(&host).unwrap_or_default();
            if taken.contains(&host_name) {
                self.notes.push(format!(
                    "{}: provider {name}, host {host_name}: not moved, opencode-remote already defines it",
                    self.spec
                ));
            } else {
                self.moves.element(&list, &host);
            }
        }
    }
}

/// The `name` of a provider's host entry.
fn host_name(host: &CstNode) -> Option<String> {
    let value = to_value(host).ok()?;
    value.get("name")?.as_str().map(str::to_string)
}

fn to_value(node: &CstNode) -> Result<Value> {
    let text = node.to_string();
    Ok(
        jsonc_parser::parse_to_serde_value::<Value>(&text, &ParseOptions::default())
            .unwrap_or(Value::Null),
    )
}

#[path = "migrate/moved.rs"]
mod moved;
use moved::Moves;

#[cfg(test)]
#[path = "migrate/tests.rs"]
mod tests;
