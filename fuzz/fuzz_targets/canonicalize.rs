//! Path canonicalisation and host parsing on arbitrary input.
//!
//! Besides "never panics", every accepted path must already be canonical
//! (idempotence), never keep a dot segment, an empty segment, a trailing
//! slash or a character that could be read two ways, and every accepted
//! host must be lower-case and parse back to itself.
#![no_main]

use cedar_ext_authz::request::host::parse_host;
use cedar_ext_authz::request::path::{canonicalize, CanonicalPath, PathLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_path(text);
    check_host(text);
});

fn check_path(raw: &str) {
    let limits = PathLimits::default();
    let Ok(canonical) = canonicalize(raw, &limits) else {
        return;
    };
    let path = &canonical.path;
    assert!(path.starts_with('/'), "{path:?}");
    assert!(path == "/" || !path.ends_with('/'), "{path:?}");
    assert!(!path.contains("//"), "{path:?}");
    assert!(!path.contains([';', '?', '#', '\\', ' ']), "{path:?}");
    assert!(
        path.bytes().all(|b| b.is_ascii() && !b.is_ascii_control()),
        "{path:?}"
    );
    assert!(path.split('/').all(|s| s != "." && s != ".."), "{path:?}");
    // The limit is on the raw `:path`; percent-encoding can make the
    // canonical form up to three times longer (found by this target), so
    // the second pass gets room for it.
    let roomy = PathLimits {
        max_path_bytes: limits.max_path_bytes.max(path.len()),
        ..limits
    };
    let again = canonicalize(path, &roomy).expect("a canonical path is accepted");
    let expected = CanonicalPath {
        path: path.clone(),
        query: Vec::new(),
    };
    assert_eq!(again, expected, "canonicalisation is not idempotent");
}

fn check_host(raw: &str) {
    for host in [parse_host(raw, None), parse_host("", Some(raw))] {
        let Ok(host) = host else { continue };
        assert_eq!(host.name, host.name.to_ascii_lowercase());
        let again = parse_host(&host.name, None).expect("a parsed host name is accepted");
        assert_eq!(again.name, host.name, "host parsing is not idempotent");
    }
}
