//! Canonical request host, the form Cedar policies match host names against.
//!
//! This module owns choosing between `CheckRequest` `http.host` and the
//! `:authority` header, splitting off the port, and reducing the name to one
//! lower-case spelling (single trailing dot stripped, IPv6 literals bracketed
//! and in RFC 5952 form) while refusing anything a proxy and a backend could
//! read as two different hosts. It does not resolve names, does not check the
//! host against any list of allowed hosts, and does not drop default ports:
//! that is policy, left to the callers and the Cedar policies.

use std::net::{Ipv4Addr, Ipv6Addr};
use thiserror::Error;

/// Longest host name accepted, in bytes: the DNS limit on a name in text form.
pub const MAX_NAME_BYTES: usize = 253;

/// Longest label accepted between dots, in bytes: the DNS label limit.
pub const MAX_LABEL_BYTES: usize = 63;

/// A request host reduced to the one form that policies see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Lower-case name without trailing dot, or a bracketed IPv6 literal.
    pub name: String,
    /// Port given after the name, if any; default ports are kept as given.
    pub port: Option<u16>,
}

/// Why a host was refused. Every variant maps to HTTP 400.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum HostError {
    #[error("request has neither a host nor an authority")]
    Missing,
    #[error("host has forbidden character `{found}` at byte offset {offset}")]
    ForbiddenCharacter { found: String, offset: usize },
    #[error("host `{host}` has an empty name")]
    EmptyName { host: String },
    #[error("host name is {len} bytes long, over the limit of {max}")]
    NameTooLong { len: usize, max: usize },
    #[error("host name `{name}` has an empty or over-long label")]
    InvalidLabel { name: String },
    #[error("host name `{name}` is numeric but not a dotted-decimal IPv4 address")]
    AmbiguousIpv4 { name: String },
    #[error("port `{port}` is not a decimal number from 0 to 65535")]
    InvalidPort { port: String },
    #[error("IPv6 address in host `{host}` is not in brackets")]
    UnbracketedIpv6 { host: String },
    #[error("host `{host}` is not a valid bracketed IPv6 literal")]
    InvalidIpv6Literal { host: String },
}

impl HostError {
    /// HTTP status for the denial; a bad host is always a bad request.
    pub fn http_status(&self) -> u16 {
        400
    }
}

/// Parses and canonicalises the request host.
///
/// `host` is CheckRequest http.host; `authority` is the `:authority` header if present.
pub fn parse_host(host: &str, authority: Option<&str>) -> Result<Host, HostError> {
    let raw = choose_source(host, authority)?;
    check_characters(raw)?;
    match raw.strip_prefix('[') {
        Some(bracketed) => parse_ipv6_literal(raw, bracketed),
        None => parse_plain(raw),
    }
}

/// `http.host` unless it is empty, then `:authority`.
fn choose_source<'a>(host: &'a str, authority: Option<&'a str>) -> Result<&'a str, HostError> {
    match (host, authority) {
        ("", Some(authority)) if !authority.is_empty() => Ok(authority),
        ("", _) => Err(HostError::Missing),
        (host, _) => Ok(host),
    }
}

/// Allows only letters, digits, `-`, `.`, `_` and the `[`, `]`, `:` of a
/// host and port; this refuses controls, spaces, `/`, `\`, `@`, `?`, `#`,
/// `%` and non-ASCII along with every other character.
fn check_characters(raw: &str) -> Result<(), HostError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._:[]".contains(c);
    let bad = raw.char_indices().find(|&(_, c)| !allowed(c));
    match bad {
        Some((offset, c)) => Err(forbidden(c, offset)),
        None => Ok(()),
    }
}

fn forbidden(c: char, offset: usize) -> HostError {
    HostError::ForbiddenCharacter {
        found: c.escape_default().to_string(),
        offset,
    }
}

/// `[v6address]` or `[v6address]:port`; `bracketed` is `raw` after the `[`.
fn parse_ipv6_literal(raw: &str, bracketed: &str) -> Result<Host, HostError> {
    let invalid = || HostError::InvalidIpv6Literal {
        host: raw.to_owned(),
    };
    let (literal, after) = bracketed.split_once(']').ok_or_else(invalid)?;
    let address: Ipv6Addr = literal.parse().map_err(|_| invalid())?;
    let port = match after {
        "" => None,
        _ => Some(parse_port(after.strip_prefix(':').ok_or_else(invalid)?)?),
    };
    Ok(Host {
        name: format!("[{address}]"),
        port,
    })
}

/// `name` or `name:port`; more than one colon is an unbracketed IPv6 address.
fn parse_plain(raw: &str) -> Result<Host, HostError> {
    let (name, port) = match raw.split_once(':') {
        Some((_, rest)) if rest.contains(':') => {
            return Err(HostError::UnbracketedIpv6 {
                host: raw.to_owned(),
            })
        }
        Some((name, port)) => (name, Some(parse_port(port)?)),
        None => (raw, None),
    };
    Ok(Host {
        name: canonical_name(raw, name)?,
        port,
    })
}

/// Decimal digits only: `u16::from_str` alone would also take `+80`.
fn parse_port(port: &str) -> Result<u16, HostError> {
    let invalid = || HostError::InvalidPort {
        port: port.to_owned(),
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    port.parse().map_err(|_| invalid())
}

/// Lower-cases, strips one trailing dot, and checks the name's shape.
fn canonical_name(raw: &str, name: &str) -> Result<String, HostError> {
    if let Some((offset, c)) = name.char_indices().find(|&(_, c)| matches!(c, '[' | ']')) {
        return Err(forbidden(c, offset));
    }
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    check_length(raw, &name)?;
    check_labels(&name)?;
    check_numeric(&name)?;
    Ok(name)
}

fn check_length(raw: &str, name: &str) -> Result<(), HostError> {
    if name.is_empty() {
        return Err(HostError::EmptyName {
            host: raw.to_owned(),
        });
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(HostError::NameTooLong {
            len: name.len(),
            max: MAX_NAME_BYTES,
        });
    }
    Ok(())
}

fn check_labels(name: &str) -> Result<(), HostError> {
    let bad = |label: &str| label.is_empty() || label.len() > MAX_LABEL_BYTES;
    if name.split('.').any(bad) {
        return Err(HostError::InvalidLabel {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// A name whose last label is numeric is an IPv4 address to URL parsers and
/// resolvers, which also read `127.1`, `0x7f.1` or `0177.0.0.1`; only strict
/// dotted decimal is accepted so that one address has one spelling.
fn check_numeric(name: &str) -> Result<(), HostError> {
    let last = name.rsplit('.').next().unwrap_or(name);
    let hex = last.strip_prefix("0x");
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || hex.is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric && name.parse::<Ipv4Addr>().is_err() {
        return Err(HostError::AmbiguousIpv4 {
            name: name.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
