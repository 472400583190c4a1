//! Outbound-message intake: the SOAP `notifications` envelope a workflow rule or flow
//! posts, the organization check, and the exact `<Ack>true</Ack>` answer.
//!
//! Notifications are hints: each names a record to refetch; the payload's field values
//! are never trusted. Salesforce redelivers until acknowledged and may deliver out of
//! order or twice, so every hint carries the notification id as its de-duplication key.

use chrono::{DateTime, Utc};
use leadroute_crm::{
    Hint, InboundRequest, InboundResponse, Intake, IntakeError, ObjectKind, RecordId,
};
use quick_xml::Reader;
use quick_xml::events::Event;

use crate::ids::{self, IdKind};
use crate::wire::parse_datetime;

/// The acknowledgement Salesforce waits for; anything else is a failed delivery.
pub const ACK: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?>"#,
    r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
    r#"<soapenv:Body>"#,
    r#"<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">"#,
    r#"<Ack>true</Ack>"#,
    r#"</notificationsResponse>"#,
    r#"</soapenv:Body>"#,
    r#"</soapenv:Envelope>"#
);

/// One `Notification` element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Notification {
    pub(crate) id: String,
    /// `sObject`'s `xsi:type` without its prefix (`Lead`).
    pub(crate) sobject_type: Option<String>,
    pub(crate) sobject_id: Option<String>,
    pub(crate) stamp: Option<DateTime<Utc>>,
}

/// A parsed `notifications` message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Notifications {
    pub(crate) organization_id: Option<String>,
    pub(crate) action_id: Option<String>,
    pub(crate) notifications: Vec<Notification>,
}

