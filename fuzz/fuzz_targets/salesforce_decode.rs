//! Salesforce response bodies (query pages, Collections and composite results, REST
//! error arrays, Bulk API 2.0 jobs and result CSVs, getDeleted) through the connector's
//! own decoders and mappers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    leadroute_salesforce::fuzzing::decode_responses(body);
});
