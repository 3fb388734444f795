//! OpenSSH-compatible, strict `known_hosts` checking.
//!
//! russh ships a known_hosts helper, but it splits lines on a single space (tab-separated lines never
//! match), knows neither wildcards, negation nor the `@revoked`/`@cert-authority` markers, and reports a
//! key of another algorithm as "unknown", which a trust-on-first-use caller would then silently learn.
//! Users share these files with OpenSSH, so we read them the way OpenSSH does (sshd(8), "SSH_KNOWN_HOSTS
//! FILE FORMAT"; `hostfile.c`) and write lines OpenSSH reads back.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Algorithm, Certificate, EcdsaCurve, HashAlg, PublicKey};
use sha1::Sha1;

/// Result of looking a server's host key up in the known_hosts files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// A line for this host holds exactly this key.
    Known,
    /// Lines for this host exist but none holds this key. `file`/`line` (1-based) point at the first
    /// line for the host with a key of the SAME algorithm, else the first line for the host.
    ///
    /// A host listed only with keys of *other* algorithms is "changed" too: OpenSSH's
    /// `check_key_in_hostkeys` says `HOST_CHANGED` there (verified against `ssh` 9.2), and since the
    /// client prefers the algorithms on file ([`preferred_algorithms`]) an honest server that still has
    /// its old key type never gets here.
    Changed { file: PathBuf, line: usize },
    /// The key is listed under `@revoked` for this host. Beats a `Known` line anywhere, as in OpenSSH.
    Revoked { file: PathBuf, line: usize },
    /// No line matches this host.
    Unknown,
}

/// What a host certificate amounts to against the `@cert-authority` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateStatus {
    /// Signed by a CA listed for this host, a host certificate, valid now, naming this host (or no
    /// host at all), without critical options: accepted without looking at plain keys.
    Trusted,
    /// The certificate's key or its CA is under `@revoked` for this host: refused outright.
    Revoked { file: PathBuf, line: usize },
    /// Anything else. OpenSSH then checks the key inside the certificate as a plain host key
    /// ("No matching CA found. Retry with plain key"), and so do we.
    Untrusted,
}

/// The names a server is looked up under, as OpenSSH's `get_hostfile_hostname_ipaddr` forms them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLookup {
    /// Tried first: `host` (port 22), `[host]:port`, or the `HostKeyAlias` verbatim.
    names: Vec<String>,
    /// On a non-standard port without an alias, a host nothing is on file for is retried under its
    /// plain name: `ssh -v` says "checking without port identifier" (sshconnect.c `check_host_key`).
    fallback: Option<Vec<String>>,
    /// What a learned key is recorded under.
    record_as: String,
    /// The name a host certificate must list among its principals.
    principal: String,
}

impl HostLookup {
    /// `alias` is `HostKeyAlias`: it replaces both the host name and the port, for lookup, learning
    /// and certificate principals alike.
    pub fn new(hostname: &str, port: u16, alias: Option<&str>) -> Self {
        if let Some(alias) = alias {
            return HostLookup {
                names: vec![alias.to_ascii_lowercase()],
                fallback: None,
                record_as: alias.to_ascii_lowercase(),
                principal: alias.to_string(),
            };
        }
        let host = hostname.to_ascii_lowercase();
        let bracketed = format!("[{host}]:{port}");
        if port == 22 {
            // `[host]:22` is accepted too: some tools write it and it cannot mean anything else.
            HostLookup {
                names: vec![host.clone(), bracketed],
                fallback: None,
                record_as: host,
                principal: hostname.to_string(),
            }
        } else {
            HostLookup {
                names: vec![bracketed.clone()],
                fallback: Some(vec![host]),
                record_as: bracketed,
                principal: hostname.to_string(),
            }
        }
    }

    /// The host field a learned line gets, e.g. `[10.0.0.7]:2222`.
    pub fn record_as(&self) -> &str {
        &self.record_as
    }
}

/// Looks `key` up for `host:port` in `files`, in order; see [`check_lookup`].
pub fn check(
    files: &[PathBuf],
    host: &str,
    port: u16,
    key: &PublicKey,
) -> io::Result<HostKeyStatus> {
    check_lookup(files, &HostLookup::new(host, port, None), key)
}

/// Looks a plain host `key` up in `files` (user files, then global ones), like OpenSSH.
///
/// A missing file counts as empty (the user may simply not have one yet); other read errors are
/// returned because silently ignoring e.g. an unreadable file could turn "changed" into "unknown".
/// Lines we cannot parse are skipped, as OpenSSH does, so one odd line never locks the user out.
/// `@revoked` lines apply only to hosts their pattern matches (write `@revoked *` to revoke
/// everywhere), exactly like OpenSSH. The port-less retry only turns "unknown" into "known"; a key
/// revoked under the plain name is refused as well, where OpenSSH would treat the host as new.
pub fn check_lookup(
    files: &[PathBuf],
    lookup: &HostLookup,
    key: &PublicKey,
) -> io::Result<HostKeyStatus> {
    let lines = matching_lines(files, &lookup.names)?;
    let status = key_status(&lines, &key_blob(key)?);
    match (&status, &lookup.fallback) {
        (HostKeyStatus::Unknown, Some(names)) => {
            let lines = matching_lines(files, names)?;
            Ok(match key_status(&lines, &key_blob(key)?) {
                found @ (HostKeyStatus::Known | HostKeyStatus::Revoked { .. }) => found,
                _ => status,
            })
        }
        _ => Ok(status),
    }
}

