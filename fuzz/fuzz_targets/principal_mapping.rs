//! `ssl.principal.mapping.rules` must never panic, whatever the rules and the subject: the
//! input is the rules, a 0xff byte, then the subject.
//! Run: `cargo +nightly fuzz run principal_mapping` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_security::tls::mapping::PrincipalMapper;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |&b| b == 0xff);
    let rules = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let subject = String::from_utf8_lossy(parts.next().unwrap_or_default());
    if let Ok(mapper) = PrincipalMapper::parse(&rules) {
        let _ = mapper.map(&subject);
    }
});
