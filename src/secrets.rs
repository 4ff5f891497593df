//! Random bearer tokens (reset and verification links, calendar feeds, webhook secrets)
//! and the SHA-256 form in which such tokens are stored and looked up.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Random bytes in a token: 256 bits, beyond guessing.
pub const TOKEN_BYTES: usize = 32;
/// Their base64url length, unpadded.
pub const TOKEN_LEN: usize = 43;

/// A new token: `TOKEN_BYTES` random bytes, base64url without padding.
pub fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// SHA-256, hex: how a token is stored, so a leaked table holds no usable token.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The stored form of a token a client sent; `None` when it cannot be one of ours, which
/// callers refuse without a query.
pub fn token_hash(token: &str) -> Option<String> {
    let well_formed = token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| sha256_hex(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_one_shape_and_hash_to_hex() {
        let token = new_token();
        assert_eq!(token.len(), TOKEN_LEN);
        assert_eq!(token_hash(&token).map(|h| h.len()), Some(64));
        assert_eq!(token_hash("short"), None);
        assert_eq!(token_hash(&format!("{}=", &token[1..])), None);
        assert_eq!(token_hash(&"é".repeat(TOKEN_LEN)), None);
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
