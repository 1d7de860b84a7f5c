//! Client authentication: the proxy checks the client against the configured
//! user (SCRAM-SHA-256, md5 or trust) before any server is involved.

use bytes::{Buf, Bytes, BytesMut};
use pgwire::messages::startup::Authentication;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::io::read_frame;
use crate::auth::{ScramExchange, ScramSecret, md5_response_matches, md5_secret};
use crate::config::{AuthMethod, User, is_stored_secret};
use crate::net::messages::{PgError, put_authentication, split_cstr, tag};

/// A user's secrets in the forms the auth methods need, derived once when
/// the config is loaded (deriving a SCRAM secret is deliberately slow).
#[derive(Debug, Clone)]
pub struct UserSecrets {
    scram: Option<ScramSecret>,
    md5: Option<String>,
}

impl UserSecrets {
    /// Derives the secrets of `user` from its configured password.
    pub fn derive(user: &User) -> UserSecrets {
        match user.password.as_deref() {
            None => UserSecrets {
                scram: None,
                md5: None,
            },
            Some(p) if p.starts_with("SCRAM-SHA-256$") => UserSecrets {
                scram: ScramSecret::parse(p),
                md5: None,
            },
            Some(p) if is_stored_secret(p) => UserSecrets {
                scram: None,
                md5: Some(p.to_string()),
            },
            Some(p) => UserSecrets {
                scram: Some(ScramSecret::from_password(p)),
                md5: Some(md5_secret(p, &user.name)),
            },
        }
    }
}

fn auth_failed(user: &str) -> PgError {
    PgError::fatal(
        "28P01",
        format!("password authentication failed for user \"{user}\""),
    )
}

/// Runs the configured authentication exchange; on success the caller sends
/// AuthenticationOk.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    inbox: &mut BytesMut,
    user: &User,
    secrets: &UserSecrets,
) -> Result<(), PgError> {
    match user.auth {
        AuthMethod::Trust => Ok(()),
        AuthMethod::Md5 => {
            let secret = secrets
                .md5
                .as_deref()
                .ok_or_else(|| auth_failed(&user.name))?;
            let salt: [u8; 4] = rand::random();
            send(stream, Authentication::MD5Password(salt.to_vec())).await?;
            let response = read_password_message(stream, inbox).await?;
            if md5_response_matches(secret, salt, &response) {
                Ok(())
            } else {
                Err(auth_failed(&user.name))
            }
        }
        AuthMethod::ScramSha256 => {
            let secret = secrets
                .scram
                .clone()
                .ok_or_else(|| auth_failed(&user.name))?;
            send(
                stream,
                Authentication::SASL(vec!["SCRAM-SHA-256".to_string()]),
            )
            .await?;
            let initial = read_password_message(stream, inbox).await?;
            let client_first = sasl_initial_data(&initial)?;
            let exchange = ScramExchange::start(secret, client_first)
                .map_err(|e| PgError::fatal("08P01", e.to_string()))?;
            send(
                stream,
                Authentication::SASLContinue(Bytes::copy_from_slice(
                    exchange.server_first().as_bytes(),
                )),
            )
            .await?;
            let client_final = read_password_message(stream, inbox).await?;
            let server_final = exchange.finish(&client_final).map_err(|e| match e {
                crate::auth::ScramError::WrongPassword => auth_failed(&user.name),
                other => PgError::fatal("08P01", other.to_string()),
            })?;
            send(
                stream,
                Authentication::SASLFinal(Bytes::from(server_final.into_bytes())),
            )
            .await
        }
    }
}

/// The mechanism must be SCRAM-SHA-256; returns the client-first message.
fn sasl_initial_data(body: &[u8]) -> Result<&[u8], PgError> {
    let malformed = || PgError::fatal("08P01", "malformed SASLInitialResponse");
    let (mechanism, rest) = split_cstr(body).ok_or_else(malformed)?;
    if mechanism != b"SCRAM-SHA-256" {
        return Err(PgError::fatal(
            "28000",
            format!(
                "SASL mechanism \"{}\" is not supported: use SCRAM-SHA-256",
                String::from_utf8_lossy(mechanism)
            ),
        ));
    }
    if rest.len() < 4 {
        return Err(malformed());
    }
    let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let data = &rest[4..];
    if len < 0 || len as usize != data.len() {
        return Err(malformed());
    }
    Ok(data)
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, auth: Authentication) -> Result<(), PgError> {
    let mut out = BytesMut::new();
    put_authentication(&mut out, auth);
    stream
        .write_all(&out)
        .await
        .map_err(|e| PgError::fatal("08006", format!("client connection lost: {e}")))
}

/// Reads the next message, which must be a password/SASL response.
async fn read_password_message<S: AsyncRead + Unpin>(
    stream: &mut S,
    inbox: &mut BytesMut,
) -> Result<Vec<u8>, PgError> {
    // Authentication messages are small; a tight limit keeps an
    // unauthenticated client from making the proxy buffer much.
    let frame = read_frame(stream, inbox, 64 * 1024).await?;
    if frame.tag != tag::PASSWORD {
        return Err(PgError::fatal(
            "08P01",
            format!(
                "expected a password message, got message type '{}'",
                frame.tag as char
            ),
        ));
    }
    let body = frame.body(inbox).to_vec();
    inbox.advance(frame.len);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_initial_response_is_checked() {
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&3i32.to_be_bytes());
        body.extend_from_slice(b"abc");
        assert_eq!(sasl_initial_data(&body).unwrap(), b"abc");
        let mut wrong_len = b"SCRAM-SHA-256\0".to_vec();
        wrong_len.extend_from_slice(&9i32.to_be_bytes());
        wrong_len.extend_from_slice(b"abc");
        assert!(sasl_initial_data(&wrong_len).is_err());
        assert_eq!(
            sasl_initial_data(b"PLAIN\0\0\0\0\0").unwrap_err().code,
            "28000"
        );
        assert!(sasl_initial_data(b"no-nul").is_err());
    }

    #[test]
    fn secrets_follow_the_configured_password() {
        let mut user = User::with_password("app", "pw");
        let plain = UserSecrets::derive(&user);
        assert!(plain.scram.is_some() && plain.md5.is_some());
        user.password = Some(md5_secret("pw", "app"));
        let md5_only = UserSecrets::derive(&user);
        assert!(md5_only.scram.is_none());
        assert_eq!(md5_only.md5, Some(md5_secret("pw", "app")));
    }
}
