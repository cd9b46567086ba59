//! Where the statements of a `.cedar` file end, found without parsing, so
//! that a big file is parsed a batch of statements at a time.
//!
//! Cedar's parser builds a concrete syntax tree of everything it is given
//! before it builds policies, several times the size of the policies that
//! remain: parsing a 1.2 MB file of 10,000 policies in one call peaked
//! about 40 MB above what the loaded set keeps. In Cedar's grammar a `;`
//! only ends a statement (a policy or template) or sits in a string or a
//! `//` comment, so splitting after every other `;` cuts the text exactly
//! where the parser would. What the split gets wrong, the parser still
//! sees: an unterminated string runs to the end of the file and is
//! reported there. Each batch is also known by a hash of its text and the
//! schema's, so that a reload can take the unchanged batches from the set
//! it replaces. Parsing the batches is left to the policy module.

use std::ops::Range;

use sha2::{Digest, Sha256};

/// A batch's text under one schema: a SHA-256 of both, so a changed batch
/// (or schema) cannot pass for an unchanged one.
pub type Key = [u8; 32];

/// The key of `batch` read with the schema text `schema`.
pub fn key(schema: &str, batch: &str) -> Key {
    let mut hash = Sha256::new();
    hash.update((schema.len() as u64).to_le_bytes());
    hash.update(schema);
    hash.update(batch);
    hash.finalize().into()
}

/// Statements parsed per call of Cedar's parser: enough that the call's
/// fixed cost does not matter, few enough that its syntax tree is small.
pub const BATCH: usize = 256;

/// Byte ranges of `text`, in order and together covering all of it, each
/// holding up to `per_batch` statements (the last also what follows the
/// last `;`). A text without a `;` is one range.
pub fn batches(text: &str, per_batch: usize) -> Vec<Range<usize>> {
    let per_batch = per_batch.max(1);
    let mut ranges = Vec::new();
    let (mut start, mut count) = (0, 0);
    for end in statement_ends(text) {
        count += 1;
        if count == per_batch {
            ranges.push(start..end);
            (start, count) = (end, 0);
        }
    }
    match ranges.last_mut() {
        Some(last) if count == 0 => last.end = text.len(),
        _ => ranges.push(start..text.len()),
    }
    ranges
}

/// Offsets just after each statement-ending `;`.
fn statement_ends(text: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = text.as_bytes();
    let mut state = State::Code;
    let mut at = 0;
    std::iter::from_fn(move || {
        while let Some(&byte) = bytes.get(at) {
            at += 1;
            state = match (state, byte) {
                (State::Code, b';') => return Some(at),
                (State::Code, b'"') => State::String,
                (State::Code, b'/') if bytes.get(at) == Some(&b'/') => State::Comment,
                (State::String, b'\\') => State::Escape,
                // Cedar's comments end at either line break.
                (State::String, b'"') | (State::Comment, b'\n' | b'\r') => State::Code,
                (State::Escape, _) => State::String,
                (state, _) => state,
            };
        }
        None
    })
}

#[derive(Debug, Clone, Copy)]
enum State {
    Code,
    String,
    /// Just after a backslash in a string.
    Escape,
    Comment,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str, per_batch: usize) -> Vec<&str> {
        batches(text, per_batch)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn splits_after_statements_and_covers_the_text() {
        let text =
            "permit(principal, action, resource);\nforbid(principal, action, resource);\n// end\n";
        assert_eq!(
            split(text, 1),
            [
                "permit(principal, action, resource);",
                "\nforbid(principal, action, resource);\n// end\n"
            ]
        );
        assert_eq!(split(text, 2), [text]);
        assert_eq!(split(text, 64), [text]);
        assert_eq!(split("", 1), [""]);
    }

    #[test]
    fn semicolons_in_strings_and_comments_do_not_split() {
        let text = concat!(
            "@id(\"a;b\") permit(principal, action, resource)\n",
            "when { context.path like \"*;\\\";*\" }; // x; y\n",
            "permit(principal, action, resource); // \"unterminated; in a comment\n",
            "forbid(principal, action, resource);"
        );
        let parts = split(text, 1);
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert!(parts[0].ends_with("\"*;\\\";*\" };"));
        assert!(parts[1].ends_with("resource);"));
    }

    /// The kind of fault: a split that disagrees with Cedar's lexer could
    /// turn comment text into a policy. Batches of one statement must parse
    /// to exactly the policies of the whole text.
    #[test]
    fn batches_parse_to_what_the_whole_text_parses_to() {
        let texts = [
            "//\rforbid(principal, action, resource) when { \"\\n\" == \"\" }; // \"; @id(\"x\") permit(principal, action, resource);\n",
            "permit(principal, action, resource); // a; b\rforbid(principal, action, resource);",
            "@id(\"a;b\") permit(principal, action, resource) when { \"\\\";\" == \"\" };\n// ;;\n",
            "permit(principal, action, resource) when { context.s like \"*;*\" };\r\nforbid(principal, action, resource);\r\n",
        ];
        for text in texts {
            let whole: cedar_policy::PolicySet = text.parse().unwrap();
            let mut from_batches = Vec::new();
            for part in split(text, 1) {
                let set: cedar_policy::PolicySet = part.parse().unwrap();
                from_batches.extend(set.policies().map(|p| p.to_string()));
            }
            let whole: Vec<String> = whole.policies().map(|p| p.to_string()).collect();
            assert_eq!(from_batches, whole, "{text:?}");
        }
    }

    #[test]
    fn unterminated_string_runs_to_the_end() {
        let text = "permit(principal, action, resource) when { \"; };\npermit(principal, action, resource);";
        assert_eq!(split(text, 1), [text]);
    }
}
