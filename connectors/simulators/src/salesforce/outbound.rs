//! Outbound messages: changes to Leads, Contacts and Accounts are gathered into SOAP
//! `notifications` envelopes (≤ 100 notifications each, one object type per
//! envelope, current field values) and POSTed to the configured URL, retried with
//! exponential backoff until the listener answers `<Ack>true</Ack>` (dropped after
//! 24 hours, as a real org does). Faults can duplicate or reorder deliveries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use tokio::sync::watch;

use super::ids;
use super::org::Org;
use super::schema::ObjType;
use super::server::Shared;

pub(crate) const OUTBOUND_NS: &str = "http://soap.sforce.com/2005/09/outbound";
const MAX_PER_ENVELOPE: usize = 100;
const MAX_BACKOFF: Duration = Duration::from_secs(2 * 3600);
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Fields each object's outbound message carries (nulls are left out, as real
/// messages do).
fn message_fields(obj: ObjType) -> &'static [&'static str] {
    match obj {
        ObjType::Lead => &[
            "Id",
            "OwnerId",
            "Company",
            "Email",
            "Country",
            "Status",
            "IsConverted",
            "IsDeleted",
            "LastModifiedDate",
            "SystemModstamp",
        ],
        ObjType::Contact => &[
            "Id",
            "OwnerId",
            "AccountId",
            "Email",
            "IsDeleted",
            "LastModifiedDate",
            "SystemModstamp",
        ],
        _ => &[
            "Id",
            "OwnerId",
            "Name",
            "ParentId",
            "Website",
            "IsDeleted",
            "LastModifiedDate",
            "SystemModstamp",
        ],
    }
}

/// One notification: its id (stable across retries and duplicates) and the record
/// values at the time it was built.
#[derive(Debug, Clone)]
struct Notification {
    id: String,
    fields: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone)]
struct Delivery {
    obj: ObjType,
    notifications: Vec<Notification>,
    attempts: u32,
    due: Instant,
    first_tried: Instant,
}

fn action_id(obj: ObjType) -> String {
    ids::to18(&format!(
        "04k8d00000000{}",
        match obj {
            ObjType::Lead => "01",
            ObjType::Contact => "02",
            _ => "03",
        }
    ))
}

fn build_envelope(shared: &Shared, delivery: &Delivery) -> Result<String, std::io::Error> {
    let org_id = &shared.config.org_id;
    let base = &shared.base_url;
    let mut w = Writer::new(Vec::new());
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.write_event(Event::Start(
        BytesStart::new("soapenv:Envelope").with_attributes([
            ("xmlns:soapenv", "http://schemas.xmlsoap.org/soap/envelope/"),
            ("xmlns:xsd", "http://www.w3.org/2001/XMLSchema"),
            ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
        ]),
    ))?;
    w.write_event(Event::Start(BytesStart::new("soapenv:Body")))?;
    w.write_event(Event::Start(
        BytesStart::new("notifications").with_attributes([("xmlns", OUTBOUND_NS)]),
    ))?;
    let text = |w: &mut Writer<Vec<u8>>, name: &str, value: &str| -> std::io::Result<()> {
        w.create_element(name)
            .write_text_content(BytesText::new(value))?;
        Ok(())
    };
    text(&mut w, "OrganizationId", org_id)?;
    text(&mut w, "ActionId", &action_id(delivery.obj))?;
    w.create_element("SessionId")
        .with_attribute(("xsi:nil", "true"))
        .write_empty()?;
    text(
        &mut w,
        "EnterpriseUrl",
        &format!("{base}/services/Soap/c/62.0/{}", &org_id[..15]),
    )?;
    text(
        &mut w,
        "PartnerUrl",
        &format!("{base}/services/Soap/u/62.0/{}", &org_id[..15]),
    )?;
    for n in &delivery.notifications {
        w.write_event(Event::Start(BytesStart::new("Notification")))?;
        text(&mut w, "Id", &n.id)?;
        let xsi_type = format!("sf:{}", delivery.obj.name());
        w.write_event(Event::Start(BytesStart::new("sObject").with_attributes([
            ("xsi:type", xsi_type.as_str()),
            ("xmlns:sf", "urn:sobject.enterprise.soap.sforce.com"),
        ])))?;
        for (name, value) in &n.fields {
            text(&mut w, &format!("sf:{name}"), value)?;
        }
        w.write_event(Event::End(BytesEnd::new("sObject")))?;
        w.write_event(Event::End(BytesEnd::new("Notification")))?;
    }
    w.write_event(Event::End(BytesEnd::new("notifications")))?;
    w.write_event(Event::End(BytesEnd::new("soapenv:Body")))?;
    w.write_event(Event::End(BytesEnd::new("soapenv:Envelope")))?;
    String::from_utf8(w.into_inner()).map_err(std::io::Error::other)
}

