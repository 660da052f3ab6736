//! Sparse per-segment indexes, kept in memory and written out whole when a segment is
//! sealed or the log is closed.
//!
//! Kafka memory-maps its index files; `unsafe` is forbidden here, so the entries live in a
//! `Vec` and the file is only their persistent copy. A file carries a CRC-32C trailer, so a
//! torn or zero-filled index (a crash before the page cache reached the disk) is detected
//! and rebuilt from the log instead of trusted.
//!
//! * Offset index: relative offset of a batch's first record (u32) → file position of the
//!   batch (u32). A lookup gives the last entry at or before the target, from where the log
//!   is scanned batch header by batch header.
//! * Time index: running max timestamp of the segment (i64) → relative offset (u32) of the
//!   last record of the batch that reached it. Every record up to that offset has a
//!   timestamp ≤ the entry's, so a search for the first record with timestamp ≥ T can start
//!   right after the last entry whose timestamp is < T.

/// Size of one offset index entry on disk.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
/// Size of one time index entry on disk.
pub(crate) const TIME_ENTRY_LEN: usize = 12;
const CRC_LEN: usize = 4;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    /// Adds an entry; entries that would not keep both columns strictly increasing are
    /// dropped, so the index stays searchable whatever the caller does.
    pub(crate) fn push(&mut self, relative_offset: u32, position: u32) {
        if let Some((o, p)) = self.last()
            && (relative_offset <= o || position <= p)
        {
            return;
        }
        self.entries.push((relative_offset, position));
    }

    /// Drops the entries of batches at or after file position `position`.
    pub(crate) fn truncate_to_position(&mut self, position: u64) {
        let keep = self.entries.partition_point(|e| u64::from(e.1) < position);
        self.entries.truncate(keep);
    }

    /// The last entry whose relative offset is ≤ `relative_offset`.
    pub(crate) fn lookup(&self, relative_offset: u32) -> Option<(u32, u32)> {
        let idx = self.entries.partition_point(|e| e.0 <= relative_offset);
        idx.checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .copied()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_LEN + CRC_LEN);
        for (o, p) in &self.entries {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        seal(out)
    }

    /// Decodes an index file, or `None` when it is torn, corrupt or inconsistent with a
    /// segment of `segment_size` bytes (then the caller rebuilds it).
    pub(crate) fn decode(bytes: &[u8], segment_size: u64) -> Option<Self> {
        let body = unseal(bytes, OFFSET_ENTRY_LEN)?;
        let mut index = Self::default();
        for chunk in body.chunks_exact(OFFSET_ENTRY_LEN) {
            let (o, p) = chunk.split_first_chunk::<4>()?;
            let o = u32::from_be_bytes(*o);
            let p = u32::from_be_bytes(*p.first_chunk::<4>()?);
            if u64::from(p) >= segment_size
                || index.last().is_some_and(|(lo, lp)| o <= lo || p <= lp)
            {
                return None;
            }
            index.entries.push((o, p));
        }
        Some(index)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    /// Adds an entry if it raises the max timestamp (and does not go back in offsets).
    pub(crate) fn push(&mut self, timestamp: i64, relative_offset: u32) {
        if let Some((t, o)) = self.last()
            && (timestamp <= t || relative_offset < o)
        {
            return;
        }
        self.entries.push((timestamp, relative_offset));
    }

    /// Drops the entries that name offsets at or after `relative_offset`; the ones left
    /// are maxima of the records before it.
    pub(crate) fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self.entries.partition_point(|e| e.1 < relative_offset);
        self.entries.truncate(keep);
    }

    /// The last entry whose timestamp is strictly below `timestamp`.
    pub(crate) fn lookup_below(&self, timestamp: i64) -> Option<(i64, u32)> {
        let idx = self.entries.partition_point(|e| e.0 < timestamp);
        idx.checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .copied()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_LEN + CRC_LEN);
        for (t, o) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
        seal(out)
    }

    /// Decodes a time index file, or `None` when it is torn, corrupt or refers to offsets
    /// beyond `max_relative_offset`.
    pub(crate) fn decode(bytes: &[u8], max_relative_offset: u32) -> Option<Self> {
        let body = unseal(bytes, TIME_ENTRY_LEN)?;
        let mut index = Self::default();
        for chunk in body.chunks_exact(TIME_ENTRY_LEN) {
            let (t, o) = chunk.split_first_chunk::<8>()?;
            let t = i64::from_be_bytes(*t);
            let o = u32::from_be_bytes(*o.first_chunk::<4>()?);
            if o > max_relative_offset || index.last().is_some_and(|(lt, lo)| t <= lt || o < lo) {
                return None;
            }
            index.entries.push((t, o));
        }
        Some(index)
    }
}

