//! `keycard token inspect <jwt>`: decodes a token locally, shows its header and claims with times
//! in human form, and verifies it against a JWKS URL or a key file with keycard's own validator.
//!
//! The token never leaves this process: the JWKS is fetched with a plain GET that carries no
//! token, and nothing else is sent anywhere.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keycard_core::keys::{JwkSet, KeyAlg, PublicKeys, VerifyingKey};
use keycard_core::validate::Validator;
use serde_json::Value;

/// Local token tools.
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Decode a JWT, show header and claims with human times, and optionally verify it.
    Inspect(InspectArgs),
}

/// What to inspect and what to verify against.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The token; `-` reads it from standard input (keeps it out of shell history).
    pub token: String,
    /// Verify against the JWK set at this URL (fetched without the token).
    #[arg(long, conflicts_with = "key")]
    pub jwks: Option<String>,
    /// Verify against a key file: a public-key PEM, a JWK or JWK set (JSON), or an HS256 secret
    /// (the file's bytes, a trailing newline removed).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Expected issuer (default: the token's own `iss`, which is then not really checked).
    #[arg(long)]
    pub issuer: Option<String>,
    /// Expected audience (default: the token's own `aud`).
    #[arg(long)]
    pub audience: Option<String>,
    /// Clock leeway in seconds for exp, nbf and iat.
    #[arg(long, default_value_t = 30)]
    pub leeway: u64,
}

/// Runs a token subcommand.
pub async fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Inspect(args) => inspect(args).await,
    }
}

async fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let token = read_token(&args.token)?;
    let (header, claims) = decode(&token)?;
    let now = keycard_core::now_unix();
    println!("Header");
    print_object(&header, now);
    println!("Claims");
    print_object(&claims, now);
    for note in notes(&header, &claims, now) {
        println!("  note: {note}");
    }
    let keys = match (&args.jwks, &args.key) {
        (Some(url), _) => Some(keys_from_jwks_url(url).await?),
        (None, Some(path)) => Some(keys_from_file(path, header["kid"].as_str())?),
        (None, None) => None,
    };
    let Some(keys) = keys else {
        println!("Signature: not verified (give --jwks URL or --key FILE)");
        return Ok(());
    };
    let issuer = args.issuer.clone().or_else(|| claims["iss"].as_str().map(str::to_owned)).unwrap_or_default();
    let audience = args.audience.clone().or_else(|| first_audience(&claims["aud"])).unwrap_or_default();
    let validator = Validator::new(&issuer, &audience, args.leeway);
    match validator.validate(&keys, &token, now) {
        Ok(_) => {
            let kid = header["kid"].as_str().unwrap_or("?");
            let alg = keys.get(kid).map_or("?", |k| k.alg().as_str());
            println!("Verified: valid — signature by key {kid} ({alg}), every claim of the checklist passes");
            if args.issuer.is_none() || args.audience.is_none() {
                println!("  note: iss/aud were compared with the token's own values; give --issuer and --audience");
            }
            Ok(())
        }
        Err(e) => {
            println!("Signature: {}", signature_only(&keys, &token, header["kid"].as_str()));
            anyhow::bail!("the token is NOT valid: {e}")
        }
    }
}

/// Whether the signature alone verifies, with the key's own algorithm: the key named by `kid`,
/// or the only key given when the token names none. Tells "forged" from "valid but refused".
fn signature_only(keys: &PublicKeys, token: &str, kid: Option<&str>) -> String {
    let only = || (keys.len() == 1).then(|| keys.kids().next()).flatten();
    let Some(key) = kid.or_else(only).and_then(|k| keys.get(k)) else {
        return "not checked: no key matches the token's kid".into();
    };
    let Some((message, signature)) = token.rsplit_once('.') else { return "malformed".into() };
    if key.verify(signature, message.as_bytes()) {
        format!("valid with key {} ({}), but the checklist refuses the token", key.kid(), key.alg())
    } else {
        format!("INVALID for key {} ({})", key.kid(), key.alg())
    }
}

fn read_token(arg: &str) -> anyhow::Result<String> {
    let raw = if arg == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the token from stdin")?;
        text
    } else {
        arg.to_owned()
    };
    let raw = raw.trim();
    Ok(raw.strip_prefix("Bearer ").unwrap_or(raw).trim().to_owned())
}

/// Header and claims as JSON; refuses anything that is not a three-part JWS.
fn decode(token: &str) -> anyhow::Result<(Value, Value)> {
    let parts: Vec<&str> = token.split('.').collect();
    anyhow::ensure!(parts.len() == 3, "not a JWT: expected 3 dot-separated parts, found {}", parts.len());
    let part = |i: usize, what: &str| -> anyhow::Result<Value> {
        let bytes = URL_SAFE_NO_PAD.decode(parts[i]).with_context(|| format!("the {what} is not base64url"))?;
        serde_json::from_slice(&bytes).with_context(|| format!("the {what} is not JSON"))
    };
    Ok((part(0, "header")?, part(1, "payload")?))
}

