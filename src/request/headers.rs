//! The request headers of a CheckRequest, read the same way whichever of
//! Envoy's two encodings carried them.
//!
//! Envoy sends either `headers` (a map whose repeated headers are already
//! joined with `,`) or `header_map` (one entry per header line, when
//! `encode_raw_headers` is on). This module turns both into one lookup and
//! enforces the header count and size limits. Which headers mean what is
//! left to the identity and mapping modules.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::HeaderMap;

/// Why the headers could not be read; every variant denies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("{count} request headers exceed the limit of {limit}")]
    TooMany { count: usize, limit: usize },
    #[error("header `{name}` is {len} bytes, over the limit of {limit}")]
    TooLarge {
        name: String,
        len: usize,
        limit: usize,
    },
    #[error("header `{name}` is not valid UTF-8")]
    NotUtf8 { name: String },
    #[error("header `{name}` appears more than once but must be single")]
    Repeated { name: String },
}

impl HeaderError {
    /// HTTP status of the deny this error causes.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::TooMany { .. } | Self::TooLarge { .. } => 431,
            Self::NotUtf8 { .. } | Self::Repeated { .. } => 400,
        }
    }
}

/// Limits applied while reading headers.
#[derive(Debug, Clone, Copy)]
pub struct HeaderLimits {
    pub max_headers: usize,
    pub max_header_bytes: usize,
}

/// Request headers by lower-case name, each with every value it arrived with.
#[derive(Debug, Default, Clone)]
pub struct Headers {
    values: HashMap<String, Vec<String>>,
}

impl Headers {
    /// Reads the map form and, if present, the raw form of the headers.
    pub fn read(
        map: &HashMap<String, String>,
        raw: Option<&HeaderMap>,
        limits: HeaderLimits,
    ) -> Result<Self, HeaderError> {
        let raw_lines = raw.map_or(0, |r| r.headers.len());
        let count = map.len().max(raw_lines);
        if count > limits.max_headers {
            return Err(HeaderError::TooMany {
                count,
                limit: limits.max_headers,
            });
        }
        let mut headers = Headers::default();
        match raw {
            Some(raw) if !raw.headers.is_empty() => {
                for line in &raw.headers {
                    let value = raw_value(&line.key, &line.value, &line.raw_value)?;
                    headers.push(&line.key, value, limits)?;
                }
            }
            _ => {
                for (name, value) in map {
                    headers.push(name, value.clone(), limits)?;
                }
            }
        }
        Ok(headers)
    }

    fn push(&mut self, name: &str, value: String, limits: HeaderLimits) -> Result<(), HeaderError> {
        if value.len() > limits.max_header_bytes {
            return Err(HeaderError::TooLarge {
                name: name.to_ascii_lowercase(),
                len: value.len(),
                limit: limits.max_header_bytes,
            });
        }
        let key = name.to_ascii_lowercase();
        self.values.entry(key).or_default().push(value);
        Ok(())
    }

    /// The value of a header, repeats joined with `,` as Envoy does.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).map(|v| v.join(","))
    }

    /// The value of a header that must arrive once and hold one value.
    ///
    /// A comma means Envoy joined repeats (or the sender smuggled a list),
    /// so the value is ambiguous and refused.
    pub fn get_single(&self, name: &str) -> Result<Option<&str>, HeaderError> {
        match self.values.get(name).map(Vec::as_slice) {
            None => Ok(None),
            Some([one]) if !one.contains(',') => Ok(Some(one.as_str())),
            Some(_) => Err(HeaderError::Repeated { name: name.into() }),
        }
    }

    /// Whether the header is present at all.
    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

/// Envoy puts a header's value in `raw_value` as bytes when
/// `encode_raw_headers` is on, and in `value` otherwise.
fn raw_value(name: &str, value: &str, raw: &[u8]) -> Result<String, HeaderError> {
    if raw.is_empty() {
        return Ok(value.to_owned());
    }
    String::from_utf8(raw.to_vec()).map_err(|_| HeaderError::NotUtf8 {
        name: name.to_ascii_lowercase(),
    })
}

/// Headers that can carry credentials and so never enter a Cedar context,
/// a log line or a span.
pub fn is_secret(name: &str) -> bool {
    const SECRET: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-authentik-jwt",
        "x-pomerium-jwt-assertion",
        "cf-access-jwt-assertion",
        "x-goog-iap-jwt-assertion",
        "x-forwarded-access-token",
        "x-auth-request-access-token",
    ];
    let name = name.to_ascii_lowercase();
    SECRET.contains(&name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::HeaderValue;

    const LIMITS: HeaderLimits = HeaderLimits {
        max_headers: 4,
        max_header_bytes: 16,
    };

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn raw(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let headers = pairs
            .iter()
            .map(|(k, v)| HeaderValue {
                key: k.to_string(),
                raw_value: v.to_vec(),
                ..Default::default()
            })
            .collect();
        HeaderMap { headers }
    }

    #[test]
    fn joined_repeat_of_single_header_is_ambiguous() {
        let h = Headers::read(&map(&[("remote-user", "alice,bob")]), None, LIMITS).unwrap();
        assert!(matches!(
            h.get_single("remote-user"),
            Err(HeaderError::Repeated { .. })
        ));
    }

    #[test]
    fn raw_header_map_keeps_repeats_apart() {
        let r = raw(&[("Remote-User", b"alice"), ("remote-user", b"bob")]);
        let h = Headers::read(&HashMap::new(), Some(&r), LIMITS).unwrap();
        assert!(h.get_single("remote-user").is_err());
        assert_eq!(h.get("remote-user").unwrap(), "alice,bob");
    }

    #[test]
    fn raw_header_with_invalid_utf8_is_refused() {
        let r = raw(&[("remote-user", b"al\xffce")]);
        let err = Headers::read(&HashMap::new(), Some(&r), LIMITS).unwrap_err();
        assert_eq!(err.http_status(), 400);
    }

    #[test]
    fn header_count_and_size_limits_deny_with_431() {
        let many = map(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")]);
        assert_eq!(
            Headers::read(&many, None, LIMITS)
                .unwrap_err()
                .http_status(),
            431
        );
        let big = map(&[("a", "0123456789abcdefg")]);
        assert_eq!(
            Headers::read(&big, None, LIMITS).unwrap_err().http_status(),
            431
        );
    }

    #[test]
    fn credential_headers_are_secret_in_any_case() {
        assert!(is_secret("Cookie"));
        assert!(is_secret("authorization"));
        assert!(!is_secret("user-agent"));
    }
}
