//! Remote signing (`signing_backend = "transit"`): OpenBao/Vault Transit holds the private key
//! (`vault_signing_key`) and signs every access token; keycard holds only the public halves of
//! the key's versions, read from `GET /v1/<mount>/keys/<name>`.
//!
//! - The kid of a version is the RFC 7638 thumbprint of its public JWK, so every instance (and
//!   anyone holding the public key) names it the same way without talking.
//! - The newest version signs. An older version stays published (JWKS, and keycard's own
//!   validation) for the overlap window after the next newer version was created, the same rule
//!   as `keycard keys rotate` (access-token lifetime + leeway + two reload intervals). A version
//!   below the key's `min_decryption_version` is not returned by Transit and leaves at once:
//!   that is retirement, as `keycard keys retire`.
//! - Signing sends the JWS signing input (`base64url(header).base64url(payload)`) to
//!   `POST /v1/<mount>/sign/<name>` with the version that signs, SHA-256 and PKCS#1 v1.5 for RSA
//!   and the `jws` marshaling (raw `r || s`) for ECDSA; the signature is checked against the
//!   version's public key before the token is handed out.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keycard_core::claims::AccessClaims;
use keycard_core::keys::{Jwk, JwkSet, KeyAlg, KeySource, PublicKeys, VerifyingKey};
use serde::Deserialize;
use serde_json::json;

use crate::keys::KeyStatus;
use crate::settings::{Settings, SigningBackend};
use crate::vault::{Transit, VaultConfig, VaultError};

/// How long one signing request may take: a login or refresh waits at most this long for
/// Transit before answering 503.
pub const SIGN_TIMEOUT: Duration = Duration::from_secs(3);

/// The Transit client and the name of the key that signs.
#[derive(Debug)]
pub struct TransitSigner {
    transit: Transit,
    key: String,
}

/// One version of the Transit key, in force (signing or inside its overlap window).
#[derive(Debug, Clone)]
struct Version {
    number: u32,
    verifying: VerifyingKey,
}

/// The version that signs, with the header of every token it signs encoded once.
#[derive(Debug, Clone)]
struct Active {
    version: Version,
    /// `base64url({"typ":"at+jwt","alg":…,"kid":…})`.
    header_b64: String,
}

/// The keys of a Transit signing key in force: the public keys that verify (and are published),
/// and the version that signs.
#[derive(Debug, Clone)]
pub struct TransitRing {
    keys: PublicKeys,
    jwks: JwkSet,
    active: Active,
}

/// What `keycard keys list` shows of a Transit key version.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TransitKeyStatus {
    /// The Transit key version.
    pub version: u32,
    /// Kid, algorithm, creation, state (`active`, `overlap`, `expired`) and end of publication.
    #[serde(flatten)]
    pub status: KeyStatus,
}

#[derive(Deserialize)]
struct DataAnswer<T> {
    data: T,
}

#[derive(Deserialize)]
struct KeyAnswer {
    #[serde(rename = "type")]
    key_type: String,
    /// Version → details; for signing keys an object with `public_key` and `creation_time`.
    keys: BTreeMap<String, serde_json::Value>,
    latest_version: u32,
    #[serde(default)]
    min_decryption_version: u32,
}

#[derive(Deserialize)]
struct SignAnswer {
    signature: String,
}

