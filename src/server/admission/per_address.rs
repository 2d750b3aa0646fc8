//! Per-address state shared by every reactor: open connections and a new-connection
//! token bucket per client address, in a bounded table.
//!
//! The table is split into [`SHARDS`] shards, each behind its own mutex, chosen by a
//! keyed hash of the address (SipHash with a random key: a client cannot aim at one
//! shard). A shard is locked only when a connection is admitted (accept, or after its
//! PROXY header or forwarded request head) and when an admitted connection ends; never
//! while an established connection is served.
//!
//! Bounded: each shard holds at most its share of
//! [`AdmissionConfig::address_table_capacity`](crate::admission::AdmissionConfig::address_table_capacity)
//! addresses. A new address in a full shard evicts the address with no open connection
//! that was seen longest ago (its rate history is forgotten: an attacker rotating more
//! addresses than the table holds gets a fresh bucket per address, which the table
//! cannot prevent). When every address in the shard holds an open connection, the new
//! address is refused with 503 (`address_table_full`) until one closes.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::token_bucket::{Rate, TokenBucket};

/// Shards of the table: enough that reactors admitting at once rarely meet.
pub(crate) const SHARDS: usize = 64;

/// A client address as the limits count it: an IPv4 address, or an IPv6 address cut
/// to its prefix (IPv4-mapped IPv6 addresses count as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct AddrKey(u128);

impl AddrKey {
    /// The key of `ip`, IPv6 addresses cut to `v6_prefix` bits (0 to 128).
    pub fn of(ip: IpAddr, v6_prefix: u8) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u128::from(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(u128::from(v4.to_ipv6_mapped())),
                None => {
                    let bits = u32::from(v6_prefix.min(128));
                    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                    Self(u128::from(v6) & mask)
                }
            },
        }
    }
}

/// Why the table refused an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max_connections_per_address` connections are open from it.
    Connections,
    /// Its new-connection bucket is empty; it refills in `Duration`.
    Rate(Duration),
    /// Its shard is full of addresses with open connections.
    TableFull,
}

#[derive(Debug)]
struct Entry {
    open: u32,
    bucket: Option<TokenBucket>,
    /// When the address was last admitted or released, in ms since the table's epoch.
    seen_ms: u64,
}

/// The table (see the module docs).
#[derive(Debug)]
pub(crate) struct AddressTable {
    shards: Box<[Mutex<HashMap<AddrKey, Entry>>]>,
    hasher: RandomState,
    shard_capacity: usize,
    max_open: Option<u32>,
    rate: Option<Rate>,
    epoch: Instant,
}

impl AddressTable {
    /// A table for `capacity` addresses (at least one per shard) with the given limits.
    pub fn new(capacity: usize, max_open: Option<u32>, rate: Option<Rate>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
            max_open,
            rate,
            epoch: Instant::now(),
        }
    }

    fn shard(&self, key: AddrKey) -> MutexGuard<'_, HashMap<AddrKey, Entry>> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Admits one more connection from `key` at `now`: counts it (until the ticket is
    /// dropped) and spends a token, or refuses it and counts nothing.
    pub fn admit(self: &Arc<Self>, key: AddrKey, now: Instant) -> Result<Ticket, Refused> {
        let now_ms = self.ms(now);
        let mut shard = self.shard(key);
        if !shard.contains_key(&key) && shard.len() >= self.shard_capacity {
            let victim = shard
                .iter()
                .filter(|(_, entry)| entry.open == 0)
                .min_by_key(|(_, entry)| entry.seen_ms)
                .map(|(&k, _)| k);
            shard.remove(&victim.ok_or(Refused::TableFull)?);
        }
        let entry = shard.entry(key).or_insert_with(|| Entry {
            open: 0,
            bucket: self.rate.map(|rate| TokenBucket::full(&rate, now_ms)),
            seen_ms: now_ms,
        });
        entry.seen_ms = now_ms;
        let refused = if self.max_open.is_some_and(|max| entry.open >= max) {
            Some(Refused::Connections)
        } else if let (Some(rate), Some(bucket)) = (&self.rate, &mut entry.bucket) {
            bucket.take(rate, now_ms, 1.0).err().map(Refused::Rate)
        } else {
            None
        };
        if let Some(refused) = refused {
            if entry.open == 0 && entry.bucket.is_none() {
                shard.remove(&key);
            }
            return Err(refused);
        }
        entry.open += 1;
        Ok(Ticket {
            table: self.clone(),
            key,
        })
    }

    fn release(&self, key: AddrKey) {
        let now_ms = self.ms(Instant::now());
        let mut shard = self.shard(key);
        let Some(entry) = shard.get_mut(&key) else {
            return;
        };
        entry.open = entry.open.saturating_sub(1);
        entry.seen_ms = now_ms;
        // An address with nothing open and nothing to remember leaves at once.
        let forget = entry.open == 0
            && match (&self.rate, &entry.bucket) {
                (Some(rate), Some(bucket)) => bucket.is_full(rate, now_ms),
                _ => true,
            };
        if forget {
            shard.remove(&key);
        }
    }

    /// Addresses held (all shards), for tests.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap().len())
            .sum()
    }
}

