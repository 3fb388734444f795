//! `~/.ssh/config` resolution: turns a [`HostEntry`] into the concrete [`SshTarget`] to dial, so that
//! `ssh pi` and `remote_login host=pi` agree.
//!
//! Precedence follows OpenSSH, where the command line beats the config file: explicit entry fields, then
//! the parts of the entry's address, then `~/.ssh/config` (first match wins), then defaults.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh2_config::{HostParams, ParseRule, SshConfig};

use crate::config::address::parse_address;
use crate::config::{HostEntry, HostKeyPolicy};
use crate::error::{display_path, Error, Result};

pub const DEFAULT_PORT: u16 = 22;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// OpenSSH's compiled-in `GlobalKnownHostsFile`.
const DEFAULT_GLOBAL_KNOWN_HOSTS: [&str; 2] =
    ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];
/// OpenSSH has no limit and simply recurses; a real chain is 1–3 hops, so deeper is treated as a loop.
const MAX_JUMP_DEPTH: usize = 8;

/// Everything needed to open one SSH connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The configured host name: the only thing shown to the model. Jump hosts carry their target's name,
    /// so an error on the way is still reported under a name the user configured.
    pub name: String,
    pub hostname: String,
    pub port: u16,
    pub user: String,
    /// Empty means "try the default keys" (`~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`).
    pub identity_files: Vec<PathBuf>,
    pub identities_only: bool,
    /// The whole chain of jump hosts, first hop first, already flattened: each hop's own `proxy_jump` is
    /// empty. Like OpenSSH, only the first hop's own ProxyJump is followed (it becomes the earlier hops).
    pub proxy_jump: Vec<SshTarget>,
    pub known_hosts_files: Vec<PathBuf>,
    pub host_key_policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    pub keepalive_interval: Duration,
    /// `ProxyCommand`, tokens already expanded: run with `sh -c`, its stdin/stdout carry the
    /// connection. `None` also for `ProxyCommand none`.
    pub proxy_command: Option<String>,
    /// `HostKeyAlias`: known_hosts lines are looked up and learned under this name instead of the
    /// host name and port.
    pub host_key_alias: Option<String>,
    /// `GlobalKnownHostsFile` (default `/etc/ssh/ssh_known_hosts{,2}`): read after
    /// `known_hosts_files`, never written.
    pub global_known_hosts_files: Vec<PathBuf>,
    /// `CertificateFile`: user certificates to offer with the identities.
    pub certificate_files: Vec<PathBuf>,
}

impl SshTarget {
    /// `user@host:port`, for logs and the CLI only: never show it to the model.
    pub fn address(&self) -> String {
        if self.hostname.contains(':') {
            format!("{}@[{}]:{}", self.user, self.hostname, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.hostname, self.port)
        }
    }
}

/// Resolves against `$HOME/.ssh/config` when that file exists.
pub fn resolve(entry: &HostEntry) -> Result<SshTarget> {
    let env = Env::from_process();
    let path = env
        .home
        .as_ref()
        .map(|home| home.join(".ssh").join("config"))
        .filter(|p| p.is_file());
    resolve_in(entry, path.as_deref(), &env)
}

/// Resolves against the given ssh config file (`None`: no ssh config at all).
pub fn resolve_with(entry: &HostEntry, ssh_config: Option<&Path>) -> Result<SshTarget> {
    resolve_in(entry, ssh_config, &Env::from_process())
}

/// The process environment the resolution depends on, passed in so tests never mutate the real one.
struct Env {
    home: Option<PathBuf>,
    local_user: Option<String>,
}

impl Env {
    fn from_process() -> Self {
        let var = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        Env {
            home: var("HOME").map(PathBuf::from),
            local_user: var("USER").or_else(|| var("LOGNAME")),
        }
    }
}

