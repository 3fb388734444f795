//! Small value conversions shared by the resolver and Match: tokens, times, the host-key policy.

use std::time::Duration;

use crate::config::HostKeyPolicy;

/// `%C`: SHA-1 of `%l%h%p%r` in hex, as OpenSSH 9.2 computes it.
pub fn connection_hash(local_host: &str, host: &str, port: &str, user: &str) -> String {
    use sha1::{Digest, Sha1};
    let mut sha = Sha1::new();
    for part in [local_host, host, port, user] {
        sha.update(part.as_bytes());
    }
    hex::encode(sha.finalize())
}

/// OpenSSH's `convtime`: `90`, `1m30s`, `2h`; `None` when it is not a time.
pub fn parse_time(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(number.parse::<u64>().ok()?.checked_mul(unit)?)?;
        number.clear();
    }
    if !number.is_empty() {
        total = total.checked_add(number.parse().ok()?)?;
    }
    Some(Duration::from_secs(total))
}

/// We never turn host key checking off: OpenSSH's `no` would even connect to a host whose key changed, so it
/// maps to accept-new, the closest setting that still refuses a changed key. `ask` has no one to ask here.
pub fn policy_from(value: &str) -> HostKeyPolicy {
    match value.to_ascii_lowercase().as_str() {
        "accept-new" | "no" | "off" | "false" => HostKeyPolicy::AcceptNew,
        _ => HostKeyPolicy::Strict,
    }
}

/// OpenSSH `%` tokens (ssh_config(5) "TOKENS"); unknown ones are left as written.
pub fn expand_tokens(text: &str, tokens: &[(char, &str)]) -> String {
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

/// Characters that may go into an `exec` command through a token: what a host or user name needs,
/// and nothing a shell would act on. OpenSSH 9.6 refuses such names on the command line for the same
/// reason; here a host name can come from a cloned project's hosts file.
pub fn safe_for_shell(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._:@[]%+,/~".contains(c))
}

/// Expands tokens into a command line that a shell will run (`Match exec`, `ProxyCommand`), refusing a
/// value that the shell would interpret.
pub fn expand_shell_tokens(template: &str, tokens: &[(char, &str)]) -> Result<String, String> {
    for (token, value) in tokens {
        if template.contains(&format!("%{token}")) && !safe_for_shell(value) {
            return Err(format!(
                "%{token} would insert {value:?}, which a shell would interpret"
            ));
        }
    }
    Ok(expand_tokens(template, tokens))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_time_should_read_openssh_time_formats() {
        assert_eq!(parse_time("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_time("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_time("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_time("ten"), None);
    }
}
