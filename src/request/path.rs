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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canon(raw: &str) -> Result<CanonicalPath, PathError> {
        canonicalize(raw, &PathLimits::default())
    }

    fn path_of(raw: &str) -> String {
        canon(raw).unwrap().path
    }

    fn query_of(raw: &str) -> Vec<(String, String)> {
        canon(raw).unwrap().query
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn status_of(raw: &str) -> u16 {
        canon(raw).unwrap_err().http_status()
    }

    #[test]
    fn default_limits_are_4096_bytes_and_64_params() {
        let limits = PathLimits::default();
        assert_eq!(limits.max_path_bytes, 4096);
        assert_eq!(limits.max_query_params, 64);
    }

    #[test]
    fn empty_path_is_refused() {
        assert_eq!(canon(""), Err(PathError::Empty));
        assert_eq!(status_of(""), 400);
    }

    #[test]
    fn asterisk_form_is_refused() {
        assert_eq!(canon("*"), Err(PathError::AsteriskForm));
        assert_eq!(status_of("*"), 400);
    }

    #[test]
    fn path_without_leading_slash_is_refused() {
        for raw in ["admin", "http://example.test/admin", "?x=1", "*/admin"] {
            assert!(
                matches!(canon(raw), Err(PathError::NotOriginForm { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn overlong_path_is_refused_with_414() {
        let raw = format!("/{}", "a".repeat(4096));
        assert_eq!(raw.len(), 4097);
        assert_eq!(
            canon(&raw),
            Err(PathError::TooLong {
                len: 4097,
                max: 4096
            })
        );
        assert_eq!(status_of(&raw), 414);
    }

    #[test]
    fn path_at_the_length_limit_is_accepted() {
        let raw = format!("/{}", "a".repeat(4095));
        assert_eq!(path_of(&raw), raw);
    }

    #[test]
    fn length_is_checked_before_any_other_fault() {
        let raw = format!("\0{}", "%".repeat(5000));
        assert!(matches!(canon(&raw), Err(PathError::TooLong { .. })));
    }

    #[test]
    fn query_counts_towards_the_length_limit() {
        let raw = format!("/a?q={}", "b".repeat(4093));
        assert_eq!(status_of(&raw), 414);
    }

    #[test]
    fn custom_limits_are_honoured() {
        let limits = PathLimits {
            max_path_bytes: 8,
            max_query_params: 1,
        };
        assert!(canonicalize("/1234567", &limits).is_ok());
        assert!(matches!(
            canonicalize("/12345678", &limits),
            Err(PathError::TooLong { .. })
        ));
        assert!(canonicalize("/?a=1", &limits).is_ok());
        let too_many = canonicalize("/?a&b", &limits);
        assert_eq!(too_many, Err(PathError::TooManyQueryParams { max: 1 }));
    }

    #[test]
    fn raw_control_characters_are_refused() {
        for raw in ["/a\0b", "/a\tb", "/a\nb", "/a\rb", "/a\x7fb", "/a?x=\x01"] {
            assert!(
                matches!(canon(raw), Err(PathError::ControlCharacter { .. })),
                "{raw:?}"
            );
        }
        let err = canon("/a\0b").unwrap_err();
        assert_eq!(
            err,
            PathError::ControlCharacter {
                found: "\\u{0}".into(),
                offset: 2
            }
        );
    }

    #[test]
    fn raw_space_is_refused() {
        assert_eq!(canon("/a b"), Err(PathError::RawSpace { offset: 2 }));
        assert_eq!(canon("/a?q=a b"), Err(PathError::RawSpace { offset: 6 }));
    }

    #[test]
    fn raw_backslash_is_refused() {
        assert_eq!(canon("/a\\b"), Err(PathError::RawBackslash { offset: 2 }));
        assert_eq!(
            canon("/..\\admin"),
            Err(PathError::RawBackslash { offset: 3 })
        );
    }

    #[test]
    fn non_ascii_bytes_are_refused() {
        assert_eq!(canon("/caf\u{e9}"), Err(PathError::NonAscii { offset: 4 }));
        assert!(matches!(
            canon("/a?q=\u{e9}"),
            Err(PathError::NonAscii { .. })
        ));
    }

    #[test]
    fn fragment_is_refused() {
        assert_eq!(
            canon("/admin#x"),
            Err(PathError::Fragment {
                fragment: "x".into()
            })
        );
        assert!(matches!(
            canon("/admin?x=1#y"),
            Err(PathError::Fragment { .. })
        ));
        assert!(matches!(canon("/#"), Err(PathError::Fragment { .. })));
    }

    #[test]
    fn query_string_is_not_part_of_the_path() {
        let canonical = canon("/admin?x=1").unwrap();
        assert_eq!(canonical.path, "/admin");
        assert_eq!(canonical.query, pairs(&[("x", "1")]));
    }

    #[test]
    fn only_the_first_question_mark_starts_the_query() {
        let canonical = canon("/a?b=?c").unwrap();
        assert_eq!(canonical.path, "/a");
        assert_eq!(canonical.query, pairs(&[("b", "?c")]));
    }

    #[test]
    fn empty_query_is_no_parameters() {
        assert_eq!(canon("/admin?").unwrap(), canon("/admin").unwrap());
        assert!(query_of("/admin?").is_empty());
    }

    #[test]
    fn malformed_percent_escapes_are_refused() {
        for raw in ["/a%", "/a%G1", "/a%4", "/a%4g", "/%%41", "/a%-1"] {
            assert!(
                matches!(canon(raw), Err(PathError::MalformedEscape { .. })),
                "{raw}"
            );
        }
        assert_eq!(
            canon("/a%G1"),
            Err(PathError::MalformedEscape {
                escape: "%G1".into()
            })
        );
        assert_eq!(
            canon("/a%4"),
            Err(PathError::MalformedEscape {
                escape: "%4".into()
            })
        );
    }

    #[test]
    fn encoded_slash_is_refused() {
        assert_eq!(
            canon("/a%2Fb"),
            Err(PathError::AmbiguousEscape {
                escape: "%2F".into()
            })
        );
        assert_eq!(
            canon("/a%2fb"),
            Err(PathError::AmbiguousEscape {
                escape: "%2f".into()
            })
        );
        assert_eq!(status_of("/a%2fb"), 400);
    }

    #[test]
    fn encoded_backslash_is_refused() {
        for raw in ["/a%5Cb", "/a%5cb", "/..%5cadmin"] {
            assert!(
                matches!(canon(raw), Err(PathError::AmbiguousEscape { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn encoded_nul_and_control_characters_are_refused() {
        for raw in [
            "/a%00b", "/a%01", "/a%0a", "/a%0D", "/a%1F", "/a%7F", "/a%7f",
        ] {
            assert!(
                matches!(canon(raw), Err(PathError::AmbiguousEscape { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn encoded_semicolon_is_refused() {
        for raw in ["/a%3Bb", "/a%3bb", "/..%3b/admin"] {
            assert!(
                matches!(canon(raw), Err(PathError::AmbiguousEscape { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn encoded_unreserved_characters_are_decoded_once() {
        assert_eq!(path_of("/%61pi/0/buckets/x"), "/api/0/buckets/x");
        assert_eq!(path_of("/api/%70rojects/1"), "/api/projects/1");
        assert_eq!(path_of("/%41%7a%30%2D%5f%7E%2e"), "/Az0-_~.");
    }

    #[test]
    fn encoded_percent_is_never_double_decoded() {
        assert_eq!(path_of("/%2561"), "/%2561");
        assert_eq!(path_of("/%252e%252e/admin"), "/%252e%252e/admin");
        assert_eq!(path_of("/a%252Fb"), "/a%252Fb");
    }

    #[test]
    fn reserved_escapes_are_kept_and_upper_cased() {
        assert_eq!(path_of("/a%3fb"), "/a%3Fb");
        assert_eq!(path_of("/a%3Fb"), "/a%3Fb");
        assert_eq!(path_of("/%40me/%2a/%3d%23%25"), "/%40me/%2A/%3D%23%25");
    }

    #[test]
    fn escaped_utf8_is_kept_encoded() {
        assert_eq!(path_of("/caf%C3%A9"), "/caf%C3%A9");
        assert_eq!(path_of("/caf%c3%a9"), "/caf%C3%A9");
    }

    #[test]
    fn escapes_that_are_not_utf8_are_refused() {
        for raw in ["/%C0%AE%C0%AE/admin", "/%FF", "/caf%C3", "/%E9t%E9"] {
            assert!(
                matches!(canon(raw), Err(PathError::PathNotUtf8 { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn raw_characters_outside_rfc3986_path_are_encoded() {
        assert_eq!(path_of("/a\"b"), "/a%22b");
        assert_eq!(path_of("/a\"b"), path_of("/a%22b"));
        assert_eq!(path_of("/{id}|<x>^`[]"), "/%7Bid%7D%7C%3Cx%3E%5E%60%5B%5D");
    }

    #[test]
    fn sub_delimiters_colon_and_at_stay_raw() {
        assert_eq!(path_of("/a:b@c!$&'()*+,=d"), "/a:b@c!$&'()*+,=d");
    }

    #[test]
    fn path_parameter_dot_segment_is_refused() {
        let refused = PathError::DotSegmentWithParameters {
            segment: "..;".into(),
        };
        assert_eq!(canon("/v1/..;/internal/reports/5"), Err(refused));
        for raw in ["/..;x/a", "/.;/a", "/a/..;", "/a/.;x=1/b", "/a/..;/..;/b"] {
            let result = canon(raw);
            assert!(
                matches!(result, Err(PathError::DotSegmentWithParameters { .. })),
                "{raw}"
            );
        }
        assert_eq!(status_of("/v1/..;/internal/reports/5"), 400);
    }

    #[test]
    fn encoded_dot_segment_with_parameters_is_refused() {
        for raw in [
            "/app/%2e%2e;/public/x",
            "/%2e%2e;/x",
            "/.%2E;x/y",
            "/%2e;/y",
        ] {
            let result = canon(raw);
            assert!(
                matches!(result, Err(PathError::DotSegmentWithParameters { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn path_parameters_are_stripped() {
        assert_eq!(path_of("/admin;x=1"), "/admin");
        assert_eq!(path_of("/admin;jsessionid=1/users"), "/admin/users");
        assert_eq!(path_of("/a;b;c/d;"), "/a/d");
        assert_eq!(path_of("/a/...;x"), "/a/...");
    }

    #[test]
    fn parameters_only_segment_counts_as_empty() {
        assert_eq!(path_of("/;x/admin"), "/admin");
        assert_eq!(path_of("/admin/;x"), "/admin");
    }

    #[test]
    fn repeated_slashes_are_merged() {
        assert_eq!(path_of("//admin"), "/admin");
        assert_eq!(path_of("/a///b//"), "/a/b");
        assert_eq!(path_of("//"), "/");
    }

    #[test]
    fn dot_segments_are_resolved() {
        assert_eq!(path_of("/./admin"), "/admin");
        assert_eq!(path_of("/x/../admin"), "/admin");
        assert_eq!(path_of("/a/b/./../c"), "/a/c");
        assert_eq!(path_of("/a/b/.."), "/a");
        assert_eq!(path_of("/a/."), "/a");
    }

    #[test]
    fn encoded_dot_segments_are_resolved() {
        assert_eq!(path_of("/%2e%2e/admin"), "/admin");
        assert_eq!(path_of("/x/.%2E/admin"), "/admin");
        assert_eq!(path_of("/x/%2e/admin"), "/x/admin");
    }

    #[test]
    fn dot_dot_above_the_root_clamps_at_the_root() {
        assert_eq!(path_of("/../admin"), "/admin");
        assert_eq!(path_of("/../../.."), "/");
        assert_eq!(path_of("/a/../../b"), "/b");
    }

    #[test]
    fn dot_dot_after_an_empty_segment_is_refused() {
        for raw in ["/a//../b", "/a/b//..", "/a/;x/../b", "/a//%2e%2e/b"] {
            let result = canon(raw);
            assert!(
                matches!(result, Err(PathError::AmbiguousDotSegment { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn empty_segments_that_no_dot_dot_removes_are_merged() {
        assert_eq!(path_of("//../admin"), "/admin");
        assert_eq!(path_of("/a//b/.."), "/a");
    }

    #[test]
    fn trailing_slash_is_dropped_except_for_the_root() {
        assert_eq!(path_of("/admin/"), "/admin");
        assert_eq!(path_of("/admin/x/"), "/admin/x");
        assert_eq!(path_of("/"), "/");
    }

    #[test]
    fn segments_that_merely_contain_dots_are_kept() {
        assert_eq!(path_of("/..."), "/...");
        assert_eq!(path_of("/.well-known/x"), "/.well-known/x");
        assert_eq!(path_of("/a..b/..c/d.."), "/a..b/..c/d..");
    }

    #[test]
    fn all_field_case_spellings_of_admin_agree() {
        for raw in [
            "//admin",
            "/./admin",
            "/x/../admin",
            "/admin/",
            "/admin;x=1",
            "/%61dmin",
        ] {
            assert_eq!(path_of(raw), "/admin", "{raw}");
        }
    }

    #[test]
    fn query_parameters_are_decoded_in_order() {
        let query = query_of("/s?b=2&a=x+y&c=%2B%26%3D&%C3%A9=%E2%82%AC");
        let expected = [
            ("b", "2"),
            ("a", "x y"),
            ("c", "+&="),
            ("\u{e9}", "\u{20ac}"),
        ];
        assert_eq!(query, pairs(&expected));
    }

    #[test]
    fn query_item_without_equals_has_an_empty_value() {
        assert_eq!(query_of("/s?flag"), pairs(&[("flag", "")]));
        assert_eq!(query_of("/s?a=b=c"), pairs(&[("a", "b=c")]));
        assert_eq!(query_of("/s?=x"), pairs(&[("", "x")]));
    }

    #[test]
    fn empty_query_items_are_skipped() {
        assert_eq!(query_of("/s?&&a=1&&"), pairs(&[("a", "1")]));
    }

    #[test]
    fn same_valued_duplicate_query_parameters_collapse() {
        assert_eq!(query_of("/search?q=a+b&q=a%20b"), pairs(&[("q", "a b")]));
        assert_eq!(query_of("/s?a=1&b=2&a=1"), pairs(&[("a", "1"), ("b", "2")]));
        assert_eq!(query_of("/s?f&f="), pairs(&[("f", "")]));
    }

    #[test]
    fn conflicting_duplicate_query_parameters_are_refused() {
        let conflict = PathError::ConflictingQueryParam { name: "id".into() };
        assert_eq!(canon("/s?id=1&id=2"), Err(conflict.clone()));
        assert_eq!(canon("/s?id=1&id="), Err(conflict.clone()));
        assert_eq!(canon("/s?id=1&%69d=2"), Err(conflict));
        assert_eq!(status_of("/s?id=1&id=2"), 400);
    }

    #[test]
    fn too_many_query_parameters_is_414() {
        let items = |n: usize| {
            (0..n)
                .map(|i| format!("p{i}=1"))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert_eq!(query_of(&format!("/s?{}", items(64))).len(), 64);
        let raw = format!("/s?{}", items(65));
        assert_eq!(canon(&raw), Err(PathError::TooManyQueryParams { max: 64 }));
        assert_eq!(status_of(&raw), 414);
    }

    #[test]
    fn duplicate_query_items_count_towards_the_limit() {
        let raw = format!("/s?{}", vec!["a=1"; 65].join("&"));
        assert_eq!(status_of(&raw), 414);
    }

    #[test]
    fn malformed_query_escapes_are_refused() {
        for raw in ["/s?a=%G1", "/s?a=%", "/s?a%4=1", "/s?a=%2"] {
            assert!(
                matches!(canon(raw), Err(PathError::MalformedEscape { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn query_that_is_not_utf8_once_decoded_is_refused() {
        let err = canon("/s?a=%FF").unwrap_err();
        assert_eq!(
            err,
            PathError::QueryNotUtf8 {
                item: "a=%FF".into()
            }
        );
        assert!(matches!(
            canon("/s?%C0%AE=1"),
            Err(PathError::QueryNotUtf8 { .. })
        ));
    }

    #[test]
    fn query_control_characters_once_decoded_are_refused() {
        for raw in [
            "/s?a=%00",
            "/s?a=%0A",
            "/s?%09=x",
            "/s?a=%7F",
            "/s?a=%C2%85",
        ] {
            let result = canon(raw);
            assert!(
                matches!(result, Err(PathError::QueryControlCharacter { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn query_escapes_of_slash_and_semicolon_are_plain_data() {
        assert_eq!(
            query_of("/s?next=%2Fa%3Bb%5C"),
            pairs(&[("next", "/a;b\\")])
        );
    }

    #[test]
    fn http_status_maps_size_faults_to_414_and_the_rest_to_400() {
        assert_eq!(PathError::TooLong { len: 2, max: 1 }.http_status(), 414);
        assert_eq!(PathError::TooManyQueryParams { max: 1 }.http_status(), 414);
        assert_eq!(PathError::Empty.http_status(), 400);
        assert_eq!(
            PathError::Fragment {
                fragment: String::new()
            }
            .http_status(),
            400
        );
    }

    #[test]
    fn error_messages_quote_user_input_in_backticks() {
        let err = canon("/a%2fb").unwrap_err();
        assert_eq!(
            err.to_string(),
            "percent-escape `%2f` makes the path ambiguous"
        );
        let err = canon("/s?id=1&id=2").unwrap_err();
        assert_eq!(
            err.to_string(),
            "query parameter `id` is repeated with different values"
        );
    }

    /// Reference model for segment lists: decode, strip params, stack-resolve.
    fn model(segments: &[&str]) -> String {
        let mut stack: Vec<&str> = Vec::new();
        for segment in segments {
            match *segment {
                "." | "%2E" => {}
                ".." | "%2e%2e" | ".%2e" => {
                    stack.pop();
                }
                "x;y" => stack.push("x"),
                other => stack.push(other),
            }
        }
        format!("/{}", stack.join("/"))
    }

    fn assert_canonical_shape(path: &str) {
        assert!(path.starts_with('/'), "{path}");
        assert!(path == "/" || !path.ends_with('/'), "{path}");
        assert!(!path.contains("//"), "{path}");
        assert!(!path.contains([';', '?', '#', '\\', ' ']), "{path}");
        assert!(
            !path.chars().any(|c| c.is_control() || !c.is_ascii()),
            "{path}"
        );
        assert!(path.split('/').all(|s| s != "." && s != ".."), "{path}");
    }

    const SEGMENTS: &[&str] = &["a", "b", "admin", "..", ".", "%2e%2e", "%2E", ".%2e", "x;y"];

    const HOSTILE: &[&str] = &[
        "a", "..", ".", "%2e%2e", ";x", "..;x", "", "%2F", "%5c", "%00",
    ];

    proptest! {
        #[test]
        fn canonicalize_never_panics(raw in any::<String>()) {
            let _ = canonicalize(&raw, &PathLimits::default());
        }

        #[test]
        fn canonicalize_never_panics_on_path_like_input(raw in "/[ -~%;./]{0,80}") {
            let _ = canon(&raw);
        }

        #[test]
        fn canonical_path_is_idempotent(raw in "/[ -~]{0,80}") {
            if let Ok(first) = canon(&raw) {
                let again = canon(&first.path).unwrap();
                prop_assert_eq!(again, CanonicalPath { path: first.path, query: Vec::new() });
            }
        }

        #[test]
        fn canonical_path_has_no_ambiguous_parts(raw in "/[!-~]{0,80}") {
            if let Ok(canonical) = canon(&raw) {
                assert_canonical_shape(&canonical.path);
            }
        }

        #[test]
        fn dot_segments_resolve_like_a_stack_clamped_at_the_root(
            segments in prop::collection::vec(prop::sample::select(SEGMENTS), 0..12),
        ) {
            let raw = format!("/{}", segments.join("/"));
            let canonical = canon(&raw).unwrap();
            assert_canonical_shape(&canonical.path);
            prop_assert_eq!(canonical.path, model(&segments));
        }

        #[test]
        fn dot_segments_never_escape_the_root(
            segments in prop::collection::vec(prop::sample::select(HOSTILE), 0..12),
        ) {
            let raw = format!("/{}", segments.join("/"));
            if let Ok(canonical) = canon(&raw) {
                assert_canonical_shape(&canonical.path);
            }
        }

        #[test]
        fn encoded_unreserved_characters_equal_their_raw_form(
            chars in prop::collection::vec(("[A-Za-z0-9._~-]", any::<bool>()), 1..20),
        ) {
            let raw: String = chars.iter().map(|(c, _)| c.as_str()).collect();
            let mixed: String = chars
                .iter()
                .map(|(c, encode)| match encode {
                    true => format!("%{:02x}", c.as_bytes()[0]),
                    false => c.clone(),
                })
                .collect();
            let plain = canon(&format!("/x/{raw}"));
            prop_assert_eq!(plain, canon(&format!("/x/{mixed}")));
        }

        #[test]
        fn query_never_changes_the_path(raw in "/[a-z/]{0,20}", query in "[a-z=&+%0-9]{0,30}") {
            if let Ok(with_query) = canon(&format!("{raw}?{query}")) {
                prop_assert_eq!(with_query.path, canon(&raw).unwrap().path);
            }
        }
    }
}
