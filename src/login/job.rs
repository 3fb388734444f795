//! A remote job: the files we send, and the only two command lines we ever run for `remote_login`.
//!
//! The command lines are constant apart from the job id, which we generate (hex) and still quote. All
//! user-, model- and config-supplied text travels as file contents inside a tar stream on stdin, so no
//! quoting of it exists to get wrong.

use crate::ssh::quote::quote;

const DISPATCH_SCRIPT: &str = include_str!("remote/dispatch.sh");
const RUN_SCRIPT: &str = include_str!("remote/run.sh");
const WAIT_SCRIPT: &str = include_str!("remote/wait.sh");
/// Shell function `find_opencode`, shared by dispatch.sh and `doctor`.
pub const FIND_OPENCODE_SCRIPT: &str = include_str!("remote/find-opencode.sh");

/// Where jobs live, relative to the remote home (the directory sshd starts commands in).
pub const JOBS_DIR: &str = ".opencode-remote/jobs";

/// Exit codes of dispatch.sh / wait.sh, fixed so the client can tell them from a crash.
pub mod exit {
    /// The configured model is not among those the remote's `opencode models` lists.
    pub const MODEL_MISSING: u32 = 87;
    /// The round trip was cancelled while it was being dispatched: nothing was started.
    pub const CANCELLED: u32 = 88;
    /// The job directory could not be created or the bundle not unpacked (a full disk, typically).
    pub const UNPACK_FAILED: u32 = 89;
    pub const NO_OPENCODE: u32 = 90;
    pub const BAD_DIRECTORY: u32 = 91;
    pub const IMPORT_FAILED: u32 = 92;
    pub const RUN_FAILED: u32 = 93;
    pub const UNKNOWN_JOB: u32 = 94;
    pub const DEADLINE: u32 = 95;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    OneWay,
    RoundTrip,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::OneWay => "one-way",
            Mode::RoundTrip => "round-trip",
        }
    }
}

/// Everything the remote side needs for one dispatch.
pub struct JobSpec<'a> {
    pub session_id: &'a str,
    pub session_json: &'a [u8],
    pub message: &'a str,
    pub mode: Mode,
    pub directory: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub model: Option<&'a str>,
    /// Path of `opencode` on the remote, when the host entry names one.
    pub opencode: Option<&'a str>,
}

/// A random job id: 16 hex digits, unique enough per host and safe in any path.
pub fn new_job_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The tar stream dispatch unpacks into the job directory.
pub fn bundle(spec: &JobSpec<'_>) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8], mode: u32| -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, name, data)
    };
    add("dispatch.sh", DISPATCH_SCRIPT.as_bytes(), 0o600)?;
    add("run.sh", RUN_SCRIPT.as_bytes(), 0o600)?;
    add("wait.sh", WAIT_SCRIPT.as_bytes(), 0o600)?;
    add("find-opencode.sh", FIND_OPENCODE_SCRIPT.as_bytes(), 0o600)?;
    add("session.json", spec.session_json, 0o600)?;
    add("session_id", spec.session_id.as_bytes(), 0o600)?;
    add("message.txt", spec.message.as_bytes(), 0o600)?;
    add("mode", spec.mode.as_str().as_bytes(), 0o600)?;
    for (name, value) in [
        ("directory", spec.directory),
        ("agent", spec.agent),
        ("model", spec.model),
        ("opencode", spec.opencode),
    ] {
        if let Some(value) = value {
            add(name, value.as_bytes(), 0o600)?;
        }
    }
    builder.into_inner()
}

/// Unpack the bundle from stdin into a new job dir and run dispatch.sh there. The job dir is private
/// (umask 077): it holds the whole conversation. When nothing was started (unpacking failed, or
/// dispatch.sh refused with one of its fixed codes), the job dir goes again: half a job is of no use to
/// anyone and, on a full disk, holds the space the next attempt needs.
pub fn dispatch_command(job_id: &str) -> String {
    let dir = format!("{JOBS_DIR}/{job_id}");
    let script = format!(
        "umask 077; if mkdir -p \"$1\" && cd \"$1\" && tar -xf -; then sh ./dispatch.sh; s=$?; else s={unpack}; fi; \
         case $s in {model}|{cancelled}|{unpack}|{first}|{second}|{third}) cd && rm -rf \"$1\" ;; esac; exit $s",
        model = exit::MODEL_MISSING,
        cancelled = exit::CANCELLED,
        unpack = exit::UNPACK_FAILED,
        first = exit::NO_OPENCODE,
        second = exit::BAD_DIRECTORY,
        third = exit::IMPORT_FAILED,
    );
    format!("sh -c {} sh {}", quote(&script), quote(&dir))
}

