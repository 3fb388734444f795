//! ssh_config resolution: turns a [`HostEntry`] into the concrete [`SshTarget`] to dial, so that
//! `ssh pi` and `remote_login host=pi` agree.
//!
//! Precedence follows OpenSSH, where the command line beats the config file: explicit entry fields and the
//! parts of the entry's address act like `ssh -l/-p/-i/-J`, then `~/.ssh/config` and `/etc/ssh/ssh_config`
//! (first value wins), then defaults. Every ProxyJump hop is resolved as its own host, exactly as the
//! `ssh -W` that OpenSSH runs for it would be: its own Host/Match blocks, known_hosts files and
//! StrictHostKeyChecking, never the target's.
//!
//! The parser is ours (`config/`): OpenSSH's quoting, `Include`, and `Match` evaluated like OpenSSH's,
//! which ssh2-config did not do. `tests/ssh_config_diff.rs` compares it with the installed `ssh -G`.

mod evaluate;
mod lexer;
mod matching;
mod parse;
mod pattern;
#[cfg(test)]
mod tests;
mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use evaluate::{Options, Setting, Source};
pub use parse::Origin;

use evaluate::{evaluate, final_hostname, Host};
use parse::{ConfigFile, Scope};
use values::{connection_hash, expand_shell_tokens, expand_tokens, parse_time, policy_from};

use crate::config::address::parse_address;
use crate::config::{HostEntry, HostKeyPolicy};
use crate::error::{Error, Result};

pub const DEFAULT_PORT: u16 = 22;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// OpenSSH has no limit and simply recurses; a real chain is 1–3 hops, so deeper is treated as a loop.
const MAX_JUMP_DEPTH: usize = 8;
/// The identities tried when none is configured, in the order of the OpenSSH this was checked against
/// (9.2: `ssh -G host | grep identityfile`); `tests/ssh_config_diff.rs` fails if the installed one differs.
/// Key types russh cannot use (security keys, XMSS, DSA) are skipped when they fail to load.
pub const DEFAULT_IDENTITIES: &[&str] = &[
    "id_rsa",
    "id_ecdsa",
    "id_ecdsa_sk",
    "id_ed25519",
    "id_ed25519_sk",
    "id_xmss",
    "id_dsa",
];
/// OpenSSH's default `GlobalKnownHostsFile`.
pub const DEFAULT_GLOBAL_KNOWN_HOSTS: &[&str] =
    &["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];
/// The system-wide client config, read after the user's as OpenSSH does.
const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";

/// Everything needed to open one SSH connection.
/// Serializable, so a process can hand it to the connection-sharing helper ([`super::mux`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SshTarget {
    /// The configured host name: the only thing shown to the model. Jump hosts carry their target's name,
    /// so an error on the way is still reported under a name the user configured.
    pub name: String,
    pub hostname: String,
    pub port: u16,
    pub user: String,
    /// Empty means "try the default keys" ([`DEFAULT_IDENTITIES`] under `~/.ssh`).
    pub identity_files: Vec<PathBuf>,
    pub identities_only: bool,
    /// The whole chain of jump hosts, first hop first, already flattened: each hop's own `proxy_jump` is
    /// empty. Like OpenSSH, only the first hop's own ProxyJump is followed (it becomes the earlier hops).
    /// Each hop carries its own resolved settings.
    pub proxy_jump: Vec<SshTarget>,
    /// `ProxyCommand`, tokens expanded, to run with `sh -c` (its stdin/stdout are the transport).
    /// `None` when unset, `ProxyCommand none`, or when ProxyJump is used.
    pub proxy_command: Option<String>,
    pub known_hosts_files: Vec<PathBuf>,
    /// `GlobalKnownHostsFile` (default [`DEFAULT_GLOBAL_KNOWN_HOSTS`]); read, never written.
    pub global_known_hosts_files: Vec<PathBuf>,
    /// `HostKeyAlias`, lower-cased as OpenSSH does: the name host keys are looked up and stored under.
    pub host_key_alias: Option<String>,
    /// `CertificateFile`s, offered with the matching identity at auth.
    pub certificate_files: Vec<PathBuf>,
    pub host_key_policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    pub keepalive_interval: Duration,
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

/// A resolved target with the config lines behind each of its hops, for `doctor` and the tests.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub target: SshTarget,
    /// The options that applied to the target.
    pub options: Options,
    /// The options of each hop, in the order of `target.proxy_jump`.
    pub hop_options: Vec<Options>,
}

