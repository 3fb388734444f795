//! The on-disk shape of hosts files and plugin options. These types only mirror the JSON; the checked,
//! normalized form that the rest of the crate uses is [`super::HostEntry`].
//!
//! Doc comments here become the descriptions of the published JSON Schema, so they speak to the user.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Hosts that OpenCode sessions can be sent to over SSH (`hosts.json` / `hosts.jsonc`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "opencode-remote hosts file")]
pub struct HostsFile {
    /// URL or path of this JSON Schema, for editor completion and checking. Ignored otherwise.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Hosts by name. The name is the only thing the model ever sees: pick a short word such as "pi" or "gpu" (letters, digits, '.', '_', '-'; at most 64 characters). The value is an SSH address (`user@host:port`, or an alias from ~/.ssh/config) or an object with more settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": "^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$" }))]
    pub hosts: BTreeMap<String, HostSpec>,
    /// Groups of hosts that SSH workspaces pick from (reserved for the workspace feature). Their hosts can also be used by name or alias wherever a host name is expected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, ProviderSpec>,
}

/// Options of the opencode-remote plugin in opencode.json (`"plugin": [["opencode-remote", { … }]]`). Hosts given here override hosts of the same name from hosts files.
// Not `deny_unknown_fields`: other features of the plugin (e.g. `remote`) keep their options in this object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "opencode-remote plugin options")]
pub struct PluginOptions {
    /// URL or path of this JSON Schema, for editor completion and checking. Ignored otherwise.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Hosts by name, exactly as in hosts.json.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": "^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$" }))]
    pub hosts: BTreeMap<String, HostSpec>,
    /// Groups of hosts for SSH workspaces, exactly as in hosts.json.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, ProviderSpec>,
}

/// A host: an SSH address, or an object with more settings.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum HostSpec {
    /// `user@host:port`, `user@host`, `host`, `[ipv6]:port`, or an alias from ~/.ssh/config.
    Address(String),
    /// A host with settings beyond its address.
    Full(Box<HostObject>),
}

/// Hand-written so that a mistake inside the object form is reported at its own field (`hosts.gpu.port`) rather than as serde's "did not match any variant of untagged enum".
impl<'de> Deserialize<'de> for HostSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = HostSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an SSH address string or a host object with a \"host\" field")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<HostSpec, E> {
                Ok(HostSpec::Address(value.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HostSpec, A::Error> {
                let object = HostObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(HostSpec::Full(Box::new(object)))
            }
        }
        deserializer.deserialize_any(SpecVisitor)
    }
}

/// A host with settings. Fields left out fall back to ~/.ssh/config, then to OpenSSH's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostObject {
    /// SSH address: `user@host:port`, `host`, `[ipv6]:port`, or an alias from ~/.ssh/config.
    pub host: String,
    /// SSH port; overrides the address and ~/.ssh/config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Remote user name; overrides the address and ~/.ssh/config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Private key to log in with (`~` is the local home). Replaces IdentityFile from ~/.ssh/config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<PathBuf>,
    /// Jump hosts to go through, comma-separated, first hop first (like OpenSSH's ProxyJump); each may be an alias from ~/.ssh/config. "none" disables a ProxyJump set in ~/.ssh/config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_jump: Option<String>,
    /// OpenCode agent to run the session with on this host (default: the session's current agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Model to run the session with on this host, as `provider/model-id` (default: the session's model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^/\s]+/\S+$"))]
    pub model: Option<String>,
    /// Working directory on the remote host (`~` is the remote home).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// Operating system of the remote host. Default: "linux".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Os>,
    /// What to do with a host key that is not in known_hosts. "strict" (default) refuses to connect; "accept-new" records it on first use. A changed key is always refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key_policy: Option<HostKeyPolicy>,
    /// Path of the `opencode` command on the remote host (default: found on the remote PATH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opencode: Option<String>,
    /// How long a round trip may wait for the remote run, in seconds (at most 604800, 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 604800))]
    pub timeout_secs: Option<u64>,
}

/// Operating system of a remote host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    #[default]
    Linux,
    Macos,
}

/// Hand-written so that "windows" gets a clear "not supported yet" instead of "unknown variant".
impl<'de> Deserialize<'de> for Os {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "linux" => Ok(Os::Linux),
            "macos" => Ok(Os::Macos),
            "windows" => Err(de::Error::custom(
                "Windows hosts are not supported yet; only \"linux\" and \"macos\" are",
            )),
            other => Err(de::Error::unknown_variant(other, &["linux", "macos"])),
        }
    }
}

/// Whether an unknown host key may be learned. There is deliberately no "off": a changed key is always refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Connect only to hosts whose key is already in known_hosts (OpenSSH `StrictHostKeyChecking yes`).
    #[default]
    Strict,
    /// Record the key of a host seen for the first time (OpenSSH `StrictHostKeyChecking accept-new`).
    AcceptNew,
}

/// A group of hosts an SSH workspace is placed on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderSpec {
    /// How a host is chosen for a new workspace.
    #[serde(default)]
    pub strategy: Strategy,
    /// Only hosts carrying all of these labels are chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The hosts of this group, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<ProviderHost>,
}

/// How a provider picks a host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The first host, in list order, that is reachable and matches the labels.
    #[default]
    FirstAvailable,
}

/// A host of a provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderHost {
    /// The host's name, as shown to the model (same rules as a key of "hosts").
    pub name: String,
    /// Other names that refer to the same host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// How to reach the host.
    pub ssh: ProviderSsh,
    /// Labels a provider's `labels` filter matches against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// SSH settings of a provider host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderSsh {
    /// SSH address: `host`, `user@host:port`, or an alias from ~/.ssh/config.
    pub host: String,
    /// Remote user name; overrides the address and ~/.ssh/config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// SSH port; overrides the address and ~/.ssh/config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Private key to log in with (`~` is the local home).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<PathBuf>,
    /// Jump hosts, comma-separated, first hop first (like OpenSSH's ProxyJump).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_jump: Option<String>,
}
