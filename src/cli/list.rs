//! `hosts list` and `providers list`: every host with where it is defined, its provider, user, port,
//! labels and aliases, within 80 columns (details wrap onto indented lines), or as JSON.

use serde_json::{json, Value};

use super::style::Paint;
use crate::config::address::parse_address;
use crate::config::{HostEntry, Hosts};
use crate::error::display_path;

/// Lines are kept to this width: a terminal's default, and what fits beside a second window.
pub const WIDTH: usize = 80;
const INDENT: &str = "    ";

/// One host (or one refused entry) as the list shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub name: String,
    /// `user@host:port` with what the entry sets (the rest comes from ~/.ssh/config).
    pub address: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub provider: Option<String>,
    pub workspace_only: bool,
    pub labels: Vec<String>,
    pub aliases: Vec<String>,
    pub identity_file: Option<String>,
    /// agent, model, directory: `key value` pairs for remote_login.
    pub run: Vec<(&'static str, String)>,
    pub source: String,
    /// Why the entry cannot be used, when it is refused.
    pub refused: Option<String>,
}

pub fn rows(hosts: &Hosts) -> Vec<Row> {
    let mut rows: Vec<Row> = hosts.iter().map(|e| row(hosts, e)).collect();
    rows.extend(hosts.refused().map(|r| Row {
        name: r.name.clone(),
        source: display_path(&r.file),
        refused: Some(format!("{}: {}. {}", r.field, r.problem, r.fix)),
        ..Row::default()
    }));
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

fn row(hosts: &Hosts, entry: &HostEntry) -> Row {
    let provider = hosts.providers().iter().find_map(|(name, spec)| {
        spec.hosts
            .iter()
            .find(|h| h.name == entry.name)
            .map(|h| (name.clone(), h.labels.clone()))
    });
    let run = [
        ("agent", &entry.agent),
        ("model", &entry.model),
        ("directory", &entry.directory),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
    .collect();
    Row {
        name: entry.name.clone(),
        address: address_of(entry),
        user: entry.user.clone(),
        port: entry.port,
        workspace_only: entry.workspace_only,
        labels: provider.as_ref().map(|p| p.1.clone()).unwrap_or_default(),
        provider: provider.map(|p| p.0),
        aliases: hosts.aliases_of(&entry.name),
        identity_file: entry
            .identity_file
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        run,
        source: hosts
            .source(&entry.name)
            .map(display_path)
            .unwrap_or_default(),
        refused: None,
    }
}

/// The address with the entry's own `user` and `port` folded in.
fn address_of(entry: &HostEntry) -> String {
    let Ok(parsed) = parse_address(&entry.address) else {
        return entry.address.clone();
    };
    let user = entry.user.clone().or(parsed.user);
    let port = entry.port.or(parsed.port);
    let host = if parsed.host.contains(':') {
        format!("[{}]", parsed.host)
    } else {
        parsed.host
    };
    let mut text = user.map(|u| format!("{u}@")).unwrap_or_default();
    text.push_str(&host);
    if let Some(port) = port {
        text.push_str(&format!(":{port}"));
    }
    text
}

pub fn to_json(row: &Row) -> Value {
    if let Some(refused) = &row.refused {
        return json!({"name": row.name, "refused": refused, "source": row.source});
    }
    let mut value = json!({
        "name": row.name,
        "address": row.address,
        "user": row.user,
        "port": row.port,
        "provider": row.provider,
        "workspaceOnly": row.workspace_only,
        "labels": row.labels,
        "aliases": row.aliases,
        "identityFile": row.identity_file,
        "source": row.source,
    });
    for (key, v) in &row.run {
        value[*key] = json!(v);
    }
    value
}

/// The text form: the name and address on the first line, details on indented lines below.
/// Text from config files is made printable (no control characters) before the colour is added.
pub fn render(rows: &[Row], warnings: &[String], paint: Paint) -> String {
    let wrap = |text: &str, indent: &str| wrap(&super::printable(text), indent);
    let mut out = String::new();
    for row in rows {
        if let Some(refused) = &row.refused {
            let head = format!("{}  refused: {refused}", row.name);
            out.push_str(&colour_first(&wrap(&head, ""), "refused", |t| {
                paint.fail(t)
            }));
            out.push_str(&wrap(&format!("from {}", row.source), INDENT));
            continue;
        }
        let mut head = format!("{}  {}", row.name, row.address);
        if row.workspace_only {
            head.push_str("  (workspaces only)");
        }
        out.push_str(&wrap(&head, ""));
        let mut details = Vec::new();
        if let Some(provider) = &row.provider {
            details.push(format!("provider {provider}"));
        }
        if !row.labels.is_empty() {
            details.push(format!("labels {}", row.labels.join(" ")));
        }
        if !row.aliases.is_empty() {
            details.push(format!("aliases {}", row.aliases.join(" ")));
        }
        details.extend(row.run.iter().map(|(k, v)| format!("{k} {v}")));
        if !details.is_empty() {
            out.push_str(&wrap(&details.join(", "), INDENT));
        }
        if let Some(key) = &row.identity_file {
            out.push_str(&wrap(&format!("key {key}"), INDENT));
        }
        out.push_str(&wrap(&format!("from {}", row.source), INDENT));
    }
    for warning in warnings {
        let text = wrap(&format!("warning: {warning}"), "");
        out.push_str(&colour_first(&text, "warning", |t| paint.warn(t)));
    }
    out
}

/// `opencode-remote-ssh`'s `list` layout: one block per provider.
pub fn render_providers(hosts: &Hosts, rows: &[Row]) -> String {
    let mut out = String::new();
    for (name, spec) in hosts.providers() {
        out.push_str(&wrap(&format!("Provider: {name}"), ""));
        out.push_str(&wrap(&format!("Strategy: {}", strategy_name(spec)), "  "));
        if !spec.labels.is_empty() {
            out.push_str(&wrap(&format!("Labels: {}", spec.labels.join(", ")), "  "));
        }
        for host in &spec.hosts {
            let Some(row) = rows.iter().find(|r| r.name == host.name) else {
                continue;
            };
            let mut line = format!("- {}: {}", row.name, row.address);
            if !row.labels.is_empty() {
                line.push_str(&format!(" (labels {})", row.labels.join(" ")));
            }
            if !row.aliases.is_empty() {
                line.push_str(&format!(" (aliases {})", row.aliases.join(" ")));
            }
            out.push_str(&wrap_indented(&line, "  ", "    "));
        }
        if spec.hosts.is_empty() {
            out.push_str("  (no hosts)\n");
        }
    }
    out
}

fn strategy_name(spec: &crate::config::ProviderSpec) -> String {
    serde_json::to_value(spec.strategy)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Word-wrap `text` to [`WIDTH`]: the first line starts with `indent`, later ones with `indent` plus
/// four spaces. A word longer than a line (a long path) stays whole rather than being cut.
pub fn wrap(text: &str, indent: &str) -> String {
    wrap_indented(text, indent, &format!("{indent}{INDENT}"))
}

fn wrap_indented(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut empty = true;
    // Empty words are the extra spaces of a double space (kept: they separate columns), except at the
    // start of a wrapped line.
    for word in text.split(' ') {
        if word.is_empty() && empty {
            continue;
        }
        let width = line.chars().count();
        if !empty && width + 1 + word.chars().count() > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// Colour the first occurrence of `word` (the text was wrapped without colour, so widths hold).
fn colour_first(text: &str, word: &str, paint: impl Fn(&str) -> String) -> String {
    match text.find(word) {
        Some(at) => format!("{}{}{}", &text[..at], paint(word), &text[at + word.len()..]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_fits_80_columns_and_words_stay_whole() {
        let text = "provider default, labels linux production eu-west-1 gpu big-memory, aliases protag tagmgr manager the-old-name, agent build, model opencode/big-pickle";
        let out = wrap(text, INDENT);
        for line in out.lines() {
            assert!(line.chars().count() <= WIDTH, "{line:?}");
            assert!(line.starts_with(INDENT));
        }
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words, text.split(' ').collect::<Vec<_>>());
        assert_eq!(wrap("short", ""), "short\n");
    }

    #[test]
    fn a_provider_host_shows_its_provider_user_port_labels_and_aliases() {
        let row = Row {
            name: "prod-web-1".into(),
            address: "ops@203.0.113.10:22".into(),
            provider: Some("default".into()),
            workspace_only: true,
            labels: vec!["linux".into(), "production".into()],
            aliases: vec!["web".into()],
            identity_file: Some("~/.ssh/id_ed25519".into()),
            source: "opencode.json (plugin options)".into(),
            ..Row::default()
        };
        let refused = Row {
            name: "win".into(),
            source: "~/.config/opencode/hosts.json".into(),
            refused: Some("hosts.win.os: Windows hosts are not supported yet; only \"linux\" and \"macos\" are. Set it to \"linux\" or \"macos\"; Windows hosts are not supported yet.".into()),
            ..Row::default()
        };
        let out = render(&[row, refused], &[], Paint::default());
        assert_eq!(
            out,
            "prod-web-1  ops@203.0.113.10:22  (workspaces only)\n    \
             provider default, labels linux production, aliases web\n    \
             key ~/.ssh/id_ed25519\n    from opencode.json (plugin options)\n\
             win  refused: hosts.win.os: Windows hosts are not supported yet; only \"linux\"\n    \
             and \"macos\" are. Set it to \"linux\" or \"macos\"; Windows hosts are not\n    \
             supported yet.\n    from ~/.config/opencode/hosts.json\n"
        );
    }
}
