//! Canonical request path and query, the form Cedar policies are written against.
//!
//! This module owns turning Envoy's `:path` (origin-form, as carried in the
//! `CheckRequest` HTTP attributes) into one canonical path plus the decoded
//! query parameters, and refusing every input whose meaning a proxy and a
//! backend could disagree on: such input is an authorization bypass waiting to
//! happen, so it is an error here rather than a guess. It leaves the host to
//! `host.rs`, the headers and the decision to the rest of the request path,
//! and the Envoy response to the caller, which maps errors with
//! [`PathError::http_status`].

use percent_encoding::percent_decode_str;
use thiserror::Error;

/// Default for [`PathLimits::max_path_bytes`]. Longer than any legitimate API
/// path, well under the 8 KiB request-line limits of common HTTP servers, and
/// it bounds the work done for one request.
pub const DEFAULT_MAX_PATH_BYTES: usize = 4096;

/// Default for [`PathLimits::max_query_params`]. Enough for real APIs while
/// bounding the work and the size of the policy context built from the query.
pub const DEFAULT_MAX_QUERY_PARAMS: usize = 64;

/// A request target reduced to the one form that policies see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath {
    /// Canonical path, always starts with `/`. What policies see.
    pub path: String,
    /// Decoded query parameters in order of appearance, duplicates with the same value collapsed.
    pub query: Vec<(String, String)>,
}

/// Size limits applied before and during canonicalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathLimits {
    /// Largest accepted raw `:path`, query included, in bytes.
    pub max_path_bytes: usize,
    /// Largest accepted number of non-empty query items.
    pub max_query_params: usize,
}

impl Default for PathLimits {
    fn default() -> Self {
        Self {
            max_path_bytes: DEFAULT_MAX_PATH_BYTES,
            max_query_params: DEFAULT_MAX_QUERY_PARAMS,
        }
    }
}

/// Why a `:path` was refused.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("asterisk-form request target `*` has no path")]
    AsteriskForm,
    #[error("path `{path}` does not start with `/`")]
    NotOriginForm { path: String },
    #[error("path is {len} bytes long, over the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("path has control character `{found}` at byte offset {offset}")]
    ControlCharacter { found: String, offset: usize },
    #[error("path has a raw space at byte offset {offset}")]
    RawSpace { offset: usize },
    #[error("path has a raw backslash at byte offset {offset}")]
    RawBackslash { offset: usize },
    #[error("path has a non-ASCII byte at byte offset {offset}")]
    NonAscii { offset: usize },
    #[error("path carries a fragment `#{fragment}`")]
    Fragment { fragment: String },
    #[error("malformed percent-escape `{escape}`")]
    MalformedEscape { escape: String },
    #[error("percent-escape `{escape}` makes the path ambiguous")]
    AmbiguousEscape { escape: String },
    #[error("percent-escapes in path `{path}` are not valid UTF-8")]
    PathNotUtf8 { path: String },
    #[error("dot-segment with path parameters `{segment}`")]
    DotSegmentWithParameters { segment: String },
    #[error("`..` after an empty segment in `{path}` depends on slash merging")]
    AmbiguousDotSegment { path: String },
    #[error("query has more than {max} parameters")]
    TooManyQueryParams { max: usize },
    #[error("query item `{item}` is not valid UTF-8 once decoded")]
    QueryNotUtf8 { item: String },
    #[error("query item `{item}` has a control character once decoded")]
    QueryControlCharacter { item: String },
    #[error("query parameter `{name}` is repeated with different values")]
    ConflictingQueryParam { name: String },
}

impl PathError {
    /// HTTP status for the denial: 414 for size limits, 400 for everything else.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::TooLong { .. } | Self::TooManyQueryParams { .. } => 414,
            _ => 400,
        }
    }
}

/// Canonicalises Envoy's `:path` (origin-form, query included).
///
/// Every rule here errs towards refusing: an input that a proxy and a backend
/// could read as two different paths is an error, never a guess.
pub fn canonicalize(raw: &str, limits: &PathLimits) -> Result<CanonicalPath, PathError> {
    check_length(raw, limits)?;
    check_raw_bytes(raw)?;
    check_origin_form(raw)?;
    let (path, query) = split_target(raw)?;
    let normalised = normalise_escapes(path)?;
    check_utf8(&normalised)?;
    Ok(CanonicalPath {
        path: resolve_segments(&normalised)?,
        query: parse_query(query, limits)?,
    })
}