/// Checks a host certificate against the `@cert-authority` and `@revoked` lines for the host, as
/// OpenSSH's `check_host_key` + `check_host_cert` do; `now` is seconds since the epoch.
pub fn check_certificate(
    files: &[PathBuf],
    lookup: &HostLookup,
    cert: &Certificate,
    now: u64,
) -> io::Result<CertificateStatus> {
    let passes = std::iter::once(&lookup.names).chain(lookup.fallback.as_ref());
    for names in passes {
        let lines = matching_lines(files, names)?;
        match cert_status(&lines, cert, &lookup.principal, now)? {
            // No CA on file under these names: only then does OpenSSH retry without the port.
            None => continue,
            Some(status) => return Ok(status),
        }
    }
    Ok(CertificateStatus::Untrusted)
}

/// Host key algorithms to offer, most wanted first, as OpenSSH's `order_hostkeyalgs` orders them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlgorithmPreference {
    /// Plain algorithms: those of the keys on file for the host first, the rest after, each group in
    /// the default order.
    pub keys: Vec<Algorithm>,
    /// Certificate algorithms to offer ahead of `keys` (see [`preferred_algorithms`] for when).
    /// OpenSSH offers the certificate variants of known key types too and falls back to the plain key
    /// inside; russh puts certificates ahead of every plain key, so offering them while plain keys are
    /// on file could pick a certified key of a type not on file over a plain one that is.
    pub certificates: Vec<Algorithm>,
}

/// The default host key algorithms, in russh's (and OpenSSH's) order.
fn default_algorithms() -> Vec<Algorithm> {
    vec![
        Algorithm::Ed25519,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha256),
        },
        Algorithm::Rsa { hash: None },
    ]
}

/// The key type name in a known_hosts line that an algorithm signs with (all RSA variants share one).
fn key_type_of(algorithm: &Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Ed25519 => "ssh-ed25519",
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        } => "ecdsa-sha2-nistp256",
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        } => "ecdsa-sha2-nistp384",
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        } => "ecdsa-sha2-nistp521",
        Algorithm::Rsa { .. } => "ssh-rsa",
        _ => "",
    }
}

/// Orders the host key algorithms by what `files` hold for the host (the primary names only, as
/// OpenSSH does: the port-less retry plays no part in the order).
///
/// Certificates are offered when a `@cert-authority` line matches the host under either name (the
/// port-less retry applies to certificates too) or when no plain key is on file at all, where
/// OpenSSH's default list puts certificates first as well.
pub fn preferred_algorithms(
    files: &[PathBuf],
    lookup: &HostLookup,
) -> io::Result<AlgorithmPreference> {
    let lines = matching_lines(files, &lookup.names)?;
    let known: Vec<&[u8]> = lines
        .iter()
        .filter(|l| l.marker == Marker::None)
        .filter_map(|l| blob_type(&l.blob))
        .collect();
    let is_ca = |l: &Found| l.marker == Marker::CertAuthority;
    let has_ca = lines.iter().any(is_ca)
        || match &lookup.fallback {
            Some(names) => matching_lines(files, names)?.iter().any(is_ca),
            None => false,
        };
    let (mut keys, rest): (Vec<_>, Vec<_>) = default_algorithms()
        .into_iter()
        .partition(|a| known.contains(&key_type_of(a).as_bytes()));
    keys.extend(rest);
    let certificates = if has_ca || known.is_empty() {
        // OpenSSH offers no certificate variant of SHA-1 `ssh-rsa`.
        default_algorithms()
            .into_iter()
            .filter(|a| *a != Algorithm::Rsa { hash: None })
            .collect()
    } else {
        Vec::new()
    };
    Ok(AlgorithmPreference { keys, certificates })
}

/// One line that matched the host, with where it was.
struct Found {
    marker: Marker,
    blob: Vec<u8>,
    file: PathBuf,
    line: usize,
}

/// Every parseable line of `files` whose host field matches one of `names`, in file order.
fn matching_lines(files: &[PathBuf], names: &[String]) -> io::Result<Vec<Found>> {
    let mut found = Vec::new();
    for file in files {
        let bytes = match fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&bytes);
        for (index, raw) in text.lines().enumerate() {
            let Some(entry) = Entry::parse(raw) else {
                continue;
            };
            if host_matches(entry.hosts, names) {
                found.push(Found {
                    marker: entry.marker,
                    blob: entry.blob,
                    file: file.clone(),
                    line: index + 1,
                });
            }
        }
    }
    Ok(found)
}

fn key_status(lines: &[Found], wanted: &[u8]) -> HostKeyStatus {
    let wanted_type = blob_type(wanted);
    if let Some(revoked) = lines
        .iter()
        .find(|l| l.marker == Marker::Revoked && l.blob == wanted)
    {
        return HostKeyStatus::Revoked {
            file: revoked.file.clone(),
            line: revoked.line,
        };
    }
    let plain: Vec<&Found> = lines.iter().filter(|l| l.marker == Marker::None).collect();
    if plain.iter().any(|l| l.blob == wanted) {
        return HostKeyStatus::Known;
    }
    let offending = plain
        .iter()
        .find(|l| blob_type(&l.blob) == wanted_type)
        .or(plain.first());
    match offending {
        Some(l) => HostKeyStatus::Changed {
            file: l.file.clone(),
            line: l.line,
        },
        None => HostKeyStatus::Unknown,
    }
}

