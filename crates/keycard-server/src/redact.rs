//! Redaction of secrets in anything that may be logged: refresh tokens (`kcrt_…`) and
//! anything shaped like a JWT are replaced by `[redacted]`.

/// `text` with every `kcrt_…` token and every JWT-looking `xxx.yyy.zzz` (base64url parts,
/// the first starting `eyJ`) replaced by `[redacted]`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest.find(|c: char| is_token_char(c)).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        let word = &rest[..end];
        if looks_secret(word) {
            out.push_str("[redacted]");
        } else {
            out.push_str(word);
        }
        rest = &rest[end..];
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

fn looks_secret(word: &str) -> bool {
    if word.contains("kcrt_") {
        return true;
    }
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() >= 3 && parts[0].starts_with("eyJ") && parts[1].len() >= 4
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn tokens_are_redacted_and_prose_kept() {
        let text = "refresh kcrt_abcDEF-123_xyz failed; bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2ln end. v1.2.3";
        let clean = redact(text);
        assert!(!clean.contains("kcrt_abc"), "{clean}");
        assert!(!clean.contains("eyJzdWIi"), "{clean}");
        assert!(clean.contains("failed; bearer [redacted] end. v1.2.3"), "{clean}");
    }
}