/// Wait for the job on the open connection, at most `deadline_secs`.
pub fn wait_command(job_id: &str, deadline_secs: u64) -> String {
    let dir = format!("{JOBS_DIR}/{job_id}");
    format!(
        "sh -c {} sh {} {}",
        quote("cd \"$HOME\" && exec sh \"$1/wait.sh\" \"$HOME/$1\" \"$2\""),
        quote(&dir),
        quote(&deadline_secs.to_string())
    )
}

/// Stop the job's run (its whole session on the host: `opencode run` and the tools it started) and
/// remove the job. A run still being dispatched is told not to start (`cancelled`), and given a few
/// seconds to show its pid. Prints `stopped` once nothing of the job is left running.
pub fn stop_command(job_id: &str) -> String {
    let dir = format!("{JOBS_DIR}/{job_id}");
    let script = [
        r#"cd "$HOME/$1" 2>/dev/null || { echo stopped; exit 0; }"#,
        ": > cancelled",
        "i=0",
        "while [ ! -f pid ] && [ ! -f dispatched ] && [ $i -lt 15 ]; do sleep 0.1; i=$((i+1)); done",
        "p=",
        "[ -f pid ] && p=$(cat pid)",
        "case $p in *[!0-9]*) p= ;; esac",
        r#"alive() { pgrep -s "$p" > /dev/null 2>&1 || kill -0 "$p" 2> /dev/null; }"#,
        r#"if [ -n "$p" ]; then for sig in TERM KILL KILL; do alive || break; pkill -$sig -s "$p" 2> /dev/null; kill -s $sig -- -"$p" 2> /dev/null || kill -s $sig "$p" 2> /dev/null; i=0; while alive && [ $i -lt 10 ]; do sleep 0.1; i=$((i+1)); done; done; if alive; then exit 1; fi; fi"#,
        r#"cd && rm -rf "$1""#,
        "echo stopped",
    ]
    .join("; ");
    format!("sh -c {} sh {}", quote(&script), quote(&dir))
}

/// Remove a collected job: its directory holds the whole conversation.
pub fn remove_command(job_id: &str) -> String {
    let dir = format!("{JOBS_DIR}/{job_id}");
    format!("sh -c {} sh {}", quote("cd && rm -rf \"$1\""), quote(&dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_command_should_be_constant_but_for_the_job_id() {
        assert_eq!(
            dispatch_command("00ff"),
            "sh -c 'umask 077; if mkdir -p \"$1\" && cd \"$1\" && tar -xf -; then sh ./dispatch.sh; s=$?; else \
             s=89; fi; case $s in 87|88|89|90|91|92) cd && rm -rf \"$1\" ;; esac; exit $s' sh '.opencode-remote/jobs/00ff'"
        );
    }

    #[test]
    fn wait_command_should_pass_job_and_deadline_as_arguments() {
        assert_eq!(
            wait_command("00ff", 30),
            "sh -c 'cd \"$HOME\" && exec sh \"$1/wait.sh\" \"$HOME/$1\" \"$2\"' sh '.opencode-remote/jobs/00ff' '30'"
        );
    }

    #[test]
    fn new_job_id_should_be_hex() {
        let id = new_job_id();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn bundle_should_carry_values_verbatim_as_files() {
        let hostile = "x'; rm -rf ~ $(id) `id`\n\u{fc}";
        let spec = JobSpec {
            session_id: "ses_1",
            session_json: b"{}",
            message: hostile,
            mode: Mode::RoundTrip,
            directory: Some(hostile),
            agent: None,
            model: Some("p/m"),
            opencode: None,
        };
        let bytes = bundle(&spec).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut files = std::collections::BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut content = String::new();
            std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
            files.insert(name, content);
        }
        assert_eq!(files["directory"], hostile);
        assert_eq!(files["message.txt"], hostile);
        assert_eq!(files["mode"], "round-trip");
        assert!(!files.contains_key("agent"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::ssh::quote::oracle::{cases, hostile_text, words, SHELLS};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(cases(32))]

        /// Whatever the job id held, every login shell hands `sh` exactly the script and the job dir:
        /// the id can never become a second command or an option.
        #[test]
        fn job_commands_should_keep_any_job_id_one_argument(job_id in hostile_text(), deadline in any::<u64>()) {
            prop_assume!(!job_id.contains('\0') && !job_id.contains(['\n', '\r']));
            let dir = format!("{JOBS_DIR}/{job_id}");
            for shell in SHELLS {
                let dispatch = words(shell, &dispatch_command(&job_id));
                prop_assert_eq!(dispatch.len(), 5, "{}", shell);
                prop_assert_eq!(&dispatch[..2], ["sh", "-c"]);
                prop_assert_eq!(&dispatch[3..], [String::from("sh"), dir.clone()]);
                let wait = words(shell, &wait_command(&job_id, deadline));
                prop_assert_eq!(&wait[3..], [String::from("sh"), dir.clone(), deadline.to_string()]);
            }
        }
    }
}
