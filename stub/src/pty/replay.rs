//! A terminal's output as OpenCode keeps it: decoded text, counted in UTF-16 code units (the
//! length of a JavaScript string), because the client's reconnect cursor counts what it received
//! that way; and the last [`BUFFER_LIMIT`] units of it kept for a client that reconnects.

use std::collections::VecDeque;

/// Units of output kept for replay (OpenCode's `Mf`, 2 Mi UTF-16 units: 2 MiB of ASCII).
pub const BUFFER_LIMIT: usize = 2 * 1024 * 1024;
/// Units per WebSocket frame of a replay (OpenCode's `REPLAY_CHUNK`).
pub const REPLAY_CHUNK: usize = 64 * 1024;

/// UTF-16 length of a string, as JavaScript's `String.length`.
pub fn units(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The byte offset in `s` after `n` UTF-16 units (rounded up to a character boundary), or
/// `s.len()`.
fn byte_offset(s: &str, n: usize) -> usize {
    let mut seen = 0;
    for (i, c) in s.char_indices() {
        if seen >= n {
            return i;
        }
        seen += c.len_utf16();
    }
    s.len()
}

/// Output so far: a cursor over all of it and the retained tail.
#[derive(Default)]
pub struct Replay {
    chunks: VecDeque<String>,
    /// Units in `chunks`.
    kept: usize,
    /// Units dropped from the front (OpenCode's `bufferCursor`).
    dropped: u64,
}

impl Replay {
    /// Units of output since the start (OpenCode's `cursor`).
    pub fn cursor(&self) -> u64 {
        self.dropped + self.kept as u64
    }

    pub fn push(&mut self, data: &str) {
        if data.is_empty() {
            return;
        }
        self.kept += units(data);
        self.chunks.push_back(data.to_string());
        while self.kept > BUFFER_LIMIT {
            let excess = self.kept - BUFFER_LIMIT;
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let front_units = units(front);
            let cut = if front_units <= excess {
                self.chunks.pop_front();
                front_units
            } else {
                let at = byte_offset(front, excess);
                let cut = units(&front[..at]);
                front.drain(..at);
                cut
            };
            self.kept -= cut;
            self.dropped += cut as u64;
        }
    }

    /// What a client that has seen `from` units gets replayed, in frames of at most
    /// [`REPLAY_CHUNK`] units: everything retained after `from` (OpenCode's `attach`).
    pub fn since(&self, from: u64) -> Vec<String> {
        if self.kept == 0 || from >= self.cursor() {
            return Vec::new();
        }
        let mut skip = from.saturating_sub(self.dropped) as usize;
        let mut frames = Vec::new();
        let mut frame = String::new();
        let mut frame_units = 0;
        for chunk in &self.chunks {
            let mut rest = chunk.as_str();
            if skip > 0 {
                let n = units(rest);
                if n <= skip {
                    skip -= n;
                    continue;
                }
                rest = &rest[byte_offset(rest, skip)..];
                skip = 0;
            }
            for c in rest.chars() {
                if frame_units + c.len_utf16() > REPLAY_CHUNK {
                    frames.push(std::mem::take(&mut frame));
                    frame_units = 0;
                }
                frame.push(c);
                frame_units += c.len_utf16();
            }
        }
        if !frame.is_empty() {
            frames.push(frame);
        }
        frames
    }

    /// Forgets the retained output (the cursor stays).
    pub fn clear(&mut self) {
        self.dropped += self.kept as u64;
        self.kept = 0;
        self.chunks.clear();
    }
}

/// Decodes a byte stream as UTF-8 the way a streaming `TextDecoder` does: a character split
/// across reads is joined, and each invalid sequence becomes U+FFFD.
#[derive(Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn decode(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid` is the prefix from_utf8 has just checked.
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = &after[n..];
                        }
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// The end of the stream: an incomplete character left over becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            String::new()
        } else {
            self.pending.clear();
            "\u{FFFD}".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_should_count_utf16_units_like_javascript() {
        let mut r = Replay::default();
        r.push("# ");
        r.push("hé😀\r\n");
        // "hé" 2 units, the emoji 2 (a surrogate pair), CR LF 2.
        assert_eq!(r.cursor(), 2 + 6);
        assert_eq!(r.since(2), vec!["hé😀\r\n".to_string()]);
        assert_eq!(r.since(3), vec!["é😀\r\n".to_string()]);
        assert!(r.since(8).is_empty());
        assert!(r.since(100).is_empty());
        assert_eq!(r.since(0).concat(), "# hé😀\r\n");
    }

    #[test]
    fn buffer_should_keep_only_the_last_limit_units() {
        let mut r = Replay::default();
        let block = "x".repeat(1024 * 1024);
        r.push(&block);
        r.push(&block);
        r.push("abc");
        assert_eq!(r.cursor(), 2 * 1024 * 1024 + 3);
        let all = r.since(0).concat();
        assert_eq!(all.len(), BUFFER_LIMIT);
        assert!(all.ends_with("xabc"));
        // A cursor before what is kept gets everything kept.
        assert_eq!(r.since(1).concat().len(), BUFFER_LIMIT);
        assert_eq!(r.since(r.cursor() - 2).concat(), "bc");
    }

    #[test]
    fn replay_should_come_in_frames_of_at_most_64k_units() {
        let mut r = Replay::default();
        r.push(&"y".repeat(REPLAY_CHUNK * 2 + 5));
        let frames = r.since(0);
        assert_eq!(
            frames.iter().map(|f| f.len()).collect::<Vec<_>>(),
            vec![REPLAY_CHUNK, REPLAY_CHUNK, 5]
        );
    }

    #[test]
    fn clear_should_keep_the_cursor() {
        let mut r = Replay::default();
        r.push("abc");
        r.clear();
        assert_eq!(r.cursor(), 3);
        assert!(r.since(0).is_empty());
    }

    #[test]
    fn utf8_stream_should_join_split_characters_and_replace_invalid_bytes() {
        let mut d = Utf8Stream::default();
        let bytes = "é😀".as_bytes();
        assert_eq!(d.decode(&bytes[..1]), "");
        assert_eq!(d.decode(&bytes[1..4]), "é");
        assert_eq!(d.decode(&bytes[4..]), "😀");
        assert_eq!(d.decode(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(d.decode(b"\xe2\x82"), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }
}