/// `None` when no `@cert-authority` line for these names holds the certificate's signer (and
/// nothing is revoked): the caller may try other names.
fn cert_status(
    lines: &[Found],
    cert: &Certificate,
    principal: &str,
    now: u64,
) -> io::Result<Option<CertificateStatus>> {
    let key = key_blob(&PublicKey::new(cert.public_key().clone(), ""))?;
    let ca_key = PublicKey::new(cert.signature_key().clone(), "");
    let ca = key_blob(&ca_key)?;
    if let Some(revoked) = lines
        .iter()
        .find(|l| l.marker == Marker::Revoked && (l.blob == key || l.blob == ca))
    {
        return Ok(Some(CertificateStatus::Revoked {
            file: revoked.file.clone(),
            line: revoked.line,
        }));
    }
    if !lines
        .iter()
        .any(|l| l.marker == Marker::CertAuthority && l.blob == ca)
    {
        return Ok(None);
    }
    let fingerprint = ca_key.fingerprint(HashAlg::Sha256);
    let valid = cert.cert_type() == CertType::Host
        // Signature by the CA, and valid_after <= now < valid_before.
        && cert.validate_at(now, [&fingerprint]).is_ok()
        // sshconnect.c `check_host_cert`: no principals means any host; names compare exactly.
        && (cert.valid_principals().is_empty()
            || cert.valid_principals().iter().any(|p| p == principal))
        && cert.critical_options().is_empty();
    Ok(Some(if valid {
        CertificateStatus::Trusted
    } else {
        CertificateStatus::Untrusted
    }))
}

/// Appends `key` for `host:port` to `file`, the way `ssh` would after the user accepted it.
///
/// The host name is lower-cased because `ssh` lower-cases it before both lookup and learning.
pub fn learn(file: &Path, host: &str, port: u16, key: &PublicKey) -> io::Result<()> {
    check_plain_name(host)?;
    learn_as(file, &HostLookup::new(host, port, None), key)
}

/// Appends `key` under `lookup`'s name (`host`, `[host]:port` or the `HostKeyAlias`) to `file`.
///
/// The whole line goes out in one `write` on an `O_APPEND` descriptor, so concurrent connections
/// learning keys at once cannot interleave partial lines. The comment is dropped, as `ssh` does.
pub fn learn_as(file: &Path, lookup: &HostLookup, key: &PublicKey) -> io::Result<()> {
    let name = lookup.record_as();
    let plain = name
        .strip_prefix('[')
        .and_then(|rest| rest.rsplit_once("]:"))
        .map_or(name, |(host, _port)| host);
    check_plain_name(plain)?;
    let blob = key_blob(key)?;
    let key_type = blob_type(&blob)
        .and_then(|t| std::str::from_utf8(t).ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "host key blob has no algorithm name",
            )
        })?;
    let mut line = format!("{name} {key_type} {}\n", BASE64.encode(&blob));

    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut out = open_private_append(file)?;
    // An exclusive lock for the check-then-append: a reader may otherwise see another writer's line
    // half-copied and add a stray newline.
    out.lock()?;
    if !ends_with_newline_or_empty(&mut out)? {
        line.insert(0, '\n');
    }
    out.write_all(line.as_bytes())
}

/// Refuses names that would turn the host field into a pattern list or break the line apart.
fn check_plain_name(host: &str) -> io::Result<()> {
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || ",*?!|#@[]".contains(c))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to record host key for unusual host name {host:?}"),
        ));
    }
    Ok(())
}

/// SHA256 fingerprint as OpenSSH prints it ("SHA256:…"), for messages.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    CertAuthority,
    Revoked,
}

/// One parsed known_hosts line. Keys are kept as their raw wire blob (algorithm name + key bytes):
/// comparing blobs is exactly OpenSSH's "same key" test, ignores comments, and still lets a line whose
/// algorithm our ssh-key build cannot parse (e.g. `ssh-dss`) count as "this host has another key".
struct Entry<'a> {
    marker: Marker,
    hosts: &'a str,
    blob: Vec<u8>,
}

impl<'a> Entry<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let mut fields = line.split([' ', '\t']).filter(|f| !f.is_empty());
        let mut hosts = fields.next()?;
        if hosts.starts_with('#') {
            return None;
        }
        let marker = match hosts {
            "@cert-authority" => Marker::CertAuthority,
            "@revoked" => Marker::Revoked,
            other if other.starts_with('@') => return None,
            _ => Marker::None,
        };
        if marker != Marker::None {
            hosts = fields.next()?;
        }
        let key_type = fields.next()?;
        let blob = BASE64.decode(fields.next()?).ok()?;
        // OpenSSH rejects a line whose type field disagrees with the blob; so do we.
        (blob_type(&blob)? == key_type.as_bytes()).then_some(Entry {
            marker,
            hosts,
            blob,
        })
    }
}