/// Whether a listener's answer is a SOAP acknowledgement (`<Ack>true</Ack>`).
pub(crate) fn is_ack(body: &str) -> bool {
    let mut reader = quick_xml::Reader::from_str(body);
    reader.config_mut().trim_text(true);
    let mut in_ack = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => in_ack = e.local_name().as_ref() == b"Ack",
            Ok(Event::Text(t)) if in_ack => {
                return t.decode().is_ok_and(|s| s.trim() == "true");
            }
            Ok(Event::End(_)) => in_ack = false,
            Ok(Event::Eof) | Err(_) => return false,
            _ => {}
        }
    }
}

fn snapshot(org: &Org, obj: ObjType, record_id: &str, counter: &mut u64) -> Option<Notification> {
    let row = org.row(obj, record_id)?;
    // Workflow outbound messages fire on creates and edits, never on deletes.
    if row.vals[obj.idx("IsDeleted")].as_bool() {
        return None;
    }
    let fields = message_fields(obj)
        .iter()
        .filter_map(|name| {
            let value = row.vals[obj.idx(name)].to_text()?;
            Some((*name, value))
        })
        .collect();
    *counter += 1;
    Some(Notification {
        id: ids::to18(&format!("04l8d{}", ids::base62(*counter, 10))),
        fields,
    })
}

/// The delivery loop (one per simulator).
pub(crate) async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
    {
        Ok(c) => c,
        Err(err) => {
            tracing::warn!(error = %err, "salesforce sim: outbound messages disabled");
            return;
        }
    };
    let mut queue: Vec<Delivery> = Vec::new();
    let mut counter = 0u64;
    loop {
        let next_due = queue.iter().map(|d| d.due).min();
        let sleep = next_due.map_or(Duration::from_secs(3600), |due| {
            due.saturating_duration_since(Instant::now())
        });
        tokio::select! {
            _ = shared.outbound_wake.notified() => {
                tokio::time::sleep(shared.config.outbound_batch_window).await;
            }
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => return,
        }
        let url = shared.outbound_url.lock().clone();
        let notes = std::mem::take(&mut shared.org.lock().outbound);
        let Some(url) = url else {
            queue.clear();
            continue;
        };
        let now = Instant::now();
        let mut fresh: Vec<Delivery> = Vec::new();
        {
            let org = shared.org.lock();
            let mut by_obj: HashMap<ObjType, Vec<Notification>> = HashMap::new();
            let mut order: Vec<ObjType> = Vec::new();
            for note in notes {
                if let Some(n) = snapshot(&org, note.obj, &note.id, &mut counter) {
                    if !order.contains(&note.obj) {
                        order.push(note.obj);
                    }
                    by_obj.entry(note.obj).or_default().push(n);
                }
            }
            for obj in order {
                let all = by_obj.remove(&obj).unwrap_or_default();
                for chunk in all.chunks(MAX_PER_ENVELOPE) {
                    fresh.push(Delivery {
                        obj,
                        notifications: chunk.to_vec(),
                        attempts: 0,
                        due: now,
                        first_tried: now,
                    });
                }
            }
        }
        {
            let mut faults = shared.faults.lock();
            let mut duplicates = Vec::new();
            for d in &fresh {
                for n in &d.notifications {
                    if faults.duplicate_notification() {
                        duplicates.push(Delivery {
                            obj: d.obj,
                            notifications: vec![n.clone()],
                            attempts: 0,
                            due: now,
                            first_tried: now,
                        });
                    }
                }
            }
            fresh.extend(duplicates);
            if faults.script.outbound_reverse_order {
                fresh.reverse();
            }
        }
        queue.extend(fresh);
        let mut keep = Vec::new();
        for mut delivery in std::mem::take(&mut queue) {
            if delivery.due > Instant::now() {
                keep.push(delivery);
                continue;
            }
            let envelope = match build_envelope(&shared, &delivery) {
                Ok(e) => e,
                Err(err) => {
                    tracing::warn!(error = %err, "salesforce sim: could not build an outbound envelope");
                    continue;
                }
            };
            shared.stats.lock().outbound_posts += 1;
            let acked = match client
                .post(&url)
                .header("content-type", "text/xml; charset=utf-8")
                .header("soapaction", "\"\"")
                .body(envelope)
                .send()
                .await
            {
                Ok(resp) if resp.status().is_success() => {
                    resp.text().await.is_ok_and(|body| is_ack(&body))
                }
                _ => false,
            };
            if acked {
                shared.stats.lock().outbound_acks += 1;
                continue;
            }
            delivery.attempts += 1;
            let backoff = shared
                .config
                .outbound_retry_base
                .saturating_mul(1u32 << delivery.attempts.min(20))
                .min(MAX_BACKOFF);
            if delivery.first_tried.elapsed() + backoff > GIVE_UP_AFTER {
                tracing::warn!(
                    "salesforce sim: outbound message dropped after 24 hours of retries"
                );
                continue;
            }
            delivery.due = Instant::now() + backoff;
            keep.push(delivery);
        }
        queue = keep;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_true_ack_acknowledges() {
        let ok = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#;
        assert!(is_ack(ok));
        assert!(!is_ack(&ok.replace("true", "false")));
        assert!(!is_ack("not xml"));
    }
}
