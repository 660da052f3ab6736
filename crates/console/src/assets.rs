//! Static files compiled into the binary: the console's own CSS and JavaScript, and the
//! vendored htmx and uPlot (their checksums are in `static/vendor/SHA256SUMS`, checked by
//! a test). Each is served at a URL holding a hash of its content, so browsers may cache
//! it forever; gzipped once, on first use, for clients that accept it.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// One file served under `/ui/static/<hash>/<name>`.
pub struct Asset {
    /// Its file name in the URL.
    pub name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The console's stylesheet, with uPlot's appended (one request instead of two).
const CONSOLE_CSS: &str = concat!(
    include_str!("../static/console.css"),
    "\n",
    include_str!("../static/vendor/uPlot.min.css")
);

/// Every file served.
pub static ASSETS: &[Asset] = &[
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        bytes: CONSOLE_CSS.as_bytes(),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../static/console.js"),
    },
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../static/vendor/htmx.min.js"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../static/vendor/uPlot.iife.min.js"),
    },
];

/// Each asset's content hash and gzipped bytes, computed once.
struct Prepared {
    hash: String,
    gzipped: Vec<u8>,
}

static PREPARED: LazyLock<Vec<Prepared>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| Prepared {
            hash: format!("{:08x}", crc32c::crc32c(a.bytes)),
            gzipped: gzip(a.bytes),
        })
        .collect()
});

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail; an empty result means "serve it uncompressed".
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .unwrap_or_default()
}

/// The URL of the asset `name` (a name not in [`ASSETS`] is a bug in a page).
pub fn url(name: &str) -> String {
    let hash = ASSETS
        .iter()
        .zip(PREPARED.iter())
        .find(|(a, _)| a.name == name)
        .map_or("missing", |(_, p)| p.hash.as_str());
    format!("/ui/static/{hash}/{name}")
}

/// `GET /ui/static/{hash}/{file}`.
pub async fn serve(Path((hash, file)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let Some((asset, prepared)) = ASSETS
        .iter()
        .zip(PREPARED.iter())
        .find(|(a, p)| a.name == file && p.hash == hash)
    else {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    let gzip_ok = headers
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let cache = "public, max-age=31536000, immutable";
    if gzip_ok && !prepared.gzipped.is_empty() {
        (
            [
                (CONTENT_TYPE, asset.content_type),
                (CACHE_CONTROL, cache),
                (CONTENT_ENCODING, "gzip"),
                (VARY, "Accept-Encoding"),
            ],
            prepared.gzipped.clone(),
        )
            .into_response()
    } else {
        (
            [
                (CONTENT_TYPE, asset.content_type),
                (CACHE_CONTROL, cache),
                (VARY, "Accept-Encoding"),
            ],
            asset.bytes,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// SHA-256 (FIPS 180-4), enough to check the vendored files without a dependency.
    fn sha256(data: &[u8]) -> String {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
            0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
            0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
            0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
            0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
            0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
            0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
            0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2,
        ];
        let mut h: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
        for chunk in msg.chunks(64) {
            let mut w = [0u32; 64];
            for i in 0..16 {
                w[i] = u32::from_be_bytes(chunk[i * 4..i * 4 + 4].try_into().unwrap());
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let mut v = h;
            for i in 0..64 {
                let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
                let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
                let t1 = v[7]
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[i])
                    .wrapping_add(w[i]);
                let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
                let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
                let t2 = s0.wrapping_add(maj);
                v = [
                    t1.wrapping_add(t2),
                    v[0],
                    v[1],
                    v[2],
                    v[3].wrapping_add(t1),
                    v[4],
                    v[5],
                    v[6],
                ];
            }
            for (a, b) in h.iter_mut().zip(v) {
                *a = a.wrapping_add(b);
            }
        }
        h.iter().map(|x| format!("{x:08x}")).collect()
    }

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(
            sha256(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// The vendored files compiled into the binary are exactly the ones whose checksums
    /// were recorded when they were taken from their releases.
    #[test]
    fn vendored_files_match_their_sha256sums() {
        let sums = include_str!("../static/vendor/SHA256SUMS");
        let compiled: [(&str, &[u8]); 3] = [
            (
                "htmx.min.js",
                include_bytes!("../static/vendor/htmx.min.js"),
            ),
            (
                "uPlot.iife.min.js",
                include_bytes!("../static/vendor/uPlot.iife.min.js"),
            ),
            (
                "uPlot.min.css",
                include_bytes!("../static/vendor/uPlot.min.css"),
            ),
        ];
        let listed: Vec<(&str, &str)> = sums
            .lines()
            .filter_map(|l| l.split_once("  "))
            .map(|(sum, name)| (name.trim(), sum.trim()))
            .collect();
        assert_eq!(listed.len(), compiled.len(), "{sums}");
        for (name, bytes) in compiled {
            let recorded = listed.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
            assert_eq!(recorded, Some(sha256(bytes).as_str()), "{name}");
        }
        assert!(CONSOLE_CSS.ends_with(include_str!("../static/vendor/uPlot.min.css")));
    }

    #[test]
    fn urls_carry_the_content_hash() {
        let htmx = url("htmx.min.js");
        let hash = format!(
            "{:08x}",
            crc32c::crc32c(include_bytes!("../static/vendor/htmx.min.js"))
        );
        assert_eq!(htmx, format!("/ui/static/{hash}/htmx.min.js"));
        assert_eq!(url("nope.js"), "/ui/static/missing/nope.js");
    }
}
