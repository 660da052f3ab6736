//! CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the checksum of message format
//! v0/v1.
//!
//! v2 batches use CRC-32C (the `crc32c` crate); the legacy format predates that and uses
//! the plain zlib/Ethernet CRC. Only a few kilobytes of legacy traffic per request ever pass
//! through here, so a byte-at-a-time table is fast enough and saves a dependency.

/// Reflected IEEE polynomial.
const POLY: u32 = 0xEDB8_8320;

/// Lookup table for one input byte, built at compile time.
const TABLE: [u32; 256] = build_table();

// `n` is bounded by the loop to 0..256, the table's size; `get_mut` is not const.
#[allow(clippy::indexing_slicing)]
const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
}

/// CRC-32 (IEEE) of `data`, as `java.util.zip.CRC32` computes it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        let idx = usize::from((crc as u8) ^ byte);
        // `idx` is a u8 widened, always < 256.
        let entry = TABLE.get(idx).copied().unwrap_or(0);
        crc = entry ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::crc32;

    #[test]
    fn known_vectors() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }
}
