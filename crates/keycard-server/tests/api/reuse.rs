//! Explainable reuse against the real server: a used refresh token that comes back revokes the
//! session either way, and the `refresh_token_reused` event says which it looks like. Two racing
//! refreshes of one client (same IP and user agent, the same second) are a `race`; a replay from
//! another IP and user agent an hour later is `theft_suspected`. Client IPs are set through
//! `X-Forwarded-For` from a trusted proxy (127.0.0.1).

use keycard_server::settings::IpList;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn refresh_from(app: &TestApp, token: &str, ip: &str, agent: &str) -> reqwest::Response {
    app.client
        .post(app.url("/auth/refresh"))
        .header("x-forwarded-for", ip)
        .header("user-agent", agent)
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap()
}

/// The detail of the newest `refresh_token_reused` event, parsed.
async fn last_reuse(app: &TestApp) -> Value {
    let filter =
        keycard_store::AuditFilter { kind: Some(keycard_store::AuditKind::RefreshTokenReused), ..Default::default() };
    let event = app.store().audit_events(&filter).await.unwrap().remove(0).event;
    serde_json::from_str(event.detail.as_deref().unwrap()).unwrap()
}

#[tokio::test]
async fn a_race_and_a_theft_are_told_apart_and_both_end_the_session() {
    let app = spawn_app_with(|s| s.trusted_proxies = IpList::new(["127.0.0.1".parse().unwrap()])).await;

    // Two tabs of one browser refresh with the same token at once: one wins, the other is reuse.
    let (_, tokens) = app.user().await;
    let token = tokens.refresh_token.clone().unwrap();
    let (a, b) = tokio::join!(
        refresh_from(&app, &token, "198.51.100.7", "Firefox/140"),
        refresh_from(&app, &token, "198.51.100.7", "Firefox/140")
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
    let race = last_reuse(&app).await;
    assert_eq!(race["verdict"], "race", "{race}");
    assert_eq!(race["seconds_after_rotation"], 0, "{race}");
    assert_error(app.get_authed("/auth/me", &tokens.access_token).await, 401, "invalid_token").await;

    // A copy of a rotated token replayed an hour later from elsewhere.
    let (_, tokens) = app.user().await;
    let stolen = tokens.refresh_token.clone().unwrap();
    assert_eq!(refresh_from(&app, &stolen, "198.51.100.7", "Firefox/140").await.status(), StatusCode::OK);
    app.advance(3600.0);
    let replay = refresh_from(&app, &stolen, "203.0.113.66", "python-requests/2.32").await;
    assert_error(replay, 401, "refresh_token_reused").await;
    let theft = last_reuse(&app).await;
    assert_eq!(theft["verdict"], "theft_suspected", "{theft}");
    assert_eq!(
        (theft["rotation"]["ip"].as_str(), theft["replay"]["ip"].as_str(), theft["seconds_after_rotation"].as_i64()),
        (Some("198.51.100.7"), Some("203.0.113.66"), Some(3600)),
        "{theft}"
    );
    assert_eq!(theft["replay"]["user_agent"], "python-requests/2.32");
    assert_error(app.get_authed("/auth/me", &tokens.access_token).await, 401, "invalid_token").await;
}
