//! Differential test of host-key decisions and routes: every case is decided twice, by our client
//! and by the installed OpenSSH `ssh`, both connecting to the same throwaway sshds on 127.0.0.1 with
//! the same ssh_config and known_hosts files (each run gets its own copies). The outcome compared is
//! accept / refuse plus the lines learned into the user known_hosts file. Any disagreement fails the
//! test unless the case is in [`ALLOWED`] with the reason; an allowed case that agrees fails too, so
//! the list cannot go stale.
//!
//! The sshds run with their own config, keys and an ephemeral port (never 22); the global known_hosts
//! file is always a temp file passed as `GlobalKnownHostsFile`, so `/etc/ssh` is never consulted.

#[allow(
    dead_code,
    reason = "each test binary uses a different part of the fixture"
)]
mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use common::{free_port, USER};
use opencode_remote::config::{HostEntry, HostKeyPolicy};
use opencode_remote::error::Error;
use opencode_remote::ssh::config::{resolve_with, ResolveEnv, SshTarget};
use opencode_remote::ssh::connect::connect;

const SSHD: &str = "/usr/sbin/sshd";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The `HostKeyAlias` used by the alias cases; the "alias" certificate names it as its principal.
const ALIAS: &str = "myalias";

/// Cases where we knowingly decide differently from OpenSSH, with the reason (also in the README).
const ALLOWED: &[(&str, &str)] = &[
    (
        "changed key, StrictHostKeyChecking no",
        "we never turn host key checking off: `no` is treated as accept-new, which still refuses a \
         changed key (OpenSSH connects, with password auth disabled)",
    ),
    (
        "unknown on its port, key revoked under the plain name, accept-new",
        "a key revoked for the port-less name is refused; OpenSSH's port-less retry ignores the \
         revocation and learns the key as new",
    ),
];

/// A running sshd; killed on drop.
struct Server {
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path, kind: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen -t {kind}");
}

