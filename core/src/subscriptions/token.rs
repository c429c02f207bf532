//! Addresses and tokens of the email subscriptions: what a well-formed address is,
//! the signed confirmation token, the random unsubscribe token.
//!
//! Why the confirmation token carries the address, HMAC-signed, instead of a
//! pending row: "addresses are stored only after confirmation" then holds without
//! an exception: an address typed into the form lives in the mail sent to it and
//! nowhere in Klaxon's database, not even until an expiry. The token is
//! `hex(address).expiry_ms.hex(HMAC-SHA256(key, hex(address).expiry_ms))`; the key
//! is random, made once and kept in `status_keys`, so tokens stay valid across
//! restarts and replicas. A token is good for [`CONFIRM_TTL_MS`].

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Read;

/// How long a confirmation link works.
pub const CONFIRM_TTL_MS: i64 = 24 * 3_600_000;

/// Why an address was refused; the text is shown to the visitor as is.
pub fn check_address(raw: &str) -> Result<String, &'static str> {
    let a = raw.trim();
    if a.is_empty() {
        return Err("Please enter an email address.");
    }
    if a.len() > 254 {
        return Err("That address is too long (at most 254 characters).");
    }
    let Some((local, domain)) = a.rsplit_once('@') else {
        return Err(
            "An email address has an @ between a name and a domain, like name@example.com.",
        );
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    if !local_ok {
        return Err("The part before the @ is not valid: use letters, digits and . _ + - only.");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_alphabetic()));
    if !domain_ok {
        return Err("The part after the @ is not a valid domain, like example.com.");
    }
    let addr = format!("{local}@{}", domain.to_ascii_lowercase());
    if addr.parse::<lettre::Address>().is_err() {
        return Err("That is not a valid email address.");
    }
    Ok(addr)
}

/// `n` random bytes as hex, from the kernel's generator.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(hex(&buf))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn mac(key: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!())
}

/// The confirmation token of `address`, good until `expires_ms`.
pub fn sign(key: &str, address: &str, expires_ms: i64) -> String {
    let payload = format!("{}.{expires_ms}", hex(address.as_bytes()));
    let mut m = mac(key);
    m.update(payload.as_bytes());
    format!("{payload}.{}", hex(&m.finalize().into_bytes()))
}

/// Why a confirmation token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this confirmation link is not valid")]
    Invalid,
    #[error("this confirmation link has expired")]
    Expired,
}

/// The address a confirmation token was made for, when it is genuine and unexpired.
pub fn verify(key: &str, token: &str, now_ms: i64) -> Result<String, TokenError> {
    let mut parts = token.split('.');
    let (Some(addr), Some(exp), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Invalid);
    };
    let sig = unhex(sig).ok_or(TokenError::Invalid)?;
    let mut m = mac(key);
    m.update(format!("{addr}.{exp}").as_bytes());
    m.verify_slice(&sig).map_err(|_| TokenError::Invalid)?;
    let exp: i64 = exp.parse().map_err(|_| TokenError::Invalid)?;
    if now_ms > exp {
        return Err(TokenError::Expired);
    }
    let addr = unhex(addr).and_then(|b| String::from_utf8(b).ok());
    addr.ok_or(TokenError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_with_a_reason() {
        assert_eq!(
            check_address(" Ann.Lee+status@Example.COM ").as_deref(),
            Ok("Ann.Lee+status@example.com")
        );
        for bad in [
            "",
            "no-at-sign",
            "a@b",
            "a@@example.com",
            "a b@example.com",
            ".a@example.com",
            "a@-x.com",
            "a@example.c0m",
            "<script>@example.com",
            "a@example.com\r\nBcc: x@y.com",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_address(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering_and_age() {
        let t = sign("k1", "ann@example.com", 1_000);
        assert_eq!(verify("k1", &t, 999).as_deref(), Ok("ann@example.com"));
        assert_eq!(verify("k1", &t, 1_001), Err(TokenError::Expired));
        assert_eq!(verify("k2", &t, 999), Err(TokenError::Invalid));
        let forged = t.replacen(&hex(b"ann"), &hex(b"bob"), 1);
        assert_eq!(verify("k1", &forged, 999), Err(TokenError::Invalid));
        let later = t.replacen(".1000.", ".9999.", 1);
        assert_eq!(verify("k1", &later, 999), Err(TokenError::Invalid));
        assert_eq!(verify("k1", "garbage", 0), Err(TokenError::Invalid));
        assert_eq!(random_hex(16).map(|h| h.len()).ok(), Some(32));
    }
}
