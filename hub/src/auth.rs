//! API authentication: bearer tokens, made from the OS's random generator,
//! kept in the store only as their SHA-256, and checked on every
//! `/api/v1` request by [`authenticate`].
//!
//! A token is `wl_` and 64 hex digits (32 random bytes). It is shown once,
//! when made; a lost token is revoked and replaced. SHA-256 without salt or
//! stretching is enough here: unlike passwords, tokens are random and long,
//! so there is nothing to guess from a leaked hash. Tokens are looked up by
//! hash through the database's index; the time that takes depends on the
//! hash of what was sent, which tells an attacker nothing about any token.
//!
//! What a caller may see and do is decided in `policy.rs`, not here.

use crate::policy::Caller;
use crate::store::Store;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// What every token starts with (so it is recognised in a config or a leak scan).
pub const TOKEN_PREFIX: &str = "wl_";

/// Shortest token accepted from a bootstrap token file.
pub const MIN_TOKEN_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error("cannot read random bytes from the operating system: {0}")]
pub struct RandomError(getrandom::Error);

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A new token: `wl_` and 32 random bytes in hex.
pub fn new_token() -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(RandomError)?;
    Ok(format!("{TOKEN_PREFIX}{}", hex(&bytes)))
}

/// The SHA-256 of a token, lowercase hex: what the store keeps.
pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Why a token from a file is refused.
pub fn check_token_text(token: &str) -> Result<(), String> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "a token has at least {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)"
        ));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err("a token has only visible ASCII characters, no spaces".into());
    }
    Ok(())
}

/// The token of an `Authorization: Bearer <token>` header value (the
/// scheme is case-insensitive, RFC 7235).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// 401 with `WWW-Authenticate: Bearer` (RFC 6750) and a JSON error.
fn unauthorized(presented: bool) -> Response {
    let (challenge, msg) = if presented {
        (
            "Bearer error=\"invalid_token\"",
            "the bearer token is unknown or revoked",
        )
    } else {
        (
            "Bearer",
            "authentication required: send `Authorization: Bearer <token>`",
        )
    };
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({ "error": msg })),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    resp
}

/// Middleware: resolves the bearer token to a [`Caller`] (put in the
/// request's extensions for the handlers), or answers 401.
pub async fn authenticate(State(store): State<Store>, mut req: Request, next: Next) -> Response {
    let header = req.headers().get(header::AUTHORIZATION);
    let Some(value) = header else {
        return unauthorized(false);
    };
    let Some(token) = value.to_str().ok().and_then(bearer) else {
        return unauthorized(true);
    };
    match store.caller(&hash(token)).await {
        Ok(Some(caller)) => {
            req.extensions_mut().insert::<Caller>(caller);
            next.run(req).await
        }
        Ok(None) => unauthorized(true),
        Err(e) => {
            tracing::error!(error = %e, "store error while checking a token");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::json!({ "error": "store error" })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_hex_and_hash_to_sha256() {
        let (a, b) = (new_token().expect("random"), new_token().expect("random"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert!(a.starts_with(TOKEN_PREFIX) && a[3..].chars().all(|c| c.is_ascii_hexdigit()));
        assert!(check_token_text(&a).is_ok());
        // SHA-256("abc")
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer("Bearer wl_abc"), Some("wl_abc"));
        assert_eq!(bearer("bearer  wl_abc "), Some("wl_abc"));
        assert_eq!(bearer("Basic dXNlcjpwdw=="), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("wl_abc"), None);
    }

    #[test]
    fn token_files_are_checked() {
        assert!(check_token_text("short").is_err());
        assert!(check_token_text(&"x y".repeat(20)).is_err());
        assert!(check_token_text(&"x".repeat(32)).is_ok());
    }
}
