//! Server side of SCRAM-SHA-256 (RFC 5802 / RFC 7677) as Postgres speaks it.
//!
//! No crate offers the server half outside a whole server framework, so the
//! exchange is written here on top of the `hmac`/`sha2` primitives; secrets
//! are produced by `postgres-protocol` (which also applies SASLprep).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// A SCRAM verifier: what Postgres keeps in `pg_authid.rolpassword`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramSecret {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl ScramSecret {
    /// Parses `SCRAM-SHA-256$<iterations>:<salt>$<storedkey>:<serverkey>`.
    pub fn parse(secret: &str) -> Option<ScramSecret> {
        let rest = secret.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        Some(ScramSecret {
            iterations: iterations.parse().ok().filter(|&i| i > 0)?,
            salt: B64.decode(salt).ok()?,
            stored_key: B64.decode(stored).ok()?.try_into().ok()?,
            server_key: B64.decode(server).ok()?.try_into().ok()?,
        })
    }

    /// Derives a verifier from a plain-text password (random salt, 4096
    /// iterations, SASLprep), exactly as Postgres would store it.
    pub fn from_password(password: &str) -> ScramSecret {
        let text = postgres_protocol::password::scram_sha_256(password.as_bytes());
        Self::parse(&text).expect("postgres-protocol produces well-formed SCRAM secrets")
    }
}

/// Why a SCRAM exchange failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    /// The client's message does not follow the SCRAM grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client asked for channel binding, which shardwire does not offer.
    #[error("SCRAM channel binding is not supported by shardwire")]
    ChannelBinding,
    /// The proof does not match: wrong password.
    #[error("password authentication failed")]
    WrongPassword,
}

/// One SCRAM exchange with a client, from its first message to the proof.
pub struct ScramExchange {
    secret: ScramSecret,
    client_first_bare: String,
    server_first: String,
    gs2_header: String,
    nonce: String,
}

impl ScramExchange {
    /// Reads the client-first message and prepares the server-first reply.
    pub fn start(secret: ScramSecret, client_first: &[u8]) -> Result<Self, ScramError> {
        let text = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("utf-8"))?;
        let (gs2_header, client_first_bare) = split_gs2_header(text)?;
        let client_nonce = client_first_bare
            .split(',')
            .find_map(|attr| attr.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or(ScramError::Malformed("client nonce"))?;
        let server_nonce: [u8; 18] = rand::rng().random();
        let nonce = format!("{client_nonce}{}", B64.encode(server_nonce));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&secret.salt),
            secret.iterations
        );
        Ok(ScramExchange {
            secret,
            client_first_bare: client_first_bare.to_string(),
            server_first,
            gs2_header: gs2_header.to_string(),
            nonce,
        })
    }

    /// The server-first message to send in AuthenticationSASLContinue.
    pub fn server_first(&self) -> &str {
        &self.server_first
    }

    /// Checks the client-final message; on success returns the server-final
    /// message (`v=<signature>`) for AuthenticationSASLFinal.
    pub fn finish(&self, client_final: &[u8]) -> Result<String, ScramError> {
        let text = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("utf-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("proof"))?;
        let mut binding = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(v) = attr.strip_prefix("c=") {
                binding = Some(v);
            } else if let Some(v) = attr.strip_prefix("r=") {
                nonce = Some(v);
            }
        }
        let binding = B64
            .decode(binding.ok_or(ScramError::Malformed("channel binding"))?)
            .map_err(|_| ScramError::Malformed("channel binding"))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(ScramError::Malformed("channel binding does not match"));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(ScramError::Malformed("nonce does not match"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = hmac(&self.secret.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::WrongPassword);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let stored_key = Sha256::digest(&client_key);
        if !super::constant_time_eq(&stored_key, &self.secret.stored_key) {
            return Err(ScramError::WrongPassword);
        }
        let server_signature = hmac(&self.secret.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// Splits `gs2-header` (`n,,` / `y,,`, optionally with `a=authzid`) from the
/// bare client-first message.
fn split_gs2_header(text: &str) -> Result<(&str, &str), ScramError> {
    let flag = text
        .get(..1)
        .ok_or(ScramError::Malformed("empty message"))?;
    match flag {
        "n" | "y" => {}
        "p" => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("gs2 header")),
    }
    let first_comma = text.find(',').ok_or(ScramError::Malformed("gs2 header"))?;
    let second_comma = text[first_comma + 1..]
        .find(',')
        .map(|i| i + first_comma + 1)
        .ok_or(ScramError::Malformed("gs2 header"))?;
    Ok(text.split_at(second_comma + 1))
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    /// Runs a full exchange against postgres-protocol's client implementation,
    /// the one tokio-postgres uses.
    fn exchange(secret: &ScramSecret, password: &str) -> Result<(), ScramError> {
        let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        let server = ScramExchange::start(secret.clone(), client.message())?;
        client
            .update(server.server_first().as_bytes())
            .expect("client accepts server-first");
        let server_final = server.finish(client.message())?;
        client
            .finish(server_final.as_bytes())
            .expect("client verifies the server signature");
        Ok(())
    }

    #[test]
    fn right_password_passes_and_server_is_verified() {
        let secret = ScramSecret::from_password("s3cret");
        assert_eq!(exchange(&secret, "s3cret"), Ok(()));
    }

    #[test]
    fn wrong_password_fails() {
        let secret = ScramSecret::from_password("s3cret");
        assert_eq!(exchange(&secret, "guess"), Err(ScramError::WrongPassword));
    }

    #[test]
    fn secret_text_round_trips() {
        let text = postgres_protocol::password::scram_sha_256(b"pw");
        let secret = ScramSecret::parse(&text).expect("parses");
        assert_eq!(exchange(&secret, "pw"), Ok(()));
        assert!(ScramSecret::parse("SCRAM-SHA-256$0:abc$def:ghi").is_none());
        assert!(ScramSecret::parse("md5abc").is_none());
    }

    #[test]
    fn garbage_is_rejected_not_panicking() {
        let secret = ScramSecret::from_password("pw");
        for input in [
            &b""[..],
            b"x",
            b"p=tls-server-end-point,,n=,r=abc",
            b"n,,n=",
            b"\xff\xfe",
        ] {
            assert!(ScramExchange::start(secret.clone(), input).is_err());
        }
        let ex = ScramExchange::start(secret, b"n,,n=,r=abc").expect("valid first");
        for input in [
            &b""[..],
            b"c=biws,r=abc,p=",
            b"c=biws,r=wrong,p=AAAA",
            b",p=!!",
        ] {
            assert!(ex.finish(input).is_err());
        }
    }
}
