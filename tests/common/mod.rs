//! A throw-away OpenSSH sshd on 127.0.0.1 for integration tests, shaped like distant's
//! `distant-test-harness/src/sshd.rs` at a third of the size: one options type, no Windows.
//!
//! Everything lives in a temp dir: host and client keys, `authorized_keys`, the rendered `sshd_config`,
//! the log and a `known_hosts` for the fixture's own host key. Nothing reads or writes the real `~/.ssh`.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use opencode_remote::config::HostKeyPolicy;
use opencode_remote::ssh::config::SshTarget;

const SSHD: &str = "/usr/sbin/sshd";
/// How long sshd gets to start listening before the test fails with its log.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts with a fresh port when another process grabs ours between the pre-bind and sshd's bind.
const SPAWN_ATTEMPTS: usize = 5;

/// The local user, who is also the remote one: sshd runs as root here and `PermitRootLogin yes`.
pub static USER: LazyLock<String> = LazyLock::new(|| {
    let out = Command::new("id").arg("-un").output().expect("id -un runs");
    String::from_utf8(out.stdout)
        .expect("utf-8 user name")
        .trim()
        .to_string()
});

/// What varies between fixtures.
#[derive(Debug, Clone)]
pub struct SshdOptions {
    pub max_sessions: u32,
    /// sshd_config lines put before the defaults, so they win (sshd keeps the first value it reads).
    pub extra_config: Vec<String>,
}

impl Default for SshdOptions {
    fn default() -> Self {
        // OpenSSH's default.
        SshdOptions {
            max_sessions: 10,
            extra_config: Vec::new(),
        }
    }
}

/// A running sshd; dropping it kills sshd and its connections, and prints the log if the test panicked.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// Its key is in `authorized_keys`.
    pub client_key: PathBuf,
    pub host_key: PathBuf,
    /// Holds [`Sshd::known_hosts_line`] only.
    pub known_hosts: PathBuf,
    pub log: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

/// `ssh-keygen -t ed25519` into `path` (and `path.pub`); an empty passphrase leaves the key unencrypted.
pub fn keygen(path: &Path, passphrase: &str) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-C",
            "opencode-remote-test",
            "-N",
            passphrase,
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

/// The `.pub` file next to a private key, read as one line.
pub fn public_key_line(key: &Path) -> String {
    let mut pub_path = key.as_os_str().to_owned();
    pub_path.push(".pub");
    std::fs::read_to_string(&pub_path)
        .expect("read .pub")
        .trim()
        .to_string()
}

/// A port nothing listens on right now (bound to 0, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

impl Sshd {
    pub fn spawn() -> Sshd {
        Sshd::spawn_with(SshdOptions::default())
    }

    pub fn spawn_with(options: SshdOptions) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("sshd-fixture-")
            .tempdir()
            .expect("temp dir");
        let host_key = dir.path().join("ssh_host_ed25519_key");
        let client_key = dir.path().join("id_ed25519");
        keygen(&host_key, "");
        keygen(&client_key, "");
        std::fs::write(
            dir.path().join("authorized_keys"),
            public_key_line(&client_key) + "\n",
        )
        .expect("write authorized_keys");
        // sshd's compiled-in privilege separation dir; the sshd service would create it itself.
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");