impl TransitSigner {
    /// The signer `signing_backend = "transit"` asks for (logged in), or `None` for local signing.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Option<Self>> {
        if settings.signing_backend != SigningBackend::Transit {
            return Ok(None);
        }
        let key = settings
            .vault_signing_key
            .clone()
            .ok_or_else(|| anyhow::anyhow!("signing_backend = \"transit\" needs vault_signing_key"))?;
        let config = VaultConfig::from_settings(settings)?
            .ok_or_else(|| anyhow::anyhow!("signing_backend = \"transit\" needs vault_addr"))?;
        let transit = Transit::connect_with_timeout(&config, SIGN_TIMEOUT).await?;
        Ok(Some(Self { transit, key }))
    }

    /// The Transit key's name.
    pub fn key_name(&self) -> &str {
        &self.key
    }

    /// Reads the key's versions and builds the ring in force at `now`: the newest version signs,
    /// older ones verify until `overlap` seconds after their successor was created.
    pub async fn ring(&self, now: i64, overlap: i64) -> Result<TransitRing, VaultError> {
        let (alg, versions) = self.versions().await?;
        TransitRing::build(&self.key, alg, versions, now, overlap)
    }

    /// Every version Transit still has (at or above `min_decryption_version`), oldest first, with
    /// its state at `now`.
    pub async fn statuses(&self, now: i64, overlap: i64) -> Result<Vec<TransitKeyStatus>, VaultError> {
        let (alg, versions) = self.versions().await?;
        Ok(statuses(alg, &versions, now, overlap))
    }

    async fn versions(&self) -> Result<(KeyAlg, Vec<(u32, i64, VerifyingKey, Jwk)>), VaultError> {
        let what = format!("reading Transit key {:?}", self.key);
        let path = format!("{}/keys/{}", self.transit.mount(), self.key);
        let answer: DataAnswer<KeyAnswer> = self.transit.get_relogin(&path, &what).await.map_err(|e| match e {
            VaultError::Refused { status: 404, .. } => VaultError::Local(format!(
                "Transit key {:?} does not exist on mount {:?} (vault_signing_key, vault_transit_mount)",
                self.key,
                self.transit.mount()
            )),
            other => other,
        })?;
        let key = answer.data;
        let alg = alg_of(&key.key_type).ok_or_else(|| {
            VaultError::Local(format!(
                "Transit key {:?} is of type {}: signing access tokens needs ed25519, ecdsa-p256 or rsa-2048 \
                 (or rsa-3072, rsa-4096)",
                self.key, key.key_type
            ))
        })?;
        let mut versions = Vec::with_capacity(key.keys.len());
        for (number, details) in &key.keys {
            let bad = |why: &str| VaultError::Local(format!("Transit key {:?} version {number}: {why}", self.key));
            let number: u32 = number.parse().map_err(|_| bad("not a version number"))?;
            if number < key.min_decryption_version {
                continue;
            }
            let public = details.get("public_key").and_then(|v| v.as_str()).ok_or_else(|| bad("no public key"))?;
            let (verifying, jwk) = public_key(alg, public).ok_or_else(|| bad("a public key keycard cannot read"))?;
            let created_at = details
                .get("creation_time")
                .and_then(|v| v.as_str())
                .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
                .map(|t| t.unix_timestamp())
                .ok_or_else(|| bad("no readable creation_time"))?;
            versions.push((number, created_at, verifying, jwk));
        }
        versions.sort_by_key(|(number, ..)| *number);
        if versions.last().map(|(number, ..)| *number) != Some(key.latest_version) {
            return Err(VaultError::Local(format!(
                "Transit key {:?}: its latest version {} is not among its readable versions",
                self.key, key.latest_version
            )));
        }
        Ok((alg, versions))
    }

    /// Signs `claims` with the ring's signing version: the JWS compact form, its signature made
    /// by Transit and checked against the version's public key.
    pub async fn sign(&self, ring: &TransitRing, claims: &AccessClaims) -> Result<String, VaultError> {
        let payload = serde_json::to_vec(claims).map_err(|e| VaultError::Local(format!("encoding claims: {e}")))?;
        let mut token = String::with_capacity(ring.active.header_b64.len() + payload.len() * 4 / 3 + 400);
        token.push_str(&ring.active.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let version = &ring.active.version;
        let signature = self.sign_bytes(version.number, version.verifying.alg(), token.as_bytes()).await?;
        let signature = URL_SAFE_NO_PAD.encode(signature);
        if !version.verifying.verify(&signature, token.as_bytes()) {
            return Err(VaultError::Local(format!(
                "Transit key {:?} version {} returned a signature its public key does not verify",
                self.key, version.number
            )));
        }
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }

    /// Signs a fixed probe (not a token: it has no `.`) with the signing version and checks the
    /// signature: at start-up, so that a policy without `sign`, or a key keycard cannot use, is
    /// a clear error then rather than 503s later.
    pub async fn probe(&self, ring: &TransitRing) -> Result<(), VaultError> {
        const PROBE: &[u8] = b"keycard start-up probe";
        let version = &ring.active.version;
        let signature = self.sign_bytes(version.number, version.verifying.alg(), PROBE).await?;
        if version.verifying.verify(&URL_SAFE_NO_PAD.encode(signature), PROBE) {
            Ok(())
        } else {
            Err(VaultError::Local(format!(
                "Transit key {:?} version {} returned a signature its public key does not verify",
                self.key, version.number
            )))
        }
    }

    /// The raw signature of `input` by `version`.
    async fn sign_bytes(&self, version: u32, alg: KeyAlg, input: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut body = json!({"input": STANDARD.encode(input), "key_version": version});
        match alg {
            KeyAlg::Es256 => {
                body["hash_algorithm"] = "sha2-256".into();
                // JOSE's ES256 signature is r || s (RFC 7518 §3.4), not ASN.1.
                body["marshaling_algorithm"] = "jws".into();
            }
            KeyAlg::Rs256 => {
                body["hash_algorithm"] = "sha2-256".into();
                // RS256 is RSASSA-PKCS1-v1_5; Transit's default for RSA is PSS.
                body["signature_algorithm"] = "pkcs1v15".into();
            }
            KeyAlg::EdDsa | KeyAlg::Hs256 => {}
        }
        let what = format!("signing with Transit key {:?}", self.key);
        let path = format!("{}/sign/{}", self.transit.mount(), self.key);
        let answer: DataAnswer<SignAnswer> = self.transit.post_relogin(&path, &body, &what).await?;
        // `vault:v<N>:<signature>`: base64url for the jws marshaling, standard base64 otherwise.
        let encoded = answer.data.signature.rsplit(':').next().unwrap_or_default();
        URL_SAFE_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(encoded))
            .map_err(|_| VaultError::Local(format!("{what}: the signature is not base64")))
    }
}