fn local(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|b| *b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// Parses a SOAP outbound-message envelope. Namespaces prefixes are ignored; element
/// positions are checked by local name.
pub(crate) fn parse(body: &[u8]) -> Result<Notifications, IntakeError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| IntakeError::Malformed("outbound message body is not UTF-8".into()))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut out = Notifications::default();
    let mut current: Option<Notification> = None;
    let mut saw_notifications = false;
    let mut text_buf = String::new();
    loop {
        let event = reader.read_event().map_err(|e| {
            IntakeError::Malformed(format!(
                "outbound message is not well-formed XML at byte {}: {e}",
                reader.buffer_position()
            ))
        })?;
        match event {
            Event::Start(start) => {
                let name = local(start.name().as_ref()).to_vec();
                text_buf.clear();
                if name == b"notifications" {
                    saw_notifications = true;
                }
                if name == b"Notification" && path.last().is_some_and(|p| p == b"notifications") {
                    current = Some(Notification::default());
                }
                if name == b"sObject" {
                    if let Some(n) = current.as_mut() {
                        for attr in start.attributes().flatten() {
                            if local(attr.key.as_ref()) == b"type" {
                                let value = attr.unescape_value().map_err(|e| {
                                    IntakeError::Malformed(format!(
                                        "bad sObject type attribute: {e}"
                                    ))
                                })?;
                                let value = value.rsplit(':').next().unwrap_or("").to_owned();
                                n.sobject_type = Some(value);
                            }
                        }
                    }
                }
                path.push(name);
            }
            Event::Empty(_) => {}
            Event::Text(t) => {
                let s = t.decode().map_err(|e| {
                    IntakeError::Malformed(format!("bad text in outbound message: {e}"))
                })?;
                text_buf.push_str(&s);
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| {
                    IntakeError::Malformed(format!("bad entity in outbound message: {e}"))
                })?;
                let reference = format!("&{name};");
                let resolved = quick_xml::escape::unescape(&reference).map_err(|e| {
                    IntakeError::Malformed(format!("unknown entity {reference}: {e}"))
                })?;
                text_buf.push_str(&resolved);
            }
            Event::CData(c) => text_buf.push_str(&String::from_utf8_lossy(&c.into_inner())),
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let parent = path.last().map(Vec::as_slice);
                let value = std::mem::take(&mut text_buf);
                match (name.as_slice(), parent) {
                    (b"OrganizationId", Some(b"notifications")) => {
                        out.organization_id = Some(value)
                    }
                    (b"ActionId", Some(b"notifications")) => out.action_id = Some(value),
                    (b"Id", Some(b"Notification")) => {
                        if let Some(n) = current.as_mut() {
                            n.id = value;
                        }
                    }
                    (b"Id", Some(b"sObject")) => {
                        if let Some(n) = current.as_mut() {
                            n.sobject_id = Some(value);
                        }
                    }
                    (b"SystemModstamp" | b"LastModifiedDate", Some(b"sObject")) => {
                        if let Some(n) = current.as_mut() {
                            n.stamp = n.stamp.or_else(|| parse_datetime(&value));
                        }
                    }
                    (b"Notification", Some(b"notifications")) => {
                        if let Some(n) = current.take() {
                            out.notifications.push(n);
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_notifications {
        return Err(IntakeError::Malformed(
            "no <notifications> element: not a Salesforce outbound message".into(),
        ));
    }
    Ok(out)
}

fn object_of(n: &Notification, id: &str) -> Option<ObjectKind> {
    match n.sobject_type.as_deref() {
        Some("Lead") => Some(ObjectKind::Lead),
        Some("Contact") => Some(ObjectKind::Contact),
        Some("Account") => Some(ObjectKind::Account),
        Some("User") | Some("Group") => Some(ObjectKind::Owner),
        _ => match ids::kind_of(id) {
            IdKind::Lead => Some(ObjectKind::Lead),
            IdKind::Contact => Some(ObjectKind::Contact),
            IdKind::Account => Some(ObjectKind::Account),
            IdKind::User | IdKind::Group => Some(ObjectKind::Owner),
            _ => None,
        },
    }
}

/// Verifies an outbound message against the configured organization and turns it into
/// refetch hints plus the SOAP acknowledgement.
pub(crate) fn intake(
    request: &InboundRequest,
    organization_id: Option<&str>,
) -> Result<Intake, IntakeError> {
    let expected = organization_id.ok_or_else(|| {
        IntakeError::Unauthorized(
            "salesforce outbound messages need `organization_id` in the connector settings to be verified; set it to the org id (00D…)".into(),
        )
    })?;
    let parsed = parse(&request.body)?;
    let got = parsed.organization_id.as_deref().ok_or_else(|| {
        IntakeError::Unauthorized("outbound message carries no OrganizationId".into())
    })?;
    if !ids::same(got, expected) {
        return Err(IntakeError::Unauthorized(format!(
            "outbound message is from organization {got}, not the configured {expected}"
        )));
    }
    let mut hints = Vec::with_capacity(parsed.notifications.len());
    for n in &parsed.notifications {
        let Some(raw_id) = n.sobject_id.as_deref() else {
            continue;
        };
        let id = ids::canonical(raw_id).map_err(|e| IntakeError::Malformed(e.to_string()))?;
        let Some(object) = object_of(n, &id) else {
            continue;
        };
        let dedupe_key = if n.id.is_empty() {
            format!(
                "salesforce:om:{id}:{}",
                n.stamp.map(|t| t.timestamp()).unwrap_or(0)
            )
        } else {
            format!("salesforce:om:{}", n.id)
        };
        hints.push(Hint {
            object,
            id: RecordId(id),
            dedupe_key,
            occurred_at: n.stamp,
        });
    }
    Ok(Intake {
        hints,
        response: InboundResponse {
            status: 200,
            content_type: "text/xml",
            body: ACK.to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "00D5e000000AbCdEAK";

    fn envelope(org: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>04k5e000000AbCdAAA</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D5e000000AbCd</EnterpriseUrl>
   <Notification>
    <Id>04l5e00000AbCdEAAA</Id>
    <sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>00Q5e00000AbCdE</sf:Id>
     <sf:Company>Smith &amp; Sons</sf:Company>
     <sf:SystemModstamp>2025-03-04T09:15:27.000Z</sf:SystemModstamp>
    </sObject>
   </Notification>
   <Notification>
    <Id>04l5e00000AbCdFAAA</Id>
    <sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>0035e00000AbCdEAAV</sf:Id>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#
        )
    }

    fn request(body: String) -> InboundRequest {
        InboundRequest {
            method: "POST".into(),
            url: "https://leadroute.example/webhooks/salesforce".into(),
            headers: vec![("content-type".into(), "text/xml; charset=utf-8".into())],
            body: body.into_bytes(),
            received_at: Utc::now(),
        }
    }

    #[test]
    fn notifications_become_refetch_hints_keyed_by_notification_id() {
        let intake = intake(&request(envelope(ORG)), Some(ORG)).unwrap();
        assert_eq!(intake.hints.len(), 2);
        assert_eq!(intake.hints[0].object, ObjectKind::Lead);
        assert_eq!(intake.hints[0].id.as_str(), "00Q5e00000AbCdEEAV");
        assert_eq!(
            intake.hints[0].dedupe_key,
            "salesforce:om:04l5e00000AbCdEAAA"
        );
        assert!(intake.hints[0].occurred_at.is_some());
        assert_eq!(intake.hints[1].object, ObjectKind::Contact);
        assert_eq!(intake.response.status, 200);
        assert_eq!(intake.response.content_type, "text/xml");
        assert!(intake.response.body.contains("<Ack>true</Ack>"));
        assert!(
            intake.response.body.contains(
                "<notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\">"
            )
        );
    }

    #[test]
    fn a_15_character_configured_org_id_matches_the_18_character_one_sent() {
        assert!(intake(&request(envelope(ORG)), Some(&ORG[..15])).is_ok());
    }

    #[test]
    fn another_organizations_message_is_refused() {
        let err = intake(&request(envelope("00D5e000000ZzZzEAK")), Some(ORG)).unwrap_err();
        assert!(matches!(err, IntakeError::Unauthorized(_)));
        assert_eq!(err.status(), 401);
    }

    #[test]
    fn non_soap_bodies_are_malformed() {
        let err = intake(&request("{\"not\":\"xml\"}".into()), Some(ORG)).unwrap_err();
        assert!(matches!(err, IntakeError::Malformed(_)));
        let err = intake(&request("<a><b></a>".into()), Some(ORG)).unwrap_err();
        assert!(matches!(err, IntakeError::Malformed(_)));
    }

    #[test]
    fn entities_in_payload_fields_do_not_break_parsing() {
        let parsed = parse(envelope(ORG).as_bytes()).unwrap();
        assert_eq!(parsed.action_id.as_deref(), Some("04k5e000000AbCdAAA"));
        assert_eq!(
            parsed.notifications[0].sobject_type.as_deref(),
            Some("Lead")
        );
    }
}
