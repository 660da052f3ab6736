//! Kafka's `SkimpyOffsetMap`: the latest offset of every key of the dirty range, in a fixed
//! budget of memory (`log.cleaner.dedupe.buffer.size` shared by the cleaner threads).
//!
//! A slot holds a 128-bit hash of the key (never the key) and an offset, 24 bytes; slots
//! are open-addressed with double hashing. Two keys whose 128-bit hashes collide would be
//! taken for one, as in Kafka (which uses MD5); the hashes here are SipHash with random
//! keys chosen per map, so nobody can make keys that collide on purpose.
//!
//! The table starts small and doubles whenever it is 90 % full (Kafka's
//! `log.cleaner.io.buffer.load.factor`), so a log with few keys is mapped in a table that
//! stays in the CPU's caches; once doubling would pass the budget, the map takes no new key,
//! and the cleaner cleans only up to where the map reached ([`OffsetMap::latest_offset`]),
//! leaving the rest for its next run.

use std::hash::{BuildHasher, RandomState};

/// Bytes one slot takes.
pub const SLOT_BYTES: usize = 24;
/// How full the table gets before it doubles (or, at its budget, takes no new key).
const LOAD_FACTOR: f64 = 0.9;
/// Words per slot: the two halves of the hash and the offset plus one (0: empty slot).
const WORDS: usize = 3;
/// The smallest table: a few dozen keys.
const MIN_SLOTS: usize = 64;
/// The table a map starts with when its budget allows: 384 KiB.
const START_SLOTS: usize = 1 << 14;

/// Key hash → latest offset, for one cleaning run.
pub struct OffsetMap {
    /// `WORDS` words per slot.
    words: Vec<u64>,
    /// Number of slots, a power of two.
    slots: usize,
    /// Most slots the budget pays for, a power of two.
    max_slots: usize,
    /// Most keys the table takes before it grows (or, at `max_slots`, takes no more).
    max_keys: usize,
    keys: usize,
    hashers: [RandomState; 2],
    /// The last offset the map covers: records after it were not mapped.
    latest_offset: i64,
}

impl std::fmt::Debug for OffsetMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetMap")
            .field("slots", &self.slots)
            .field("keys", &self.keys)
            .field("latest_offset", &self.latest_offset)
            .finish()
    }
}

impl OffsetMap {
    /// An empty map that may grow to `max_bytes` (at least [`MIN_SLOTS`] slots).
    pub fn new(max_bytes: usize) -> Self {
        let max_slots = prev_power_of_two((max_bytes / SLOT_BYTES).max(MIN_SLOTS));
        let slots = START_SLOTS.min(max_slots);
        Self {
            words: vec![0; slots * WORDS],
            slots,
            max_slots,
            max_keys: keys_for(slots),
            keys: 0,
            hashers: [RandomState::new(), RandomState::new()],
            latest_offset: -1,
        }
    }

    /// Records `offset` as the latest of `key` (offsets only grow within a run). `false`
    /// when the key is new and the map is full: nothing was recorded.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = self.hash(key);
        let mut slot = self.find(hash);
        let new_key = self.offset_at(slot) == 0;
        if new_key && self.keys >= self.max_keys {
            if self.slots >= self.max_slots {
                return false;
            }
            self.grow();
            slot = self.find(hash);
        }
        self.store(slot, hash, offset_word(offset));
        if new_key {
            self.keys += 1;
        }
        true
    }

    /// Doubles the table and moves every entry into it.
    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.words, vec![0; self.slots * 2 * WORDS]);
        self.slots *= 2;
        self.max_keys = keys_for(self.slots);
        for entry in old.chunks_exact(WORDS) {
            if let [h0, h1, offset] = *entry
                && offset != 0
            {
                let slot = self.find([h0, h1]);
                self.store(slot, [h0, h1], offset);
            }
        }
    }

    fn offset_at(&self, slot: usize) -> u64 {
        self.words.get(slot * WORDS + 2).copied().unwrap_or(0)
    }

    fn store(&mut self, slot: usize, hash: [u64; 2], offset: u64) {
        if let Some(words) = self
            .words
            .get_mut(slot * WORDS..slot * WORDS + WORDS)
            .and_then(|s| s.first_chunk_mut::<WORDS>())
        {
            *words = [hash[0], hash[1], offset];
        }
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let offset = self.offset_at(self.find(self.hash(key)));
        (offset != 0).then(|| offset as i64 - 1)
    }

    /// Keys recorded.
    pub fn len(&self) -> usize {
        self.keys
    }

    /// Whether no key was recorded.
    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }

    /// The last offset the map covers (-1 before any): a record after it was not looked
    /// at, so the cleaner keeps it.
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }

    /// Moves the covered range forward to `offset`.
    pub fn cover_up_to(&mut self, offset: i64) {
        self.latest_offset = self.latest_offset.max(offset);
    }

    /// Share of the key budget used, as Kafka's buffer utilization metric.
    pub fn utilization(&self) -> f64 {
        self.keys as f64 / keys_for(self.max_slots) as f64
    }

    fn hash(&self, key: &[u8]) -> [u64; 2] {
        let [a, b] = &self.hashers;
        [a.hash_one(key), b.hash_one(key)]
    }

    /// The slot holding `hash`, or the empty slot where it would go. Double hashing with
    /// an odd step visits every slot of the power-of-two table, and the load factor keeps
    /// an empty one, so the walk ends.
    fn find(&self, hash: [u64; 2]) -> usize {
        let mask = self.slots - 1;
        let step = (hash[1] as usize) | 1;
        let mut slot = (hash[0] as usize) & mask;
        for _ in 0..self.slots {
            let at = slot * WORDS;
            match self.words.get(at..at + WORDS) {
                Some([h0, h1, offset]) if *offset == 0 || (*h0 == hash[0] && *h1 == hash[1]) => {
                    return slot;
                }
                Some(_) => slot = slot.wrapping_add(step) & mask,
                None => break,
            }
        }
        crate::invariant::violated(
            "an offset map below its load factor has a free slot",
            format_args!("{} slots, {} keys", self.slots, self.keys),
            file!(),
            line!(),
        )
    }
}

