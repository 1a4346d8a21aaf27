//! Redaction of secrets in anything that may be logged: refresh tokens (`kcrt_…`), device
//! tokens (`kcdv_…`) and anything shaped like a JWT are replaced by `[redacted]`.

use std::borrow::Cow;
use std::io::IsTerminal as _;

/// `text` with every `kcrt_…` token and every JWT-looking `xxx.yyy.zzz` (base64url parts,
/// the first starting `eyJ`) replaced by `[redacted]`. Text holding neither `kcrt_` nor `eyJ`
/// (nearly every log line) comes back as it is, borrowed: nothing in it can be redacted.
pub fn redact(text: &str) -> Cow<'_, str> {
    if !text.contains("kcrt_") && !text.contains("kcdv_") && !text.contains("eyJ") {
        return Cow::Borrowed(text);
    }
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
    Cow::Owned(out)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

fn looks_secret(word: &str) -> bool {
    if word.contains("kcrt_") || word.contains("kcdv_") {
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
        let text = "refresh kcrt_abcDEF-123_xyz failed; bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2ln end. v1.2.3 kcdv_QUJD.REVG";
        let clean = redact(text);
        assert!(!clean.contains("kcrt_abc"), "{clean}");
        assert!(!clean.contains("kcdv_QUJD"), "{clean}");
        assert!(!clean.contains("eyJzdWIi"), "{clean}");
        assert!(clean.contains("failed; bearer [redacted] end. v1.2.3"), "{clean}");
    }

    #[test]
    fn text_without_secrets_is_returned_as_is() {
        let text = "audit kind=refresh user_id=4f1c ip=127.0.0.1 v1.2.3 kcrt eyj";
        assert!(matches!(redact(text), std::borrow::Cow::Borrowed(t) if t == text));
        // Either marker alone is enough to look closer.
        assert_eq!(redact("x kcrt_secret y"), "x [redacted] y");
        assert_eq!(redact("x eyJhbGciOi.eyJzdWIiOi.c2ln y"), "x [redacted] y");
        assert_eq!(redact("x eyJ y"), "x eyJ y");
    }
}

/// A log writer that redacts every line before it reaches `inner` (stderr in the binary).
/// `tracing-subscriber`'s fmt layer writes each event with one `write` call, so each event is
/// redacted whole, including error messages that quote a request.
pub struct RedactingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Makes a [`RedactingWriter`] around stderr for each event.
#[derive(Clone, Copy, Default)]
pub struct RedactedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactedStderr {
    type Writer = RedactingWriter<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(std::io::stderr())
    }
}

/// Installs the process's logger (stderr, redacted; `filter` as in `RUST_LOG`) and a panic hook
/// that redacts panic messages too. `json` switches to one JSON object per line.
pub fn init_logging(filter: &str, json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person watching a terminal, not into files and pipes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactedStderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("panic");
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::error!(location = %location, "panic: {}", redact(message));
    }));
}
