//! The messages keycard mails, rendered with minijinja: a subject, a plain-text body and an HTML
//! body for each ([`Template`]). The built-in templates live in `templates/mail/` and are compiled
//! into the binary; the `mail_templates` setting names a folder whose files (same names, e.g.
//! `reset_link.html`) replace them one by one.
//!
//! `.html` templates escape every value (minijinja's auto-escaping by file name); the subject and
//! the text body do not. Undefined variables are errors, and every template is rendered once with
//! sample values when keycard starts, so a broken override stops start-up with the file's name
//! instead of failing when a user needs the message. Should a custom template still fail at send
//! time, the built-in one is used and the failure logged (never the values: they hold links).

use std::path::{Path, PathBuf};

use keycard_store::NewMail;
use minijinja::{Environment, UndefinedBehavior, Value, context};

/// One message keycard sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// The password-reset link (`link`, `valid_for`).
    ResetLink,
    /// "Your password was changed", after a reset.
    PasswordChanged,
    /// The email-verification link (`link`, `valid_for`).
    VerifyEmail,
    /// The address-change confirmation, to the new address (`link`, `valid_for`).
    EmailChangeConfirm,
    /// The address-change notice with the cancel link, to the old address (`link`, `valid_for`,
    /// `new_email`).
    EmailChangeNotice,
}

/// The three parts of a template, as file-name suffixes.
const PARTS: [&str; 3] = ["subject.txt", "txt", "html"];

macro_rules! builtin {
    ($name:literal) => {
        [
            include_str!(concat!("../templates/mail/", $name, ".subject.txt")),
            include_str!(concat!("../templates/mail/", $name, ".txt")),
            include_str!(concat!("../templates/mail/", $name, ".html")),
        ]
    };
}

impl Template {
    /// Every template.
    pub const ALL: [Template; 5] =
        [Self::ResetLink, Self::PasswordChanged, Self::VerifyEmail, Self::EmailChangeConfirm, Self::EmailChangeNotice];

    /// The file-name stem (`reset_link` → `reset_link.subject.txt`, `.txt`, `.html`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ResetLink => "reset_link",
            Self::PasswordChanged => "password_changed",
            Self::VerifyEmail => "verify_email",
            Self::EmailChangeConfirm => "email_change_confirm",
            Self::EmailChangeNotice => "email_change_notice",
        }
    }

    /// The built-in sources: subject, text, HTML.
    fn builtin(self) -> [&'static str; 3] {
        match self {
            Self::ResetLink => builtin!("reset_link"),
            Self::PasswordChanged => builtin!("password_changed"),
            Self::VerifyEmail => builtin!("verify_email"),
            Self::EmailChangeConfirm => builtin!("email_change_confirm"),
            Self::EmailChangeNotice => builtin!("email_change_notice"),
        }
    }

    /// Values of the shape the template gets, for the start-up check.
    fn sample(self) -> Value {
        context! {
            app_url => "https://app.example",
            link => "https://app.example/auth/x#token=sample",
            valid_for => "30 minutes",
            new_email => "new@example.com",
        }
    }
}

/// The file name of one part of a template.
fn file_name(template: Template, part: &str) -> String {
    format!("{}.{part}", template.name())
}

/// An environment with keycard's settings: strict undefined variables, HTML auto-escaped by name.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// The loaded templates.
pub struct MailTemplates {
    env: Environment<'static>,
    builtin: Environment<'static>,
    /// Names of the overridden files, for the log line at start-up.
    overridden: Vec<String>,
}

impl std::fmt::Debug for MailTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailTemplates").field("overridden", &self.overridden).finish_non_exhaustive()
    }
}

impl MailTemplates {
    /// The built-in templates only.
    pub fn builtin() -> Self {
        Self::load(None).unwrap_or_else(|e| unreachable!("the built-in mail templates render: {e}"))
    }

