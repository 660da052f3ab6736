//! Reading a client certificate's subject and validity (our own DER reader) and printing
//! the subject as Java does must never panic, whatever the bytes.
//! Run: `cargo +nightly fuzz run certificate_subject` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_security::tls::dn::{format_name, summarize_certificate};

fuzz_target!(|data: &[u8]| {
    let _ = summarize_certificate(data);
    let _ = format_name(data);
});
