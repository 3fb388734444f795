//! The `[user@]host[:port]` syntax shared by hosts files, provider hosts and ProxyJump.
//!
//! Addresses end up as arguments to SSH machinery (and, for diagnostics, to `ssh` itself), so anything that
//! could be read as an option (`-oProxyCommand=…`) or split into several words is refused here, once, at
//! load time.

/// An address split into its parts. `host` may be a `~/.ssh/config` alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Splits `user@host:port`, `host`, `[v6addr]:port`, a bare IPv6 literal, or OpenSSH's `ssh://user@host:port`.
///
/// The error is a short problem statement (no fix), for the caller to wrap with the file and field.
pub fn parse_address(text: &str) -> Result<Address, String> {
    check_token(text, "address")?;
    let rest = text.strip_prefix("ssh://").unwrap_or(text);
    // OpenSSH splits at the last '@', so user names containing '@' (user@domain@host) work.
    let (user, host_port) = match rest.rsplit_once('@') {
        Some((user, host_port)) => {
            check_token(user, "user")?;
            (Some(user.to_string()), host_port)
        }
        None => (None, rest),
    };
    let (host, port) = split_host_port(host_port)?;
    check_token(host, "host")?;
    if host.contains(['/', ',']) {
        return Err(format!("host '{host}' contains '/' or ','"));
    }
    let port = port.map(parse_port).transpose()?;
    Ok(Address {
        user,
        host: host.to_string(),
        port,
    })
}

fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(inner) = text.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("'{text}' has '[' without a closing ']'"))?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("unexpected '{after}' after ']'")),
            },
        };
    }
    match (text.find(':'), text.rfind(':')) {
        (Some(first), Some(last)) if first == last => {
            Ok((&text[..first], Some(&text[first + 1..])))
        }
        // Several colons and no brackets: an IPv6 literal without a port, as OpenSSH reads it.
        _ => Ok((text, None)),
    }
}

/// Ports come from JSON as numbers, but inside an address they are text; both must be 1–65535.
pub fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("port '{text}' is not a number from 1 to 65535")),
    }
}

/// Rejects empty words, a leading '-' (option injection) and whitespace or control characters (argument
/// splitting, log forging).
pub fn check_token(text: &str, what: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if text.starts_with('-') {
        return Err(format!("{what} '{text}' starts with '-'"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{what} {text:?} contains whitespace or control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(user: Option<&str>, host: &str, port: Option<u16>) -> Address {
        Address {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn parse_address_should_split_user_host_and_port() {
        assert_eq!(parse_address("pi").unwrap(), addr(None, "pi", None));
        assert_eq!(
            parse_address("bob@10.0.0.5:2222").unwrap(),
            addr(Some("bob"), "10.0.0.5", Some(2222))
        );
        assert_eq!(
            parse_address("a@corp@h").unwrap(),
            addr(Some("a@corp"), "h", None)
        );
        assert_eq!(
            parse_address("ssh://bob@h:22").unwrap(),
            addr(Some("bob"), "h", Some(22))
        );
    }

    #[test]
    fn parse_address_should_accept_ipv6_literals() {
        assert_eq!(
            parse_address("[fe80::1]:2222").unwrap(),
            addr(None, "fe80::1", Some(2222))
        );
        assert_eq!(
            parse_address("u@[::1]").unwrap(),
            addr(Some("u"), "::1", None)
        );
        assert_eq!(
            parse_address("fe80::1").unwrap(),
            addr(None, "fe80::1", None)
        );
    }

    #[test]
    fn parse_address_should_reject_option_injection_and_bad_ports() {
        for bad in [
            "-oProxyCommand=touch /tmp/x",
            "-oProxyCommand=x",
            "u@-oProxyCommand=x",
            "-u@h",
            "h p",
            "h\n",
            "",
            "h:0",
            "h:65536",
            "h:x",
            "[::1",
            "[::1]x",
            "a,b",
        ] {
            assert!(parse_address(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
