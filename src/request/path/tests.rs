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
