//! HubSpot response bodies (list/search/owners pages, batch and association results,
//! error bodies) through the connector's own decoders and mappers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    leadroute_hubspot::fuzzing::decode_responses(body);
});