    /// The built-in templates, with each file found in `dir` replacing its built-in twin. Every
    /// template is checked by rendering it with sample values; an error names the file.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut builtin = environment();
        for template in Template::ALL {
            for (part, source) in PARTS.iter().zip(template.builtin()) {
                builtin
                    .add_template_owned(file_name(template, part), source)
                    .map_err(|e| format!("built-in mail template {}: {e}", file_name(template, part)))?;
            }
        }
        let mut env = environment();
        let mut overridden = Vec::new();
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            return Err(format!("mail_templates {} is not a folder", dir.display()));
        }
        for template in Template::ALL {
            for (part, source) in PARTS.iter().zip(template.builtin()) {
                let name = file_name(template, part);
                let path: Option<PathBuf> = dir.map(|d| d.join(&name)).filter(|p| p.exists());
                let source = match &path {
                    Some(path) => {
                        overridden.push(name.clone());
                        std::fs::read_to_string(path).map_err(|e| format!("mail template {}: {e}", path.display()))?
                    }
                    None => source.to_owned(),
                };
                let shown = path.as_ref().map_or_else(|| name.clone(), |p| p.display().to_string());
                env.add_template_owned(name.clone(), source).map_err(|e| format!("mail template {shown}: {e}"))?;
                let rendered = env.get_template(&name).and_then(|t| t.render(template.sample()));
                rendered.map_err(|e| format!("mail template {shown}: {e:#}"))?;
            }
        }
        Ok(Self { env, builtin, overridden })
    }

    /// The files that replace built-in templates.
    pub fn overridden(&self) -> &[String] {
        &self.overridden
    }

    /// The message `template` to `recipient` (empty when the store addresses it), with `values`
    /// (and `app_url`), created at `now`.
    pub fn render(&self, template: Template, recipient: &str, app_url: &str, values: Value, now: i64) -> NewMail {
        let values = context! { app_url => app_url, ..values };
        let [subject, text, html] = match self.parts(&self.env, template, &values) {
            Ok(parts) => parts,
            Err(e) => {
                tracing::error!(template = template.name(), error = %e, "a custom mail template failed; the built-in one is used");
                self.parts(&self.builtin, template, &values)
                    .unwrap_or_else(|e| unreachable!("the built-in mail templates render: {e}"))
            }
        };
        NewMail {
            id: uuid::Uuid::new_v4().to_string(),
            recipient: recipient.to_owned(),
            // One line: a template's line breaks must not reach the header.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text_body: text,
            html_body: Some(html),
            created_at: now,
        }
    }

    fn parts(
        &self,
        env: &Environment<'static>,
        template: Template,
        values: &Value,
    ) -> Result<[String; 3], minijinja::Error> {
        let render = |part: &str| env.get_template(&file_name(template, part))?.render(values);
        Ok([render(PARTS[0])?, render(PARTS[1])?, render(PARTS[2])?])
    }

    /// Writes the built-in templates into `dir` (created if missing) as a starting point for
    /// `mail_templates`; existing files are left alone. Returns the files written.
    pub fn write_builtin(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        for template in Template::ALL {
            for (part, source) in PARTS.iter().zip(template.builtin()) {
                let path = dir.join(file_name(template, part));
                if !path.exists() {
                    std::fs::write(&path, source)?;
                    written.push(path);
                }
            }
        }
        Ok(written)
    }
}

/// A duration in words for mail ("30 minutes", "1 hour", "7 days").
pub fn valid_for(secs: i64) -> String {
    let (n, unit) = if secs % 86_400 == 0 && secs >= 86_400 {
        (secs / 86_400, "day")
    } else if secs % 3600 == 0 && secs >= 3600 {
        (secs / 3600, "hour")
    } else {
        ((secs / 60).max(1), "minute")
    };
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_bodies_escape_values_and_text_bodies_keep_them() {
        let templates = MailTemplates::builtin();
        let link = "https://app.test/x?a=1&b=\"2\"#token=kcpr_x";
        let mail = templates.render(
            Template::ResetLink,
            "a@example.com",
            "https://app.test",
            context! { link => link, valid_for => valid_for(1800) },
            7,
        );
        assert_eq!(mail.subject, "Reset your password");
        assert!(mail.text_body.contains(link), "{}", mail.text_body);
        assert!(mail.text_body.contains("30 minutes"));
        let html = mail.html_body.unwrap();
        assert!(html.contains("a=1&amp;b=&quot;2&quot;"), "{html}");
        assert!(!html.contains("b=\"2\""), "{html}");
        assert_eq!((mail.recipient.as_str(), mail.created_at), ("a@example.com", 7));
    }

    #[test]
    fn a_folder_overrides_single_files_and_a_broken_one_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("verify_email.subject.txt"), "Welcome to {{ app_url }}\nsecond line").unwrap();
        let templates = MailTemplates::load(Some(dir.path())).unwrap();
        assert_eq!(templates.overridden(), ["verify_email.subject.txt"]);
        let values = context! { link => "L", valid_for => "1 day" };
        let mail = templates.render(Template::VerifyEmail, "", "https://acme.test", values, 0);
        assert_eq!(mail.subject, "Welcome to https://acme.test second line", "one header line");
        assert!(mail.text_body.contains("1 day"), "the other parts stay built in");

        std::fs::write(dir.path().join("reset_link.html"), "<a href=\"{{ lnk }}\">typo</a>").unwrap();
        let err = MailTemplates::load(Some(dir.path())).unwrap_err();
        assert!(err.contains("reset_link.html"), "{err}");
        std::fs::write(dir.path().join("reset_link.html"), "{% if %}").unwrap();
        assert!(MailTemplates::load(Some(dir.path())).unwrap_err().contains("reset_link.html"));
        let missing = MailTemplates::load(Some(&dir.path().join("nope"))).unwrap_err();
        assert!(missing.contains("not a folder"), "{missing}");
    }

    #[test]
    fn written_builtins_load_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let written = MailTemplates::write_builtin(dir.path()).unwrap();
        assert_eq!(written.len(), Template::ALL.len() * 3);
        assert_eq!(MailTemplates::load(Some(dir.path())).unwrap().overridden().len(), written.len());
        assert!(MailTemplates::write_builtin(dir.path()).unwrap().is_empty(), "existing files are kept");
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(valid_for(1800), "30 minutes");
        assert_eq!(valid_for(3600), "1 hour");
        assert_eq!(valid_for(86_400), "1 day");
        assert_eq!(valid_for(7 * 86_400), "7 days");
        assert_eq!(valid_for(90), "1 minute");
    }
}
