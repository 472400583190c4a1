//! Salesforce outbound-message SOAP bodies through `Crm::intake` of a connector with a
//! configured organization id: XML parsing, the organization check, id canonicalization
//! and hint mapping.
#![no_main]

use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use leadroute_crm::{Crm, InboundRequest};
use leadroute_salesforce::{Salesforce, SalesforceAuth, SalesforceSettings};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

static CONNECTOR: LazyLock<Salesforce> = LazyLock::new(|| {
    let mut settings = SalesforceSettings::new(
        "http://127.0.0.1:9",
        SalesforceAuth::Session {
            token: SecretString::from("fuzz-session"),
        },
    );
    settings.instance_url = Some("http://127.0.0.1:9".into());
    settings.organization_id = Some("00D5e000000AbCdEAK".into());
    Salesforce::new(settings).expect("the harness's settings are valid")
});

fuzz_target!(|body: &[u8]| {
    let request = InboundRequest {
        method: "POST".into(),
        url: "https://leadroute.example/webhooks/salesforce".into(),
        headers: vec![("content-type".into(), "text/xml; charset=utf-8".into())],
        body: body.to_vec(),
        received_at: Utc.timestamp_opt(1_767_225_600, 0).unwrap(),
    };
    let _ = CONNECTOR.intake(&request);
});
