//! Moving part of an old entry's options into ours as the text the user wrote: the comments inside
//! it, on the lines above it and after it on its line go with it. The syntax tree can only insert
//! values it builds itself, so a moved part goes in as a marker (a string literal whose raw text no
//! valid file can contain) and [`Moves::apply`] replaces each marker in the final text with the
//! part's own text, re-indented to its new place.

use jsonc_parser::cst::{
    CstArray, CstInputValue, CstNode, CstObject, CstObjectProp, CstRootNode, ObjectPropName,
};

/// The moved parts of one migration.
pub struct Moves {
    /// Starts every marker: U+0001 (which may not appear raw in JSON text, only in a comment) and a
    /// random tag, so no comment in the file can be taken for a marker.
    prefix: String,
    parts: Vec<Part>,
    /// Containers built up part by part in ours, each with the part that carries its name and the
    /// comments written above the container it came from.
    created: Vec<(CstObjectProp, usize)>,
}

struct Part {
    marker: String,
    /// What stood before the marker in the emitted text (`"name": ` for a property, nothing for an
    /// array element), to find where the part starts.
    key: String,
    text: String,
    /// The indentation of the line the part started on.
    indent: String,
    above: Vec<String>,
    after: Vec<String>,
}

impl Moves {
    /// Moves for `text`, with markers that do not occur in it.
    pub fn for_text(text: &str) -> Moves {
        loop {
            let prefix = format!("\u{1}moved-{:016x}-", rand::random::<u64>());
            if !text.contains(&prefix) {
                return Moves {
                    prefix,
                    parts: Vec::new(),
                    created: Vec::new(),
                };
            }
        }
    }

    /// Append `from` (a property of an old entry's options) to `to`, as written.
    pub fn property(&mut self, to: &CstObject, from: &CstObjectProp) {
        let name = from.decoded_name().unwrap_or_default();
        let node: CstNode = from.clone().into();
        let value = from.value().map(|v| v.to_string()).unwrap_or_default();
        let marker = self.marker();
        let added = to.append(&name, CstInputValue::String(String::new()));
        if let Some(literal) = added.value().and_then(|v| v.as_string_lit()) {
            literal.set_raw_value(marker.clone());
        }
        let key = format!("{}: ", serde_json::Value::String(name));
        self.push(marker, key, value, &node);
    }

    /// Append `from` (an element of an old entry's array) to `to`, as written.
    pub fn element(&mut self, to: &CstArray, from: &CstNode) {
        let marker = self.marker();
        let added = to.append(CstInputValue::String(String::new()));
        if let Some(literal) = added.as_string_lit() {
            literal.set_raw_value(marker.clone());
        }
        self.push(marker, String::new(), from.to_string(), from);
    }

    /// `created` was built in ours for `from` (a container two old entries add to): the comments
    /// above `from` go above it.
    pub fn created(&mut self, created: &CstObjectProp, from: &CstObjectProp) {
        let name = from.decoded_name().unwrap_or_default();
        let node: CstNode = from.clone().into();
        let marker = self.marker();
        self.created.push((created.clone(), self.parts.len()));
        self.parts.push(Part {
            marker,
            key: String::new(),
            text: serde_json::Value::String(name).to_string(),
            indent: String::new(),
            above: comments_above(&node),
            after: Vec::new(),
        });
    }

    /// The migrated tree's text with every moved part in place; `None` when a part could not be
    /// placed (the edit then fails rather than lose it).
    pub fn render(&self, root: &CstRootNode) -> Option<String> {
        // Named last, so that merges could find the containers by their names until now.
        for (created, part) in &self.created {
            match created.name()? {
                ObjectPropName::String(name) => {
                    name.set_raw_value(self.parts[*part].marker.clone())
                }
                ObjectPropName::Word(name) => name.set_raw_value(self.parts[*part].marker.clone()),
            }
        }
        self.apply(root.to_string())
    }

    fn marker(&self) -> String {
        format!("{}{}\u{1}", self.prefix, self.parts.len())
    }

    fn push(&mut self, marker: String, key: String, text: String, node: &CstNode) {
        self.parts.push(Part {
            marker,
            key,
            text,
            indent: node.indent_text().unwrap_or_default(),
            above: comments_above(node),
            after: comments_after(node),
        });
    }