fn resolve_in(entry: &HostEntry, ssh_config: Option<&Path>, env: &Env) -> Result<SshTarget> {
    let file = ssh_config.map_or_else(|| PathBuf::from("~/.ssh/config"), Path::to_path_buf);
    let config = ssh_config
        .map(|path| load_ssh_config(path, env))
        .transpose()?;
    let resolver = Resolver {
        config,
        file,
        env,
        name: &entry.name,
    };
    let hop = Hop {
        spec: &entry.address,
        user: entry.user.clone(),
        port: entry.port,
        identity_file: entry.identity_file.clone(),
        jumps: entry.proxy_jump.as_deref().map(split_jumps),
        // The entry's policy is not optional and defaults to strict, so only accept-new is an explicit choice
        // that can override ~/.ssh/config.
        policy: (entry.host_key_policy == HostKeyPolicy::AcceptNew)
            .then_some(HostKeyPolicy::AcceptNew),
    };
    let mut target = resolver.target(&hop, None, &mut Vec::new())?;
    if entry.project {
        // A cloned repository names this host: learning an unknown key (accept-new from
        // ~/.ssh/config) would let it send the session to any server it likes, so the whole chain
        // is strict.
        target.host_key_policy = HostKeyPolicy::Strict;
        for jump in &mut target.proxy_jump {
            jump.host_key_policy = HostKeyPolicy::Strict;
        }
    }
    log::debug!(
        "host '{}' resolved to {} via {} jump(s)",
        target.name,
        target.address(),
        target.proxy_jump.len()
    );
    Ok(target)
}

/// ssh2-config does not know `Match`, and without this would file the options of a Match block under the
/// preceding `Host`. `Match all` is `Host *`; any other Match block is skipped (it matches no host), which
/// is safer than guessing. Limitation: Match inside an `Include`d file is not rewritten.
fn rewrite_match_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let keyword_end = trimmed
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(trimmed.len());
        if trimmed[..keyword_end].eq_ignore_ascii_case("match") {
            let args =
                trimmed[keyword_end..].trim_start_matches(|c: char| c.is_whitespace() || c == '=');
            let all = args
                .split_whitespace()
                .next()
                .is_some_and(|a| a.eq_ignore_ascii_case("all"));
            out.push_str(if all { "Host *" } else { "Host !*" });
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn load_ssh_config(path: &Path, env: &Env) -> Result<SshConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| Error::io(format!("reading {}", display_path(path)), err))?;
    let text = rewrite_match_blocks(&text);
    let mut config = SshConfig::default();
    if let Some(home) = &env.home {
        config = config.home_dir(home);
    }
    let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
    config
        .parse(&mut BufReader::new(text.as_bytes()), rules)
        .map_err(|err| Error::Config {
            file: path.to_path_buf(),
            field: "(ssh config)".into(),
            problem: err.to_string(),
            fix: "Fix that setting; `ssh -G <host>` shows how OpenSSH reads the file.".into(),
        })
}

fn split_jumps(list: &str) -> Vec<String> {
    if list.eq_ignore_ascii_case("none") {
        return Vec::new();
    }
    list.split(',').map(str::to_string).collect()
}

/// One hop to resolve: the entry itself, or a jump host named in a ProxyJump.
struct Hop<'a> {
    spec: &'a str,
    user: Option<String>,
    port: Option<u16>,
    identity_file: Option<PathBuf>,
    /// `None`: take ProxyJump from the ssh config.
    jumps: Option<Vec<String>>,
    policy: Option<HostKeyPolicy>,
}

/// What a jump host takes from the hop it serves when its own ssh config says nothing.
struct Inherited {
    known_hosts_files: Vec<PathBuf>,
    host_key_policy: HostKeyPolicy,
}

struct Resolver<'a> {
    config: Option<SshConfig>,
    file: PathBuf,
    env: &'a Env,
    name: &'a str,
}

