//! Cedar extension values of the context (`datetime`, `ip`), built through
//! a per-thread cache.
//!
//! Cedar's typed constructors (`RestrictedExpression::new_datetime`,
//! `new_ip`) parse the extension's function name with the whole policy
//! grammar on every call, and evaluating the call parses its argument
//! (with a regular expression, for `datetime`); together they cost more
//! than the rest of the mapping. The value depends only on its text, so
//! each thread keeps the values it evaluated lately; `datetime` has second
//! precision, so under load a thread evaluates about one per second. The
//! cache is bounded and simply emptied when full.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;

use cedar_policy::RestrictedExpression;

use super::cedar::{self, Value};
use super::MappingError;

/// Values kept per thread and kind before the cache is emptied.
const CAPACITY: usize = 256;

#[derive(Default)]
struct Cache {
    datetimes: HashMap<String, Option<Value>>,
    ips: HashMap<IpAddr, Option<Value>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// `datetime("<text>")`; `text` is in Cedar's datetime literal form. A
/// text Cedar refuses is a mapping fault (the request is denied).
pub fn datetime(text: String) -> Result<Value, MappingError> {
    let value = CACHE.with_borrow_mut(|cache| {
        cached(&mut cache.datetimes, text, |t| {
            cedar::evaluate(RestrictedExpression::new_datetime(t))
        })
    });
    value.ok_or_else(|| MappingError::Context("a time Cedar's datetime cannot express".into()))
}

/// `ip("<address>")`. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, how
/// a dual-stack listener reports an IPv4 client) becomes its IPv4 address:
/// Cedar refuses the mixed notation, and policies name IPv4 ranges. Any
/// other address Cedar refuses (such as `::1.2.3.4`) is a mapping fault:
/// the request is denied.
pub fn ip(address: IpAddr) -> Result<Value, MappingError> {
    let address = address.to_canonical();
    let value = CACHE.with_borrow_mut(|cache| {
        cached(&mut cache.ips, address, |a| {
            cedar::evaluate(RestrictedExpression::new_ip(a.to_string()))
        })
    });
    value.ok_or_else(|| MappingError::Context(format!("`{address}` is not a Cedar ip")))
}

fn cached<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, Option<Value>>,
    key: K,
    build: impl FnOnce(&K) -> Option<Value>,
) -> Option<Value> {
    if let Some(found) = map.get(&key) {
        return found.clone();
    }
    if map.len() >= CAPACITY {
        map.clear();
    }
    let value = build(&key);
    map.insert(key, value.clone());
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_values_equal_fresh_ones() {
        let text = "2024-05-06T07:08:09Z".to_owned();
        let fresh_datetime = cedar::evaluate(RestrictedExpression::new_datetime(&text)).unwrap();
        let fresh_ip = cedar::evaluate(RestrictedExpression::new_ip("10.1.2.3")).unwrap();
        for _ in 0..2 {
            assert_eq!(datetime(text.clone()).unwrap(), fresh_datetime);
            let address: IpAddr = "10.1.2.3".parse().unwrap();
            assert_eq!(ip(address).unwrap(), fresh_ip);
            let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
            assert_eq!(ip(mapped).unwrap(), fresh_ip);
        }
    }

    /// The kind of fault: a value Cedar refuses must not silently drop an
    /// attribute (a `has`-guarded forbid would then not apply). Every form
    /// an address can take reaches Cedar as an `ip` value.
    #[test]
    fn every_address_form_becomes_a_cedar_ip() {
        for text in [
            "::ffff:203.0.113.9",
            "::1.2.3.4",
            "::1",
            "::",
            "0.0.0.0",
            "fe80::1",
            "2001:db8::1",
        ] {
            let address: IpAddr = text.parse().unwrap();
            assert!(ip(address).is_ok(), "{text}");
        }
        let mapped = ip("::ffff:203.0.113.9".parse().unwrap()).unwrap();
        assert_eq!(mapped, ip("203.0.113.9".parse().unwrap()).unwrap());
    }

    #[test]
    fn a_datetime_cedar_refuses_is_a_mapping_fault() {
        let err = datetime("not a time".to_owned()).unwrap_err();
        assert!(matches!(err, MappingError::Context(_)), "{err}");
    }

    #[test]
    fn a_full_cache_is_emptied_not_grown() {
        for i in 0..(CAPACITY as u32 + 10) {
            let _ = ip(IpAddr::from(i.to_be_bytes()));
        }
        CACHE.with_borrow(|c| assert!(c.ips.len() <= CAPACITY));
    }
}
