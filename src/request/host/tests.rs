use super::*;
use proptest::prelude::*;

fn host(name: &str, port: Option<u16>) -> Host {
    Host {
        name: name.to_owned(),
        port,
    }
}

fn parse(raw: &str) -> Result<Host, HostError> {
    parse_host(raw, None)
}

#[test]
fn name_and_port_are_split() {
    assert_eq!(
        parse("api.example.test:8080"),
        Ok(host("api.example.test", Some(8080)))
    );
    assert_eq!(
        parse("api.example.test"),
        Ok(host("api.example.test", None))
    );
}

#[test]
fn upper_case_names_are_lower_cased() {
    assert_eq!(
        parse("API.Example.Test"),
        Ok(host("api.example.test", None))
    );
    assert_eq!(
        parse("XN--BCHER-KVA.Test:1"),
        Ok(host("xn--bcher-kva.test", Some(1)))
    );
}

#[test]
fn single_trailing_dot_is_stripped() {
    assert_eq!(
        parse("api.example.test."),
        Ok(host("api.example.test", None))
    );
    assert_eq!(
        parse("api.example.test.:443"),
        Ok(host("api.example.test", Some(443)))
    );
}

#[test]
fn second_trailing_dot_is_an_empty_label() {
    assert!(matches!(
        parse("api.example.test.."),
        Err(HostError::InvalidLabel { .. })
    ));
}

#[test]
fn empty_labels_are_refused() {
    for raw in ["a..b", ".a", "..", ".a.:80"] {
        assert!(
            matches!(parse(raw), Err(HostError::InvalidLabel { .. })),
            "{raw}"
        );
    }
}

#[test]
fn over_long_label_is_refused() {
    let label = "a".repeat(MAX_LABEL_BYTES);
    assert!(parse(&format!("{label}.test")).is_ok());
    let raw = format!("{label}a.test");
    assert!(matches!(parse(&raw), Err(HostError::InvalidLabel { .. })));
}

#[test]
fn name_over_253_bytes_is_refused() {
    let name_of = |len: usize| {
        let labels = vec!["a".repeat(49); len / 50 + 1].join(".");
        labels[labels.len() - len..].to_owned()
    };
    assert_eq!(parse(&name_of(253)).unwrap().name.len(), 253);
    assert_eq!(
        parse(&format!("{}.", name_of(253))).unwrap().name.len(),
        253
    );
    let err = parse(&name_of(254)).unwrap_err();
    assert_eq!(err, HostError::NameTooLong { len: 254, max: 253 });
}

#[test]
fn empty_host_falls_back_to_authority() {
    let expected = Ok(host("api.example.test", None));
    assert_eq!(parse_host("", Some("api.example.test")), expected);
    assert_eq!(
        parse_host("", Some("API.example.test:80")).unwrap().port,
        Some(80)
    );
}

#[test]
fn host_wins_over_authority() {
    let parsed = parse_host("a.example.test", Some("b.example.test")).unwrap();
    assert_eq!(parsed, host("a.example.test", None));
    assert_eq!(
        parse_host("a.test", Some("bad host")),
        Ok(host("a.test", None))
    );
}

#[test]
fn missing_host_and_authority_is_refused() {
    assert_eq!(parse_host("", None), Err(HostError::Missing));
    assert_eq!(parse_host("", Some("")), Err(HostError::Missing));
}

#[test]
fn bracketed_ipv6_with_port_is_accepted() {
    assert_eq!(
        parse("[2001:db8::1]:8443"),
        Ok(host("[2001:db8::1]", Some(8443)))
    );
    assert_eq!(parse("[::1]"), Ok(host("[::1]", None)));
}

#[test]
fn bracketed_ipv6_is_lower_cased_and_compressed() {
    assert_eq!(
        parse("[2001:DB8::1]:8443"),
        Ok(host("[2001:db8::1]", Some(8443)))
    );
    assert_eq!(
        parse("[2001:0DB8:0:0:0:0:0:1]").unwrap().name,
        "[2001:db8::1]"
    );
    assert_eq!(
        parse("[::FFFF:192.0.2.1]").unwrap().name,
        "[::ffff:192.0.2.1]"
    );
}

