//! Password authentication of clients (server side of SCRAM-SHA-256 and md5).
//!
//! The proxy terminates client authentication itself: it checks the client
//! against the configured user and then logs in to the servers with its own
//! server credentials, so one pool of server connections serves many clients.

mod scram;

pub use scram::{ScramError, ScramExchange, ScramSecret};

use md5::{Digest, Md5};

/// The `md5<hex>` secret Postgres stores for `password` of `user`.
pub fn md5_secret(password: &str, user: &str) -> String {
    postgres_protocol::password::md5(password.as_bytes(), user)
}

/// Checks an md5 challenge response: the client sends
/// `md5(hex(md5(password || user)) || salt)` as `md5<hex>`.
pub fn md5_response_matches(secret: &str, salt: [u8; 4], response: &[u8]) -> bool {
    let Some(inner_hex) = secret.strip_prefix("md5") else {
        return false;
    };
    let mut hasher = Md5::new();
    hasher.update(inner_hex.as_bytes());
    hasher.update(salt);
    let expected = format!("md5{}", hex_lower(&hasher.finalize()));
    let response = response.strip_suffix(&[0]).unwrap_or(response);
    constant_time_eq(expected.as_bytes(), response)
}

/// Lower-case hex of bytes.
fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares secrets without leaking where they first differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_round_trip_with_libpq_formula() {
        let secret = md5_secret("secret", "app");
        let salt = [1, 2, 3, 4];
        let response = postgres_protocol::authentication::md5_hash(b"app", b"secret", salt);
        assert!(md5_response_matches(&secret, salt, response.as_bytes()));
        assert!(!md5_response_matches(
            &secret,
            [4, 3, 2, 1],
            response.as_bytes()
        ));
        let wrong = postgres_protocol::authentication::md5_hash(b"app", b"nope", salt);
        assert!(!md5_response_matches(&secret, salt, wrong.as_bytes()));
    }
}
