//! A certificate's subject as Kafka names an mTLS client: Java's
//! `X500Principal.getName()` (RFC 2253) — relative distinguished names in reverse order of
//! the encoding, joined by `,` without spaces, `+` inside a multi-valued one, the keywords
//! CN C L ST O OU STREET DC UID, and any other attribute as `<oid>=#<hex of its DER>`
//! (so `emailAddress` comes out in hex, as Kafka's principals show it).

use super::der::{DerError, Reader, oid_to_string, tag};

/// RFC 2253's keywords, by object identifier.
const KEYWORDS: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// DER string types Java renders as text (the others as hex).
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const T61_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const GENERAL_STRING: u8 = 0x1b;
const BMP_STRING: u8 = 0x1e;

/// What a certificate tells about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// The subject, RFC 2253 as Java prints it.
    pub subject: String,
    /// The end of validity, in seconds since the Unix epoch.
    pub not_after: i64,
}

/// Reads the subject and expiry of a DER certificate.
pub fn summarize_certificate(der: &[u8]) -> Result<CertificateSummary, DerError> {
    let certificate = Reader::new(der).expect(tag::SEQUENCE)?;
    let tbs = Reader::new(certificate.contents).expect(tag::SEQUENCE)?;
    let mut fields = Reader::new(tbs.contents);
    if fields.peek_tag() == Some(tag::CONTEXT_0) {
        fields.element()?; // version
    }
    fields.element()?; // serial number
    fields.expect(tag::SEQUENCE)?; // signature algorithm
    fields.expect(tag::SEQUENCE)?; // issuer
    let validity = fields.expect(tag::SEQUENCE)?;
    let mut times = Reader::new(validity.contents);
    times.element()?; // not before
    let not_after = parse_time(times.element()?)?;
    let subject = fields.expect(tag::SEQUENCE)?;
    Ok(CertificateSummary {
        subject: format_name(subject.contents)?,
        not_after,
    })
}

/// Formats the contents of a DER `Name` (a SEQUENCE OF RDN) as RFC 2253.
pub fn format_name(name: &[u8]) -> Result<String, DerError> {
    let mut rdns = Vec::new();
    let mut reader = Reader::new(name);
    while !reader.is_empty() {
        let set = reader.expect(tag::SET)?;
        let mut atvs = Reader::new(set.contents);
        let mut parts = Vec::new();
        while !atvs.is_empty() {
            let atv = atvs.expect(tag::SEQUENCE)?;
            parts.push(format_attribute(atv.contents)?);
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// One `type=value` pair.
fn format_attribute(atv: &[u8]) -> Result<String, DerError> {
    let mut reader = Reader::new(atv);
    let oid = oid_to_string(reader.expect(tag::OID)?.contents)?;
    let value = reader.element()?;
    let keyword = KEYWORDS.iter().find(|(o, _)| *o == oid).map(|(_, k)| *k);
    match (keyword, decode_string(value.tag, value.contents)) {
        (Some(keyword), Some(text)) => Ok(format!("{keyword}={}", escape_value(&text))),
        _ => {
            let hex: String = value.encoding.iter().map(|b| format!("{b:02x}")).collect();
            Ok(format!("{oid}=#{hex}"))
        }
    }
}

/// The text of a DER string of a type Java prints as text.
fn decode_string(tag: u8, contents: &[u8]) -> Option<String> {
    match tag {
        UTF8_STRING | PRINTABLE_STRING | IA5_STRING | GENERAL_STRING => {
            Some(String::from_utf8_lossy(contents).into_owned())
        }
        T61_STRING => Some(contents.iter().map(|&b| char::from(b)).collect()),
        BMP_STRING => {
            let units: Vec<u16> = contents
                .chunks(2)
                .map(|c| match c {
                    [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                    _ => 0xfffd,
                })
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

/// Escapes a value as Java's `AVA.toRFC2253String` does: a backslash before each of
/// `,=+<>#;"\`, NUL as `\00`, and leading and trailing spaces escaped.
pub fn escape_value(value: &str) -> String {
    const ESCAPEES: &str = ",=+<>#;\"\\";
    let mut escaped: Vec<(bool, String)> = Vec::with_capacity(value.len());
    for c in value.chars() {
        let piece = if ESCAPEES.contains(c) {
            format!("\\{c}")
        } else if c == '\0' {
            "\\00".to_string()
        } else {
            c.to_string()
        };
        escaped.push((c == ' ' || c == '\r', piece));
    }
    let lead = escaped.iter().take_while(|(space, _)| *space).count();
    let trail = escaped.iter().rev().take_while(|(space, _)| *space).count();
    let total = escaped.len();
    let mut out = String::with_capacity(value.len() + 4);
    for (i, (_, piece)) in escaped.iter().enumerate() {
        if (i < lead || i >= total.saturating_sub(trail)) && piece == " " {
            out.push('\\');
        }
        out.push_str(piece);
    }
    out
}

/// A UTCTime or GeneralizedTime (`...Z`) in seconds since the Unix epoch.
fn parse_time(element: super::der::Element<'_>) -> Result<i64, DerError> {
    let text = std::str::from_utf8(element.contents).map_err(|_| DerError("bad time"))?;
    let digits = text.strip_suffix('Z').ok_or(DerError("time not in UTC"))?;
    let number = |range: std::ops::Range<usize>| -> Result<i64, DerError> {
        digits
            .get(range)
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or(DerError("bad time"))
    };
    let (year, rest) = match element.tag {
        tag::UTC_TIME => {
            let yy = number(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        tag::GENERALIZED_TIME => (number(0..4)?, 4),
        _ => return Err(DerError("bad time")),
    };
    let month = number(rest..rest + 2)?;
    let day = number(rest + 2..rest + 4)?;
    let hour = number(rest + 4..rest + 6)?;
    let minute = number(rest + 6..rest + 8)?;
    let second = number(rest + 8..rest + 10)?;
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to the given date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn certificate(dn: rcgen::DistinguishedName) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn;
        params.not_after = rcgen::date_time_ymd(2031, 3, 4);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    /// The subjects Java's `X500Principal.getName()` prints for these certificates.
    #[test]
    fn subjects_read_as_java_prints_them() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "sluice");
        dn.push(rcgen::DnType::OrganizationalUnitName, "eng");
        dn.push(rcgen::DnType::CommonName, "alice");
        let summary = summarize_certificate(&certificate(dn)).unwrap();
        assert_eq!(summary.subject, "CN=alice,OU=eng,O=sluice");
        assert_eq!(summary.not_after, 1_930_348_800); // 2031-03-04T00:00:00Z

        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::CommonName, "Smith, John+Jr <x>");
        dn.push(
            rcgen::DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            rcgen::DnValue::Ia5String("a@b.c".try_into().unwrap()),
        );
        let summary = summarize_certificate(&certificate(dn)).unwrap();
        assert_eq!(
            summary.subject,
            "1.2.840.113549.1.9.1=#16056140622e63,CN=Smith\\, John\\+Jr \\<x\\>,C=DE"
        );
    }

    #[test]
    fn values_are_escaped_as_java_escapes_them() {
        assert_eq!(escape_value(" a=b#c "), "\\ a\\=b\\#c\\ ");
        assert_eq!(escape_value("x;y\"z\\"), "x\\;y\\\"z\\\\");
        assert_eq!(escape_value("nul\0"), "nul\\00");
        assert_eq!(escape_value("plain text"), "plain text");
    }

    #[test]
    fn dates_count_days_from_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    }
}
