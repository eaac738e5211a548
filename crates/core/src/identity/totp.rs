//! Time-based one-time passwords (RFC 6238) for two-factor sign-in, and their base32 secrets.

use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds each code is valid for.
const STEP_SECS: i64 = 30;

/// Digits in the codes users type.
const CODE_DIGITS: u32 = 6;

/// RFC 4226 recommends (and authenticator apps expect) a 160-bit key for HMAC-SHA1.
const SECRET_BYTES: usize = 20;

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new random secret, base32 as authenticator apps take it.
pub fn new_totp_secret() -> Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::internal("totp randomness", e))?;
    Ok(base32_encode(&bytes))
}

/// The code for the 30 s step containing `unix_time`. `None` if the secret is not valid
/// (or empty) base32, `digits` is outside 6..=9, or the time precedes the epoch.
pub fn totp_code(secret_base32: &str, unix_time: i64, digits: u32) -> Option<String> {
    // RFC 4226 asks for at least 6 digits; its 31-bit value has only 9 full ones.
    if !(6..=9).contains(&digits) || unix_time < 0 {
        return None;
    }
    let key = base32_decode(secret_base32).filter(|key| !key.is_empty())?;
    let counter = (unix_time / STEP_SECS) as u64;
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).ok()?;
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();

    // RFC 4226 dynamic truncation: 31 bits at an offset chosen by the last nibble.
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let window: [u8; 4] = hash[offset..offset + 4].try_into().ok()?;
    let value = u32::from_be_bytes(window) & 0x7fff_ffff;
    let code = value % 10u32.pow(digits);
    Some(format!("{code:0width$}", width = digits as usize))
}

/// Accepts the code for the current 30 s step or one step either side, answering which step
/// it is the code of (the latest, should two steps share a code), so that the caller can
/// refuse it once it has been used: see [`crate::ports::Accounts::claim_totp_step`].
pub fn verify_totp(secret_base32: &str, code: &str, unix_time: i64) -> Option<i64> {
    if code.len() != CODE_DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Every step is computed and compared, so timing does not tell which one matched.
    [-STEP_SECS, 0, STEP_SECS]
        .into_iter()
        .filter_map(|offset| unix_time.checked_add(offset))
        .fold(None, |latest, time| {
            let matched = totp_code(secret_base32, time, CODE_DIGITS)
                .is_some_and(|expected| same_bytes(expected.as_bytes(), code.as_bytes()));
            if matched {
                Some(time / STEP_SECS)
            } else {
                latest
            }
        })
}

/// The `otpauth://` URL authenticator apps read from a QR code.
pub fn otpauth_url(issuer: &str, account: &str, secret_base32: &str) -> String {
    let issuer = percent_encode(issuer);
    let account = percent_encode(account);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret_base32}&issuer={issuer}\
         &algorithm=SHA1&digits={CODE_DIGITS}&period={STEP_SECS}"
    )
}

/// Comparison whose time does not depend on where the inputs differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Everything but RFC 3986 unreserved characters as `%XX`; a space becomes `%20`, which the
/// key URI format asks for (not `+`).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// RFC 4648 base32, uppercase, without padding.
fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u16 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                BASE32_ALPHABET[usize::from((buffer >> bits) & 0x1f)],
            ));
        }
    }
    if bits > 0 {
        out.push(char::from(
            BASE32_ALPHABET[usize::from((buffer << (5 - bits)) & 0x1f)],
        ));
    }
    out
}

