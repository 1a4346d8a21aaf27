//! JSON bodies of the HTTP API: every request type of `keycard_core::wire` (what the server
//! accepts) and every response type (what clients parse), from any bytes.
//!
//! Whatever deserializes must serialize and deserialize again to the same value.
#![no_main]

use keycard_core::ErrorBody;
use keycard_core::wire::*;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned>(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<T>(data) else { return };
    let first = serde_json::to_value(&value).expect("serialize");
    let again: T = serde_json::from_value(first.clone()).expect("what we wrote reads back");
    assert_eq!(serde_json::to_value(&again).expect("serialize"), first, "{}", std::any::type_name::<T>());
}

fuzz_target!(|data: &[u8]| {
    round_trip::<SignupRequest>(data);
    round_trip::<LoginRequest>(data);
    round_trip::<RefreshRequest>(data);
    round_trip::<LogoutRequest>(data);
    round_trip::<PasswordChangeRequest>(data);
    round_trip::<DeleteAccountRequest>(data);
    round_trip::<TokenResponse>(data);
    round_trip::<UserInfo>(data);
    round_trip::<Vec<SessionInfo>>(data);
    round_trip::<RevocationFeed>(data);
    round_trip::<ErrorBody>(data);
});