impl TransitRing {
    fn build(
        key: &str,
        alg: KeyAlg,
        versions: Vec<(u32, i64, VerifyingKey, Jwk)>,
        now: i64,
        overlap: i64,
    ) -> Result<Self, VaultError> {
        let in_force = |i: usize| match versions.get(i + 1) {
            None => true,
            Some((_, successor_created, ..)) => now < successor_created.saturating_add(overlap),
        };
        let mut keys = Vec::new();
        let mut jwks = Vec::new();
        for (i, (_, _, verifying, jwk)) in versions.iter().enumerate() {
            if in_force(i) {
                keys.push(verifying.clone());
                jwks.push(jwk.clone());
            }
        }
        let (number, _, verifying, _) =
            versions.last().ok_or_else(|| VaultError::Local(format!("Transit key {key:?} has no version")))?;
        let header_b64 = header(alg, verifying.kid())?;
        jwks.sort_by(|a, b| a.kid.cmp(&b.kid));
        Ok(Self {
            keys: PublicKeys::new(keys),
            jwks: JwkSet { keys: jwks },
            active: Active { version: Version { number: *number, verifying: verifying.clone() }, header_b64 },
        })
    }

    /// The kid of the version that signs.
    pub fn active_kid(&self) -> &str {
        self.active.version.verifying.kid()
    }

    /// The Transit version that signs.
    pub fn active_version(&self) -> u32 {
        self.active.version.number
    }

    /// The algorithm of the key.
    pub fn alg(&self) -> KeyAlg {
        self.active.version.verifying.alg()
    }

    /// The public keys in force, for JWKS, sorted by kid.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// Every kid in force.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.kids()
    }
}

impl KeySource for TransitRing {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }
}

