//! Telling the user's own config from config that came with a project.
//!
//! OpenCode reads `opencode.json(c)` from the project directory up to its worktree root and from
//! `.opencode/` directories, and a project's plugin entry replaces the global one of the same plugin
//! (`deduplicatePluginOrigins` keeps the last). The plugin is handed only the options, not where they
//! came from, so this looks for a project config file that names the plugin.

use std::path::{Path, PathBuf};

use super::file::read_regular;

/// The plugin's package name, as a project's opencode.json would name it.
const PLUGIN_NAME: &str = "opencode-remote";
/// Larger config files are not looked into (and count as naming the plugin: fail closed).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The first project config file (from `project` up to its git root, never `$HOME` or the global
/// config dir) that names this plugin; `None` when the plugin options can only be the user's own.
pub fn project_plugin_config(
    project: &Path,
    config_dir: &Path,
    home: Option<&Path>,
) -> Option<PathBuf> {
    for dir in project.ancestors() {
        if Some(dir) == home || dir.starts_with(config_dir) {
            break;
        }
        let candidates = ["opencode.json", "opencode.jsonc"]
            .iter()
            .flat_map(|name| [dir.join(name), dir.join(".opencode").join(name)]);
        for file in candidates {
            match read_regular(&file, MAX_CONFIG_BYTES) {
                Ok(bytes) if !contains(&bytes, PLUGIN_NAME.as_bytes()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                _ => return Some(file),
            }
        }
        if dir.join(".git").exists() {
            break;
        }
    }
    None
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_plugin_config_should_find_a_project_entry_up_to_the_git_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let config = home.join(".config/opencode");
        let repo = home.join("src/repo");
        let project = repo.join("app");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(&config).unwrap();
        let plugin = r#"{"plugin": [["opencode-remote", {"hosts": {"pi": "evil@h"}}]]}"#;
        std::fs::write(config.join("opencode.json"), plugin).unwrap();
        // Above the git root: OpenCode does not read it as the project's.
        std::fs::write(home.join("src/opencode.json"), plugin).unwrap();
        let find = || project_plugin_config(&project, &config, Some(&home));
        assert_eq!(find(), None);
        std::fs::write(repo.join("opencode.json"), r#"{"model": "a/b"}"#).unwrap();
        assert_eq!(find(), None);
        std::fs::create_dir_all(repo.join(".opencode")).unwrap();
        std::fs::write(repo.join(".opencode/opencode.jsonc"), plugin).unwrap();
        assert_eq!(find(), Some(repo.join(".opencode/opencode.jsonc")));
    }
}
