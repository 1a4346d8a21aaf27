//! Configuration durations: `HumanDuration::parse` (`15m`, `7d`, `1h 30m`, bare seconds) and the
//! same values read through serde, as the TOML file and `KEYCARD_*` variables are.
//!
//! A parsed duration must survive the round trip the settings loader makes (serialize the
//! defaults as text, read them back), and a whole `Settings` document must never panic.
#![no_main]

use keycard_server::Settings;
use keycard_server::settings::HumanDuration;
use libfuzzer_sys::fuzz_target;

/// Up to ~100 years: beyond that humantime's month/year arithmetic is not worth asserting on.
const ROUND_TRIP_MAX_SECS: u64 = 100 * 365 * 86_400;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(d) = HumanDuration::parse(text) {
            assert!(d.as_secs_i64() >= 0, "a negative duration from {text:?}");
            let json = serde_json::to_value(d).expect("serialize");
            let back: HumanDuration = serde_json::from_value(json.clone()).expect("a formatted duration parses back");
            if d.0.as_secs() <= ROUND_TRIP_MAX_SECS {
                assert_eq!(back.0.as_secs(), d.0.as_secs(), "{text:?} -> {json} changed");
            }
        }
        let quoted = serde_json::Value::String(text.to_owned());
        let _ = serde_json::from_value::<HumanDuration>(quoted);
    }
    // A settings document as the loader sees it (figment hands serde the same value tree).
    if let Ok(settings) = serde_json::from_slice::<Settings>(data) {
        let _ = settings.access_ttl.as_secs_i64();
        let _ = settings.database.to_string();
        let _ = settings.is_postgres();
        let _ = serde_json::to_string(&settings).expect("settings serialize");
    }
});
