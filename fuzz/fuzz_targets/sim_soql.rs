//! SOQL text through the Salesforce simulator's lexer, parser and evaluator.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        leadroute_sim::salesforce::fuzzing::soql(text);
    }
});