impl Resolver<'_> {
    fn error(&self, field: impl Into<String>, problem: impl Into<String>, fix: &str) -> Error {
        Error::Config {
            file: self.file.clone(),
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// `stack` holds the aliases being resolved above this hop, to stop ProxyJump loops.
    fn target(
        &self,
        hop: &Hop,
        inherited: Option<&Inherited>,
        stack: &mut Vec<String>,
    ) -> Result<SshTarget> {
        let fix = "Use user@host:port, host, [ipv6]:port or an alias from ~/.ssh/config.";
        let address = parse_address(hop.spec)
            .map_err(|p| self.error(format!("ProxyJump {:?}", hop.spec), p, fix))?;
        let alias = address.host.clone();
        if stack.contains(&alias) || stack.len() >= MAX_JUMP_DEPTH {
            let chain = stack
                .iter()
                .chain([&alias])
                .cloned()
                .collect::<Vec<_>>()
                .join(" -> ");
            let fix =
                "Make sure no host is, directly or through other jump hosts, its own ProxyJump.";
            return Err(self.error(
                format!("ProxyJump of '{}'", self.name),
                format!("jump chain loops: {chain}"),
                fix,
            ));
        }
        let params = self.config.as_ref().map(|c| c.query(&alias));
        let params = params.as_ref();
        let hostname = params
            .and_then(|p| p.host_name.as_deref())
            .map_or_else(|| alias.clone(), |h| expand_tokens(h, &[('h', &alias)]));
        let port = hop
            .port
            .or(address.port)
            .or(params.and_then(|p| p.port))
            .unwrap_or(DEFAULT_PORT);
        if port == 0 {
            // Found by fuzzing: `Port 0` parses, and would only fail later as an unreachable host.
            return Err(self.error(
                format!("Host {alias} / Port"),
                "port 0 is not a port",
                "Set Port to the port sshd listens on (22 by default), or remove the line.",
            ));
        }
        let user = hop
            .user
            .clone()
            .or(address.user)
            .or_else(|| params.and_then(|p| p.user.clone()));
        let user = user
            .or_else(|| self.env.local_user.clone())
            .ok_or_else(|| {
                let fix = "Set \"user\" for this host, or User in ~/.ssh/config.";
                self.error(
                    format!("hosts.{}.user", self.name),
                    "no user given and $USER is not set",
                    fix,
                )
            })?;

        let home = self
            .env
            .home
            .as_ref()
            .map(|h| h.display().to_string())
            .unwrap_or_default();
        let port_text = port.to_string();
        let local_user = self.env.local_user.clone().unwrap_or_default();
        let tokens = [
            ('h', hostname.as_str()),
            ('n', alias.as_str()),
            ('p', port_text.as_str()),
            ('r', user.as_str()),
            ('u', local_user.as_str()),
            ('d', home.as_str()),
        ];
        let path = |text: &str| self.expand_tilde(&expand_tokens(text, &tokens));
        let identity_files = match &hop.identity_file {
            Some(file) => vec![path(&file.to_string_lossy())],
            None => params
                .and_then(|p| p.identity_file.as_ref())
                .map(|files| files.iter().map(|f| path(&f.to_string_lossy())).collect())
                .unwrap_or_default(),
        };
        let raw = |key: &str| params.and_then(|p| raw_field(p, key));
        let identities_only = raw("identitiesonly")
            .and_then(|v| v.first())
            .is_some_and(|v| v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true"));
        let known_hosts_files = match raw("userknownhostsfile") {
            Some(files) if files.iter().any(|f| f.eq_ignore_ascii_case("none")) => Vec::new(),
            Some(files) => files.iter().map(|f| path(f)).collect(),
            None => match inherited {
                Some(parent) => parent.known_hosts_files.clone(),
                None => self.default_known_hosts(),
            },
        };
        let configured_policy = raw("stricthostkeychecking")
            .and_then(|v| v.first())
            .map(|v| policy_from(v));
        let host_key_policy = hop
            .policy
            .or(configured_policy)
            .or(inherited.map(|parent| parent.host_key_policy))
            .unwrap_or_default();
        let nonzero = |d: Option<Duration>| d.filter(|d| !d.is_zero());
        let proxy_command = raw("proxycommand")
            .map(|words| words.join(" "))
            .filter(|command| !command.is_empty() && !command.eq_ignore_ascii_case("none"))
            .map(|command| expand_tokens(&command, &tokens));
        let global_known_hosts_files = match raw("globalknownhostsfile") {
            Some(files) if files.iter().any(|f| f.eq_ignore_ascii_case("none")) => Vec::new(),
            Some(files) => files.iter().map(|f| path(f)).collect(),
            None => DEFAULT_GLOBAL_KNOWN_HOSTS
                .iter()
                .map(PathBuf::from)
                .collect(),
        };
        let certificate_files = params
            .and_then(|p| p.certificate_file.as_ref())
            .map(|file| vec![path(&file.to_string_lossy())])
            .unwrap_or_default();
        let mut target = SshTarget {
            name: self.name.to_string(),
            hostname,
            port,
            user,
            identity_files,
            identities_only,
            proxy_jump: Vec::new(),
            known_hosts_files,
            host_key_policy,
            connect_timeout: nonzero(params.and_then(|p| p.connect_timeout))
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            // ServerAliveInterval 0 (OpenSSH: off) still gets the default: reconnect relies on keepalives.
            keepalive_interval: nonzero(params.and_then(|p| p.server_alive_interval))
                .unwrap_or(DEFAULT_KEEPALIVE_INTERVAL),
            proxy_command,
            host_key_alias: raw("hostkeyalias").and_then(|v| v.first().cloned()),
            global_known_hosts_files,
            certificate_files,
        };

        let jumps = match &hop.jumps {
            Some(jumps) => jumps.clone(),
            None => params
                .and_then(|p| p.proxy_jump.as_deref())
                .map(|j| split_jumps(&j.join(",")))
                .unwrap_or_default(),
        };
        if jumps.is_empty() {
            return Ok(target);
        }
        let parent = Inherited {
            known_hosts_files: target.known_hosts_files.clone(),
            host_key_policy: target.host_key_policy,
        };
        stack.push(alias);
        for (i, spec) in jumps.iter().enumerate() {
            // Like OpenSSH's `ssh -J first,…,last -W target last`: later hops are reached through the earlier
            // ones, so only the first hop's own ProxyJump is followed.
            let jumps = (i > 0).then(Vec::new);
            let hop = Hop {
                spec,
                user: None,
                port: None,
                identity_file: None,
                jumps,
                policy: None,
            };
            let mut jump = self.target(&hop, Some(&parent), stack)?;
            target.proxy_jump.append(&mut jump.proxy_jump);
            target.proxy_jump.push(jump);
        }
        stack.pop();
        Ok(target)
    }

    fn default_known_hosts(&self) -> Vec<PathBuf> {
        let Some(home) = &self.env.home else {
            return Vec::new();
        };
        vec![
            home.join(".ssh/known_hosts"),
            home.join(".ssh/known_hosts2"),
        ]
    }

    fn expand_tilde(&self, text: &str) -> PathBuf {
        match (&self.env.home, text.strip_prefix('~')) {
            (Some(home), Some("")) => home.clone(),
            (Some(home), Some(rest)) if rest.starts_with('/') => home.join(&rest[1..]),
            _ => PathBuf::from(text),
        }
    }
}

/// Options ssh2-config does not model arrive raw, keyed by the lower-cased keyword.
fn raw_field<'p>(params: &'p HostParams, key: &str) -> Option<&'p Vec<String>> {
    params
        .unsupported_fields
        .get(key)
        .or_else(|| params.ignored_fields.get(key))
}

