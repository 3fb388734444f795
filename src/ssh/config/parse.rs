//! Reading ssh_config files into lines that remember where they came from, with `Include` expanded in
//! place (OpenSSH's rules: relative paths under `~/.ssh` or `/etc/ssh`, glob, at most 16 levels).
//!
//! Parsing is separate from evaluation: the same files are evaluated for the target and for every
//! ProxyJump hop, each as its own host.

use std::path::{Path, PathBuf};

use super::lexer::{argv_split, split_line};

/// OpenSSH's `READCONF_MAX_DEPTH`.
const MAX_INCLUDE_DEPTH: usize = 16;
/// A config file larger than this is not a config file (and must not exhaust memory when a glob hits one).
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Where a line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}",
            crate::error::display_path(&self.file),
            self.line
        )
    }
}

#[derive(Debug, Clone)]
pub enum Item {
    /// `Host` with its pattern words.
    Host { patterns: Vec<String> },
    /// `Match` with its unparsed criteria (they are evaluated per host, `exec` included).
    Match { origin: Origin, criteria: String },
    /// `Include`: the files its globs matched, in glob order.
    Include { files: Vec<ConfigFile> },
    /// Any other option. `args` as `argv_split` cut them; `rest` verbatim for ProxyCommand/ProxyJump.
    Option {
        origin: Origin,
        keyword: String,
        args: Vec<String>,
        rest: String,
    },
}

#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub items: Vec<Item>,
}

/// Which kind of file: `~` and relative includes resolve differently in the user's and the system's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User,
    System,
}

/// A problem with the file and line it is on, for [`crate::error::Error::Config`].
#[derive(Debug)]
pub struct ParseError {
    pub file: PathBuf,
    pub line: usize,
    pub problem: String,
}

/// Reads `path` and everything it includes. `home` anchors `~` and relative user includes.
pub fn read(path: &Path, scope: Scope, home: Option<&Path>) -> Result<ConfigFile, ParseError> {
    read_depth(path, scope, home, 0)
}

fn read_depth(
    path: &Path,
    scope: Scope,
    home: Option<&Path>,
    depth: usize,
) -> Result<ConfigFile, ParseError> {
    let fail = |line: usize, problem: String| ParseError {
        file: path.to_path_buf(),
        line,
        problem,
    };
    if depth > MAX_INCLUDE_DEPTH {
        return Err(fail(0, "too many recursive configuration includes".into()));
    }
    let bytes = crate::config::file::read_regular(path, MAX_CONFIG_BYTES)
        .map_err(|e| fail(0, format!("cannot read it: {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut items = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let Some(line) = split_line(raw) else {
            continue;
        };
        if line.rest.is_empty() {
            let problem = format!("no argument after keyword \"{}\"", line.keyword);
            return Err(fail(number, problem));
        }
        let origin = Origin {
            file: path.to_path_buf(),
            line: number,
        };
        // OpenSSH splits every line before looking at its keyword, so bad quotes fail anywhere.
        let args = argv_split(line.rest).map_err(|p| fail(number, p))?;
        let item = match line.keyword.as_str() {
            "host" => Item::Host { patterns: args },
            "match" => Item::Match {
                origin,
                criteria: line.rest.to_string(),
            },
            "include" => {
                let mut files = Vec::new();
                for arg in &args {
                    for file in include_paths(arg, scope, home).map_err(|p| fail(number, p))? {
                        files.push(read_depth(&file, scope, home, depth + 1)?);
                    }
                }
                Item::Include { files }
            }
            _ => Item::Option {
                origin,
                keyword: line.keyword,
                args,
                rest: line.rest.to_string(),
            },
        };
        items.push(item);
    }
    Ok(ConfigFile { items })
}

/// The files one `Include` word names: anchored like OpenSSH, then globbed (sorted, as glob(3) does).
fn include_paths(arg: &str, scope: Scope, home: Option<&Path>) -> Result<Vec<PathBuf>, String> {
    let pattern = if let Some(rest) = arg.strip_prefix('~') {
        if scope == Scope::System {
            return Err(format!("bad include path {arg}"));
        }
        let Some(home) = home else {
            return Ok(Vec::new());
        };
        format!("{}{rest}", home.display())
    } else if arg.starts_with('/') {
        arg.to_string()
    } else {
        match scope {
            Scope::User => match home {
                Some(home) => format!("{}/.ssh/{arg}", home.display()),
                None => return Ok(Vec::new()),
            },
            Scope::System => format!("/etc/ssh/{arg}"),
        }
    };
    let paths = glob::glob(&pattern).map_err(|e| format!("glob failed for {pattern}: {e}"))?;
    Ok(paths
        .filter_map(|p| p.ok())
        .filter(|p| p.is_file())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_should_expand_includes_relative_to_the_user_ssh_dir() {
        let home = tempfile::tempdir().unwrap();
        let ssh = home.path().join(".ssh");
        std::fs::create_dir_all(ssh.join("conf.d")).unwrap();
        std::fs::write(ssh.join("conf.d/b.conf"), "User b\n").unwrap();
        std::fs::write(ssh.join("conf.d/a.conf"), "User a\n").unwrap();
        let config = ssh.join("config");
        std::fs::write(&config, "Include conf.d/*.conf ~/.ssh/missing\nPort 2\n").unwrap();
        let file = read(&config, Scope::User, Some(home.path())).unwrap();
        let Item::Include { files } = &file.items[0] else {
            panic!("{:?}", file.items[0]);
        };
        let users: Vec<_> = files
            .iter()
            .map(|f| match &f.items[0] {
                Item::Option { args, .. } => args[0].clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(users, ["a", "b"]);
        assert!(matches!(&file.items[1], Item::Option { origin, .. } if origin.line == 2));
    }

    #[test]
    fn read_should_report_bad_quotes_and_include_loops_with_their_line() {
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join("config");
        std::fs::write(&config, "Host a\n  User \"open\n").unwrap();
        let error = read(&config, Scope::User, Some(home.path())).unwrap_err();
        assert_eq!((error.line, error.problem.as_str()), (2, "invalid quotes"));
        std::fs::write(&config, format!("Include {}\n", config.display())).unwrap();
        let error = read(&config, Scope::User, Some(home.path())).unwrap_err();
        assert!(error.problem.contains("recursive"), "{}", error.problem);
    }
}
