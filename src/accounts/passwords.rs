//! Password hashing (argon2id) and Django's four default password validators.

use std::collections::HashSet;
use std::sync::LazyLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Django's list of 19,640 common passwords (`django/contrib/auth/common-passwords.txt.gz`,
/// BSD-3-Clause), embedded at compile time.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

pub const MIN_LENGTH: usize = 8;
/// Django's `UserAttributeSimilarityValidator.DEFAULT_MAX_SIMILARITY`.
const MAX_SIMILARITY: f64 = 0.7;

/// OWASP's first argon2id recommendation: 19 MiB of memory, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string. CPU-heavy: call it on the blocking pool.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
}

/// Checks a password against a stored PHC string. CPU-heavy: call it on the blocking pool.
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, verified against when the username is unknown, so that
/// a login for a missing user costs the same time as one with a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let random: String = uuid::Uuid::new_v4().simple().to_string();
    hash(&random).unwrap_or_default()
});

/// Spends the time of one `verify` and returns false.
pub fn verify_dummy(password: &str) -> bool {
    let _ = verify(password, &DUMMY_HASH);
    false
}

/// Computes the dummy hash ahead of the first login.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

/// Django's default validators, in settings order; returns every message that applies.
pub fn validate(password: &str, username: &str, email: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (value, verbose) in [(username, "username"), (email, "email address")] {
        if too_similar(password, value) {
            problems.push(format!("The password is too similar to the {verbose}."));
            break;
        }
    }
    if password.chars().count() < MIN_LENGTH {
        problems.push(format!(
            "This password is too short. It must contain at least {MIN_LENGTH} characters."
        ));
    }
    if COMMON_PASSWORDS.contains(password.trim().to_lowercase().as_str()) {
        problems.push("This password is too common.".into());
    }
    if !password.is_empty() && password.chars().all(|c| c.is_numeric()) {
        problems.push("This password is entirely numeric.".into());
    }
    problems
}

/// `UserAttributeSimilarityValidator`: the value and each of its `\W+`-separated parts are
/// compared with difflib's `quick_ratio`, skipping parts far shorter than the password.
fn too_similar(password: &str, value: &str) -> bool {
    if value.is_empty() {
        return false;
    }
    let password = password.to_lowercase();
    let value = value.to_lowercase();
    let pwd_len = password.chars().count();
    let mut parts: Vec<&str> = value
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .collect();
    parts.push(&value);
    parts.into_iter().any(|part| {
        let part_len = part.chars().count();
        let exceeds_ratio =
            pwd_len >= 10 * part_len && (part_len as f64) < MAX_SIMILARITY / 2.0 * pwd_len as f64;
        !exceeds_ratio && quick_ratio(&password, part) >= MAX_SIMILARITY
    })
}

/// difflib's `SequenceMatcher.quick_ratio`: 2 × (shared characters, as multisets) / total.
fn quick_ratio(a: &str, b: &str) -> f64 {
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        return 1.0;
    }
    let mut available = std::collections::HashMap::<char, i64>::new();
    for c in b.chars() {
        *available.entry(c).or_default() += 1;
    }
    let mut matches = 0usize;
    for c in a.chars() {
        let n = available.entry(c).or_default();
        if *n > 0 {
            *n -= 1;
            matches += 1;
        }
    }
    2.0 * matches as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("wrong", &h));
        assert!(!verify("x", "not a hash"));
    }

    #[test]
    fn validators_match_django() {
        assert!(validate("Xq7!mVz2pL", "ada", "ada@example.com").is_empty());
        assert_eq!(
            validate("short", "ada", "ada@example.com"),
            vec!["This password is too short. It must contain at least 8 characters."]
        );
        assert_eq!(
            validate("password", "ada", "ada@example.com"),
            vec!["This password is too common."]
        );
        assert_eq!(
            validate("9081726354", "ada", "ada@example.com"),
            vec!["This password is entirely numeric."]
        );
        assert_eq!(
            validate("adalovelace", "adalovelace1", "x@example.com"),
            vec!["The password is too similar to the username."]
        );
        assert_eq!(
            validate("ada.lovelace", "zed", "ada.lovelace@example.com"),
            vec!["The password is too similar to the email address."]
        );
    }

    #[test]
    fn quick_ratio_matches_difflib() {
        // difflib.SequenceMatcher(a="abcd", b="bcde").quick_ratio() == 0.75
        assert!((quick_ratio("abcd", "bcde") - 0.75).abs() < 1e-9);
        assert!((quick_ratio("", "") - 1.0).abs() < 1e-9);
    }
}