#[test]
fn unbracketed_ipv6_is_refused() {
    for raw in ["::::", "2001:db8::1", "::1", "a:b:c", "fe80::1:80"] {
        assert!(
            matches!(parse(raw), Err(HostError::UnbracketedIpv6 { .. })),
            "{raw}"
        );
    }
}

#[test]
fn malformed_ipv6_literals_are_refused() {
    for raw in [
        "[::1",
        "[]",
        "[zz::1]",
        "[::1]x",
        "[::1]]",
        "[1.2.3.4]",
        "[[::1]]",
    ] {
        assert!(
            matches!(parse(raw), Err(HostError::InvalidIpv6Literal { .. })),
            "{raw}"
        );
    }
}

#[test]
fn ipv6_zone_identifier_is_refused() {
    assert!(matches!(
        parse("[fe80::1%25eth0]"),
        Err(HostError::ForbiddenCharacter { .. })
    ));
}

#[test]
fn brackets_inside_a_name_are_refused() {
    for raw in ["a[b]", "a]", "example.test]:80", "a[b"] {
        assert!(
            matches!(parse(raw), Err(HostError::ForbiddenCharacter { .. })),
            "{raw}"
        );
    }
}

#[test]
fn non_numeric_port_is_refused() {
    assert_eq!(
        parse("host:notaport"),
        Err(HostError::InvalidPort {
            port: "notaport".into()
        })
    );
    for raw in [
        "host:",
        "host:8o",
        "[::1]:",
        "[::1]:x",
        "host:0x50",
        "host:1.5",
    ] {
        assert!(
            matches!(parse(raw), Err(HostError::InvalidPort { .. })),
            "{raw}"
        );
    }
}

#[test]
fn port_above_65535_is_refused() {
    assert_eq!(parse("host:65535"), Ok(host("host", Some(65535))));
    assert!(matches!(
        parse("host:65536"),
        Err(HostError::InvalidPort { .. })
    ));
    assert!(matches!(
        parse("host:99999999999999999999"),
        Err(HostError::InvalidPort { .. })
    ));
}

#[test]
fn port_is_read_as_decimal() {
    assert_eq!(parse("host:0"), Ok(host("host", Some(0))));
    assert_eq!(parse("host:0080"), Ok(host("host", Some(80))));
    assert!(matches!(
        parse("host:+80"),
        Err(HostError::ForbiddenCharacter { .. })
    ));
}

#[test]
fn empty_name_is_refused() {
    for raw in [":8080", ".", ".:80"] {
        assert!(
            matches!(parse(raw), Err(HostError::EmptyName { .. })),
            "{raw}"
        );
    }
}

#[test]
fn delimiters_and_controls_are_refused() {
    let cases = [
        ("a b", " "),
        ("a/b", "/"),
        ("a\\b", "\\\\"),
        ("a@user", "@"),
        ("a?b", "?"),
        ("a#b", "#"),
        ("a%2eb", "%"),
        ("a\0b", "\\u{0}"),
        ("a\tb", "\\t"),
        ("a\u{7f}b", "\\u{7f}"),
    ];
    for (raw, found) in cases {
        let err = parse(raw).unwrap_err();
        assert_eq!(
            err,
            HostError::ForbiddenCharacter {
                found: found.into(),
                offset: 1
            }
        );
    }
}

#[test]
fn non_ascii_names_are_refused() {
    let err = parse("b\u{fc}cher.test").unwrap_err();
    assert_eq!(
        err,
        HostError::ForbiddenCharacter {
            found: "\\u{fc}".into(),
            offset: 1
        }
    );
    assert!(matches!(
        parse("\u{212a}.test"),
        Err(HostError::ForbiddenCharacter { .. })
    ));
}

#[test]
fn other_punctuation_is_refused() {
    for raw in ["a!b", "a*b", "a,b", "a;b", "a=b", "a~b", "a+b", "a\"b"] {
        assert!(
            matches!(parse(raw), Err(HostError::ForbiddenCharacter { .. })),
            "{raw}"
        );
    }
}

