//! Colour for the few words that carry a verdict (ok, FAIL, warn, refused), and only where it helps:
//! on a terminal, unless `NO_COLOR` is set (or `TERM=dumb`); never in a pipe, a file or `--json`.
//! anstream decides this as clap does for its own help, so both agree.

use anstyle::{AnsiColor, Style};

#[derive(Debug, Clone, Copy, Default)]
pub struct Paint {
    on: bool,
}

impl Paint {
    /// Colour if standard output is a terminal that takes it.
    pub fn for_stdout() -> Paint {
        let choice = anstream::AutoStream::choice(&std::io::stdout());
        Paint {
            on: choice != anstream::ColorChoice::Never,
        }
    }

    pub fn is_off(self) -> bool {
        !self.on
    }

    pub fn ok(self, text: &str) -> String {
        self.paint(text, AnsiColor::Green.on_default())
    }

    pub fn fail(self, text: &str) -> String {
        self.paint(text, AnsiColor::Red.on_default().bold())
    }

    pub fn warn(self, text: &str) -> String {
        self.paint(text, AnsiColor::Yellow.on_default())
    }

    pub fn dim(self, text: &str) -> String {
        self.paint(text, Style::new().dimmed())
    }

    fn paint(self, text: &str, style: Style) -> String {
        if self.on {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_colour_means_the_plain_word() {
        let off = Paint::default();
        assert_eq!(off.fail("FAIL"), "FAIL");
        let on = Paint { on: true };
        assert_eq!(on.fail("FAIL"), "\u{1b}[1m\u{1b}[31mFAIL\u{1b}[0m");
    }
}
