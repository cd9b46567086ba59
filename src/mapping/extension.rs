//! Cedar extension values of the context (`datetime`, `ip`), built through
//! a per-thread cache.
//!
//! Cedar's typed constructors (`RestrictedExpression::new_datetime`,
//! `new_ip`) parse the extension's function name with the whole policy
//! grammar on every call, which costs more than the rest of the mapping.
//! The value itself depends only on its text, so each thread keeps the
//! values it built lately; `datetime` has second precision, so under load
//! a thread builds about one per second. The cache is bounded and simply
//! emptied when full.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;

use cedar_policy::RestrictedExpression;

/// Values kept per thread and kind before the cache is emptied.
const CAPACITY: usize = 256;

#[derive(Default)]
struct Cache {
    datetimes: HashMap<String, RestrictedExpression>,
    ips: HashMap<IpAddr, RestrictedExpression>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// `datetime("<text>")`; `text` is in Cedar's datetime literal form.
pub fn datetime(text: String) -> RestrictedExpression {
    CACHE.with_borrow_mut(|cache| {
        cached(&mut cache.datetimes, text, |t| {
            RestrictedExpression::new_datetime(t)
        })
    })
}

/// `ip("<address>")`.
pub fn ip(address: IpAddr) -> RestrictedExpression {
    CACHE.with_borrow_mut(|cache| {
        cached(&mut cache.ips, address, |a| {
            RestrictedExpression::new_ip(a.to_string())
        })
    })
}

fn cached<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, RestrictedExpression>,
    key: K,
    build: impl FnOnce(&K) -> RestrictedExpression,
) -> RestrictedExpression {
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
        for _ in 0..2 {
            assert_eq!(
                format!("{:?}", datetime(text.clone())),
                format!("{:?}", RestrictedExpression::new_datetime(&text))
            );
            let address: IpAddr = "10.1.2.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
            assert_eq!(
                format!("{:?}", ip(address)),
                format!("{:?}", RestrictedExpression::new_ip("10.1.2.3"))
            );
        }
    }

    #[test]
    fn a_full_cache_is_emptied_not_grown() {
        for i in 0..(CAPACITY as u32 + 10) {
            let _ = ip(IpAddr::from(i.to_be_bytes()));
        }
        CACHE.with_borrow(|c| assert!(c.ips.len() <= CAPACITY));
    }
}
