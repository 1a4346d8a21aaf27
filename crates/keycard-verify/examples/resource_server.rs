//! A small resource server protected by keycard-verify. The integration tests run this very
//! router (`app`) against a real keycard.
//!
//! ```text
//! cargo run -p keycard-verify --example resource_server -- http://127.0.0.1:8080 [audience]
//! curl -H "Authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:3000/api/hello
//! ```
//!
//! The issuer comes from the first argument or `KEYCARD_ISSUER`, the audience from the second
//! argument or `KEYCARD_AUDIENCE` (default `keycard`), the listen address from `BIND` (default
//! `127.0.0.1:3000`).
//!
//! DPoP (RFC 9449) is off unless asked for: `DPOP_PUBLIC_ORIGIN=https://api.example` accepts
//! `Authorization: DPoP` tokens with their proofs, whose `htu` must be that origin followed by
//! the request's path (the URL clients address the server by, behind a proxy); `DPOP=on` does
//! the same with the origin `http://<the bound address>`, for a server clients reach directly.
//! A DPoP-bound token is never accepted as a Bearer token, with or without DPoP on.
//!
//! ```text
//! DPOP=on BIND=127.0.0.1:0 cargo run -p keycard-verify --example resource_server -- http://127.0.0.1:8080
//! ```

use axum::routing::get;
use axum::{Json, Router};
use keycard_verify::{AccessClaims, Claims, DpopOptions, VerifiedToken, Verifier, VerifierLayer};
use serde_json::{Value, json};

/// The routes: `/api/*` need a valid access token; `/healthz` does not.
pub fn app(verifier: Verifier) -> Router {
    let protected = Router::new()
        .route("/api/hello", get(hello))
        .route("/api/claims", get(claims))
        .route("/api/admin", get(admin))
        .route_layer(VerifierLayer::new(verifier));
    Router::new().route("/healthz", get(|| async { "ok" })).merge(protected)
}

/// Greets the token's subject.
async fn hello(Claims(claims): Claims) -> Json<Value> {
    Json(json!({"hello": claims.sub, "session": claims.sid}))
}

/// Echoes the verified claims.
async fn claims(token: VerifiedToken) -> Json<AccessClaims> {
    Json(token.claims)
}

/// Needs the `admin` scope: authorization on top of authentication.
async fn admin(token: VerifiedToken) -> Result<Json<Value>, (axum::http::StatusCode, Json<Value>)> {
    if token.has_scope("admin") {
        Ok(Json(json!({"admin": true})))
    } else {
        let body = json!({"error": "forbidden", "error_description": "the admin scope is required"});
        Err((axum::http::StatusCode::FORBIDDEN, Json(body)))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let issuer = args
        .next()
        .or_else(|| std::env::var("KEYCARD_ISSUER").ok())
        .ok_or("usage: resource_server <issuer-url> [audience] (or set KEYCARD_ISSUER)")?;
    let audience = args.next().or_else(|| std::env::var("KEYCARD_AUDIENCE").ok()).unwrap_or_else(|| "keycard".into());
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());

    // Bound first: with `DPOP=on` the origin is the address the port 0 of `BIND` became.
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let local = listener.local_addr()?;
    let dpop_origin = match std::env::var("DPOP_PUBLIC_ORIGIN") {
        Ok(origin) if !origin.is_empty() => Some(origin),
        _ => match std::env::var("DPOP").as_deref() {
            Ok("on" | "1" | "true") => Some(format!("http://{local}")),
            Ok("" | "off" | "0" | "false") | Err(_) => None,
            Ok(other) => return Err(format!("DPOP={other:?}: expected on or off").into()),
        },
    };
    let mut builder = Verifier::builder(issuer, audience);
    if let Some(origin) = &dpop_origin {
        builder = builder.dpop(DpopOptions::new().public_origin(origin));
    }
    let verifier = builder.build().await?;
    match &dpop_origin {
        Some(origin) => println!("resource server on http://{local} (DPoP on, public origin {origin})"),
        None => println!("resource server on http://{local}"),
    }
    axum::serve(listener, app(verifier)).await?;
    Ok(())
}
