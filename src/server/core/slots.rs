//! A slab (a key is an index that stays valid until its entry is removed; vacant
//! entries are reused, most recent first) that can give its memory back without
//! raising glibc's mmap threshold: a reactor's connections, a topic's subscribers, the
//! io_uring driver's table of writes in flight.
//!
//! Why not the `slab` crate (the topic registry's table of topics, which stays small,
//! still is one): its only way to give back its memory is to drop its vector. At 19,000 connections that vector is a
//! 1.8 MB block glibc maps on its own, and freeing such a block raises glibc's mmap
//! threshold to its size and its trim threshold to twice that, for the rest of the
//! process; from then on each thread arena keeps up to that much freed memory
//! resident (measured: +3.6 MiB after the third crowd of a soak; docs/reliability.md).
//! [`Slots::release`] shrinks the vector with `realloc` instead (see
//! [`crate::server::allocator::release_vec`]).

/// One entry: a value, or the next vacant key.
#[derive(Debug)]
enum Entry<T> {
    Occupied(T),
    Vacant(usize),
}

/// The table (see the module docs).
#[derive(Debug)]
pub(crate) struct Slots<T> {
    entries: Vec<Entry<T>>,
    /// The first vacant key (`entries.len()` when none is vacant).
    next: usize,
    len: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            next: 0,
            len: 0,
        }
    }
}

/// A vacant entry, from [`Slots::vacant_entry`].
pub(crate) struct VacantSlot<'a, T> {
    slots: &'a mut Slots<T>,
    key: usize,
}

impl<'a, T> VacantSlot<'a, T> {
    /// The key the value will have.
    pub fn key(&self) -> usize {
        self.key
    }

    /// Puts `value` at the key; returns it, in place.
    pub fn insert(self, value: T) -> &'a mut T {
        let slots = self.slots;
        let key = self.key;
        if key == slots.entries.len() {
            slots.entries.push(Entry::Occupied(value));
            slots.next = slots.entries.len();
        } else {
            let Entry::Vacant(next) =
                std::mem::replace(&mut slots.entries[key], Entry::Occupied(value))
            else {
                unreachable!("the first vacant key is vacant");
            };
            slots.next = next;
        }
        slots.len += 1;
        match &mut slots.entries[key] {
            Entry::Occupied(value) => value,
            Entry::Vacant(_) => unreachable!("just filled"),
        }
    }
}

impl<T> Slots<T> {
    /// Values held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries it has room for without growing.
    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// The value at `key`, if any.
    pub fn get(&self, key: usize) -> Option<&T> {
        match self.entries.get(key) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    /// The value at `key`, if any.
    pub fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        match self.entries.get_mut(key) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    /// Every value with its key, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(key, entry)| match entry {
                Entry::Occupied(value) => Some((key, value)),
                Entry::Vacant(_) => None,
            })
    }

    /// The key the next insert gets.
    pub fn vacant_key(&self) -> usize {
        self.next
    }

    /// The entry the next insert fills.
    pub fn vacant_entry(&mut self) -> VacantSlot<'_, T> {
        let key = self.next;
        VacantSlot { slots: self, key }
    }

    /// Puts `value` in the first vacant entry; returns its key.
    pub fn insert(&mut self, value: T) -> usize {
        let entry = self.vacant_entry();
        let key = entry.key();
        entry.insert(value);
        key
    }

    /// Takes the value at `key` out, if there is one.
    pub fn try_remove(&mut self, key: usize) -> Option<T> {
        if !matches!(self.entries.get(key), Some(Entry::Occupied(_))) {
            return None;
        }
        let Entry::Occupied(value) =
            std::mem::replace(&mut self.entries[key], Entry::Vacant(self.next))
        else {
            unreachable!("checked above");
        };
        self.next = key;
        self.len -= 1;
        Some(value)
    }

    /// Takes the value at `key` out.
    ///
    /// # Panics
    ///
    /// If `key` holds no value (a bug of the caller's).
    pub fn remove(&mut self, key: usize) -> T {
        self.try_remove(key)
            .unwrap_or_else(|| panic!("no value at key {key}"))
    }

    /// Gives the memory back once the table is empty (does nothing otherwise): a large
    /// vector is shrunk in place by `realloc`, a small one freed.
    pub fn release(&mut self) {
        if !self.is_empty() {
            return;
        }
        crate::server::allocator::release_vec(&mut self.entries);
        self.next = 0;
    }

    /// Shrinks the room to `capacity` entries (by `realloc`, never freeing: see the
    /// module docs) once the table is empty; does nothing otherwise.
    pub fn shrink_to(&mut self, capacity: usize) {
        if !self.is_empty() {
            return;
        }
        self.entries.clear();
        self.entries.shrink_to(capacity.max(1));
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn keys_are_reused_most_recent_first_and_stay_valid() {
        let mut slots = Slots::default();
        let keys: Vec<usize> = (0..5)
            .map(|i| {
                let entry = slots.vacant_entry();
                let key = entry.key();
                entry.insert(i * 10);
                key
            })
            .collect();
        assert_eq!(keys, [0, 1, 2, 3, 4]);
        assert_eq!(slots.remove(1), 10);
        assert_eq!(slots.remove(3), 30);
        assert_eq!(
            (slots.len(), slots.get(1), slots.get(4)),
            (3, None, Some(&40))
        );
        assert_eq!(slots.vacant_key(), 3);
        slots.vacant_entry().insert(31);
        assert_eq!(slots.vacant_key(), 1);
        slots.vacant_entry().insert(11);
        assert_eq!(slots.vacant_key(), 5);
        *slots.get_mut(4).unwrap() += 1;
        let all: Vec<(usize, i32)> = slots.iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(all, [(0, 0), (1, 11), (2, 20), (3, 31), (4, 41)]);
    }

    #[test]
    fn release_empties_and_gives_back_the_room() {
        let mut slots = Slots::default();
        for i in 0..100_000u64 {
            slots.vacant_entry().insert(i);
        }
        slots.release();
        assert_eq!(
            slots.len(),
            100_000,
            "release does nothing while values are held"
        );
        for key in 0..100_000 {
            slots.remove(key);
        }
        assert!(slots.is_empty());
        slots.release();
        assert!(slots.capacity() <= 1, "{}", slots.capacity());
        assert_eq!((slots.vacant_key(), slots.get(0)), (0, None));
        assert_eq!(slots.insert(7), 0);
        assert_eq!(slots.iter().collect::<Vec<_>>(), [(0, &7)]);
        assert_eq!((slots.try_remove(0), slots.try_remove(0)), (Some(7), None));
        assert_eq!(slots.try_remove(99), None);
        for i in 0..1_000 {
            slots.insert(i);
        }
        slots.shrink_to(4);
        assert_eq!(
            slots.len(),
            1_000,
            "shrink_to does nothing while values are held"
        );
        for key in 0..1_000 {
            slots.remove(key);
        }
        slots.shrink_to(4);
        assert!(slots.capacity() < 1_000, "{}", slots.capacity());
        assert_eq!(slots.insert(5), 0);
    }

    #[test]
    #[should_panic(expected = "no value at key 0")]
    fn removing_a_vacant_key_is_a_bug() {
        let mut slots: Slots<u8> = Slots::default();
        slots.vacant_entry().insert(1);
        slots.remove(0);
        slots.remove(0);
    }
}
