//! Fetching keycard's public documents: OpenID-style discovery, the JWKS and revocation-feed
//! pages, each with a size cap (a hostile or broken endpoint cannot make the verifier buffer
//! without bound).

use keycard_core::keys::{JwkSet, PublicKeys};
use keycard_core::wire::Discovery;
use serde::de::DeserializeOwned;

use crate::error::FetchError;
use crate::introspect::ServerMetadata;

/// Largest discovery document or JWKS accepted.
pub(crate) const DOCUMENT_LIMIT: usize = 256 * 1024;

/// Largest revocation-feed page accepted (the server sends at most 1000 entries).
pub(crate) const FEED_PAGE_LIMIT: usize = 4 * 1024 * 1024;

/// GETs `url` and decodes its JSON body, refusing bodies over `limit` bytes.
pub(crate) async fn get_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    limit: usize,
) -> Result<T, FetchError> {
    let failed = |source| FetchError::Http { url: url.to_owned(), source };
    let mut response = http.get(url).header(http::header::ACCEPT, "application/json").send().await.map_err(failed)?;
    if !response.status().is_success() {
        return Err(FetchError::Status { url: url.to_owned(), status: response.status().as_u16() });
    }
    let too_large = || FetchError::TooLarge { url: url.to_owned(), limit };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|source| FetchError::Decode { url: url.to_owned(), source })
}

/// Reads the discovery document of `issuer` and checks it names the same issuer. Another
/// issuer's document needs only `issuer` and `jwks_uri`; its other fields are ignored.
pub(crate) async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Discovery, FetchError> {
    let url = format!("{issuer}/.well-known/openid-configuration");
    let doc: Discovery = get_json(http, &url, DOCUMENT_LIMIT).await?;
    if doc.issuer.trim_end_matches('/') != issuer {
        return Err(FetchError::IssuerMismatch { expected: issuer.to_owned(), found: doc.issuer });
    }
    Ok(doc)
}

/// Reads the RFC 8414 metadata of `issuer` (`/.well-known/oauth-authorization-server`) and
/// checks it names the same issuer.
pub(crate) async fn discover_metadata(http: &reqwest::Client, issuer: &str) -> Result<ServerMetadata, FetchError> {
    let url = format!("{issuer}/.well-known/oauth-authorization-server");
    let doc: ServerMetadata = get_json(http, &url, DOCUMENT_LIMIT).await?;
    if doc.issuer.trim_end_matches('/') != issuer {
        return Err(FetchError::IssuerMismatch { expected: issuer.to_owned(), found: doc.issuer });
    }
    Ok(doc)
}

/// Fetches a JWKS and keeps its usable keys; keys it cannot use are logged and left out.
pub(crate) async fn fetch_keys(http: &reqwest::Client, url: &str) -> Result<PublicKeys, FetchError> {
    let set: JwkSet = get_json(http, url, DOCUMENT_LIMIT).await?;
    let (keys, skipped) = PublicKeys::from_jwk_set(&set);
    for error in &skipped {
        tracing::warn!(%error, url, "ignoring a key of the JWKS");
    }
    if keys.is_empty() {
        return Err(FetchError::NoUsableKeys { url: url.to_owned() });
    }
    Ok(keys)
}

/// Whether `url` is https, or http to a loopback host (where nothing travels over a network).
pub(crate) fn is_safe_url(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _port)| host),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_safe_url;

    #[test]
    fn only_https_or_loopback_http_is_safe() {
        for url in
            ["https://id.example", "http://127.0.0.1:8080", "http://localhost/x", "http://[::1]:9/", "http://127.8.0.1"]
        {
            assert!(is_safe_url(url), "{url}");
        }
        for url in ["http://id.example", "http://10.0.0.1:80", "ftp://x", "http://127.0.0.1.evil.example/", ""] {
            assert!(!is_safe_url(url), "{url}");
        }
    }
}