/// The states of `versions` (oldest first) at `now`, by the overlap rule of [`TransitRing`].
fn statuses(alg: KeyAlg, versions: &[(u32, i64, VerifyingKey, Jwk)], now: i64, overlap: i64) -> Vec<TransitKeyStatus> {
    versions
        .iter()
        .enumerate()
        .map(|(i, (number, created_at, verifying, _))| {
            let (state, published_until) = match versions.get(i + 1) {
                None => ("active", None),
                Some((_, successor_created, ..)) => {
                    let until = successor_created.saturating_add(overlap);
                    (if now < until { "overlap" } else { "expired" }, Some(until))
                }
            };
            TransitKeyStatus {
                version: *number,
                status: KeyStatus {
                    kid: verifying.kid().to_owned(),
                    alg: alg.as_str().to_owned(),
                    created_at: *created_at,
                    state,
                    published_until,
                },
            }
        })
        .collect()
}

/// The JOSE algorithm of a Transit key type.
fn alg_of(key_type: &str) -> Option<KeyAlg> {
    match key_type {
        "ed25519" => Some(KeyAlg::EdDsa),
        "ecdsa-p256" => Some(KeyAlg::Es256),
        "rsa-2048" | "rsa-3072" | "rsa-4096" => Some(KeyAlg::Rs256),
        _ => None,
    }
}

/// The verifying key of a Transit public key (raw base64 for ed25519, a SubjectPublicKeyInfo PEM
/// for ECDSA and RSA) and its JWK, its kid the RFC 7638 thumbprint of the JWK.
fn public_key(alg: KeyAlg, text: &str) -> Option<(VerifyingKey, Jwk)> {
    let mut jwk = Jwk {
        kty: alg.kty().into(),
        crv: None,
        x: None,
        y: None,
        n: None,
        e: None,
        kid: String::new(),
        alg: alg.as_str().into(),
        use_: "sig".into(),
    };
    match alg {
        KeyAlg::EdDsa => {
            let raw = STANDARD.decode(text.trim()).ok().filter(|raw| raw.len() == 32)?;
            jwk.crv = Some("Ed25519".into());
            jwk.x = Some(URL_SAFE_NO_PAD.encode(raw));
        }
        KeyAlg::Es256 => {
            let point = spki_bit_string(&pem_body(text)?)?;
            let xy = point.strip_prefix(&[0x04]).filter(|xy| xy.len() == 64)?;
            jwk.crv = Some("P-256".into());
            jwk.x = Some(URL_SAFE_NO_PAD.encode(&xy[..32]));
            jwk.y = Some(URL_SAFE_NO_PAD.encode(&xy[32..]));
        }
        KeyAlg::Rs256 => {
            // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
            let pkcs1 = spki_bit_string(&pem_body(text)?)?;
            let (tag, body, _) = der(&pkcs1)?;
            if tag != 0x30 {
                return None;
            }
            let (n_tag, n, rest) = der(body)?;
            let (e_tag, e, _) = der(rest)?;
            if n_tag != 0x02 || e_tag != 0x02 {
                return None;
            }
            let unsigned = |int: &[u8]| -> Vec<u8> { int.iter().copied().skip_while(|b| *b == 0).collect() };
            jwk.n = Some(URL_SAFE_NO_PAD.encode(unsigned(n)));
            jwk.e = Some(URL_SAFE_NO_PAD.encode(unsigned(e)));
        }
        KeyAlg::Hs256 => return None,
    }
    jwk.kid = jwk.thumbprint()?;
    Some((VerifyingKey::from_jwk(&jwk).ok()?, jwk))
}

/// The base64 body of a PEM document, decoded.
fn pem_body(text: &str) -> Option<Vec<u8>> {
    let body: String = text.lines().map(str::trim).filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).ok()
}