/// Keys a table of `slots` takes below the load factor.
fn keys_for(slots: usize) -> usize {
    ((slots as f64 * LOAD_FACTOR) as usize).max(1)
}

fn offset_word(offset: i64) -> u64 {
    (offset as u64).wrapping_add(1)
}

fn prev_power_of_two(n: usize) -> usize {
    if n.is_power_of_two() {
        n
    } else {
        n.checked_next_power_of_two()
            .map_or(1 << (usize::BITS - 1), |p| p / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offset_per_key_wins() {
        let mut map = OffsetMap::new(1 << 20);
        for offset in 0..1000 {
            let key = format!("k{}", offset % 37);
            assert!(map.put(key.as_bytes(), offset));
        }
        assert_eq!(map.len(), 37);
        for k in 0..37 {
            let last = (0..1000).filter(|o| o % 37 == k).max().unwrap();
            assert_eq!(map.get(format!("k{k}").as_bytes()), Some(last));
        }
        assert_eq!(map.get(b"absent"), None);
        assert_eq!(map.get(b""), None);
        assert!(map.put(b"", 5));
        assert_eq!(map.get(b""), Some(5));
    }

    #[test]
    fn a_full_map_refuses_new_keys_but_updates_known_ones() {
        // 64 slots of 24 bytes: 57 keys at a load factor of 0.9.
        let mut map = OffsetMap::new(64 * SLOT_BYTES);
        assert_eq!(map.slots, 64);
        let mut taken = 0;
        for i in 0..100 {
            if map.put(format!("key-{i}").as_bytes(), i) {
                taken += 1;
            }
        }
        assert_eq!(taken, 57);
        assert_eq!(map.len(), 57);
        assert!(map.put(b"key-0", 500), "a known key is updated when full");
        assert_eq!(map.get(b"key-0"), Some(500));
        assert_eq!(map.get(b"key-99"), None);
    }

    #[test]
    fn the_table_doubles_as_keys_come_up_to_the_budget() {
        let budget = 4 * START_SLOTS * SLOT_BYTES;
        let mut map = OffsetMap::new(budget);
        assert_eq!(map.slots, START_SLOTS);
        let keys = keys_for(4 * START_SLOTS);
        for i in 0..keys {
            assert!(map.put(format!("key-{i}").as_bytes(), i as i64), "key {i}");
        }
        assert_eq!(map.slots, 4 * START_SLOTS, "two doublings, then the budget");
        assert!(!map.put(b"one too many", 0));
        assert_eq!(map.len(), keys);
        for i in (0..keys).step_by(97) {
            assert_eq!(map.get(format!("key-{i}").as_bytes()), Some(i as i64));
        }
        assert_eq!(OffsetMap::new(0).slots, MIN_SLOTS);
        assert_eq!(OffsetMap::new(1000 * SLOT_BYTES).slots, 512);
    }

    #[test]
    fn covered_range_only_moves_forward() {
        let mut map = OffsetMap::new(1 << 16);
        assert_eq!(map.latest_offset(), -1);
        map.cover_up_to(10);
        map.cover_up_to(4);
        assert_eq!(map.latest_offset(), 10);
    }
}
