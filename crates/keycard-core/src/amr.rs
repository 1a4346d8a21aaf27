//! Authentication method references (RFC 8176): how the user proved who they are, carried by
//! access tokens as `amr` next to `auth_time`, and kept on the session so every refresh carries
//! them too.
//!
//! keycard issues five of the registered values, so the set is a bit set (no allocation on the
//! `/auth/me` path); values it does not issue are ignored when a token is read.

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One authentication method keycard issues (RFC 8176 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// `pwd`: a password.
    Pwd,
    /// `otp`: a one-time password (an authenticator app's TOTP code, or a recovery code).
    Otp,
    /// `hwk`: proof of possession of a hardware-bound key (a passkey that cannot be synced).
    Hwk,
    /// `swk`: proof of possession of a software-secured key (a synced passkey).
    Swk,
    /// `mfa`: more than one factor (a password and a code; a passkey with user verification).
    Mfa,
}

impl AuthMethod {
    const ALL: [AuthMethod; 5] = [Self::Pwd, Self::Otp, Self::Hwk, Self::Swk, Self::Mfa];

    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pwd => "pwd",
            Self::Otp => "otp",
            Self::Hwk => "hwk",
            Self::Swk => "swk",
            Self::Mfa => "mfa",
        }
    }

    /// The method of a registered name keycard issues.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`AuthMethod`]s: the `amr` claim. Serialized as a JSON array of names in a fixed
/// order; empty means "not said" (the claim is left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Amr(u8);

impl Amr {
    /// The empty set.
    pub const EMPTY: Amr = Amr(0);

    /// The set holding `methods`.
    pub fn of(methods: &[AuthMethod]) -> Self {
        methods.iter().fold(Self::EMPTY, |set, m| set.with(*m))
    }

    /// This set and `method`.
    #[must_use]
    pub fn with(self, method: AuthMethod) -> Self {
        Self(self.0 | method.bit())
    }

    /// Both sets.
    #[must_use]
    pub fn union(self, other: Amr) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether `method` is in the set.
    pub fn contains(self, method: AuthMethod) -> bool {
        self.0 & method.bit() != 0
    }

    /// Whether the set says nothing.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The methods, in the fixed order.
    pub fn iter(self) -> impl Iterator<Item = AuthMethod> {
        AuthMethod::ALL.into_iter().filter(move |m| self.contains(*m))
    }

    /// The set as one byte (how the store keeps it on the session).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set from [`Amr::bits`]; bits of no method are dropped.
    pub fn from_bits(bits: u8) -> Self {
        Self(bits & AuthMethod::ALL.iter().fold(0, |all, m| all | m.bit()))
    }

    /// The names joined by spaces (audit details, logs).
    pub fn to_names(self) -> String {
        self.iter().map(AuthMethod::as_str).collect::<Vec<_>>().join(" ")
    }
}

impl Serialize for Amr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for method in self.iter() {
            seq.serialize_element(method.as_str())?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Amr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> Visitor<'de> for Names {
            type Value = Amr;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of authentication method names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Amr, A::Error> {
                let mut set = Amr::EMPTY;
                // Borrowed where the input allows; a name with escapes arrives owned.
                while let Some(name) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
                    if let Some(method) = AuthMethod::parse(&name) {
                        set = set.with(method);
                    }
                }
                Ok(set)
            }
        }
        d.deserialize_seq(Names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_the_registered_names_in_a_fixed_order() {
        let amr = Amr::of(&[AuthMethod::Mfa, AuthMethod::Otp, AuthMethod::Pwd]);
        assert_eq!(serde_json::to_string(&amr).unwrap(), r#"["pwd","otp","mfa"]"#);
        assert_eq!(amr.to_names(), "pwd otp mfa");
        let back: Amr = serde_json::from_str(r#"["mfa","otp","pwd"]"#).unwrap();
        assert_eq!(back, amr);
    }

    #[test]
    fn unknown_names_are_ignored_and_bits_round_trip() {
        let amr: Amr = serde_json::from_str(r#"["face","hwk","sms"]"#).unwrap();
        assert_eq!(amr, Amr::of(&[AuthMethod::Hwk]));
        assert_eq!(Amr::from_bits(amr.bits()), amr);
        assert_eq!(Amr::from_bits(0xff).iter().count(), 5);
        assert!(serde_json::from_str::<Amr>(r#""pwd""#).is_err(), "a string is not an array");
    }
}