/// The key bits of a SubjectPublicKeyInfo: `SEQUENCE { SEQUENCE { algorithm }, BIT STRING }`.
fn spki_bit_string(spki: &[u8]) -> Option<Vec<u8>> {
    let (tag, body, _) = der(spki)?;
    if tag != 0x30 {
        return None;
    }
    let (alg_tag, _, rest) = der(body)?;
    let (bits_tag, bits, _) = der(rest)?;
    if alg_tag != 0x30 || bits_tag != 0x03 {
        return None;
    }
    // The first byte counts unused bits: 0 for a key.
    bits.strip_prefix(&[0]).map(<[u8]>::to_vec)
}

/// One DER element: its tag, its contents and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        (bytes.iter().fold(0usize, |len, b| (len << 8) | usize::from(*b)), rest)
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The base64url JOSE header of the tokens `kid` signs, as the local keys write it.
fn header(alg: KeyAlg, kid: &str) -> Result<String, VaultError> {
    let mut header = jsonwebtoken::Header::new(alg.algorithm());
    header.typ = Some(keycard_core::ACCESS_TOKEN_TYP.to_owned());
    header.kid = Some(kid.to_owned());
    let json = serde_json::to_vec(&header).map_err(|e| VaultError::Local(format!("encoding the header: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    // What OpenBao 2.7.2 answered for an ecdsa-p256 key's public key.
    const P256_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEVpY+qpjwuHAXm13/QfgBQ+mBhiaG\n\
                            6WlDVE5roOmYAFeuSKNa8VUUeDzEvR5/cEKjUU3f+kQgQM8/OYOZg55FMw==\n-----END PUBLIC KEY-----\n";

    #[test]
    fn transit_public_keys_become_jwks_named_by_their_thumbprint() {
        let ed = public_key(KeyAlg::EdDsa, "n3FYKLQqvuIhzTLcq4cjxbvNTy1IzbOYV4IbFR8jhGY=").unwrap();
        let es = public_key(KeyAlg::Es256, P256_PEM).unwrap();
        for (key, jwk) in [&ed, &es] {
            assert_eq!(jwk.thumbprint().as_deref(), Some(key.kid()));
            assert_eq!(VerifyingKey::from_jwk(jwk).unwrap().kid(), key.kid());
        }
        assert!(public_key(KeyAlg::EdDsa, "AAAA").is_none());
        assert!(public_key(KeyAlg::Es256, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_none());
        assert!(public_key(KeyAlg::Rs256, P256_PEM).is_none(), "an EC key is not an RSA key");
    }

    #[test]
    fn der_lengths_past_the_input_are_refused() {
        assert!(der(&[0x30, 0x05, 1, 2]).is_none());
        assert!(der(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert_eq!(der(&[0x02, 0x01, 7, 9]), Some((0x02, &[7u8][..], &[9u8][..])));
    }

    #[test]
    fn older_versions_stay_in_force_for_the_overlap_after_their_successor() {
        let (v1, j1) = public_key(KeyAlg::EdDsa, "n3FYKLQqvuIhzTLcq4cjxbvNTy1IzbOYV4IbFR8jhGY=").unwrap();
        let (v2, j2) = public_key(KeyAlg::EdDsa, "qwAemE0WUl8fGU9VTEddXQWWaUd67E9aF2l1nenOC7M=").unwrap();
        let versions = vec![(1, 100, v1.clone(), j1), (2, 1_000, v2.clone(), j2)];
        let ring = TransitRing::build("k", KeyAlg::EdDsa, versions.clone(), 1_500, 600).unwrap();
        assert_eq!((ring.active_version(), ring.active_kid()), (2, v2.kid()));
        assert!(ring.verifying_key(v1.kid()).is_some());
        assert_eq!(ring.jwks().keys.len(), 2);
        let later = TransitRing::build("k", KeyAlg::EdDsa, versions.clone(), 1_600, 600).unwrap();
        assert!(later.verifying_key(v1.kid()).is_none());
        assert_eq!(later.jwks().keys.len(), 1);
        let states: Vec<&str> = statuses(KeyAlg::EdDsa, &versions, 1_500, 600).iter().map(|s| s.status.state).collect();
        assert_eq!(states, ["overlap", "active"]);
    }
}