/// Appends the CRC-32C trailer.
fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_be_bytes());
    body
}

/// Checks the trailer and the entry alignment; returns the entries.
fn unseal(bytes: &[u8], entry_len: usize) -> Option<&[u8]> {
    let (body, crc) = bytes.split_last_chunk::<CRC_LEN>()?;
    if body.len() % entry_len != 0 || crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
        return None;
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offset_lookup() {
        let mut i = OffsetIndex::default();
        assert_eq!(i.lookup(5), None);
        i.push(10, 100);
        i.push(20, 200);
        i.push(20, 300); // not increasing: dropped
        i.push(30, 150); // position going back: dropped
        i.push(40, 400);
        assert_eq!(i.len(), 3);
        assert_eq!(i.lookup(9), None);
        assert_eq!(i.lookup(10), Some((10, 100)));
        assert_eq!(i.lookup(39), Some((20, 200)));
        assert_eq!(i.lookup(u32::MAX), Some((40, 400)));
    }

    #[test]
    fn time_lookup_is_strict() {
        let mut t = TimeIndex::default();
        t.push(100, 0);
        t.push(100, 5); // not raising the max: dropped
        t.push(200, 9);
        t.push(300, 12);
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup_below(100), None);
        assert_eq!(t.lookup_below(101), Some((100, 0)));
        assert_eq!(t.lookup_below(300), Some((200, 9)));
        assert_eq!(t.lookup_below(i64::MAX), Some((300, 12)));
    }

    #[test]
    fn files_round_trip_and_reject_damage() {
        let mut i = OffsetIndex::default();
        for k in 1..50u32 {
            i.push(k * 3, k * 100);
        }
        let bytes = i.encode();
        assert_eq!(OffsetIndex::decode(&bytes, 5_000), Some(i.clone()));
        // Entry beyond the segment.
        assert_eq!(OffsetIndex::decode(&bytes, 4_900), None);
        for pos in 0..bytes.len() {
            let mut b = bytes.clone();
            b[pos] ^= 0x10;
            assert_eq!(OffsetIndex::decode(&b, 5_000), None, "flip at {pos}");
        }
        assert_eq!(OffsetIndex::decode(&bytes[..bytes.len() - 1], 5_000), None);
        assert_eq!(OffsetIndex::decode(&[0; 20], 5_000), None);
        assert_eq!(OffsetIndex::decode(&[], 5_000), None);
        assert_eq!(
            OffsetIndex::decode(&OffsetIndex::default().encode(), 0),
            Some(OffsetIndex::default())
        );

        let mut t = TimeIndex::default();
        for k in 1..50u32 {
            t.push(i64::from(k) * 1000, k * 2);
        }
        let bytes = t.encode();
        assert_eq!(TimeIndex::decode(&bytes, 98), Some(t.clone()));
        assert_eq!(TimeIndex::decode(&bytes, 97), None);
        let mut b = bytes.clone();
        b[3] ^= 1;
        assert_eq!(TimeIndex::decode(&b, 98), None);
    }

    proptest! {
        #[test]
        fn prop_lookup_matches_linear_scan(
            steps in proptest::collection::vec((1u32..100, 1u32..100), 0..50),
            target in 0u32..6000,
        ) {
            let mut i = OffsetIndex::default();
            let (mut o, mut p) = (0u32, 0u32);
            for (dof, dp) in steps {
                o += dof;
                p += dp;
                i.push(o, p);
            }
            let want = i.entries.iter().rev().find(|e| e.0 <= target).copied();
            prop_assert_eq!(i.lookup(target), want);
        }

        #[test]
        fn prop_decode_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = OffsetIndex::decode(&data, 1000);
            let _ = TimeIndex::decode(&data, 1000);
        }
    }
}