fn print_object(value: &Value, now: i64) {
    let Some(map) = value.as_object() else {
        println!("  {value}");
        return;
    };
    for (key, v) in map {
        let shown = match (key.as_str(), v.as_i64()) {
            ("exp" | "iat" | "nbf" | "auth_time", Some(t)) => format!("{t}  {}  ({})", utc(t), relative(t, now)),
            _ => match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        };
        println!("  {key:<5} {shown}");
    }
}

fn utc(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "out of range".into())
}

/// `in 14 min`, `3 h ago`, `now`.
fn relative(t: i64, now: i64) -> String {
    let d = t.saturating_sub(now);
    let a = d.unsigned_abs();
    let amount = match a {
        0..=4 => return "now".into(),
        5..=119 => format!("{a} s"),
        120..=7_199 => format!("{} min", a / 60),
        7_200..=172_799 => format!("{} h", a / 3_600),
        _ => format!("{} days", a / 86_400),
    };
    if d > 0 { format!("in {amount}") } else { format!("{amount} ago") }
}

fn first_audience(aud: &Value) -> Option<String> {
    match aud {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => list.iter().find_map(|a| a.as_str()).map(str::to_owned),
        _ => None,
    }
}

/// What a reader should notice without verifying anything.
fn notes(header: &Value, claims: &Value, now: i64) -> Vec<String> {
    let mut notes = Vec::new();
    match header["alg"].as_str() {
        Some(alg) if alg.eq_ignore_ascii_case("none") => notes.push("alg none: this token is unsigned".into()),
        Some(alg) if KeyAlg::parse(alg).is_none() => notes.push(format!("alg {alg} is not one keycard verifies")),
        None => notes.push("no alg in the header".into()),
        _ => {}
    }
    if !header["typ"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"))
    {
        notes.push("typ is not at+jwt: keycard does not take it for an access token".into());
    }
    match claims["exp"].as_i64() {
        None => notes.push("no exp: the token never expires".into()),
        Some(exp) if exp <= now => notes.push(format!("expired {}", relative(exp, now))),
        Some(exp) => {
            if let Some(iat) = claims["iat"].as_i64()
                && exp - iat > 3_600
            {
                notes.push(format!(
                    "lives {} from issue: access tokens should be short-lived",
                    relative(exp, iat).trim_start_matches("in ")
                ));
            }
        }
    }
    for claim in ["iss", "aud", "sub", "sid", "jti", "iat", "nbf"] {
        if claims.get(claim).is_none() {
            notes.push(format!("no {claim} claim"));
        }
    }
    notes
}

async fn keys_from_jwks_url(url: &str) -> anyhow::Result<PublicKeys> {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(15)).build()?;
    let resp = client.get(url).send().await.with_context(|| format!("fetching {url}"))?;
    anyhow::ensure!(resp.status().is_success(), "{url} answered {}", resp.status());
    let set: JwkSet = resp.json().await.with_context(|| format!("{url} is not a JWK set"))?;
    Ok(public_keys(&set))
}

fn public_keys(set: &JwkSet) -> PublicKeys {
    let (keys, skipped) = PublicKeys::from_jwk_set(set);
    for e in skipped {
        println!("  note: a key of the set was left out: {e}");
    }
    keys
}

/// A key file: PEM public key (its type gives the algorithm), JWK or JWK set, or an HS256 secret.
/// PEM keys and secrets carry no kid: they take the token's, so the lookup finds them.
fn keys_from_file(path: &PathBuf, token_kid: Option<&str>) -> anyhow::Result<PublicKeys> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let kid = token_kid.unwrap_or("key-file");
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        let key = [KeyAlg::EdDsa, KeyAlg::Es256, KeyAlg::Rs256]
            .into_iter()
            .find_map(|alg| VerifyingKey::from_public_pem(kid, alg, &bytes).ok())
            .context("the PEM is not an Ed25519, P-256 or RSA public key")?;
        return Ok(PublicKeys::new([key]));
    }
    if text.contains("PRIVATE KEY-----") {
        anyhow::bail!("{} holds a private key; give the public key (openssl pkey -pubout)", path.display());
    }
    if let Ok(json) = serde_json::from_slice::<Value>(&bytes) {
        let set: JwkSet = if json.get("keys").is_some() {
            serde_json::from_value(json)?
        } else {
            JwkSet { keys: vec![serde_json::from_value(json).context("not a JWK")?] }
        };
        return Ok(public_keys(&set));
    }
    let secret = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let secret = secret.strip_suffix(b"\r").unwrap_or(secret);
    Ok(PublicKeys::new([VerifyingKey::hs256(kid, secret)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_like_people_say_them() {
        let now = 1_000_000;
        for (t, shown) in [
            (now + 14 * 60, "in 14 min"),
            (now - 3 * 3600, "3 h ago"),
            (now + 2, "now"),
            (now - 30, "30 s ago"),
            (now + 9 * 86_400, "in 9 days"),
        ] {
            assert_eq!(relative(t, now), shown);
        }
    }

    #[test]
    fn anything_but_a_three_part_jws_is_refused() {
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.sig", "e30.!!.sig"] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        assert!(decode("e30.e30.").is_ok());
    }

    #[test]
    fn a_bearer_prefix_and_whitespace_are_tolerated() {
        assert_eq!(read_token("  Bearer e30.e30.x \n").unwrap(), "e30.e30.x");
    }
}
