//! A bounded in-memory cache of remote bytes (log chunks, indexes, manifests), least recently
//! used first out, sized in bytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;

/// Keyed by object name and chunk number (`u64::MAX` for whole objects).
pub(crate) type CacheKey = (String, u64);

#[derive(Debug)]
pub(crate) struct ByteCache {
    capacity: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<CacheKey, (Bytes, u64)>,
    /// Use tick to key, oldest first.
    order: BTreeMap<u64, CacheKey>,
    bytes: u64,
    tick: u64,
}

impl ByteCache {
    pub fn new(capacity: u64) -> ByteCache {
        ByteCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn get(&self, key: &CacheKey) -> Option<Bytes> {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        let (value, old) = {
            let (value, used) = g.entries.get_mut(key)?;
            let old = std::mem::replace(used, tick);
            (value.clone(), old)
        };
        g.order.remove(&old);
        g.order.insert(tick, key.clone());
        Some(value)
    }

    pub fn contains(&self, key: &CacheKey) -> bool {
        self.lock().entries.contains_key(key)
    }

    /// Inserts `value`, evicting the least recently used entries to stay within capacity; a value
    /// larger than the whole cache is not kept.
    pub fn insert(&self, key: CacheKey, value: Bytes) {
        let len = value.len() as u64;
        if len > self.capacity {
            return;
        }
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        if let Some((old, used)) = g.entries.remove(&key) {
            g.bytes -= old.len() as u64;
            g.order.remove(&used);
        }
        while g.bytes + len > self.capacity {
            let Some((_, victim)) = g.order.pop_first() else {
                break;
            };
            if let Some((old, _)) = g.entries.remove(&victim) {
                g.bytes -= old.len() as u64;
            }
        }
        g.bytes += len;
        g.order.insert(tick, key.clone());
        g.entries.insert(key, (value, tick));
    }

    /// Drops every entry of objects whose name starts with `prefix`.
    pub fn remove_prefix(&self, prefix: &str) {
        let mut g = self.lock();
        let victims: Vec<CacheKey> = g
            .entries
            .keys()
            .filter(|(name, _)| name.starts_with(prefix))
            .cloned()
            .collect();
        for key in victims {
            if let Some((old, used)) = g.entries.remove(&key) {
                g.bytes -= old.len() as u64;
                g.order.remove(&used);
            }
        }
    }

    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, n: u64) -> CacheKey {
        (name.to_string(), n)
    }

    #[test]
    fn evicts_least_recently_used() {
        let c = ByteCache::new(30);
        c.insert(key("a", 0), Bytes::from(vec![0u8; 10]));
        c.insert(key("a", 1), Bytes::from(vec![1u8; 10]));
        c.insert(key("b", 0), Bytes::from(vec![2u8; 10]));
        assert_eq!(c.bytes(), 30);
        // Touch a/0 so a/1 is the oldest.
        assert_eq!(c.get(&key("a", 0)).unwrap()[0], 0);
        c.insert(key("c", 0), Bytes::from(vec![3u8; 10]));
        assert!(c.contains(&key("a", 0)));
        assert!(!c.contains(&key("a", 1)));
        assert!(c.contains(&key("b", 0)));
        assert_eq!(c.bytes(), 30);
        // Too big for the cache: not kept, nothing evicted.
        c.insert(key("d", 0), Bytes::from(vec![4u8; 31]));
        assert!(!c.contains(&key("d", 0)));
        assert_eq!(c.bytes(), 30);
        // Replacing an entry accounts its old size.
        c.insert(key("b", 0), Bytes::from(vec![5u8; 5]));
        assert_eq!(c.bytes(), 25);
        c.remove_prefix("a");
        assert!(!c.contains(&key("a", 0)));
        assert_eq!(c.bytes(), 15);
    }
}