/// Inverse of [`base32_encode`]; lowercase is accepted because people retype secrets.
/// Lengths no encoding produces and non-zero leftover bits are refused, so every accepted
/// text has exactly one meaning.
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u16 = 0;
    let mut bits = 0;
    for byte in text.bytes() {
        let value = BASE32_ALPHABET
            .iter()
            .position(|&symbol| symbol == byte.to_ascii_uppercase())?;
        buffer = (buffer << 5) | value as u16;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    let leftover = buffer & ((1 << bits) - 1);
    (bits < 5 && leftover == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of RFC 6238's SHA-1 test vectors.
    fn rfc_secret() -> String {
        base32_encode(b"12345678901234567890")
    }

    #[test]
    fn rfc_6238_sha1_vectors() {
        let secret = rfc_secret();
        for (time, expected) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(
                totp_code(&secret, time, 8).as_deref(),
                Some(expected),
                "t={time}"
            );
        }
        // The 6-digit code is the 8-digit one's last six.
        assert_eq!(totp_code(&secret, 59, 6).as_deref(), Some("287082"));
    }

    #[test]
    fn base32_matches_rfc_4648_and_round_trips() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), encoded);
            assert_eq!(base32_decode(encoded).unwrap(), plain.as_bytes());
        }
        let bytes: Vec<u8> = (0..=255).collect();
        for len in 0..bytes.len() {
            let encoded = base32_encode(&bytes[..len]);
            assert_eq!(base32_decode(&encoded).unwrap(), &bytes[..len]);
        }
        assert_eq!(base32_decode("mzxw6ytboi").unwrap(), b"foobar");
    }

    #[test]
    fn invalid_base32_is_refused() {
        // Padding, foreign symbols, lengths no encoding produces, and non-zero leftover
        // bits ("MY" is "f"; "MZ" differs only in bits that carry nothing).
        for text in [
            "MZXW6YTBOI======",
            "MZ XW",
            "MZ0Q",
            "MZ1Q",
            "M",
            "MZX",
            "MZXW6Y",
            "MZ",
        ] {
            assert!(base32_decode(text).is_none(), "{text}");
        }
        assert_eq!(totp_code("not base32!", 59, 6), None);
        assert_eq!(totp_code("", 59, 6), None);
    }

    #[test]
    fn code_parameters_are_checked() {
        let secret = rfc_secret();
        assert_eq!(totp_code(&secret, 59, 5), None);
        assert_eq!(totp_code(&secret, 59, 10), None);
        assert_eq!(totp_code(&secret, -1, 6), None);
        assert_eq!(totp_code(&secret, 59, 9).map(|c| c.len()), Some(9));
    }

    #[test]
    fn new_secrets_are_random_160_bit_base32() {
        let a = new_totp_secret().unwrap();
        let b = new_totp_secret().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(base32_decode(&a).unwrap().len(), SECRET_BYTES);
        assert!(totp_code(&a, 0, 6).is_some());
    }

    #[test]
    fn one_step_either_side_is_accepted_and_named() {
        let secret = rfc_secret();
        // The start of a step, so ±30 s lands exactly one step away.
        let time = 1_111_111_110;
        let step = time / STEP_SECS;
        let code = totp_code(&secret, time, 6).unwrap();
        for offset in [0, 29, -30, 30, 59] {
            assert_eq!(
                verify_totp(&secret, &code, time + offset),
                Some(step),
                "{offset:+}"
            );
        }
        for offset in [-90, -31, 60, 90] {
            assert_eq!(
                verify_totp(&secret, &code, time + offset),
                None,
                "{offset:+}"
            );
        }
        let next = totp_code(&secret, time + STEP_SECS, 6).unwrap();
        assert_eq!(verify_totp(&secret, &next, time), Some(step + 1));
        let previous = totp_code(&secret, time - STEP_SECS, 6).unwrap();
        assert_eq!(verify_totp(&secret, &previous, time), Some(step - 1));
    }

    #[test]
    fn malformed_codes_are_refused() {
        let secret = rfc_secret();
        let time = 1_111_111_110;
        let code = totp_code(&secret, time, 6).unwrap();
        let eight_digits = totp_code(&secret, time, 8).unwrap();
        for bad in [
            String::new(),
            code[..5].to_owned(),
            format!("{code}0"),
            format!(" {code}"),
            format!("{}x", &code[..5]),
            eight_digits,
            "12 456".to_owned(),
            "+12345".to_owned(),
        ] {
            assert_eq!(verify_totp(&secret, &bad, time), None, "{bad:?}");
        }
        assert_eq!(verify_totp("invalid!", &code, time), None);
    }

    #[test]
    fn comparison_needs_every_byte() {
        assert!(same_bytes(b"123456", b"123456"));
        assert!(!same_bytes(b"123456", b"123457"));
        assert!(!same_bytes(b"023456", b"123456"));
        assert!(!same_bytes(b"12345", b"123456"));
    }

    #[test]
    fn otpauth_url_is_percent_encoded() {
        assert_eq!(
            otpauth_url("Berth Registry", "alice@example.com", "JBSWY3DPEHPK3PXP"),
            "otpauth://totp/Berth%20Registry:alice%40example.com?secret=JBSWY3DPEHPK3PXP\
             &issuer=Berth%20Registry&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            otpauth_url("a:b&c", "ü", "AA"),
            "otpauth://totp/a%3Ab%26c:%C3%BC?secret=AA&issuer=a%3Ab%26c\
             &algorithm=SHA1&digits=6&period=30"
        );
    }
}
