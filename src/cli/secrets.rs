//! The two secrets a user handles, kept apart by name.
//!
//! - The **join token** (`shoal up --join-token`, `SHOAL_JOIN_TOKEN`) lets a
//!   machine into the cluster: it is the root of the cluster's TLS. It stays
//!   between peers and is never sent over HTTP.
//! - An **API token** (`--api-token`, `SHOAL_API_TOKEN`) lets a client use a
//!   peer's HTTP API: `shoal up` requires it, the client verbs send it as a
//!   bearer token.
//!
//! `SHOAL_TOKEN` once named both; it is no longer read, only warned about.

use anyhow::bail;
use shoal_gossip::quic::{JoinToken, TokenError};

/// The retired variable that named both secrets.
pub const RETIRED_TOKEN_ENV: &str = "SHOAL_TOKEN";

/// Whether `value` is a join token, or one with a typo: a well-formed token
/// whose cluster id does not match its secret is still most of the secret.
pub fn looks_like_join_token(value: &str) -> bool {
    matches!(
        value.parse::<JoinToken>(),
        Ok(_) | Err(TokenError::Checksum)
    )
}

/// A warning for a `SHOAL_TOKEN` still set in the environment.
pub fn retired_env_warning() -> Option<String> {
    std::env::var_os(RETIRED_TOKEN_ENV)?;
    Some(format!(
        "warning: {RETIRED_TOKEN_ENV} is no longer read: put the cluster's join token in \
         SHOAL_JOIN_TOKEN (for `shoal up`) and the API token in SHOAL_API_TOKEN (for \
         `shoal up` and the client commands)"
    ))
}

/// The API token a peer requires (`shoal up --api-token`): refused when no
/// client could ever send it, or when it is the join token (the CLI refuses
/// to send that, and it must not travel over HTTP anyway).
pub fn check_server_api_token(token: &str) -> anyhow::Result<()> {
    if token.trim().is_empty() {
        bail!(
            "--api-token (or SHOAL_API_TOKEN) is empty, and no client could send an empty \
             token; give the API a secret of its own (e.g. `--api-token \"$(openssl rand -hex 32)\"`), \
             or unset it and keep the API on loopback"
        );
    }
    if token.trim() != token {
        bail!(
            "--api-token (or SHOAL_API_TOKEN) starts or ends with whitespace, which HTTP \
             headers cannot carry, so no client could match it; remove the whitespace"
        );
    }
    if looks_like_join_token(token) {
        bail!(
            "--api-token (or SHOAL_API_TOKEN) is a join token; the API needs a secret of its \
             own, since clients send it over HTTP and the join token must never leave the \
             peers (e.g. `--api-token \"$(openssl rand -hex 32)\"`)"
        );
    }
    Ok(())
}

/// The API token a client sends: an empty value counts as none, and a join
/// token is refused before anything is sent.
pub fn client_api_token(given: Option<&str>) -> anyhow::Result<Option<String>> {
    let Some(token) = given.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if looks_like_join_token(token) {
        bail!(
            "the API token given (--api-token or SHOAL_API_TOKEN) is the cluster's join token; \
             the CLI never sends the join token over HTTP. Use the API token the peer was \
             started with (`shoal up --api-token`), and keep the join token for `shoal up --join-token`"
        );
    }
    Ok(Some(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join_token() -> String {
        JoinToken::from_seed([9; 32]).to_string()
    }

    #[test]
    fn a_join_token_and_its_typos_are_recognised() {
        let token = join_token();
        assert!(looks_like_join_token(&token));
        let mut typo = token.clone();
        let last = if token.ends_with('0') { "1" } else { "0" };
        typo.replace_range(typo.len() - 1.., last);
        assert!(looks_like_join_token(&typo), "checksum mismatch");
        assert!(!looks_like_join_token("s3cret"));
        assert!(!looks_like_join_token("shoal1.short.token"));
    }

    #[test]
    fn a_client_treats_an_empty_token_as_none_and_refuses_a_join_token() {
        assert_eq!(client_api_token(None).unwrap(), None);
        assert_eq!(client_api_token(Some("")).unwrap(), None);
        assert_eq!(client_api_token(Some("  ")).unwrap(), None);
        assert_eq!(
            client_api_token(Some("s3cret")).unwrap().as_deref(),
            Some("s3cret")
        );
        let err = client_api_token(Some(&join_token())).unwrap_err();
        assert!(!err.to_string().contains(&join_token()), "{err}");
    }

    #[test]
    fn a_peer_refuses_api_tokens_no_client_could_send() {
        for bad in ["", "  ", " s3cret", "s3cret\n", &join_token()] {
            assert!(check_server_api_token(bad).is_err(), "{bad:?}");
        }
        assert!(check_server_api_token("s3cret").is_ok());
    }
}