/// OpenSSH `match_hostname`: a negated pattern that matches rejects the line outright, whatever else
/// matches; patterns compare case-insensitively. A hashed field is a single name, never a list.
fn host_matches(field: &str, names: &[String]) -> bool {
    if field.starts_with('|') {
        return field
            .strip_prefix("|1|")
            .is_some_and(|hashed| hashed_matches(hashed, names));
    }
    let mut matched = false;
    for pattern in field.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let pattern = pattern.to_ascii_lowercase();
        if names
            .iter()
            .any(|name| wildcard_match(pattern.as_bytes(), name.as_bytes()))
        {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, as written by `HashKnownHosts` / `ssh-keygen -H`.
fn hashed_matches(hashed: &str, names: &[String]) -> bool {
    let Some((salt, digest)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(digest)) = (BASE64.decode(salt), BASE64.decode(digest)) else {
        return false;
    };
    names.iter().any(|name| {
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
            return false;
        };
        mac.update(name.as_bytes());
        mac.verify_slice(&digest).is_ok()
    })
}

/// Glob with `*` (any run, including empty) and `?` (one byte), like OpenSSH `match_pattern`.
/// Iterative with single-star backtracking, so hostile patterns cannot blow up the stack or time.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn key_blob(key: &PublicKey) -> io::Result<Vec<u8>> {
    key.to_bytes().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot encode host key: {e}"),
        )
    })
}

/// The algorithm name every SSH public key blob starts with (a length-prefixed string).
fn blob_type(blob: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    blob.get(4..4usize.checked_add(len)?)
}

/// `~/.ssh` must stay private or OpenSSH's StrictModes-style checks (and good sense) object.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opened for reading too, to look at the last byte; `append` keeps every write at the end regardless.
fn open_private_append(file: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(file)
}