/// One admitted connection, counted against its address until dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    table: Arc<AddressTable>,
    key: AddrKey,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.table.release(self.key);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn key(text: &str) -> AddrKey {
        AddrKey::of(text.parse().unwrap(), 64)
    }

    #[test]
    fn ipv6_counts_by_prefix_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        let full = AddrKey::of(IpAddr::V6(Ipv6Addr::LOCALHOST), 128);
        assert_eq!(full, AddrKey(1));
        assert_eq!(AddrKey::of("2001:db8::1".parse().unwrap(), 0), AddrKey(0));
    }

    #[test]
    fn connections_per_address_are_counted_until_the_ticket_drops() {
        let table = Arc::new(AddressTable::new(1024, Some(2), None));
        let now = Instant::now();
        let a = table.admit(key("10.0.0.1"), now).unwrap();
        let b = table.admit(key("10.0.0.1"), now).unwrap();
        assert_eq!(
            table.admit(key("10.0.0.1"), now).unwrap_err(),
            Refused::Connections
        );
        let other = table.admit(key("10.0.0.2"), now).unwrap();
        drop(a);
        let c = table.admit(key("10.0.0.1"), now).unwrap();
        drop((b, c, other));
        assert_eq!(
            table.len(),
            0,
            "nothing is kept for addresses with nothing open"
        );
    }

    #[test]
    fn the_rate_refuses_with_the_wait() {
        let table = Arc::new(AddressTable::new(1024, None, Some(Rate::per_second(2.0))));
        let t0 = table.epoch;
        let _a = table.admit(key("10.0.0.1"), t0).unwrap();
        let _b = table.admit(key("10.0.0.1"), t0).unwrap();
        let Err(Refused::Rate(wait)) = table.admit(key("10.0.0.1"), t0) else {
            panic!("over the rate");
        };
        assert_eq!(wait, Duration::from_millis(500));
        assert!(table.admit(key("10.0.0.1"), t0 + wait).is_ok());
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_oldest_idle_address() {
        let table = Arc::new(AddressTable::new(SHARDS, None, Some(Rate::per_second(1.0))));
        let t0 = table.epoch;
        // Spent buckets are remembered, up to one address per shard.
        for i in 0..10_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0A00_0000 + i);
            drop(table.admit(
                AddrKey::of(ip.into(), 64),
                t0 + Duration::from_millis(u64::from(i)),
            ));
        }
        assert!(table.len() <= SHARDS);
        // A shard full of open connections refuses a new address.
        let small = Arc::new(AddressTable::new(1, None, None));
        let mut held = Vec::new();
        let mut refused = 0;
        for i in 0..(SHARDS as u32 * 4) {
            let ip = std::net::Ipv4Addr::from(0x0A00_0000 + i);
            match small.admit(AddrKey::of(ip.into(), 64), t0) {
                Ok(ticket) => held.push(ticket),
                Err(e) => {
                    assert_eq!(e, Refused::TableFull);
                    refused += 1;
                }
            }
        }
        assert!(refused > 0 && small.len() <= SHARDS);
        drop(held);
        assert_eq!(small.len(), 0);
    }
}