/// Resolves against `$HOME/.ssh/config` and `/etc/ssh/ssh_config`, like `ssh` without `-F`.
pub fn resolve(entry: &HostEntry) -> Result<SshTarget> {
    resolve_explained(entry).map(|r| r.target)
}

/// [`resolve`], keeping where each value came from.
pub fn resolve_explained(entry: &HostEntry) -> Result<Resolution> {
    let env = ResolveEnv::from_process();
    let user_config = env
        .home
        .as_ref()
        .map(|home| home.join(".ssh").join("config"));
    let mut files = Vec::new();
    if let Some(path) = user_config.filter(|p| p.is_file()) {
        files.push((path, Scope::User));
    }
    if Path::new(SYSTEM_CONFIG).is_file() {
        files.push((PathBuf::from(SYSTEM_CONFIG), Scope::System));
    }
    resolve_in(entry, &files, &env)
}

/// Resolves against exactly the given user config file (like `ssh -F file`; `None`: no config at all).
pub fn resolve_with(
    entry: &HostEntry,
    ssh_config: Option<&Path>,
    env: &ResolveEnv,
) -> Result<Resolution> {
    let files: Vec<_> = ssh_config
        .map(|p| (p.to_path_buf(), Scope::User))
        .into_iter()
        .collect();
    resolve_in(entry, &files, env)
}

/// The local facts resolution depends on, passed in so tests never mutate the process environment.
#[derive(Debug, Clone, Default)]
pub struct ResolveEnv {
    pub home: Option<PathBuf>,
    pub local_user: Option<String>,
    /// For `%l`, `%L` and `%C`.
    pub local_hostname: String,
}

impl ResolveEnv {
    pub fn from_process() -> Self {
        let var = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        ResolveEnv {
            home: var("HOME").map(PathBuf::from),
            local_user: var("USER").or_else(|| var("LOGNAME")),
            local_hostname: local_hostname(),
        }
    }
}

