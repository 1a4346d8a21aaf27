//! The encodings of a published public key that a naive verifier might hold, and so use as
//! the HMAC secret when a token says HS256: the raw key, SubjectPublicKeyInfo DER, PEM, and the
//! PKCS#1 form for RSA. Just enough DER to write them from a JWK; nothing here parses DER.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

/// A public-key encoding: its name, SPKI (or raw) bytes, and the PKCS#1 form for RSA.
pub(super) type KeyEncoding = (&'static str, Vec<u8>, Option<Vec<u8>>);

/// SubjectPublicKeyInfo DER of a JWK (and the raw key for OKP, the PKCS#1 key for RSA), as a
/// naive verifier would hold it in a PEM file. Empty for an unknown `kty` or a missing or
/// undecodable field. The EC prefix is P-256's (ES256): a key on another curve gets a wrong SPKI.
pub(super) fn public_key_ders(jwk: &Value) -> Vec<KeyEncoding> {
    let field = |k: &str| jwk[k].as_str().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    match jwk["kty"].as_str() {
        Some("OKP") => field("x").map(|x| {
            let der = [&[0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00][..], &x].concat();
            vec![("raw public key", x, None), ("SPKI DER", der, None)]
        }),
        Some("EC") => field("x").zip(field("y")).map(|(x, y)| {
            const PREFIX: [u8; 27] = [
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
                0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
            ];
            let der = [&PREFIX[..], &x, &y].concat();
            vec![("SPKI DER", der, None)]
        }),
        Some("RSA") => field("n").zip(field("e")).map(|(n, e)| {
            let pkcs1 = der(0x30, &[der_uint(&n), der_uint(&e)].concat());
            let algorithm = hex_bytes("300d06092a864886f70d0101010500");
            let bits = der(0x03, &[&[0u8][..], &pkcs1].concat());
            let spki = der(0x30, &[algorithm, bits].concat());
            vec![("SPKI DER", spki, Some(pkcs1))]
        }),
        _ => None,
    }
    .unwrap_or_default()
}

/// One DER element: tag, definite length (short or long form), content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER of an unsigned big-endian number: leading zeros dropped, one zero added when
/// the top bit is set (or the number would read as negative).
fn der_uint(be: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    let padded = if trimmed.first().is_some_and(|b| b & 0x80 != 0) { [&[0u8][..], &trimmed].concat() } else { trimmed };
    der(0x02, &padded)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
}

/// PEM as OpenSSL writes it: base64 in 64-character lines, ending with a newline.
pub(super) fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // Expected encodings below come from outside this code: RFC 8410 §10.1 for Ed25519, and
    // OpenSSL 3.0 (`openssl ec|rsa -pubout -outform DER`, `-RSAPublicKey_out`) for the P-256 and
    // RSA-1024 keys whose JWK coordinates are given.

    const RFC8410_SPKI: &str = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";
    const EC_X: &str = "nJJNZR4v4p7lCdXQ6YIv4U1wsU39dvdvxrzYFoYHKHc";
    const EC_Y: &str = "HnhjBTz24LxvglHEcWMRI4LW4VmFsycK0C8rLp901xo";
    const EC_SPKI: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEnJJNZR4v4p7lCdXQ6YIv4U1wsU39dvdvxrzYFoYHKHceeGMFPPbgvG+CUcRxYxEjgtbhWYWzJwrQLysun3TXGg==";
    const RSA_N: &str = "0gOSSdLBnpjN_3yHzGVNGYFLAY6Uac7apa9mmA1nJQGrNLUp2MRdGtrOpqLrIYR-x_rx27NPVOPTA7Y83ytAvUsXGQMzIoDjO2HavRLMZsMBLNqx0hSqEyfPSAkhg96heLizSzALRhujmq_xzVI7DphXzj2P_-sl7geRoSI-JuE";
    const RSA_SPKI_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDSA5JJ0sGemM3/fIfMZU0ZgUsB
jpRpztqlr2aYDWclAas0tSnYxF0a2s6moushhH7H+vHbs09U49MDtjzfK0C9SxcZ
AzMigOM7Ydq9EsxmwwEs2rHSFKoTJ89ICSGD3qF4uLNLMAtGG6Oar/HNUjsOmFfO
PY//6yXuB5GhIj4m4QIDAQAB
-----END PUBLIC KEY-----
";
    const RSA_PKCS1_PEM: &str = "-----BEGIN RSA PUBLIC KEY-----
MIGJAoGBANIDkknSwZ6Yzf98h8xlTRmBSwGOlGnO2qWvZpgNZyUBqzS1KdjEXRra
zqai6yGEfsf68duzT1Tj0wO2PN8rQL1LFxkDMyKA4zth2r0SzGbDASzasdIUqhMn
z0gJIYPeoXi4s0swC0Ybo5qv8c1SOw6YV849j//rJe4HkaEiPibhAgMBAAE=
-----END RSA PUBLIC KEY-----
";

    #[test]
    fn an_ed25519_jwk_gives_the_raw_key_and_the_rfc_8410_spki() {
        let spki = STANDARD.decode(RFC8410_SPKI).unwrap();
        let x = URL_SAFE_NO_PAD.encode(&spki[12..]);
        let ders = public_key_ders(&json!({"kty": "OKP", "crv": "Ed25519", "x": x}));
        assert_eq!(ders.len(), 2);
        assert_eq!((ders[0].0, ders[0].1.as_slice(), &ders[0].2), ("raw public key", &spki[12..], &None));
        assert_eq!((ders[1].0, &ders[1].1, &ders[1].2), ("SPKI DER", &spki, &None));
        assert_eq!(
            pem("PUBLIC KEY", &ders[1].1),
            format!("-----BEGIN PUBLIC KEY-----\n{RFC8410_SPKI}\n-----END PUBLIC KEY-----\n")
        );
    }

    #[test]
    fn a_p256_jwk_gives_the_spki_openssl_writes() {
        let ders = public_key_ders(&json!({"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y}));
        assert_eq!(ders.len(), 1);
        assert_eq!(ders[0].0, "SPKI DER");
        assert_eq!(STANDARD.encode(&ders[0].1), EC_SPKI);
        assert_eq!(ders[0].2, None);
    }

    #[test]
    fn an_rsa_jwk_gives_the_spki_and_pkcs1_keys_openssl_writes() {
        let ders = public_key_ders(&json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "r1"}));
        assert_eq!(ders.len(), 1);
        let (name, spki, pkcs1) = &ders[0];
        assert_eq!(*name, "SPKI DER");
        assert_eq!(pem("PUBLIC KEY", spki), RSA_SPKI_PEM);
        assert_eq!(pem("RSA PUBLIC KEY", pkcs1.as_ref().unwrap()), RSA_PKCS1_PEM);
    }

    #[test]
    fn a_jwk_without_its_key_fields_or_of_another_type_gives_nothing() {
        for jwk in [
            json!({"kty": "OKP"}),
            json!({"kty": "OKP", "x": "not base64url!"}),
            json!({"kty": "EC", "x": EC_X}),
            json!({"kty": "RSA", "n": RSA_N}),
            json!({"kty": "oct", "k": "c2VjcmV0"}),
            json!({"x": EC_X, "y": EC_Y}),
            json!("not an object"),
        ] {
            assert!(public_key_ders(&jwk).is_empty(), "{jwk}");
        }
    }

    #[test]
    fn der_uses_the_short_length_form_below_128_bytes_and_the_long_form_from_there() {
        assert_eq!(der(0x04, &[1, 2, 3]), [0x04, 0x03, 1, 2, 3]);
        assert_eq!(der(0x30, &[]), [0x30, 0x00]);
        assert_eq!(der(0x04, &[7; 127])[..2], [0x04, 0x7f]);
        assert_eq!(der(0x04, &[7; 128])[..3], [0x04, 0x81, 0x80]);
        let long = der(0x03, &[0; 300]);
        assert_eq!(long[..4], [0x03, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 4 + 300);
    }

    #[test]
    fn der_uint_drops_leading_zeros_and_pads_a_set_top_bit() {
        assert_eq!(der_uint(&[0x01, 0x00, 0x01]), [0x02, 0x03, 0x01, 0x00, 0x01]);
        assert_eq!(der_uint(&[0x00, 0x00, 0x7f]), [0x02, 0x01, 0x7f]);
        assert_eq!(der_uint(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_uint(&[0x00, 0xd2, 0x03]), [0x02, 0x03, 0x00, 0xd2, 0x03]);
    }

    #[test]
    fn hex_bytes_reads_pairs_of_hex_digits() {
        assert_eq!(hex_bytes("300d06"), [0x30, 0x0d, 0x06]);
        assert_eq!(hex_bytes("ff00"), [0xff, 0x00]);
        assert_eq!(hex_bytes(""), [0u8; 0]);
    }

    #[test]
    fn pem_wraps_base64_at_64_characters() {
        let text = pem("PUBLIC KEY", &[0xab; 60]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "-----BEGIN PUBLIC KEY-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2], &STANDARD.encode([0xab; 60])[64..]);
        assert_eq!(lines[3], "-----END PUBLIC KEY-----");
        assert!(text.ends_with("-----\n"));
    }
}