/// Hand-edited files often lack a final newline; appending blindly would glue our entry onto the last
/// line and corrupt both.
fn ends_with_newline_or_empty(file: &mut File) -> io::Result<bool> {
    if file.metadata()?.len() == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::public::{Ed25519PublicKey, KeyData};
    use std::process::Command;

    // Generated with `ssh-keygen -t ed25519|ecdsa` when this test was written.
    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPgHl11E1HIEooz/seXKZei2arFKISQenG3VnaEPVuHX a";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNYzPBjelgRm2opMD2GtrklcDsj8+uigUiNfDnJHwnk b";
    const KEY_C: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJv8vJZM6ONQFUFS8KF9kTffNiVm4sg0poeoO5NnCtbzLXyNOYhiRGilj5HLtVOQbFCvtmvLDzf6/VNgB2Dr3t0= c";
    const FINGERPRINT_A: &str = "SHA256:oixYSV7aS2PNIJ4qzqaf9ABX3rMtnc+imTIIfnFp+Cg";
    // `ssh-keygen -H` of "server.example.com KEY_A" and "[server.example.com]:2222 KEY_A".
    const HASHED_22: &str = "|1|g6LIfRzgwL3OIpzVGwO+ZuQKnZ4=|X5xfjT8xYIUrK9kWh8YEbuDSkRI=";
    const HASHED_2222: &str = "|1|ACtRepWapn8hC59BKKZFu0RzyDU=|SAD+RBqEUVs2hMU/YCxawRDpsyM=";

    fn key(openssh: &str) -> PublicKey {
        PublicKey::from_openssh(openssh).unwrap()
    }

    /// Type and base64 fields only, the way known_hosts lines carry a key.
    fn bare(openssh: &str) -> String {
        openssh.split(' ').take(2).collect::<Vec<_>>().join(" ")
    }

    fn random_ed25519() -> PublicKey {
        PublicKey::new(KeyData::Ed25519(Ed25519PublicKey(rand::random())), "")
    }

    fn write(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
        let path = dir.path().join(name);
        fs::write(&path, content).unwrap();
        path
    }

    /// Checks `key` against a single file holding `content`.
    fn check_one(
        content: &str,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> (HostKeyStatus, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir, "known_hosts", content);
        (
            check(std::slice::from_ref(&file), host, port, key).unwrap(),
            file,
        )
    }

    fn status(content: &str, host: &str, port: u16, key: &PublicKey) -> HostKeyStatus {
        check_one(content, host, port, key).0
    }

    #[test]
    fn check_should_report_known_for_plain_host_line() {
        let content = format!("server.example.com {}\n", bare(KEY_A));
        assert_eq!(
            status(&content, "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Known
        );
    }

    #[test]
    fn check_should_report_unknown_when_no_line_matches_host() {
        let content = format!("other.example.com {}\n", bare(KEY_A));
        assert_eq!(
            status(&content, "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
        assert_eq!(
            status("", "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn check_should_match_bracketed_entry_only_for_its_port() {
        let content = format!("[server.example.com]:2222 {}\n", bare(KEY_A));
        assert_eq!(
            status(&content, "server.example.com", 2222, &key(KEY_A)),
            HostKeyStatus::Known
        );
        assert_eq!(
            status(&content, "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
        assert_eq!(
            status(&content, "server.example.com", 2200, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
    }

    /// `ssh -v`: "checking without port identifier" / "found matching key w/out port" (OpenSSH 9.2).
    #[test]
    fn check_should_fall_back_to_the_plain_host_line_on_other_ports() {
        let plain = format!("server.example.com {}\n", bare(KEY_A));
        assert_eq!(
            status(&plain, "server.example.com", 2222, &key(KEY_A)),
            HostKeyStatus::Known
        );
        // The retry only rescues an unknown host: a different key on the port-less line does not
        // make it "changed", and a changed bracketed line stays changed.
        assert_eq!(
            status(&plain, "server.example.com", 2222, &key(KEY_B)),
            HostKeyStatus::Unknown
        );
        let both = format!(
            "[server.example.com]:2222 {}\nserver.example.com {}\n",
            bare(KEY_B),
            bare(KEY_A)
        );
        let (changed, file) = check_one(&both, "server.example.com", 2222, &key(KEY_A));
        assert_eq!(changed, HostKeyStatus::Changed { file, line: 1 });
        // Not with an alias: it replaces host and port.
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir, "kh", &plain);
        let lookup = HostLookup::new("server.example.com", 2222, Some("alias"));
        assert_eq!(
            check_lookup(&[file], &lookup, &key(KEY_A)).unwrap(),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn check_should_accept_bracketed_port_22_entry_for_default_port() {
        let content = format!("[server.example.com]:22 {}\n", bare(KEY_A));
        assert_eq!(
            status(&content, "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Known
        );
    }

    #[test]
    fn check_should_match_hashed_entries_written_by_ssh_keygen() {
        let content = format!("{HASHED_22} {}\n", bare(KEY_A));
        assert_eq!(
            status(&content, "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Known
        );
        assert_eq!(
            status(&content, "server.example.com", 2222, &key(KEY_A)),
            HostKeyStatus::Known,
            "the port-less retry"
        );
        assert_eq!(
            status(&content, "other.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
        let content = format!("{HASHED_2222} {}\n", bare(KEY_A));
        assert_eq!(
            status(&content, "server.example.com", 2222, &key(KEY_A)),
            HostKeyStatus::Known
        );
        assert_eq!(
            status(&content, "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn check_should_match_hashed_entry_computed_in_test() {
        let salt: [u8; 20] = rand::random();
        let mut mac = Hmac::<Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"[10.0.0.7]:2222");
        let digest = mac.finalize().into_bytes();
        let field = format!("|1|{}|{}", BASE64.encode(salt), BASE64.encode(digest));
        let content = format!("{field} {}\n", bare(KEY_A));
        assert_eq!(
            status(&content, "10.0.0.7", 2222, &key(KEY_A)),
            HostKeyStatus::Known
        );
        assert_eq!(
            status(&content, "10.0.0.8", 2222, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
        let (changed, file) = check_one(&content, "10.0.0.7", 2222, &key(KEY_B));
        assert_eq!(changed, HostKeyStatus::Changed { file, line: 1 });
    }

    #[test]
    fn check_should_match_wildcard_patterns() {
        let content = format!(
            "*.example.com {a}\nweb?.example.org {a}\n[*.lab]:2222 {a}\n",
            a = bare(KEY_A)
        );
        let known = |host, port| status(&content, host, port, &key(KEY_A)) == HostKeyStatus::Known;
        assert!(known("a.example.com", 22));
        assert!(known("deep.sub.example.com", 22));
        assert!(!known("example.com", 22));
        assert!(
            known("a.example.com", 2222),
            "no bracketed line: the port-less retry matches the plain pattern"
        );
        assert!(known("web1.example.org", 22));
        assert!(!known("web12.example.org", 22));
        assert!(known("box.lab", 2222));
        assert!(!known("box.lab", 22));
    }

    #[test]
    fn check_should_exclude_line_when_negated_pattern_matches() {
        let content = format!("*.example.com,!bad.example.com {}\n", bare(KEY_A));
        assert_eq!(
            status(&content, "good.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Known
        );
        assert_eq!(
            status(&content, "bad.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
        // The negation must win even when another pattern of the line names the host exactly.
        let content = format!("bad.example.com,!bad.example.com {}\n", bare(KEY_A));
        assert_eq!(
            status(&content, "bad.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
        // A line with only negations matches nothing.
        let content = format!("!bad.example.com {}\n", bare(KEY_A));
        assert_eq!(
            status(&content, "good.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn check_should_accept_tabs_and_runs_of_blanks_between_fields() {
        let (kind, b64) = bare(KEY_A)
            .split_once(' ')
            .map(|(k, b)| (k.to_owned(), b.to_owned()))
            .unwrap();
        let content = format!("  server.example.com\t\t{kind} \t {b64}\tcomment  with spaces\r\n");
        assert_eq!(
            status(&content, "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Known
        );
        let revoked = format!("@revoked\tserver.example.com\t{kind}\t{b64}\n");
        assert!(matches!(
            status(&revoked, "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Revoked { line: 1, .. }
        ));
    }

    #[test]
    fn check_should_compare_hosts_case_insensitively() {
        let content = format!("Server.Example.COM {}\n", bare(KEY_A));
        assert_eq!(
            status(&content, "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Known
        );
        assert_eq!(
            status(&content, "SERVER.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Known
        );
    }

    #[test]
    fn check_should_ignore_key_comments() {
        let content = format!("server.example.com {} some other comment\n", bare(KEY_A));
        assert_eq!(
            status(&content, "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Known
        );
    }

    #[test]
    fn check_should_report_revoked_over_known_in_any_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(
            &dir,
            "first",
            &format!("server.example.com {}\n", bare(KEY_A)),
        );
        let second = write(
            &dir,
            "second",
            &format!("# note\n@revoked * {}\n", bare(KEY_A)),
        );
        let status = check(
            &[first, second.clone()],
            "server.example.com",
            22,
            &key(KEY_A),
        )
        .unwrap();
        assert_eq!(
            status,
            HostKeyStatus::Revoked {
                file: second,
                line: 2
            }
        );
    }

    #[test]
    fn check_should_apply_revoked_lines_only_to_matching_hosts() {
        let content = format!(
            "@revoked other.example.com {a}\nserver.example.com {a}\n",
            a = bare(KEY_A)
        );
        assert_eq!(
            status(&content, "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Known
        );
    }

    #[test]
    fn check_should_not_count_revoked_lines_of_other_keys_as_host_entries() {
        let content = format!("@revoked server.example.com {}\n", bare(KEY_B));
        assert_eq!(
            status(&content, "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn check_should_ignore_cert_authority_lines() {
        let content = format!("@cert-authority *.example.com {}\n", bare(KEY_A));
        assert_eq!(
            status(&content, "server.example.com", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
        assert_eq!(
            status(&content, "server.example.com", 22, &key(KEY_B)),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn check_should_report_changed_at_first_line_with_same_algorithm() {
        let content = format!(
            "# comment\n\nother.example.com {a}\nserver.example.com {c}\n  # indented comment\nserver.example.com {b}\n",
            a = bare(KEY_A),
            b = bare(KEY_B),
            c = bare(KEY_C),
        );
        let (status, file) = check_one(&content, "server.example.com", 22, &key(KEY_A));
        assert_eq!(status, HostKeyStatus::Changed { file, line: 6 });
    }

    #[test]
    fn check_should_report_changed_for_key_of_other_type() {
        let content = format!("\nserver.example.com {}\n", bare(KEY_C));
        let (status, file) = check_one(&content, "server.example.com", 22, &key(KEY_A));
        assert_eq!(status, HostKeyStatus::Changed { file, line: 2 });
    }

    #[test]
    fn check_should_point_changed_at_earliest_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(
            &dir,
            "first",
            &format!("x {}\nserver.example.com {}\n", bare(KEY_A), bare(KEY_C)),
        );
        let second = write(
            &dir,
            "second",
            &format!("server.example.com {}\n", bare(KEY_B)),
        );
        let files = [first.clone(), second.clone()];
        let status = check(&files, "server.example.com", 22, &key(KEY_A)).unwrap();
        assert_eq!(
            status,
            HostKeyStatus::Changed {
                file: second,
                line: 1
            },
            "same algorithm wins"
        );
        let status = check(&files, "server.example.com", 22, &key(KEY_B)).unwrap();
        assert_eq!(status, HostKeyStatus::Known);
        let status = check(&files, "server.example.com", 22, &random_ed25519()).unwrap();
        assert!(matches!(status, HostKeyStatus::Changed { line: 1, .. }));
        let status = check(&files[..1], "server.example.com", 22, &key(KEY_A)).unwrap();
        assert_eq!(
            status,
            HostKeyStatus::Changed {
                file: first,
                line: 2
            },
            "else first line"
        );
    }

    #[test]
    fn check_should_report_known_when_any_line_holds_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(
            &dir,
            "first",
            &format!("server.example.com {}\n", bare(KEY_B)),
        );
        let second = write(&dir, "second", &format!("*.example.com {}\n", bare(KEY_A)));
        let status = check(&[first, second], "server.example.com", 22, &key(KEY_A)).unwrap();
        assert_eq!(status, HostKeyStatus::Known);
    }

    #[test]
    fn check_should_treat_missing_file_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let present = write(
            &dir,
            "present",
            &format!("server.example.com {}\n", bare(KEY_A)),
        );
        let missing = dir.path().join("nope/known_hosts");
        let status = check(
            std::slice::from_ref(&missing),
            "server.example.com",
            22,
            &key(KEY_A),
        )
        .unwrap();
        assert_eq!(status, HostKeyStatus::Unknown);
        let status = check(&[missing, present], "server.example.com", 22, &key(KEY_A)).unwrap();
        assert_eq!(status, HostKeyStatus::Known);
    }

    #[test]
    fn check_should_fail_on_unreadable_file() {
        let dir = tempfile::tempdir().unwrap();
        let result = check(
            &[dir.path().to_path_buf()],
            "server.example.com",
            22,
            &key(KEY_A),
        );
        assert!(
            result.is_err(),
            "a directory is not an empty known_hosts file"
        );
    }

    #[test]
    fn check_should_skip_unparseable_lines() {
        let (kind, b64) = bare(KEY_B)
            .split_once(' ')
            .map(|(k, b)| (k.to_owned(), b.to_owned()))
            .unwrap();
        let content = [
            "server.example.com".to_owned(),
            format!("server.example.com {kind}"),
            format!("server.example.com {kind} !!!not-base64!!!"),
            format!("server.example.com ecdsa-sha2-nistp256 {b64}"),
            format!("server.example.com {kind} AAAA"),
            format!("@bogus server.example.com {kind} {b64}"),
            format!("|2|abc|def {kind} {b64}"),
            format!("|1|%%%|%%% {kind} {b64}"),
            "server.example.com 1024 65537 12345678901234567890".to_owned(),
            "\u{feff}garbage \u{0}\u{1}".to_owned(),
        ]
        .join("\n");
        let mut bytes = content.into_bytes();
        bytes.extend_from_slice(b"\nserver.example.com \xff\xfe\n");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        fs::write(&file, bytes).unwrap();
        let status = check(&[file], "server.example.com", 22, &key(KEY_A)).unwrap();
        assert_eq!(status, HostKeyStatus::Unknown);
    }

    #[test]
    fn check_should_handle_pathological_wildcards_quickly() {
        let pattern = "*a".repeat(40) + "*b";
        let content = format!("{pattern} {}\n", bare(KEY_A));
        let host = "a".repeat(200);
        assert_eq!(
            status(&content, &host, 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn wildcard_match_should_follow_openssh_glob_rules() {
        assert!(wildcard_match(b"*", b""));
        assert!(wildcard_match(b"a*c", b"abbbc"));
        assert!(wildcard_match(b"a*c", b"ac"));
        assert!(!wildcard_match(b"a*c", b"acd"));
        assert!(wildcard_match(b"?b*", b"abxyz"));
        assert!(!wildcard_match(b"?", b""));
        assert!(wildcard_match(b"*.*.com", b"a.b.com"));
        assert!(!wildcard_match(b"", b"a"));
    }

    #[test]
    fn learn_then_check_should_report_known() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b/known_hosts");
        let (k22, k2222) = (random_ed25519(), key(KEY_C));
        learn(&file, "Server.Example.com", 22, &k22).unwrap();
        learn(&file, "server.example.com", 2222, &k2222).unwrap();
        let files = [file.clone()];
        assert_eq!(
            check(&files, "server.example.com", 22, &k22).unwrap(),
            HostKeyStatus::Known
        );
        assert_eq!(
            check(&files, "server.example.com", 2222, &k2222).unwrap(),
            HostKeyStatus::Known
        );
        let text = fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("server.example.com ssh-ed25519 "),
            "no leading blank line: {text:?}"
        );
        assert!(
            text.ends_with(&format!("[server.example.com]:2222 {}\n", bare(KEY_C))),
            "{text:?}"
        );
        assert_eq!(text.lines().count(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn learn_should_create_private_file_and_dir() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ssh_dir = dir.path().join(".ssh");
        let file = ssh_dir.join("known_hosts");
        learn(&file, "h", 22, &key(KEY_A)).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&ssh_dir), 0o700);
    }

    #[test]
    fn learn_should_append_after_file_without_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let existing = format!("# mine\nold.example.com {}", bare(KEY_B));
        let file = write(&dir, "known_hosts", &existing);
        learn(&file, "new.example.com", 22, &key(KEY_A)).unwrap();
        let expected = format!("{existing}\nnew.example.com {}\n", bare(KEY_A));
        assert_eq!(fs::read_to_string(&file).unwrap(), expected);
        let files = [file];
        assert_eq!(
            check(&files, "old.example.com", 22, &key(KEY_B)).unwrap(),
            HostKeyStatus::Known
        );
        assert_eq!(
            check(&files, "new.example.com", 22, &key(KEY_A)).unwrap(),
            HostKeyStatus::Known
        );
    }

    #[test]
    fn learn_should_not_add_blank_line_to_empty_or_terminated_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(&dir, "empty", "");
        learn(&empty, "h", 22, &key(KEY_A)).unwrap();
        assert_eq!(
            fs::read_to_string(&empty).unwrap(),
            format!("h {}\n", bare(KEY_A))
        );
        let terminated = write(&dir, "terminated", "# x\n");
        learn(&terminated, "h", 22, &key(KEY_A)).unwrap();
        assert_eq!(
            fs::read_to_string(&terminated).unwrap(),
            format!("# x\nh {}\n", bare(KEY_A))
        );
    }

    #[test]
    fn learn_should_reject_host_names_that_are_patterns_or_break_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        for host in [
            "", "a b", "a\tb", "a\nb", "a,b", "*.x", "h?", "!h", "|1|x", "#h", "@revoked", "[h]:22",
        ] {
            let err = learn(&file, host, 22, &key(KEY_A)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{host:?}");
        }
        assert!(!file.exists());
    }

    #[test]
    fn learn_should_not_interleave_concurrent_writers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let keys: Vec<PublicKey> = (0..64).map(|_| random_ed25519()).collect();
        std::thread::scope(|scope| {
            for (i, chunk) in keys.chunks(8).enumerate() {
                let file = &file;
                scope.spawn(move || {
                    for k in chunk {
                        learn(file, &format!("host{i}"), 2222, k).unwrap();
                    }
                });
            }
        });
        let text = fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), keys.len());
        assert!(text.lines().all(|l| Entry::parse(l).is_some()), "{text}");
        for (i, chunk) in keys.chunks(8).enumerate() {
            for k in chunk {
                let status =
                    check(std::slice::from_ref(&file), &format!("host{i}"), 2222, k).unwrap();
                assert_eq!(status, HostKeyStatus::Known);
            }
        }
    }

    #[test]
    fn preferred_algorithms_should_put_the_types_on_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let user = write(&dir, "user", &format!("[h]:2222 {}\n", bare(KEY_C)));
        let global = write(&dir, "global", "");
        let files = [user.clone(), global.clone()];
        let order = preferred_algorithms(&files, &HostLookup::new("h", 2222, None)).unwrap();
        assert_eq!(
            order.keys[0],
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256
            }
        );
        assert_eq!(
            order.keys[1],
            Algorithm::Ed25519,
            "the rest keep their order"
        );
        assert_eq!(order.keys.len(), default_algorithms().len());
        assert!(order.certificates.is_empty(), "a plain key on file, no CA");
        // Nothing on file: the default order, certificates first as OpenSSH offers them.
        let order = preferred_algorithms(&files, &HostLookup::new("other", 22, None)).unwrap();
        assert_eq!(order.keys, default_algorithms());
        assert!(!order.certificates.is_empty());
        // A global file counts; the port-less name does not decide the order.
        fs::write(
            &global,
            format!("h {}\n[g]:22 {}\n", bare(KEY_A), bare(KEY_C)),
        )
        .unwrap();
        let order = preferred_algorithms(&files, &HostLookup::new("g", 22, None)).unwrap();
        assert!(matches!(order.keys[0], Algorithm::Ecdsa { .. }));
        let order = preferred_algorithms(&files, &HostLookup::new("h", 2222, None)).unwrap();
        assert!(matches!(order.keys[0], Algorithm::Ecdsa { .. }));
        // A CA under the port-less name offers certificates.
        fs::write(&global, format!("@cert-authority h {}\n", bare(KEY_A))).unwrap();
        let order = preferred_algorithms(&files, &HostLookup::new("h", 2222, None)).unwrap();
        assert!(order.certificates.contains(&Algorithm::Ed25519));
    }

    #[test]
    fn learn_as_should_record_under_the_alias() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let lookup = HostLookup::new("10.0.0.7", 2222, Some("MyBox"));
        learn_as(&file, &lookup, &key(KEY_A)).unwrap();
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("mybox {}\n", bare(KEY_A))
        );
        let files = [file];
        assert_eq!(
            check_lookup(&files, &lookup, &key(KEY_A)).unwrap(),
            HostKeyStatus::Known
        );
        assert_eq!(
            check(&files, "10.0.0.7", 2222, &key(KEY_A)).unwrap(),
            HostKeyStatus::Unknown
        );
        let bad = HostLookup::new("h", 22, Some("a,b"));
        assert!(learn_as(&files[0], &bad, &key(KEY_A)).is_err());
    }

    #[test]
    fn fingerprint_should_match_ssh_keygen_output() {
        assert_eq!(fingerprint(&key(KEY_A)), FINGERPRINT_A);
    }

    /// Runs `ssh-keygen -F name -f file`; `None` (with a note) when ssh-keygen is not installed.
    fn ssh_keygen_find(name: &str, file: &Path) -> Option<std::process::Output> {
        match Command::new("ssh-keygen")
            .arg("-F")
            .arg(name)
            .arg("-f")
            .arg(file)
            .output()
        {
            Ok(output) => Some(output),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                eprintln!("note: ssh-keygen not found, skipping the OpenSSH cross-check");
                None
            }
            Err(e) => panic!("running ssh-keygen: {e}"),
        }
    }

    #[test]
    fn learn_should_write_lines_openssh_reads() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            &dir,
            "known_hosts",
            &format!("# hand-written\nother {}", bare(KEY_B)),
        );
        learn(&file, "127.0.0.1", 2222, &key(KEY_A)).unwrap();
        let Some(output) = ssh_keygen_find("[127.0.0.1]:2222", &file) else {
            return;
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "ssh-keygen -F failed: {output:?}");
        assert!(stdout.contains("found: line 3"), "{stdout}");
        assert!(
            stdout.contains(&format!("[127.0.0.1]:2222 {}", bare(KEY_A))),
            "{stdout}"
        );
        let other = ssh_keygen_find("127.0.0.1", &file).unwrap();
        assert!(!other.status.success(), "port 22 must not match: {other:?}");
    }

    #[test]
    fn check_should_agree_with_ssh_keygen_on_host_matching() {
        let a = bare(KEY_A);
        let lines = [
            format!("*.example.com,!bad.example.com {a}"),
            format!("[*.lab]:2222,h?st {a}"),
            format!("{HASHED_22} {a}"),
            format!("@cert-authority ca.example.org {a}"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir, "known_hosts", &(lines.join("\n") + "\n"));
        let names = [
            ("a.example.com", 22),
            ("bad.example.com", 22),
            ("example.com", 22),
            ("a.example.com", 2222),
            ("box.lab", 2222),
            ("box.lab", 22),
            ("host", 22),
            ("Host", 22),
            ("hoost", 22),
            ("server.example.com", 22),
            ("ca.example.org", 22),
        ];
        for (host, port) in names {
            let name = if port == 22 {
                host.to_owned()
            } else {
                format!("[{host}]:{port}")
            };
            let Some(output) = ssh_keygen_find(&name, &file) else {
                return;
            };
            // ssh-keygen also lists @cert-authority lines (suffixed "CA"); they hold no host keys.
            let stdout = String::from_utf8_lossy(&output.stdout);
            let openssh = stdout.lines().any(|l| {
                l.starts_with("# Host ") && l.trim_end().ends_with(|c: char| c.is_ascii_digit())
            });
            assert_eq!(openssh, output.status.success() && !name.starts_with("ca."));
            // `ssh-keygen -F` knows nothing of the port-less retry `ssh` makes.
            let lookup = HostLookup {
                fallback: None,
                ..HostLookup::new(host, port, None)
            };
            let ours = check_lookup(std::slice::from_ref(&file), &lookup, &key(KEY_A)).unwrap()
                == HostKeyStatus::Known;
            assert_eq!(ours, openssh, "{name}: {output:?}");
        }
    }
}