/// "type base64" of a `.pub` file (no comment), the way known_hosts lines carry a key.
fn bare_key(pub_file: &Path) -> String {
    let text = std::fs::read_to_string(pub_file).expect("read .pub");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn pub_of(key: &Path) -> PathBuf {
    let mut path = key.as_os_str().to_owned();
    path.push(".pub");
    PathBuf::from(path)
}

/// Signs `host_pub` with `ca` into `out` (a host certificate) with `ssh-keygen -s`.
fn sign_host(ca: &Path, host_pub: &Path, out: &Path, principals: Option<&str>, validity: &str) {
    let stem = out.with_extension("");
    std::fs::copy(host_pub, stem.with_extension("pub")).expect("copy host key");
    let mut command = Command::new("ssh-keygen");
    command
        .args(["-q", "-s"])
        .arg(ca)
        .args(["-I", "test-host", "-h", "-V", validity]);
    if let Some(principals) = principals {
        command.args(["-n", principals]);
    }
    let status = command
        .arg(stem.with_extension("pub"))
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen -s runs");
    assert!(status.success(), "ssh-keygen -s");
    let produced = PathBuf::from(format!("{}-cert.pub", stem.display()));
    std::fs::rename(produced, out).expect("rename cert");
}

fn start_sshd(dir: &Path, name: &str, host_keys: &[&Path], cert: Option<&Path>) -> Server {
    std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
    let config = dir.join(format!("{name}.sshd_config"));
    let log = dir.join(format!("{name}.log"));
    for _ in 0..5 {
        let port = free_port();
        let mut text = format!("Port {port}\nListenAddress 127.0.0.1\n");
        for key in host_keys {
            text.push_str(&format!("HostKey \"{}\"\n", key.display()));
        }
        if let Some(cert) = cert {
            text.push_str(&format!("HostCertificate \"{}\"\n", cert.display()));
        }
        text.push_str(&format!(
            "PidFile \"{pid}\"\nAuthorizedKeysFile \"{auth}\"\nStrictModes no\nUsePAM no\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin yes\nAllowTcpForwarding yes\nMaxStartups 100\nPrintMotd no\n\
             LogLevel VERBOSE\n",
            pid = dir.join(format!("{name}.pid")).display(),
            auth = dir.join("authorized_keys").display(),
        ));
        std::fs::write(&config, text).expect("write sshd_config");
        let start = std::fs::metadata(&log).map_or(0, |m| m.len());
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sshd");
        let mut server = Server {
            port,
            child,
            log: log.clone(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let text = log_since(&server.log, start);
            if let Ok(Some(_)) = server.child.try_wait() {
                if text.contains("Address already in use") {
                    break;
                }
                panic!("sshd {name} exited:\n{text}");
            }
            if text.contains("Server listening")
                && TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
            {
                return server;
            }
            assert!(Instant::now() < deadline, "sshd {name} not ready:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(server);
    }
    panic!("sshd {name}: no free port after 5 attempts");
}

fn log_since(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset));
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// `|1|salt|HMAC-SHA1(salt, name)`, as `HashKnownHosts` writes it.
fn hashed(name: &str) -> String {
    let salt: [u8; 20] = rand::random();
    let mut mac = Hmac::<Sha1>::new_from_slice(&salt).expect("hmac key");
    mac.update(name.as_bytes());
    format!(
        "|1|{}|{}",
        BASE64.encode(salt),
        BASE64.encode(mac.finalize().into_bytes())
    )
}

/// Host keys, CAs, certificates and the sshds that present them.
struct Fixture {
    dir: tempfile::TempDir,
    client_key: PathBuf,
    /// Placeholder name → "type base64".
    keys: BTreeMap<&'static str, String>,
    servers: BTreeMap<&'static str, Server>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("kh-diff-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let client_key = d.join("id_client");
        keygen(&client_key, "ed25519");
        std::fs::copy(pub_of(&client_key), d.join("authorized_keys")).expect("authorized_keys");
        let mut keys = BTreeMap::new();
        for (name, kind) in [
            ("ed", "ed25519"),
            ("ecdsa", "ecdsa"),
            ("rsa", "rsa"),
            ("other_ed", "ed25519"),
            ("other_ecdsa", "ecdsa"),
            ("ca", "ed25519"),
            ("other_ca", "ed25519"),
        ] {
            let path = d.join(format!("key_{name}"));
            keygen(&path, kind);
            keys.insert(name, bare_key(&pub_of(&path)));
        }
        let key = |name: &str| d.join(format!("key_{name}"));
        let (ed, ecdsa, rsa, ca) = (key("ed"), key("ecdsa"), key("rsa"), key("ca"));
        let certs = [
            ("cert", Some("127.0.0.1"), "-5m:+1h"),
            ("cert_expired", Some("127.0.0.1"), "20200101:20210101"),
            ("cert_alias", Some(ALIAS), "-5m:+1h"),
            ("cert_any", None, "-5m:+1h"),
        ];
        let mut servers = BTreeMap::new();
        servers.insert("all", start_sshd(d, "all", &[&ed, &ecdsa, &rsa], None));
        servers.insert("ed", start_sshd(d, "ed", &[&ed], None));
        for (name, principals, validity) in certs {
            let cert = d.join(format!("{name}-cert.pub"));
            sign_host(&ca, &pub_of(&ed), &cert, principals, validity);
            servers.insert(name, start_sshd(d, name, &[&ed], Some(&cert)));
        }
        Fixture {
            dir,
            client_key,
            keys,
            servers,
        }
    }

    /// Fills a known_hosts template for `server`: `{hp}` `[127.0.0.1]:port`, `{h}` `127.0.0.1`,
    /// `{port}`, `{hash_hp}`/`{hash_h}`/`{hash_alias}` hashed names, and each key by its name.
    fn render(&self, template: &str, server: &str) -> String {
        let port = self.servers[server].port;
        let hp = format!("[127.0.0.1]:{port}");
        let mut text = template
            .replace("{hash_hp}", &hashed(&hp))
            .replace("{hash_h}", &hashed("127.0.0.1"))
            .replace("{hash_alias}", &hashed(ALIAS))
            .replace("{hp}", &hp)
            .replace("{h}", "127.0.0.1")
            .replace("{port}", &port.to_string());
        for (name, key) in &self.keys {
            text = text.replace(&format!("{{{name}}}"), key);
        }
        assert!(!text.contains('{'), "unfilled placeholder in {text:?}");
        text
    }

    /// An ssh_config for the alias `target` (and, for routes, `jump`), shared by both clients.
    fn ssh_config(&self, dir: &Path, case: &Case, extra: &str) -> PathBuf {
        let port = self.servers[case.server].port;
        let alias = case
            .alias
            .map(|a| format!("  HostKeyAlias {a}\n"))
            .unwrap_or_default();
        let text = format!(
            "Host target\n  HostName 127.0.0.1\n  Port {port}\n  StrictHostKeyChecking {strict}\n\
             {alias}  UserKnownHostsFile {user}\n  GlobalKnownHostsFile {global}\n{extra}\
             Host *\n  User {user_name}\n  IdentityFile {key}\n  IdentitiesOnly yes\n  BatchMode yes\n\
             \x20 CheckHostIP no\n  UpdateHostKeys no\n  HashKnownHosts no\n  PasswordAuthentication no\n\
             \x20 KbdInteractiveAuthentication no\n  ConnectTimeout 10\n  LogLevel ERROR\n\
             \x20 ControlPath none\n",
            strict = case.strict,
            user = dir.join("known_hosts").display(),
            global = dir.join("global_known_hosts").display(),
            user_name = *USER,
            key = self.client_key.display(),
        );
        let path = dir.join("ssh_config");
        std::fs::write(&path, text).expect("write ssh_config");
        path
    }
}

/// What a client did: connected or not, and which lines it added to the user known_hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    accepted: bool,
    learned: Vec<String>,
}

struct Case {
    name: &'static str,
    /// Which sshd: `all` (ed25519, ecdsa, rsa keys), `ed` (ed25519 only), `cert` (ed25519 with a host
    /// certificate for 127.0.0.1 by `ca`), `cert_expired`, `cert_alias` (for `myalias`), `cert_any`
    /// (no principals).
    server: &'static str,
    user: &'static str,
    global: &'static str,
    strict: &'static str,
    alias: Option<&'static str>,
}

const fn case(
    name: &'static str,
    server: &'static str,
    user: &'static str,
    strict: &'static str,
) -> Case {
    Case {
        name,
        server,
        user,
        global: "",
        strict,
        alias: None,
    }
}

const fn global(mut case: Case, global: &'static str) -> Case {
    case.global = global;
    case
}

const fn alias(mut case: Case) -> Case {
    case.alias = Some(ALIAS);
    case
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Key types on file.
    case("known ed25519", "all", "{hp} {ed}\n", "yes"),
    case("known ecdsa only", "all", "{hp} {ecdsa}\n", "yes"),
    case("known rsa only", "all", "{hp} {rsa}\n", "yes"),
    case("known ecdsa and rsa", "all", "{hp} {rsa}\n{hp} {ecdsa}\n", "yes"),
    global(case("known ecdsa only in the global file", "all", "", "yes"), "{hp} {ecdsa}\n"),
    global(case("known rsa in global, user file has another host", "all", "[example.org]:22 {other_ed}\n", "yes"), "{hp} {rsa}\n"),
    case("known ecdsa only, server has only ed25519", "ed", "{hp} {ecdsa}\n", "yes"),
    case("known ecdsa only, server has only ed25519, accept-new", "ed", "{hp} {ecdsa}\n", "accept-new"),
    // Changed keys.
    case("changed key", "all", "{hp} {other_ed}\n", "yes"),
    case("changed key, accept-new", "all", "{hp} {other_ed}\n", "accept-new"),
    case("changed key, StrictHostKeyChecking no", "all", "{hp} {other_ed}\n", "no"),
    case("changed ecdsa key only", "all", "{hp} {other_ecdsa}\n", "accept-new"),
    global(case("changed in user file, right in global file", "all", "{hp} {other_ed}\n", "yes"), "{hp} {ed}\n"),
    case("one wrong and one right line", "all", "{hp} {other_ed}\n{hp} {ed}\n", "yes"),
    // Unknown host under each StrictHostKeyChecking value.
    case("unknown, yes", "all", "", "yes"),
    case("unknown, accept-new", "all", "", "accept-new"),
    case("unknown, no", "all", "", "no"),
    case("unknown, ask (batch mode)", "all", "", "ask"),
    case("unknown, only other hosts on file, accept-new", "all", "[127.0.0.1]:1 {ed}\nexample.org {ed}\n", "accept-new"),
    global(case("unknown, global file never written", "all", "", "accept-new"), "example.org {ecdsa}\n"),
    // Ports: the port-less retry.
    case("plain host line on another port", "all", "{h} {ed}\n", "yes"),
    case("plain host line with another key", "all", "{h} {other_ed}\n", "yes"),
    case("plain host line with another key, accept-new", "all", "{h} {other_ed}\n", "accept-new"),
    case("plain host line of ecdsa only", "all", "{h} {ecdsa}\n", "yes"),
    case("bracketed line wrong, plain line right", "all", "{hp} {other_ed}\n{h} {ed}\n", "yes"),
    case("bracketed line for another port", "all", "[127.0.0.1]:1 {ed}\n", "yes"),
    case("port wildcard pattern", "all", "[127.0.0.1]:* {ed}\n", "yes"),
    // Hashed entries.
    case("hashed bracketed entry", "all", "{hash_hp} {ed}\n", "yes"),
    case("hashed plain entry on another port", "all", "{hash_h} {ed}\n", "yes"),
    case("hashed entry with another key", "all", "{hash_hp} {other_ed}\n", "yes"),
    case("hashed ecdsa entry only", "all", "{hash_hp} {ecdsa}\n", "yes"),
    // HostKeyAlias.
    alias(case("alias line", "all", "myalias {ed}\n", "yes")),
    alias(case("alias line with another key", "all", "myalias {other_ed}\n", "yes")),
    alias(case("alias unknown, accept-new learns the alias", "all", "", "accept-new")),
    alias(case("alias set, only the address on file", "all", "{hp} {ed}\n{h} {ed}\n", "yes")),
    alias(case("alias with ecdsa only", "all", "myalias {ecdsa}\n", "yes")),
    alias(case("hashed alias", "all", "{hash_alias} {ed}\n", "yes")),
    // Wildcards and negation.
    case("star pattern", "all", "* {ed}\n", "yes"),
    case("plain wildcard pattern on another port", "all", "127.0.0.* {ed}\n", "yes"),
    case("question mark pattern", "all", "[127.0.0.?]:{port} {ed}\n", "yes"),
    case("negated host", "all", "*,!{hp} {ed}\n", "yes"),
    case("negated plain name does not hit the bracketed one", "all", "{hp},!{h} {ed}\n", "yes"),
    case("negated line does not hide another line", "all", "*,!{hp} {other_ed}\n{hp} {ed}\n", "yes"),
    // Revoked keys.
    case("revoked and known", "all", "@revoked {hp} {ed}\n{hp} {ed}\n", "yes"),
    case("revoked for every host", "all", "@revoked * {ed}\n{hp} {ed}\n", "accept-new"),
    case("revoked for another host", "all", "@revoked example.org {ed}\n{hp} {ed}\n", "yes"),
    case("revoked ed25519, ecdsa known", "all", "@revoked * {ed}\n{hp} {ecdsa}\n", "yes"),
    global(case("revoked in the global file", "all", "{hp} {ed}\n", "yes"), "@revoked * {ed}\n"),
    case("unknown on its port, key revoked under the plain name, accept-new", "all", "@revoked {h} {ed}\n", "accept-new"),
    // Host certificates.
    case("certificate, CA for all hosts", "cert", "@cert-authority * {ca}\n", "yes"),
    case("certificate, CA for host and port", "cert", "@cert-authority {hp} {ca}\n", "yes"),
    case("certificate, CA for the plain name", "cert", "@cert-authority {h} {ca}\n", "yes"),
    case("certificate, CA for another host", "cert", "@cert-authority example.org {ca}\n", "yes"),
    case("certificate, other CA", "cert", "@cert-authority * {other_ca}\n", "yes"),
    case("certificate, other CA, accept-new learns the plain key", "cert", "@cert-authority * {other_ca}\n", "accept-new"),
    case("certificate, other CA, plain key known", "cert", "@cert-authority * {other_ca}\n{hp} {ed}\n", "yes"),
    case("certificate expired", "cert_expired", "@cert-authority * {ca}\n", "yes"),
    case("certificate expired, plain key known", "cert_expired", "@cert-authority * {ca}\n{hp} {ed}\n", "yes"),
    case("certificate for another principal", "cert_alias", "@cert-authority * {ca}\n", "yes"),
    alias(case("certificate for the alias", "cert_alias", "@cert-authority * {ca}\n", "yes")),
    case("certificate without principals", "cert_any", "@cert-authority * {ca}\n", "yes"),
    case("certificate, CA revoked", "cert", "@cert-authority * {ca}\n@revoked * {ca}\n{hp} {ed}\n", "yes"),
    case("certificate, its key revoked", "cert", "@cert-authority * {ca}\n@revoked * {ed}\n", "yes"),
    global(case("certificate, CA in the global file", "cert", "", "yes"), "@cert-authority * {ca}\n"),
    case("certificate, CA pattern negated", "cert", "@cert-authority *,!{hp} {ca}\n", "yes"),
    case("certificate offered, no CA, plain key known", "cert", "{hp} {ed}\n", "yes"),
];

/// Copies the case's files into `dir` and returns the user file and its content before the run.
fn prepare(fx: &Fixture, case: &Case, dir: &Path) -> (PathBuf, String) {
    std::fs::create_dir_all(dir).expect("case dir");
    let user = fx.render(case.user, case.server);
    let global = fx.render(case.global, case.server);
    std::fs::write(dir.join("known_hosts"), &user).expect("write known_hosts");
    std::fs::write(dir.join("global_known_hosts"), &global).expect("write global");
    (dir.join("known_hosts"), user)
}

fn learned(file: &Path, before: &str) -> Vec<String> {
    let after = std::fs::read_to_string(file).unwrap_or_default();
    let added = after
        .strip_prefix(before)
        .unwrap_or_else(|| panic!("{} was rewritten, not appended:\n{after}", file.display()));
    added.lines().map(str::to_string).collect()
}

fn run_openssh(config: &Path, host: &str) -> Result<bool, String> {
    let output = Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args([host, "true"])
        .stdin(Stdio::null())
        .output()
        .expect("ssh runs");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    if output.status.success() {
        Ok(true)
    } else if stderr.contains("Host key verification failed") {
        Ok(false)
    } else {
        Err(format!(
            "ssh failed otherwise ({}): {stderr}",
            output.status
        ))
    }
}

async fn run_ours(config: &Path, host: &str) -> Result<bool, String> {
    let entry = HostEntry {
        name: host.into(),
        address: host.into(),
        ..HostEntry::default()
    };
    let target = resolve_with(&entry, Some(config), &ResolveEnv::from_process())
        .map(|r| r.target)
        .map_err(|e| e.to_string())?;
    match connect(&target).await {
        Ok(connection) => {
            connection.close().await;
            Ok(true)
        }
        Err(
            Error::HostKeyChanged { .. }
            | Error::HostKeyUnknown { .. }
            | Error::HostKeyRevoked { .. },
        ) => Ok(false),
        Err(other) => Err(other.to_string()),
    }
}

/// No agent: both clients must use only the configured key.
fn no_agent() {
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        std::env::remove_var("SSH_AUTH_SOCK");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_hosts_decisions_should_match_openssh() {
    no_agent();
    assert!(CASES.len() >= 40, "the corpus has {} cases", CASES.len());
    let fx = Fixture::new();
    let mut report = Vec::new();
    let mut allowed_hit = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let base = fx.dir.path().join(format!("case{i}"));
        let (ssh_dir, our_dir) = (base.join("openssh"), base.join("ours"));
        let (ssh_user, before) = prepare(&fx, case, &ssh_dir);
        let (our_user, _) = prepare(&fx, case, &our_dir);
        // Hashed names get a fresh salt per render; our copy is a byte copy of OpenSSH's.
        std::fs::copy(&ssh_user, &our_user).expect("copy known_hosts");
        std::fs::copy(
            ssh_dir.join("global_known_hosts"),
            our_dir.join("global_known_hosts"),
        )
        .expect("copy global");
        let global_before = std::fs::read(our_dir.join("global_known_hosts")).unwrap();
        let ssh_config = fx.ssh_config(&ssh_dir, case, "");
        let our_config = fx.ssh_config(&our_dir, case, "");

        let theirs = run_openssh(&ssh_config, "target").map(|accepted| Outcome {
            accepted,
            learned: learned(&ssh_user, &before),
        });
        let ours = run_ours(&our_config, "target")
            .await
            .map(|accepted| Outcome {
                accepted,
                learned: learned(&our_user, &before),
            });
        assert_eq!(
            std::fs::read(our_dir.join("global_known_hosts")).unwrap(),
            global_before,
            "{}: we wrote the global file",
            case.name
        );
        let allowed = ALLOWED.iter().find(|(name, _)| *name == case.name);
        let agree = theirs.is_ok() && theirs == ours;
        match (agree, allowed) {
            (true, None) => {}
            (false, Some(_)) => allowed_hit.push(case.name),
            (true, Some(_)) => report.push(format!(
                "{}: allowed to differ but agrees now; remove it from ALLOWED",
                case.name
            )),
            (false, None) => report.push(format!(
                "{}:\n  openssh: {theirs:?}\n  ours:    {ours:?}",
                case.name
            )),
        }
    }
    assert!(
        report.is_empty(),
        "{} of {} cases disagree with OpenSSH:\n{}",
        report.len(),
        CASES.len(),
        report.join("\n")
    );
    eprintln!(
        "{} cases agree with OpenSSH; allowed differences: {allowed_hit:?}",
        CASES.len() - allowed_hit.len()
    );
}

/// Each route case: an ssh_config fragment (hosts `jump` and more) added to the target's config.
struct Route {
    name: &'static str,
    /// Extra lines inside `Host target`, then further Host blocks. `{jump_port}`, `{cfg}` and the
    /// `{jump_kh}` (right key) / `{jump_bad_kh}` (wrong key) files are filled in.
    target_lines: &'static str,
    hosts: &'static str,
    strict: &'static str,
    user: &'static str,
}

#[rustfmt::skip]
const ROUTES: &[Route] = &[
    Route {
        name: "ProxyJump through a known jump host",
        target_lines: "  ProxyJump jump\n",
        hosts: "Host jump\n  HostName 127.0.0.1\n  Port {jump_port}\n  UserKnownHostsFile {jump_kh}\n",
        strict: "yes", user: "{hp} {ed}\n",
    },
    Route {
        name: "ProxyJump: the jump host is checked with its own known_hosts and policy",
        target_lines: "  ProxyJump jump\n",
        hosts: "Host jump\n  HostName 127.0.0.1\n  Port {jump_port}\n  UserKnownHostsFile {jump_bad_kh}\n  StrictHostKeyChecking yes\n",
        strict: "accept-new", user: "{hp} {ed}\n",
    },
    Route {
        name: "ProxyJump: a lax target does not make a wrong jump key acceptable",
        target_lines: "  ProxyJump jump\n",
        hosts: "Host jump\n  HostName 127.0.0.1\n  Port {jump_port}\n  UserKnownHostsFile {jump_bad_kh}\n  StrictHostKeyChecking yes\n",
        strict: "no", user: "",
    },
    Route {
        name: "ProxyCommand ssh -W through the jump host",
        target_lines: "  ProxyCommand ssh -F {cfg} -W %h:%p jump\n",
        hosts: "Host jump\n  HostName 127.0.0.1\n  Port {jump_port}\n  UserKnownHostsFile {jump_kh}\n",
        strict: "yes", user: "{hp} {ed}\n",
    },
    Route {
        name: "ProxyCommand: the target's key is still checked",
        target_lines: "  ProxyCommand ssh -F {cfg} -W %h:%p jump\n",
        hosts: "Host jump\n  HostName 127.0.0.1\n  Port {jump_port}\n  UserKnownHostsFile {jump_kh}\n",
        strict: "yes", user: "{hp} {other_ed}\n",
    },
    Route {
        name: "ProxyJump whose jump host uses a ProxyCommand",
        target_lines: "  ProxyJump jump\n",
        hosts: "Host jump\n  HostName 127.0.0.1\n  Port {jump_port}\n  UserKnownHostsFile {jump_kh}\n  ProxyCommand ssh -F {cfg} -W %h:%p relay\nHost relay\n  HostName 127.0.0.1\n  Port {jump_port}\n  UserKnownHostsFile {jump_kh}\n",
        strict: "yes", user: "{hp} {ed}\n",
    },
    Route {
        name: "ProxyCommand that fails",
        target_lines: "  ProxyCommand sh -c 'echo no route to the bastion >&2; exit 3'\n",
        hosts: "",
        strict: "yes", user: "{hp} {ed}\n",
    },
];

async fn run_ours_any(config: &Path) -> Result<bool, String> {
    let entry = HostEntry {
        name: "target".into(),
        address: "target".into(),
        ..HostEntry::default()
    };
    let target = resolve_with(&entry, Some(config), &ResolveEnv::from_process())
        .map(|r| r.target)
        .map_err(|e| e.to_string())?;
    match connect(&target).await {
        Ok(connection) => {
            connection.close().await;
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

fn run_openssh_any(config: &Path) -> bool {
    Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(["target", "true"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("ssh runs")
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_should_match_openssh() {
    no_agent();
    let fx = Fixture::new();
    // The target is the `ed` server; jumps go through the `all` server.
    let jump = &fx.servers["all"];
    let mut report = Vec::new();
    for (i, route) in ROUTES.iter().enumerate() {
        let case = Case {
            name: route.name,
            server: "ed",
            user: route.user,
            global: "",
            strict: route.strict,
            alias: None,
        };
        let mut outcomes = Vec::new();
        for side in ["openssh", "ours"] {
            let dir = fx.dir.path().join(format!("route{i}/{side}"));
            prepare(&fx, &case, &dir);
            let jump_kh = dir.join("jump_known_hosts");
            let jump_bad_kh = dir.join("jump_bad_known_hosts");
            let jp = format!("[127.0.0.1]:{}", jump.port);
            std::fs::write(&jump_kh, format!("{jp} {}\n", fx.keys["ed"])).unwrap();
            std::fs::write(&jump_bad_kh, format!("{jp} {}\n", fx.keys["other_ed"])).unwrap();
            let cfg = dir.join("ssh_config");
            let fill = |text: &str| {
                text.replace("{jump_port}", &jump.port.to_string())
                    .replace("{cfg}", &cfg.display().to_string())
                    .replace("{jump_kh}", &jump_kh.display().to_string())
                    .replace("{jump_bad_kh}", &jump_bad_kh.display().to_string())
            };
            let extra = fill(route.target_lines) + &fill(route.hosts);
            fx.ssh_config(&dir, &case, &extra);
            outcomes.push(if side == "openssh" {
                run_openssh_any(&cfg)
            } else {
                run_ours_any(&cfg).await.unwrap_or(false)
            });
        }
        if outcomes[0] != outcomes[1] {
            report.push(format!(
                "{}: openssh accepted={} ours accepted={}",
                route.name, outcomes[0], outcomes[1]
            ));
        }
    }
    assert!(report.is_empty(), "routes disagree:\n{}", report.join("\n"));
}

/// A failing ProxyCommand names the host, the exit status and the command's last words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_command_failure_should_name_host_status_and_stderr() {
    no_agent();
    let fx = Fixture::new();
    let mut target = fixture_target(&fx, "ed");
    target.proxy_command = Some("sh -c 'echo no route to the bastion >&2; exit 3'".into());
    let error = connect(&target).await.err().expect("the command fails");
    assert_eq!(error.code(), "PROXY_COMMAND_FAILED", "{error}");
    let text = error.to_string();
    assert!(text.contains("'target'"), "{text}");
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(text.contains("no route to the bastion"), "{text}");
    assert!(
        !error.public_message().contains("bastion"),
        "the command stays out of the model's view"
    );
}

/// Our own target for a fixture server, built directly (no ssh_config involved).
fn fixture_target(fx: &Fixture, server: &str) -> SshTarget {
    let kh = fx.dir.path().join(format!("direct_{server}_known_hosts"));
    let port = fx.servers[server].port;
    std::fs::write(&kh, format!("[127.0.0.1]:{port} {}\n", fx.keys["ed"])).unwrap();
    SshTarget {
        name: "target".into(),
        hostname: "127.0.0.1".into(),
        port,
        user: USER.clone(),
        identity_files: vec![fx.client_key.clone()],
        identities_only: true,
        proxy_jump: Vec::new(),
        known_hosts_files: vec![kh],
        host_key_policy: HostKeyPolicy::Strict,
        connect_timeout: Duration::from_secs(10),
        keepalive_interval: Duration::from_secs(15),
        proxy_command: None,
        host_key_alias: None,
        global_known_hosts_files: Vec::new(),
        certificate_files: Vec::new(),
    }
}

/// The jump host is verified with its own files, alias and policy, whatever the target's are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hop_should_be_checked_with_its_own_settings() {
    no_agent();
    let fx = Fixture::new();
    let mut target = fixture_target(&fx, "ed");
    target.known_hosts_files = vec![fx.dir.path().join("lax_target_known_hosts")];
    target.host_key_policy = HostKeyPolicy::AcceptNew;
    let mut jump = fixture_target(&fx, "all");
    let jump_kh = fx.dir.path().join("jump_known_hosts");
    jump.known_hosts_files = vec![jump_kh.clone()];

    // A wrong key for the jump host: refused, naming the jump host's own file, although the target
    // would learn any key.
    std::fs::write(&jump_kh, format!("jumpalias {}\n", fx.keys["other_ed"])).unwrap();
    jump.host_key_alias = Some("jumpalias".into());
    target.proxy_jump = vec![jump.clone()];
    match connect(&target).await {
        Err(Error::HostKeyChanged { file, line, .. }) => {
            assert_eq!((file, line), (jump_kh.clone(), 1))
        }
        other => panic!(
            "expected the jump host's key to be refused, got {:?}",
            other.map(|_| ())
        ),
    }
    // Unknown to a strict jump host: refused, and nothing learned anywhere.
    std::fs::write(&jump_kh, "").unwrap();
    assert!(matches!(
        connect(&target).await,
        Err(Error::HostKeyUnknown { .. })
    ));
    assert_eq!(std::fs::read_to_string(&jump_kh).unwrap(), "");
    assert!(!target.known_hosts_files[0].exists());
    // Right key under the jump host's alias: through, and the target learns its own key only.
    std::fs::write(&jump_kh, format!("jumpalias {}\n", fx.keys["ecdsa"])).unwrap();
    target.proxy_jump = vec![jump];
    let connection = connect(&target).await.expect("through the jump host");
    connection.close().await;
    let learned = std::fs::read_to_string(&target.known_hosts_files[0]).unwrap();
    let port = fx.servers["ed"].port;
    assert_eq!(learned, format!("[127.0.0.1]:{port} {}\n", fx.keys["ed"]));
}