/// We never turn host key checking off: OpenSSH's `no` would even connect to a host whose key changed, so it
/// maps to accept-new, the closest setting that still refuses a changed key. `ask` has no one to ask here.
fn policy_from(value: &str) -> HostKeyPolicy {
    match value.to_ascii_lowercase().as_str() {
        "accept-new" | "no" | "off" | "false" => HostKeyPolicy::AcceptNew,
        _ => HostKeyPolicy::Strict,
    }
}

/// OpenSSH `%` tokens (ssh_config(5) "TOKENS"); unknown ones are left as written.
fn expand_tokens(text: &str, tokens: &[(char, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(t) => match tokens.iter().find(|(k, _)| *k == t) {
                Some((_, value)) => out.push_str(value),
                None => out.extend(['%', t]),
            },
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
        env: Env,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let env = Env {
            home: Some(dir.path().to_path_buf()),
            local_user: Some("me".into()),
        };
        Fixture { dir, env }
    }

    impl Fixture {
        fn home(&self, rest: &str) -> PathBuf {
            self.dir.path().join(rest)
        }

        /// Resolves `entry` against an ssh config with the given text (`None`: no ssh config).
        fn resolve(&self, entry: &HostEntry, ssh_config: Option<&str>) -> Result<SshTarget> {
            let path = self.home(".ssh/config");
            if let Some(text) = ssh_config {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, text).unwrap();
            }
            resolve_in(entry, ssh_config.map(|_| path.as_path()), &self.env)
        }
    }

    fn entry(address: &str) -> HostEntry {
        HostEntry {
            name: "pi".into(),
            address: address.into(),
            ..HostEntry::default()
        }
    }

    const ALIASES: &str = "\
ServerAliveInterval 30
Host pi
  HostName=10.9.9.9
  User dev
  Port 2222
  IdentityFile ~/.ssh/pi_key
  IdentitiesOnly yes
  UserKnownHostsFile ~/.ssh/kh1 ~/.ssh/kh_%h
  StrictHostKeyChecking accept-new
  ConnectTimeout 5
  ProxyJump none
Host *
  User fallback
  IdentityFile ~/.ssh/id_all
";

    #[test]
    fn resolve_should_fall_back_to_defaults_without_ssh_config() {
        let fx = fixture();
        let target = fx.resolve(&entry("pi"), None).unwrap();
        assert_eq!(target.address(), "me@pi:22");
        assert_eq!(target.name, "pi");
        assert!(target.identity_files.is_empty() && !target.identities_only);
        let known = [fx.home(".ssh/known_hosts"), fx.home(".ssh/known_hosts2")];
        assert_eq!(target.known_hosts_files, known);
        assert_eq!(target.host_key_policy, HostKeyPolicy::Strict);
        assert_eq!(target.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(target.keepalive_interval, DEFAULT_KEEPALIVE_INTERVAL);
        assert!(target.proxy_jump.is_empty());
    }

    #[test]
    fn resolve_should_apply_an_alias_from_ssh_config() {
        let fx = fixture();
        let target = fx.resolve(&entry("pi"), Some(ALIASES)).unwrap();
        assert_eq!(target.address(), "dev@10.9.9.9:2222");
        let keys = [fx.home(".ssh/pi_key"), fx.home(".ssh/id_all")];
        assert_eq!(target.identity_files, keys);
        assert!(target.identities_only);
        let known = [fx.home(".ssh/kh1"), fx.home(".ssh/kh_10.9.9.9")];
        assert_eq!(target.known_hosts_files, known);
        assert_eq!(target.host_key_policy, HostKeyPolicy::AcceptNew);
        assert_eq!(target.connect_timeout, Duration::from_secs(5));
        assert_eq!(target.keepalive_interval, Duration::from_secs(30));
        assert!(target.proxy_jump.is_empty());
        let other = fx.resolve(&entry("other"), Some(ALIASES)).unwrap();
        assert_eq!(other.address(), "fallback@other:22");
    }

    #[test]
    fn resolve_should_let_global_options_before_the_first_host_win() {
        let fx = fixture();
        let config = "User=global\nHost pi\n  User dev\n";
        assert_eq!(
            fx.resolve(&entry("pi"), Some(config)).unwrap().user,
            "global"
        );
    }

    #[test]
    fn resolve_should_let_address_and_entry_fields_override_ssh_config() {
        let fx = fixture();
        let target = fx.resolve(&entry("root@pi:2200"), Some(ALIASES)).unwrap();
        assert_eq!((target.user.as_str(), target.port), ("root", 2200));
        let explicit = HostEntry {
            user: Some("ann".into()),
            port: Some(2300),
            identity_file: Some("~/.ssh/explicit".into()),
            proxy_jump: Some("bastion".into()),
            ..entry("root@pi:2200")
        };
        let target = fx.resolve(&explicit, Some(ALIASES)).unwrap();
        assert_eq!((target.user.as_str(), target.port), ("ann", 2300));
        assert_eq!(target.identity_files, [fx.home(".ssh/explicit")]);
        assert_eq!(target.proxy_jump.len(), 1);
        assert_eq!(target.proxy_jump[0].address(), "fallback@bastion:22");
    }

    #[test]
    fn resolve_should_flatten_a_proxy_jump_chain_like_openssh() {
        let fx = fixture();
        let config = "\
Host target
  ProxyJump j2,bob@j3:2022
  UserKnownHostsFile ~/.ssh/target_kh
  StrictHostKeyChecking no
Host j2
  ProxyJump j1
Host j1
  HostName 192.0.2.1
  UserKnownHostsFile ~/.ssh/j1_kh
Host j3
  ProxyJump never-followed
";
        let target = fx.resolve(&entry("target"), Some(config)).unwrap();
        let chain: Vec<_> = target.proxy_jump.iter().map(SshTarget::address).collect();
        assert_eq!(chain, ["me@192.0.2.1:22", "me@j2:22", "bob@j3:2022"]);
        assert!(target
            .proxy_jump
            .iter()
            .all(|hop| hop.proxy_jump.is_empty()));
        assert!(target.proxy_jump.iter().all(|hop| hop.name == "pi"));
        assert_eq!(
            target.proxy_jump[0].known_hosts_files,
            [fx.home(".ssh/j1_kh")]
        );
        assert_eq!(
            target.proxy_jump[1].known_hosts_files,
            [fx.home(".ssh/target_kh")]
        );
        let policies: Vec<_> = target
            .proxy_jump
            .iter()
            .map(|h| h.host_key_policy)
            .collect();
        assert_eq!(policies, [HostKeyPolicy::AcceptNew; 3]);
    }

    #[test]
    fn resolve_should_fail_on_a_jump_loop_instead_of_hanging() {
        let fx = fixture();
        let config = "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n";
        match fx.resolve(&entry("a"), Some(config)) {
            Err(Error::Config { problem, .. }) => {
                assert!(problem.contains("a -> b -> a"), "{problem}")
            }
            other => panic!("{other:?}"),
        }
        let to_itself = HostEntry {
            proxy_jump: Some("pi".into()),
            ..entry("pi")
        };
        assert!(matches!(
            fx.resolve(&to_itself, None),
            Err(Error::Config { .. })
        ));
        let deep: String = (0..12)
            .map(|i| format!("Host h{i}\n  ProxyJump h{}\n", i + 1))
            .collect();
        match fx.resolve(&entry("h0"), Some(&deep)) {
            Err(Error::Config { problem, .. }) => assert!(problem.contains("h8"), "{problem}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resolve_should_never_turn_host_key_checking_off() {
        let fx = fixture();
        for (value, expected) in [
            ("yes", HostKeyPolicy::Strict),
            ("ask", HostKeyPolicy::Strict),
            ("accept-new", HostKeyPolicy::AcceptNew),
            ("no", HostKeyPolicy::AcceptNew),
            ("off", HostKeyPolicy::AcceptNew),
        ] {
            let config = format!("Host pi\n  StrictHostKeyChecking {value}\n");
            let target = fx.resolve(&entry("pi"), Some(&config)).unwrap();
            assert_eq!(target.host_key_policy, expected, "{value}");
        }
        let accept_new = HostEntry {
            host_key_policy: HostKeyPolicy::AcceptNew,
            ..entry("pi")
        };
        let config = "Host pi\n  StrictHostKeyChecking yes\n";
        let target = fx.resolve(&accept_new, Some(config)).unwrap();
        assert_eq!(target.host_key_policy, HostKeyPolicy::AcceptNew);
    }

    /// A host a project defined never learns a key, even where ~/.ssh/config says accept-new.
    #[test]
    fn resolve_should_keep_a_project_host_strict_through_its_jumps() {
        let fx = fixture();
        let config = "Host *\n  User me\n  StrictHostKeyChecking accept-new\n";
        let entry = HostEntry {
            name: "evil".into(),
            address: "evil.example".into(),
            proxy_jump: Some("jump.example".into()),
            project: true,
            ..HostEntry::default()
        };
        let target = fx.resolve(&entry, Some(config)).unwrap();
        assert_eq!(target.host_key_policy, HostKeyPolicy::Strict);
        assert_eq!(target.proxy_jump[0].host_key_policy, HostKeyPolicy::Strict);
        let users = HostEntry {
            project: false,
            ..entry
        };
        let target = fx.resolve(&users, Some(config)).unwrap();
        assert_eq!(target.host_key_policy, HostKeyPolicy::AcceptNew);
    }

    #[test]
    fn resolve_should_accept_ipv6_literals() {
        let fx = fixture();
        let config = "Host fe80::1\n  User six\n";
        let target = fx.resolve(&entry("[fe80::1]:2222"), Some(config)).unwrap();
        assert_eq!(target.hostname, "fe80::1");
        assert_eq!(target.address(), "six@[fe80::1]:2222");
        let bare = fx.resolve(&entry("u@::1"), None).unwrap();
        assert_eq!(bare.address(), "u@[::1]:22");
    }

    #[test]
    fn resolve_should_skip_match_blocks_rather_than_misfile_them() {
        let fx = fixture();
        let config =
            "Host pi\n  User a\nMatch host pi exec \"true\"\n  Port 99\n  HostName wrong\n\
                      Match all\n  ConnectTimeout 7\n";
        let target = fx.resolve(&entry("pi"), Some(config)).unwrap();
        assert_eq!(target.address(), "a@pi:22");
        assert_eq!(target.connect_timeout, Duration::from_secs(7));
    }

    #[test]
    fn resolve_should_expand_tokens_and_tilde() {
        let fx = fixture();
        let config = "Host pi\n  HostName %h.example.com\n  IdentityFile ~/.ssh/%r@%h-%p\n";
        let target = fx.resolve(&entry("root@pi"), Some(config)).unwrap();
        assert_eq!(target.hostname, "pi.example.com");
        assert_eq!(
            target.identity_files,
            [fx.home(".ssh/root@pi.example.com-22")]
        );
        assert_eq!(expand_tokens("100%% %x %", &[]), "100% %x %");
    }

    #[test]
    fn resolve_should_report_a_bad_ssh_config_with_its_file() {
        let fx = fixture();
        match fx.resolve(&entry("pi"), Some("Host pi\n  Port twenty-two\n")) {
            Err(Error::Config { file, .. }) => assert_eq!(file, fx.home(".ssh/config")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resolve_should_require_some_user() {
        let mut fx = fixture();
        fx.env.local_user = None;
        assert!(matches!(
            fx.resolve(&entry("pi"), None),
            Err(Error::Config { .. })
        ));
        assert_eq!(fx.resolve(&entry("u@pi"), None).unwrap().user, "u");
    }
}