fn check_length(raw: &str, limits: &PathLimits) -> Result<(), PathError> {
    if raw.len() > limits.max_path_bytes {
        return Err(PathError::TooLong {
            len: raw.len(),
            max: limits.max_path_bytes,
        });
    }
    Ok(())
}

/// Refuses bytes that must never appear raw in a request target.
fn check_raw_bytes(raw: &str) -> Result<(), PathError> {
    for (offset, byte) in raw.bytes().enumerate() {
        match byte {
            b' ' => return Err(PathError::RawSpace { offset }),
            b'\\' => return Err(PathError::RawBackslash { offset }),
            b if b.is_ascii_control() => {
                let found = char::from(b).escape_default().to_string();
                return Err(PathError::ControlCharacter { found, offset });
            }
            b if !b.is_ascii() => return Err(PathError::NonAscii { offset }),
            _ => {}
        }
    }
    Ok(())
}

fn check_origin_form(raw: &str) -> Result<(), PathError> {
    match raw {
        "" => Err(PathError::Empty),
        "*" => Err(PathError::AsteriskForm),
        _ if !raw.starts_with('/') => Err(PathError::NotOriginForm {
            path: raw.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Splits off the query at the first `?`; any `#` is refused outright.
fn split_target(raw: &str) -> Result<(&str, &str), PathError> {
    if let Some((_, fragment)) = raw.split_once('#') {
        return Err(PathError::Fragment {
            fragment: fragment.to_owned(),
        });
    }
    Ok(raw.split_once('?').unwrap_or((raw, "")))
}

/// Decodes escaped unreserved characters once, upper-cases every other
/// escape, and escapes raw characters that are not allowed in a path.
fn normalise_escapes(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'%' {
            let value = decode_escape(bytes, at).ok_or_else(|| malformed(path, at))?;
            push_escaped(&mut out, value, || escape_text(path, at))?;
            at += 3;
        } else {
            push_raw(&mut out, byte);
            at += 1;
        }
    }
    Ok(out)
}

/// Value of the escape starting at the `%` at `at`, if it is well formed.
fn decode_escape(bytes: &[u8], at: usize) -> Option<u8> {
    let high = hex_value(*bytes.get(at + 1)?)?;
    let low = hex_value(*bytes.get(at + 2)?)?;
    Some((high << 4) | low)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The escape as the client sent it, for error messages.
fn escape_text(text: &str, at: usize) -> String {
    let end = text.len().min(at + 3);
    text.get(at..end).unwrap_or("%").to_owned()
}

fn malformed(text: &str, at: usize) -> PathError {
    PathError::MalformedEscape {
        escape: escape_text(text, at),
    }
}

fn push_escaped(
    out: &mut String,
    value: u8,
    escape: impl FnOnce() -> String,
) -> Result<(), PathError> {
    if is_ambiguous_when_escaped(value) {
        return Err(PathError::AmbiguousEscape { escape: escape() });
    }
    if is_unreserved(value) {
        out.push(char::from(value));
    } else {
        push_encoded(out, value);
    }
    Ok(())
}

fn push_raw(out: &mut String, byte: u8) {
    if is_unreserved(byte) || is_raw_path_delimiter(byte) {
        out.push(char::from(byte));
    } else {
        push_encoded(out, byte);
    }
}

fn push_encoded(out: &mut String, value: u8) {
    out.push_str(&format!("%{value:02X}"));
}

/// Escaped bytes that proxies and backends disagree on: refuse, never decode.
fn is_ambiguous_when_escaped(value: u8) -> bool {
    matches!(value, b'/' | b'\\' | b';') || value.is_ascii_control()
}

/// RFC 3986 unreserved: ALPHA / DIGIT / `-` / `.` / `_` / `~`.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Raw bytes kept as they are besides unreserved: sub-delims, `:`, `@`, `/`.
fn is_raw_path_delimiter(byte: u8) -> bool {
    matches!(
        byte,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    ) || matches!(byte, b':' | b'@' | b'/')
}

/// Escaped bytes at or above 0x80 stay encoded but must spell valid UTF-8,
/// which refuses overlong forms such as `%C0%AE` (a disguised `.`).
fn check_utf8(normalised: &str) -> Result<(), PathError> {
    match percent_decode_str(normalised).decode_utf8() {
        Ok(_) => Ok(()),
        Err(_) => Err(PathError::PathNotUtf8 {
            path: normalised.to_owned(),
        }),
    }
}

/// Strips path parameters, merges slashes and resolves dot-segments.
///
/// RFC 3986 resolves `..` against an empty segment (`/a//../b` is `/a/b`)
/// while servers that merge slashes first get `/b`. Both readings are
/// computed, and a path on which they differ is refused.
fn resolve_segments(path: &str) -> Result<String, PathError> {
    let segments = path
        .split('/')
        .skip(1)
        .map(strip_parameters)
        .collect::<Result<Vec<_>, _>>()?;
    let merged_first = remove_dot_segments(non_empty(&segments));
    let rfc_order = remove_dot_segments(segments.iter().copied());
    if !non_empty(&rfc_order).eq(merged_first.iter().copied()) {
        return Err(PathError::AmbiguousDotSegment {
            path: path.to_owned(),
        });
    }
    Ok(format!("/{}", merged_first.join("/")))
}

fn non_empty<'a, 'b>(segments: &'b [&'a str]) -> impl Iterator<Item = &'a str> + 'b {
    segments.iter().copied().filter(|s| !s.is_empty())
}

/// Drops `;params` from a segment; refuses `.;...` and `..;...`, which Java
/// servlet containers read as dot-segments while proxies do not.
fn strip_parameters(segment: &str) -> Result<&str, PathError> {
    match segment.split_once(';') {
        Some(("." | "..", _)) => Err(PathError::DotSegmentWithParameters {
            segment: segment.to_owned(),
        }),
        Some((name, _)) => Ok(name),
        None => Ok(segment),
    }
}

/// RFC 3986 section 5.2.4 on a segment list; `..` at the root stays at the root.
fn remove_dot_segments<'a>(segments: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out = Vec::new();
    for segment in segments {
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Parses `a=1&b=2` into decoded pairs, refusing conflicting duplicates.
fn parse_query(query: &str, limits: &PathLimits) -> Result<Vec<(String, String)>, PathError> {
    let items = || query.split('&').filter(|item| !item.is_empty());
    if items().count() > limits.max_query_params {
        return Err(PathError::TooManyQueryParams {
            max: limits.max_query_params,
        });
    }
    let mut params = Vec::new();
    for item in items() {
        add_param(&mut params, decode_item(item)?)?;
    }
    Ok(params)
}

fn decode_item(item: &str) -> Result<(String, String), PathError> {
    let (name, value) = item.split_once('=').unwrap_or((item, ""));
    Ok((
        decode_component(name, item)?,
        decode_component(value, item)?,
    ))
}

/// Form-style decoding: `+` is a space, then every escape is decoded once.
fn decode_component(text: &str, item: &str) -> Result<String, PathError> {
    let spaced = text.replace('+', " ");
    check_escapes(&spaced)?;
    let decoded =
        percent_decode_str(&spaced)
            .decode_utf8()
            .map_err(|_| PathError::QueryNotUtf8 {
                item: item.to_owned(),
            })?;
    if decoded.chars().any(char::is_control) {
        return Err(PathError::QueryControlCharacter {
            item: item.to_owned(),
        });
    }
    Ok(decoded.into_owned())
}

fn check_escapes(text: &str) -> Result<(), PathError> {
    let bytes = text.as_bytes();
    let is_bad = |at: usize| bytes.get(at) == Some(&b'%') && decode_escape(bytes, at).is_none();
    match (0..bytes.len()).find(|&at| is_bad(at)) {
        Some(at) => Err(malformed(text, at)),
        None => Ok(()),
    }
}

/// Keeps the first occurrence of a name; a repeat must carry the same value.
fn add_param(
    params: &mut Vec<(String, String)>,
    (name, value): (String, String),
) -> Result<(), PathError> {
    match params.iter().find(|(known, _)| *known == name) {
        Some((_, known)) if *known == value => Ok(()),
        Some(_) => Err(PathError::ConflictingQueryParam { name }),
        None => {
            params.push((name, value));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