        let mut sshd = Sshd {
            port: 0,
            known_hosts: dir.path().join("known_hosts"),
            log: dir.path().join("sshd.log"),
            config: dir.path().join("sshd_config"),
            client_key,
            host_key,
            child: None,
            dir,
        };
        for attempt in 1..=SPAWN_ATTEMPTS {
            sshd.port = free_port();
            std::fs::write(&sshd.config, sshd.render_config(&options)).expect("write sshd_config");
            match sshd.start() {
                Ok(()) => break,
                Err(log) if attempt < SPAWN_ATTEMPTS && log.contains("Address already in use") => {}
                Err(log) => panic!("sshd did not start:\n{log}"),
            }
        }
        std::fs::write(&sshd.known_hosts, sshd.known_hosts_line()).expect("write known_hosts");
        sshd
    }

    /// The `known_hosts` line for this sshd's host key, as OpenSSH writes it for a non-22 port.
    pub fn known_hosts_line(&self) -> String {
        format!(
            "[127.0.0.1]:{} {}\n",
            self.port,
            public_key_line(&self.host_key)
        )
    }

    fn render_config(&self, options: &SshdOptions) -> String {
        let path = |name: &str| format!("\"{}\"", self.dir.path().join(name).display());
        let extra: String = options
            .extra_config
            .iter()
            .map(|line| format!("{line}\n"))
            .collect();
        format!(
            "{extra}Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {host_key}\n\
             PidFile {pid_file}\n\
             AuthorizedKeysFile {authorized_keys}\n\
             # Keys live in a temp dir under world-writable /tmp, which StrictModes would reject.\n\
             StrictModes no\n\
             UsePAM no\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin yes\n\
             AllowTcpForwarding yes\n\
             AllowStreamLocalForwarding yes\n\
             Subsystem sftp internal-sftp\n\
             MaxSessions {max_sessions}\n\
             MaxStartups 100\n\
             PrintMotd no\n\
             LogLevel VERBOSE\n",
            port = self.port,
            host_key = path("ssh_host_ed25519_key"),
            pid_file = path("sshd.pid"),
            authorized_keys = path("authorized_keys"),
            max_sessions = options.max_sessions,
        )
    }

    /// Start sshd on `self.port` and wait until it accepts TCP and has logged "Server listening".
    /// On failure returns the log written by this start.
    fn start(&mut self) -> Result<(), String> {
        let log_start = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        let mut child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&self.config)
            .arg("-E")
            .arg(&self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sshd");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let log = self.log_since(log_start);
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("sshd exited with {status}:\n{log}"));
            }
            let accepts = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok();
            if accepts && log.contains("Server listening") {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("sshd not ready after {READY_TIMEOUT:?}:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_since(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset));
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// The whole sshd log so far.
    pub fn log_text(&self) -> String {
        self.log_since(0)
    }

    /// An [`SshTarget`] for this sshd as the current user with the fixture's client key and known_hosts,
    /// built directly so no `~/.ssh/config` or `$HOME` is consulted.
    pub fn target(&self) -> SshTarget {
        SshTarget {
            name: "testhost".into(),
            hostname: "127.0.0.1".into(),
            port: self.port,
            user: USER.clone(),
            identity_files: vec![self.client_key.clone()],
            identities_only: true,
            proxy_jump: Vec::new(),
            proxy_command: None,
            global_known_hosts_files: Vec::new(),
            host_key_alias: None,
            certificate_files: Vec::new(),
            known_hosts_files: vec![self.known_hosts.clone()],
            host_key_policy: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(15),
        }
    }

    /// Append a public key (from `key.pub`) to `authorized_keys`.
    pub fn authorize(&self, key: &Path) {
        let path = self.dir.path().join("authorized_keys");
        let mut text = std::fs::read_to_string(&path).expect("read authorized_keys");
        text.push_str(&public_key_line(key));
        text.push('\n');
        std::fs::write(&path, text).expect("write authorized_keys");
    }

    fn listener_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL every per-connection sshd process (all descendants of the listener), keeping the listener.
    /// Returns how many processes were killed.
    pub fn kill_connections(&self) -> usize {
        let Some(listener) = self.listener_pid() else {
            return 0;
        };
        let pids = descendants(listener);
        kill(&pids);
        pids.len()
    }

    /// Take the host down: kill the connections and the listener. The port stays reserved for [`restart`].
    ///
    /// [`restart`]: Sshd::restart
    pub fn stop(&mut self) {
        self.kill_connections();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start sshd again on the same port with the same keys.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.start() {
            panic!("sshd did not restart on port {}:\n{log}", self.port);
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- sshd_config ----\n{}\n---- sshd log ({}) ----\n{}",
                std::fs::read_to_string(&self.config).unwrap_or_default(),
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// All processes below `root`, from `/proc/<pid>/stat` parent links.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "pid (comm) state ppid …"; comm may contain spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    found.remove(0);
    found
}

fn kill(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// A Unix socket echo server: the "remote" service the tunnel reaches through sshd. Returns the
/// socket's path and the directory holding it (removed when dropped).
pub async fn echo_server() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("echo.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = socket.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    (path.to_string_lossy().into_owned(), dir)
}
