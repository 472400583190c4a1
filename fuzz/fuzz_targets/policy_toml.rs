//! Policy TOML through `leadroute::policy::parse` (TOML decoding, then every check).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = leadroute::policy::parse("policy.toml", text);
    }
});