fn local_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or fails.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn resolve_in(
    entry: &HostEntry,
    files: &[(PathBuf, Scope)],
    env: &ResolveEnv,
) -> Result<Resolution> {
    let home = env.home.as_deref();
    let config = files
        .iter()
        .map(|(path, scope)| {
            parse::read(path, *scope, home).map_err(|e| Error::Config {
                field: format!("line {}", e.line),
                problem: e.problem,
                fix: FIX_SSH_CONFIG.into(),
                file: e.file,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let resolver = Resolver {
        config,
        file: files
            .first()
            .map_or_else(|| PathBuf::from("~/.ssh/config"), |(p, _)| p.clone()),
        env,
        name: &entry.name,
    };
    let hop = Hop {
        spec: &entry.address,
        user: entry.user.clone(),
        port: entry.port,
        identity_file: entry.identity_file.clone(),
        jumps: entry.proxy_jump.as_deref().map(split_jumps),
        later_hop: false,
        // The entry's policy is not optional and defaults to strict, so only accept-new is an explicit choice
        // that can override ~/.ssh/config. Like `ssh -o`, it is for the target only, not its jump hosts.
        policy: (entry.host_key_policy == HostKeyPolicy::AcceptNew)
            .then_some(HostKeyPolicy::AcceptNew),
    };
    let (mut target, options, hop_options) = resolver.target(&hop, &mut Vec::new())?;
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
    Ok(Resolution {
        target,
        options,
        hop_options,
    })
}

const FIX_SSH_CONFIG: &str = "Fix that line; `ssh -G <host>` shows how OpenSSH reads the file.";

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
    /// `Some`: given like `ssh -J` (config ProxyJump/ProxyCommand ignored); `None`: from the config.
    jumps: Option<Vec<String>>,
    /// A hop after the first of a chain: its `jumps` are the hops before it, which the caller resolves.
    later_hop: bool,
    policy: Option<HostKeyPolicy>,
}

struct Resolver<'a> {
    config: Vec<ConfigFile>,
    file: PathBuf,
    env: &'a ResolveEnv,
    name: &'a str,
}

type Resolved = (SshTarget, Options, Vec<Options>);

impl Resolver<'_> {
    fn error(&self, field: impl Into<String>, problem: impl Into<String>, fix: &str) -> Error {
        Error::Config {
            file: self.file.clone(),
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// An error about a config value, located at its file and line when it came from one.
    fn setting_error(&self, setting: &Setting, keyword: &str, problem: String, fix: &str) -> Error {
        match &setting.source {
            Source::File(origin) => Error::Config {
                file: origin.file.clone(),
                field: format!("line {} ({keyword})", origin.line),
                problem,
                fix: fix.into(),
            },
            Source::Entry => self.error(format!("hosts.{}", self.name), problem, fix),
        }
    }

    /// `stack` holds the aliases being resolved above this hop, to stop ProxyJump loops.
    fn target(&self, hop: &Hop, stack: &mut Vec<String>) -> Result<Resolved> {
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
        let options = self.options_for(hop, &address.user, address.port, &alias)?;
        let mut target = self.build(&alias, &options)?;

        let jumps = match &hop.jumps {
            // A later hop of a chain: the hops before it are its route, already resolved by the caller.
            Some(_) if hop.later_hop => Vec::new(),
            Some(jumps) => jumps.clone(),
            None => options
                .get("proxyjump")
                .map(|j| split_jumps(&j.raw))
                .unwrap_or_default(),
        };
        let mut hop_options = Vec::new();
        stack.push(alias);
        for (i, spec) in jumps.iter().enumerate() {
            // Like OpenSSH's `ssh -J first,…,prev this -W target`: later hops are reached through the
            // earlier ones, so only the first hop's own ProxyJump (or ProxyCommand) is followed.
            let hop = Hop {
                spec,
                user: None,
                port: None,
                identity_file: None,
                jumps: (i > 0).then(|| jumps[..i].to_vec()),
                later_hop: i > 0,
                policy: None,
            };
            let (mut jump, jump_options, mut earlier) = self.target(&hop, stack)?;
            target.proxy_jump.append(&mut jump.proxy_jump);
            hop_options.append(&mut earlier);
            target.proxy_jump.push(jump);
            hop_options.push(jump_options);
        }
        stack.pop();
        if !target.proxy_jump.is_empty() {
            target.proxy_command = None;
        }
        Ok((target, options, hop_options))
    }

    /// The hop's command-line-like presets, then the config files evaluated for `alias`.
    fn options_for(
        &self,
        hop: &Hop,
        address_user: &Option<String>,
        address_port: Option<u16>,
        alias: &str,
    ) -> Result<Options> {
        let mut presets = Options::default();
        if let Some(user) = hop.user.as_ref().or(address_user.as_ref()) {
            presets.preset("user", user);
        }
        if let Some(port) = hop.port.or(address_port) {
            presets.preset("port", &port.to_string());
        }
        if let Some(file) = &hop.identity_file {
            presets.preset_list("identityfile", &file.to_string_lossy());
        }
        if let Some(jumps) = &hop.jumps {
            let value = if jumps.is_empty() {
                "none".to_string()
            } else {
                jumps.join(",")
            };
            presets.preset("proxyjump", &value);
        }
        if hop.policy == Some(HostKeyPolicy::AcceptNew) {
            presets.preset("stricthostkeychecking", "accept-new");
        }
        let home = self.home_text();
        let host = Host {
            name: alias,
            local_user: self.env.local_user.as_deref().unwrap_or_default(),
            home: &home,
            local_hostname: &self.env.local_hostname,
        };
        evaluate(&self.config, &host, presets).map_err(|e| Error::Config {
            file: e.origin.file,
            field: format!("line {} (Match)", e.origin.line),
            problem: e.problem,
            fix: FIX_SSH_CONFIG.into(),
        })
    }

    fn home_text(&self) -> String {
        self.env
            .home
            .as_ref()
            .map(|h| h.display().to_string())
            .unwrap_or_default()
    }

    /// The target for one host from its evaluated options (its jump hosts are added by the caller).
    fn build(&self, alias: &str, options: &Options) -> Result<SshTarget> {
        let hostname = final_hostname(options, alias);
        let port = match options.get("port") {
            None => DEFAULT_PORT,
            Some(setting) => match setting.first().parse::<u16>() {
                Ok(port) if port > 0 => port,
                // Found by fuzzing: `Port 0` parses, and would only fail later as an unreachable host.
                _ => {
                    let fix =
                        "Set Port to the port sshd listens on (22 by default), or remove the line.";
                    let problem = format!("'{}' is not a port from 1 to 65535", setting.first());
                    return Err(self.setting_error(setting, "Port", problem, fix));
                }
            },
        };
        let user = options
            .get("user")
            .map(|s| s.first().to_string())
            .or_else(|| self.env.local_user.clone())
            .ok_or_else(|| {
                let fix = "Set \"user\" for this host, or User in ~/.ssh/config.";
                self.error(
                    format!("hosts.{}.user", self.name),
                    "no user given and $USER is not set",
                    fix,
                )
            })?;
        let host_key_alias = options
            .get("hostkeyalias")
            .map(|s| s.first().to_ascii_lowercase());

        let home = self.home_text();
        let port_text = port.to_string();
        let local_user = self.env.local_user.clone().unwrap_or_default();
        let local_host = self.env.local_hostname.as_str();
        let short_host = local_host.split('.').next().unwrap_or_default();
        let key_alias = host_key_alias.as_deref().unwrap_or(&hostname);
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() }.to_string();
        let hash = connection_hash(local_host, &hostname, &port_text, &user);
        let tokens = [
            ('C', hash.as_str()),
            ('d', home.as_str()),
            ('h', hostname.as_str()),
            ('i', uid.as_str()),
            ('k', key_alias),
            ('L', short_host),
            ('l', local_host),
            ('n', alias),
            ('p', port_text.as_str()),
            ('r', user.as_str()),
            ('u', local_user.as_str()),
        ];
        let path = |text: &str| self.expand_tilde(&expand_tokens(text, &tokens));
        let paths = |keyword: &str| -> Vec<PathBuf> {
            options
                .list(keyword)
                .iter()
                .map(|s| path(s.first()))
                .collect()
        };
        let file_list = |keyword: &str, defaults: Vec<PathBuf>| match options.get(keyword) {
            Some(s) if s.args.iter().any(|f| f.eq_ignore_ascii_case("none")) => Vec::new(),
            Some(s) => s.args.iter().map(|f| path(f)).collect(),
            None => defaults,
        };
        let yes = |keyword: &str| {
            options
                .get(keyword)
                .is_some_and(|s| matches!(s.first().to_ascii_lowercase().as_str(), "yes" | "true"))
        };
        let proxy_command = match options
            .get("proxycommand")
            .filter(|s| !s.raw.eq_ignore_ascii_case("none"))
        {
            None => None,
            Some(setting) => Some(expand_shell_tokens(&setting.raw, &tokens).map_err(
                |problem| {
                    let fix =
                        "Use a plain host name for this host, or drop the token from ProxyCommand.";
                    self.setting_error(setting, "ProxyCommand", problem, fix)
                },
            )?),
        };
        let seconds = |keyword: &str| {
            options
                .get(keyword)
                .and_then(|s| parse_time(s.first()))
                .filter(|d| !d.is_zero())
        };
        Ok(SshTarget {
            name: self.name.to_string(),
            hostname: hostname.clone(),
            port,
            user: user.clone(),
            identity_files: paths("identityfile"),
            identities_only: yes("identitiesonly"),
            proxy_jump: Vec::new(),
            proxy_command,
            known_hosts_files: file_list("userknownhostsfile", self.default_known_hosts()),
            global_known_hosts_files: file_list(
                "globalknownhostsfile",
                DEFAULT_GLOBAL_KNOWN_HOSTS
                    .iter()
                    .map(PathBuf::from)
                    .collect(),
            ),
            host_key_alias: host_key_alias.clone(),
            certificate_files: paths("certificatefile"),
            host_key_policy: options
                .get("stricthostkeychecking")
                .map(|s| policy_from(s.first()))
                .unwrap_or_default(),
            connect_timeout: seconds("connecttimeout").unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            // ServerAliveInterval 0 (OpenSSH: off) still gets the default: reconnect relies on keepalives.
            keepalive_interval: seconds("serveraliveinterval")
                .unwrap_or(DEFAULT_KEEPALIVE_INTERVAL),
        })
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
