//! The texts the models read at each hand-over.

use super::job::Mode;

/// The user turn the remote model receives. `message` is the caller's instruction, passed verbatim.
pub fn remote_continuation(
    host: &str,
    directory: Option<&str>,
    mode: Mode,
    message: Option<&str>,
) -> String {
    let place = match directory {
        Some(dir) => format!("working directory: {dir}"),
        None => "working directory: your home directory".to_string(),
    };
    let task = match message.map(str::trim).filter(|m| !m.is_empty()) {
        Some(_) => message.unwrap_or_default().to_string(),
        None => "Continue the assigned task from where it left off. Complete the work, then stop."
            .to_string(),
    };
    let mut text = format!(
        "[Environment]\nThis session now runs on the remote host \"{host}\", {place}.\n\n[Constraints]\n\
         - The previous machine's files and tools are not reachable from here; use this host's.\n\
         - Do not call remote_login again.\n\n[Task]\n{task}\n"
    );
    if mode == Mode::RoundTrip {
        text.push_str(
            "\n[Return]\nWhen the task is done, end with a short summary of what you did and found: the session \
             then returns to the machine it came from.\n",
        );
    }
    text
}

/// The user turn that wakes the local agent after a round trip.
pub fn local_return(host: &str) -> String {
    format!(
        "[Back from {host}]\nThe remote work on \"{host}\" is finished and its messages are above. You are on the \
         local machine again: files and paths on \"{host}\" are not directly reachable (use remote_login again \
         for that). Review what was done there, do not repeat it, and continue with the task."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_continuation_should_keep_the_message_verbatim() {
        let message = "fix it; $(rm -rf /) `id` \"q\" 'q' \u{4e2d}";
        let text = remote_continuation("pi", Some("/srv/app"), Mode::OneWay, Some(message));
        assert!(text.contains(message));
        assert!(text.contains("/srv/app"));
        assert!(!text.contains("[Return]"));
    }

    #[test]
    fn remote_continuation_should_ask_for_a_summary_on_round_trips() {
        let text = remote_continuation("pi", None, Mode::RoundTrip, None);
        assert!(text.contains("[Return]"));
        assert!(text.contains("Continue the assigned task"));
    }
}
