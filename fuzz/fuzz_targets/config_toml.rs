//! Config TOML (plus environment overrides) through `Config::from_toml`: TOML decoding,
//! `LEADROUTE_*` overrides, then every validation `leadroute check` reports.
//!
//! Input: the TOML text, optionally followed by a NUL byte and `NAME=value` lines that
//! the environment lookup answers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (text, env) = input.split_once('\0').unwrap_or((input, ""));
    let lookup = |name: &str| {
        env.lines()
            .filter_map(|line| line.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    };
    let _ = leadroute::config::Config::from_toml(text, "leadroute.toml", &lookup);
});