    /// `text` with every marker replaced by its part; `None` when a marker is missing.
    fn apply(&self, mut text: String) -> Option<String> {
        for part in &self.parts {
            let at = text.find(&part.marker)?;
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let indent: String = text[line_start..]
                .chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .collect();
            let body = reindent(&part.text, &part.indent, &indent);
            let end = at + body.len();
            text.replace_range(at..at + part.marker.len(), &body);

            let rest_of_line = text[end..].split('\n').next().unwrap_or_default();
            let ends_line = rest_of_line
                .trim()
                .trim_start_matches(',')
                .trim()
                .is_empty();
            let line_end = end + rest_of_line.len();
            if ends_line && !part.after.is_empty() {
                let comments = part.after.join(" ");
                text.insert_str(line_end, &format!(" {comments}"));
            } else if !part.after.is_empty() {
                let blocks: Vec<String> = part.after.iter().filter_map(|c| as_block(c)).collect();
                text.insert_str(end, &format!(" {}", blocks.join(" ")));
            }

            let start = at
                .checked_sub(part.key.len())
                .filter(|start| text.get(*start..at) == Some(part.key.as_str()));
            let Some(start) = start else { continue };
            let own_line = text[line_start..start].trim().is_empty();
            let mut above = String::new();
            for comment in &part.above {
                if own_line {
                    above.push_str(&format!("{comment}\n{indent}"));
                } else if let Some(block) = as_block(comment) {
                    above.push_str(&format!("{block} "));
                }
            }
            text.insert_str(start, &above);
        }
        Some(text)
    }
}

/// `text`'s later lines moved from `from`'s indentation to `to`'s (its first line follows the key).
fn reindent(text: &str, from: &str, to: &str) -> String {
    let mut lines = text.split('\n');
    let mut out = lines.next().unwrap_or_default().to_string();
    for line in lines {
        out.push('\n');
        match line.strip_prefix(from) {
            Some(rest) => {
                out.push_str(to);
                out.push_str(rest);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// A comment that can sit inside a line: a block comment as it is, a line comment turned into one.
fn as_block(comment: &str) -> Option<String> {
    match comment.strip_prefix("//") {
        Some(body) if !body.contains("*/") => Some(format!("/*{body} */")),
        Some(_) => None,
        None => Some(comment.to_string()),
    }
}

/// The comments on their own lines right above `node` (not one that ends the line of whatever came
/// before it).
fn comments_above(node: &CstNode) -> Vec<String> {
    let mut before: Vec<CstNode> = node
        .previous_siblings()
        .take_while(|n| n.is_whitespace() || n.is_newline() || n.is_comment())
        .collect();
    before.reverse();
    // Up to the first line break, they trail the node before this one.
    let first_break = before.iter().position(CstNode::is_newline);
    let own = match first_break {
        Some(i) => &before[i..],
        None => &[][..],
    };
    own.iter()
        .filter(|n| n.is_comment())
        .map(|n| n.to_string())
        .collect()
}

/// The comments after `node` on its own line (after its comma, if it has one).
fn comments_after(node: &CstNode) -> Vec<String> {
    let mut comments = Vec::new();
    for next in node.next_siblings() {
        if next.is_newline() {
            return comments;
        }
        if next.is_comment() {
            comments.push(next.to_string());
        } else if !(next.is_whitespace() || next.is_comma()) {
            // Something else follows on the line: the comments sit between the two.
            return Vec::new();
        }
    }
    comments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reindent_should_shift_only_the_lines_that_had_the_old_indentation() {
        assert_eq!(
            reindent("{\n      \"a\": 1\n    }", "    ", "  "),
            "{\n    \"a\": 1\n  }"
        );
        assert_eq!(reindent("1", "    ", ""), "1");
    }

    #[test]
    fn a_line_comment_should_become_a_block_comment_when_it_must_sit_inside_a_line() {
        assert_eq!(as_block("// the office PC").unwrap(), "/* the office PC */");
        assert_eq!(as_block("/* kept */").unwrap(), "/* kept */");
        assert!(as_block("// a */ b").is_none());
    }
}