#[test]
fn punycode_underscore_and_hyphen_names_are_accepted() {
    assert_eq!(
        parse("xn--bcher-kva.example").unwrap().name,
        "xn--bcher-kva.example"
    );
    assert_eq!(
        parse("_svc.my-host.test").unwrap().name,
        "_svc.my-host.test"
    );
}

#[test]
fn dotted_decimal_ipv4_is_accepted() {
    assert_eq!(parse("127.0.0.1:8080"), Ok(host("127.0.0.1", Some(8080))));
    assert_eq!(parse("192.0.2.1."), Ok(host("192.0.2.1", None)));
}

#[test]
fn other_ipv4_spellings_are_refused() {
    let cases = [
        "127.1",
        "2130706433",
        "0x7f.0.0.1",
        "0X7F000001",
        "0177.0.0.1",
        "01.2.3.4",
    ];
    for raw in cases
        .into_iter()
        .chain(["1.2.3.256", "a.1", "1.2.3.4.5", "a.0x"])
    {
        assert!(
            matches!(parse(raw), Err(HostError::AmbiguousIpv4 { .. })),
            "{raw}"
        );
    }
}

#[test]
fn numeric_labels_before_the_last_are_fine() {
    assert_eq!(parse("1.example.test").unwrap().name, "1.example.test");
    assert_eq!(parse("123abc").unwrap().name, "123abc");
    assert_eq!(parse("0xdeadbeef.test").unwrap().name, "0xdeadbeef.test");
}

#[test]
fn every_error_is_http_400() {
    assert_eq!(HostError::Missing.http_status(), 400);
    assert_eq!(parse("host:notaport").unwrap_err().http_status(), 400);
}

#[test]
fn error_messages_quote_user_input_in_backticks() {
    let err = parse("host:notaport").unwrap_err();
    assert_eq!(
        err.to_string(),
        "port `notaport` is not a decimal number from 0 to 65535"
    );
    let err = parse("::::").unwrap_err();
    assert_eq!(
        err.to_string(),
        "IPv6 address in host `::::` is not in brackets"
    );
}

proptest! {
    #[test]
    fn parse_host_never_panics(raw in any::<String>(), authority in any::<Option<String>>()) {
        let _ = parse_host(&raw, authority.as_deref());
    }

    #[test]
    fn parsed_name_is_lower_case_without_a_port(raw in "[\\[\\]:.0-9a-fA-FxX_-]{0,24}") {
        if let Ok(parsed) = parse(&raw) {
            prop_assert_eq!(parsed.name.to_ascii_lowercase(), parsed.name.clone());
            match parsed.name.strip_prefix('[') {
                Some(inner) => prop_assert!(inner.ends_with(']')),
                None => prop_assert!(!parsed.name.contains(':')),
            }
        }
    }

    #[test]
    fn parsed_host_is_idempotent(raw in "[\\[\\]:.0-9a-zA-Z_-]{0,24}") {
        if let Ok(parsed) = parse(&raw) {
            prop_assert_eq!(parse(&parsed.name), Ok(host(&parsed.name, None)));
        }
    }

    #[test]
    fn well_formed_names_and_ports_round_trip(
        name in "[a-z0-9_-]{1,12}(\\.[a-z0-9-]{1,12}){0,3}\\.[a-z]{1,6}",
        port in any::<Option<u16>>(),
        upper in any::<bool>(),
    ) {
        let spelled = if upper { name.to_ascii_uppercase() } else { name.clone() };
        let raw = match port {
            Some(port) => format!("{spelled}:{port}"),
            None => spelled,
        };
        prop_assert_eq!(parse(&raw), Ok(host(&name, port)));
    }

    #[test]
    fn any_ipv6_address_round_trips_in_brackets(bits in any::<u128>(), port in any::<u16>()) {
        let address = Ipv6Addr::from(bits);
        let parsed = parse(&format!("[{address}]:{port}")).unwrap();
        prop_assert_eq!(parsed, host(&format!("[{address}]"), Some(port)));
    }
}
