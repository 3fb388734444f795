//! Resolution as a whole: entry fields, ssh_config, ProxyJump chains, per-hop settings.

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
    env: ResolveEnv,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let env = ResolveEnv {
        home: Some(dir.path().to_path_buf()),
        local_user: Some("me".into()),
        local_hostname: "laptop".into(),
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
        resolve_with(entry, ssh_config.map(|_| path.as_path()), &self.env).map(|r| r.target)
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
    // Like `ssh -i`: the entry's key first, then the config's.
    let keys = [
        fx.home(".ssh/explicit"),
        fx.home(".ssh/pi_key"),
        fx.home(".ssh/id_all"),
    ];
    assert_eq!(target.identity_files, keys);
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
    // Each hop has its own settings: j2 says nothing, so it gets the defaults, never the target's.
    let defaults = [fx.home(".ssh/known_hosts"), fx.home(".ssh/known_hosts2")];
    assert_eq!(target.proxy_jump[1].known_hosts_files, defaults);
    let policies: Vec<_> = target
        .proxy_jump
        .iter()
        .map(|h| h.host_key_policy)
        .collect();
    assert_eq!(policies, [HostKeyPolicy::Strict; 3]);
    assert_eq!(target.host_key_policy, HostKeyPolicy::AcceptNew);
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
fn resolve_should_apply_match_blocks_like_openssh() {
    let fx = fixture();
    let config = "Host pi\n  User a\nMatch host pi exec \"true\"\n  Port 99\n  HostName wrong\n\
                  Match user nobody\n  Port 1\nMatch all\n  ConnectTimeout 7\n";
    let target = fx.resolve(&entry("pi"), Some(config)).unwrap();
    assert_eq!(target.address(), "a@wrong:99");
    assert_eq!(target.connect_timeout, Duration::from_secs(7));
}

/// The lab pattern of the issue: a careless target must not make its bastion careless.
#[test]
fn resolve_should_never_give_a_jump_host_the_targets_host_key_settings() {
    let fx = fixture();
    let config = "\
Host lab
  ProxyJump bastion
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
Host bastion
  User jump
  Port 2200
  IdentityFile ~/.ssh/bastion_key
";
    let target = fx.resolve(&entry("lab"), Some(config)).unwrap();
    assert_eq!(target.known_hosts_files, [PathBuf::from("/dev/null")]);
    let bastion = &target.proxy_jump[0];
    assert_eq!(bastion.address(), "jump@bastion:2200");
    assert_eq!(bastion.host_key_policy, HostKeyPolicy::Strict);
    assert_eq!(
        bastion.known_hosts_files,
        [fx.home(".ssh/known_hosts"), fx.home(".ssh/known_hosts2")]
    );
    assert_eq!(bastion.identity_files, [fx.home(".ssh/bastion_key")]);
}

#[test]
fn resolve_should_expand_proxy_command_for_the_target_and_its_hops() {
    let fx = fixture();
    let config = "\
Host t
  HostName T.Example
  User u
  Port 2022
  ProxyCommand nc -X connect -x proxy:3128 %h %p # %r %n %%
Host j
  ProxyCommand exec ssh-relay %n
Host none
  ProxyCommand none
  ProxyJump j
Host via
  ProxyJump j
";
    let target = fx.resolve(&entry("t"), Some(config)).unwrap();
    assert_eq!(
        target.proxy_command.as_deref(),
        Some("nc -X connect -x proxy:3128 t.example 2022 # u t %")
    );
    let none = fx.resolve(&entry("none"), Some(config)).unwrap();
    assert_eq!(none.proxy_command, None);
    assert!(none.proxy_jump.is_empty(), "ProxyCommand none came first");
    let via = fx.resolve(&entry("via"), Some(config)).unwrap();
    assert_eq!(via.proxy_command, None);
    assert_eq!(
        via.proxy_jump[0].proxy_command.as_deref(),
        Some("exec ssh-relay j")
    );
}

#[test]
fn resolve_should_read_host_key_and_certificate_options() {
    let fx = fixture();
    let config = "\
Host pi
  HostKeyAlias Pi-Key
  GlobalKnownHostsFile /etc/kh \"/opt/my kh\"
  CertificateFile ~/.ssh/pi-cert.pub
  CertificateFile ~/.ssh/pi-cert.pub
  UserKnownHostsFile \"~/with space/kh\"
";
    let target = fx.resolve(&entry("PI"), Some(config)).unwrap();
    // Host patterns are case-sensitive in OpenSSH; only the dialled name is lower-cased.
    assert_eq!(target.hostname, "pi");
    assert_eq!(target.host_key_alias, None);
    let target = fx.resolve(&entry("pi"), Some(config)).unwrap();
    assert_eq!(target.host_key_alias.as_deref(), Some("pi-key"));
    assert_eq!(
        target.global_known_hosts_files,
        [PathBuf::from("/etc/kh"), PathBuf::from("/opt/my kh")]
    );
    assert_eq!(target.certificate_files, [fx.home(".ssh/pi-cert.pub")]);
    assert_eq!(target.known_hosts_files, [fx.home("with space/kh")]);
    let plain = fx.resolve(&entry("other"), Some(config)).unwrap();
    let defaults: Vec<_> = DEFAULT_GLOBAL_KNOWN_HOSTS
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(plain.global_known_hosts_files, defaults);
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

#[test]
fn resolve_should_refuse_a_proxy_command_token_a_shell_would_interpret() {
    let fx = fixture();
    let config = "Host *\n  ProxyCommand nc %h %p\n";
    let hostile = fx.resolve(&entry("x$(touch${IFS}owned)"), Some(config));
    match hostile {
        Err(Error::Config { problem, .. }) => assert!(problem.contains("shell"), "{problem}"),
        other => panic!("{other:?}"),
    }
    let fine = fx.resolve(&entry("pi.lan"), Some(config)).unwrap();
    assert_eq!(fine.proxy_command.as_deref(), Some("nc pi.lan 22"));
}
