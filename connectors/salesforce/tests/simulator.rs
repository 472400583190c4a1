//! The Salesforce connector against the Salesforce simulator, over real HTTP on
//! loopback: OAuth flows, the assignment-rule trap, expired sessions, the daily
//! allocation, shared `SystemModstamp` seconds across pages, writes, bulk, and the
//! CRM conformance suite.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use leadroute_crm::conformance::{self, OrgControl, WriteFixture};
use leadroute_crm::{
    AccountLink, AccountRecord, Change, Crm, ErrorKind, ObjectKind, OwnerChange, OwnerId,
    OwnerKind, OwnerRecord, PersonRecord, Record, RecordId, RejectKind, WriteOutcome,
};
use leadroute_salesforce::{Salesforce, SalesforceAuth, SalesforceSettings};
use leadroute_sim::salesforce::{
    FaultScript, LeadAssignmentRule, Mutation, SalesforceSim, SalesforceSimConfig, SalesforceState,
};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::{ExposeSecret, SecretString};

const PAGE: u32 = 200;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn small_org() -> SalesforceSimConfig {
    SalesforceSimConfig {
        leads: 700,
        contacts: 450,
        accounts: 120,
        users: 12,
        queues: 3,
        ..SalesforceSimConfig::default()
    }
}

async fn spawn(config: SalesforceSimConfig) -> SalesforceSim {
    leadroute_sim::salesforce::spawn(config)
        .await
        .expect("the simulator binds 127.0.0.1:0")
}

fn settings(sim: &SalesforceSim, auth: SalesforceAuth) -> SalesforceSettings {
    let mut settings = SalesforceSettings::new(sim.base_url(), auth);
    settings.page_size = PAGE;
    settings.retry_base = Duration::from_millis(5);
    settings.request_timeout = Duration::from_secs(20);
    settings.bulk_poll_interval = Duration::from_millis(20);
    settings.bulk_timeout = Duration::from_secs(30);
    settings.organization_id = Some(sim.org_id());
    settings
}

fn refresh_auth(config: &SalesforceSimConfig) -> SalesforceAuth {
    SalesforceAuth::RefreshToken {
        client_id: config.client_id.clone(),
        client_secret: Some(SecretString::from(config.client_secret.clone())),
        refresh_token: SecretString::from(config.refresh_token.clone()),
    }
}

async fn connector(config: SalesforceSimConfig) -> (SalesforceSim, Salesforce) {
    let sim = spawn(config.clone()).await;
    let crm = Salesforce::new(settings(&sim, refresh_auth(&config))).expect("valid settings");
    (sim, crm)
}

fn stamp(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|e| panic!("sim stamp {text:?}: {e}"))
}

/// The simulator's live records of `object` as contract records (only the fields the
/// conformance fingerprint compares are filled).
fn expected_records(state: &SalesforceState, object: ObjectKind) -> Vec<Record> {
    let person = |id: &str,
                  object,
                  owner: &str,
                  email: &Option<String>,
                  last: &Option<String>,
                  converted,
                  account: &Option<String>,
                  at: &str| {
        Record::Person(PersonRecord {
            id: RecordId::new(id),
            object,
            email: email.clone(),
            first_name: None,
            last_name: last.clone(),
            company: None,
            website: None,
            country: None,
            state: None,
            owner_id: Some(OwnerId::new(owner)),
            accounts: Some(
                account
                    .iter()
                    .map(|a| AccountLink {
                        account_id: RecordId::new(a.as_str()),
                        primary: true,
                    })
                    .collect(),
            ),
            owner_assigned_at: None,
            converted,
            created_at: None,
            updated_at: stamp(at),
            fields: Default::default(),
            raw: serde_json::Value::Null,
        })
    };
    match object {
        ObjectKind::Lead => state
            .leads
            .iter()
            .filter(|l| !l.is_deleted)
            .map(|l| {
                let account = if l.is_converted {
                    l.converted_account_id.clone()
                } else {
                    None
                };
                person(
                    &l.id,
                    ObjectKind::Lead,
                    &l.owner_id,
                    &l.email,
                    &l.last_name,
                    l.is_converted,
                    &account,
                    &l.system_modstamp,
                )
            })
            .collect(),
        ObjectKind::Contact => state
            .contacts
            .iter()
            .filter(|c| !c.is_deleted)
            .map(|c| {
                person(
                    &c.id,
                    ObjectKind::Contact,
                    &c.owner_id,
                    &c.email,
                    &c.last_name,
                    false,
                    &c.account_id,
                    &c.system_modstamp,
                )
            })
            .collect(),
        ObjectKind::Account => state
            .accounts
            .iter()
            .filter(|a| !a.is_deleted)
            .map(|a| {
                Record::Account(AccountRecord {
                    id: RecordId::new(a.id.as_str()),
                    name: a.name.clone(),
                    domain: None,
                    website: None,
                    extra_domains: Vec::new(),
                    country: None,
                    state: None,
                    parent_id: a.parent_id.as_deref().map(RecordId::new),
                    owner_id: Some(OwnerId::new(a.owner_id.as_str())),
                    employees: None,
                    industry: None,
                    created_at: None,
                    updated_at: stamp(&a.system_modstamp),
                    fields: Default::default(),
                    raw: serde_json::Value::Null,
                })
            })
            .collect(),
        ObjectKind::Owner => {
            let users = state.users.iter().map(|u| {
                Record::Owner(OwnerRecord {
                    id: OwnerId::new(u.id.as_str()),
                    kind: OwnerKind::User,
                    email: u.email.clone(),
                    name: u.name.clone().unwrap_or_else(|| u.username.clone()),
                    active: u.is_active,
                    teams: Vec::new(),
                    time_zone: None,
                    manager_id: None,
                    user_id: None,
                    updated_at: None,
                })
            });
            let queues = state
                .groups
                .iter()
                .filter(|g| g.group_type.as_deref() == Some("Queue"))
                .map(|g| {
                    Record::Owner(OwnerRecord {
                        id: OwnerId::new(g.id.as_str()),
                        kind: OwnerKind::Queue,
                        email: g.email.clone(),
                        name: g
                            .name
                            .clone()
                            .or_else(|| g.developer_name.clone())
                            .unwrap_or_else(|| g.id.clone()),
                        active: true,
                        teams: Vec::new(),
                        time_zone: None,
                        manager_id: None,
                        user_id: None,
                        updated_at: None,
                    })
                });
            users.chain(queues).collect()
        }
        ObjectKind::Activity => Vec::new(),
    }
}

fn sobject_name(object: ObjectKind) -> &'static str {
    match object {
        ObjectKind::Lead => "Lead",
        ObjectKind::Contact => "Contact",
        ObjectKind::Account => "Account",
        ObjectKind::Owner => "User",
        ObjectKind::Activity => "Task",
    }
}

/// Drives the simulator for the conformance suite.
struct SimOrg {
    sim: SalesforceSim,
}

impl SimOrg {
    fn mutate(&self, m: Mutation) -> Result<Vec<String>, String> {
        self.sim.mutate(m).map(|r| r.ids)
    }

    fn active_users(&self) -> Vec<String> {
        self.sim
            .state()
            .users
            .into_iter()
            .filter(|u| u.is_active)
            .map(|u| u.id)
            .collect()
    }
}

impl OrgControl for SimOrg {
    async fn random_edits(&self, seed: u64, count: usize) -> Result<(), String> {
        let mut rng = StdRng::seed_from_u64(seed);
        // Field and owner edits on every object...
        for (i, object) in ["Lead", "Contact", "Account"].iter().enumerate() {
            self.mutate(Mutation::RandomEdits {
                object: (*object).into(),
                count,
                seed: seed + i as u64,
            })?;
        }
        // ...plus what only a human does: deletes, merges, conversions, new records,
        // and a deactivated user.
        let state = self.sim.state();
        let live_leads: Vec<_> = state
            .leads
            .iter()
            .filter(|l| !l.is_deleted && !l.is_converted)
            .collect();
        let live_contacts: Vec<_> = state.contacts.iter().filter(|c| !c.is_deleted).collect();
        let pick = |rng: &mut StdRng, n: usize| rng.random_range(0..n);
        let a = live_leads[pick(&mut rng, live_leads.len())].id.clone();
        self.mutate(Mutation::Delete {
            object: "Lead".into(),
            id: a,
        })?;
        let master = live_contacts[pick(&mut rng, live_contacts.len())]
            .id
            .clone();
        let loser = live_contacts[pick(&mut rng, live_contacts.len())]
            .id
            .clone();
        if master != loser {
            self.mutate(Mutation::Merge {
                object: "Contact".into(),
                master_id: master,
                loser_ids: vec![loser],
            })?;
        }
        let lead = live_leads[pick(&mut rng, live_leads.len())].id.clone();
        self.mutate(Mutation::Convert {
            lead_id: lead,
            account_id: None,
            owner_id: None,
        })?;
        let mut fields = serde_json::Map::new();
        fields.insert("LastName".into(), "Newcomer".into());
        fields.insert("Company".into(), "Fresh Co".into());
        fields.insert("Email".into(), "newcomer@fresh.example".into());
        self.mutate(Mutation::Create {
            object: "Lead".into(),
            fields,
        })?;
        let users = self.active_users();
        if users.len() > 3 {
            self.mutate(Mutation::DeactivateUser {
                id: users[users.len() - 1].clone(),
            })?;
        }
        Ok(())
    }

    async fn expected(&self, object: ObjectKind) -> Result<Vec<Record>, String> {
        Ok(expected_records(&self.sim.state(), object))
    }

    async fn expire_sessions(&self) -> Result<(), String> {
        self.sim.set_faults(FaultScript {
            expire_sessions: true,
            ..FaultScript::default()
        });
        Ok(())
    }

    async fn exhaust_quota(&self) -> Result<(), String> {
        self.sim.set_faults(FaultScript {
            exhaust_after_calls: Some(0),
            ..FaultScript::default()
        });
        Ok(())
    }

    async fn restore_quota(&self) -> Result<(), String> {
        self.sim.set_faults(FaultScript::default());
        Ok(())
    }

    async fn bulk_stamp(&self, object: ObjectKind, count: usize) -> Result<Vec<RecordId>, String> {
        let ids = self.mutate(Mutation::BulkStamp {
            object: sobject_name(object).into(),
            count,
        })?;
        Ok(ids.into_iter().map(RecordId).collect())
    }

    async fn write_fixture(&self, object: ObjectKind) -> Result<WriteFixture, String> {
        let state = self.sim.state();
        let active = self.active_users();
        let inactive: Vec<String> = state
            .users
            .iter()
            .filter(|u| !u.is_active)
            .map(|u| u.id.clone())
            .collect();
        let inactive = match inactive.first() {
            Some(id) => id.clone(),
            None => {
                let id = active.last().cloned().ok_or("no users")?;
                self.mutate(Mutation::DeactivateUser { id: id.clone() })?;
                id
            }
        };
        let active: Vec<String> = active.into_iter().filter(|u| *u != inactive).collect();
        let live: Vec<(String, String)> = match object {
            ObjectKind::Contact => state
                .contacts
                .iter()
                .filter(|c| !c.is_deleted)
                .map(|c| (c.id.clone(), c.owner_id.clone()))
                .collect(),
            ObjectKind::Lead => state
                .leads
                .iter()
                .filter(|l| !l.is_deleted && !l.is_converted && !l.routing_locked)
                .map(|l| (l.id.clone(), l.owner_id.clone()))
                .collect(),
            ObjectKind::Account => state
                .accounts
                .iter()
                .filter(|a| !a.is_deleted)
                .map(|a| (a.id.clone(), a.owner_id.clone()))
                .collect(),
            ObjectKind::Owner | ObjectKind::Activity => {
                return Err(format!("{object} records are not routed"));
            }
        };
        let change = |(id, from): &(String, String), to: &str| OwnerChange {
            id: RecordId::new(id.as_str()),
            from: Some(OwnerId::new(from.as_str())),
            to: OwnerId::new(to),
            if_unmodified_since: None,
        };
        let mut fixture = WriteFixture::default();
        for (i, record) in live.iter().take(4).enumerate() {
            let to = active
                .iter()
                .find(|u| **u != record.1)
                .ok_or("no other active user")?;
            if i < 3 {
                fixture.good.push(change(record, to));
            } else {
                fixture.inactive_owner.push(change(record, &inactive));
            }
        }
        let doomed = &live[live.len() - 1];
        self.mutate(Mutation::Delete {
            object: sobject_name(object).into(),
            id: doomed.0.clone(),
        })?;
        fixture.deleted.push(change(doomed, &active[0]));
        Ok(fixture)
    }

    async fn owner_of(&self, object: ObjectKind, id: &RecordId) -> Result<Option<OwnerId>, String> {
        let state = self.sim.state();
        let owner = match object {
            ObjectKind::Lead => state
                .leads
                .iter()
                .find(|l| l.id == id.0)
                .map(|l| l.owner_id.clone()),
            ObjectKind::Contact => state
                .contacts
                .iter()
                .find(|c| c.id == id.0)
                .map(|c| c.owner_id.clone()),
            ObjectKind::Account => state
                .accounts
                .iter()
                .find(|a| a.id == id.0)
                .map(|a| a.owner_id.clone()),
            ObjectKind::Owner | ObjectKind::Activity => None,
        };
        Ok(owner.map(OwnerId))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_passes_the_crm_conformance_suite_over_http() {
    let (sim, crm) = connector(small_org()).await;
    let org = SimOrg { sim: sim.clone() };
    let options = conformance::Options {
        overlap: crm.settings().overlap,
        page_size: PAGE as usize,
        edits: 30,
        seed: 11,
        person_object: ObjectKind::Lead,
        ..conformance::Options::default()
    };
    let report = conformance::run(&crm, &org, &options)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(report.passed.len(), 7, "{report:?}");
    assert!(report.mirrored[&ObjectKind::Lead] > 500, "{report:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_owner_written_by_the_connector_survives_the_assignment_rule() {
    let config = SalesforceSimConfig {
        lead_assignment_rule: LeadAssignmentRule::Queue {
            queue_name: "Lead Intake".into(),
        },
        validation_rule: false,
        ..small_org()
    };
    let (sim, crm) = connector(config).await;
    let state = sim.state();
    let queue = state
        .groups
        .iter()
        .find(|g| g.name.as_deref() == Some("Lead Intake"))
        .expect("the generator makes a Lead Intake queue")
        .id
        .clone();
    let user = state
        .users
        .iter()
        .find(|u| u.is_active)
        .expect("an active user")
        .id
        .clone();
    let leads: Vec<_> = state
        .leads
        .iter()
        .filter(|l| !l.is_deleted && !l.is_converted && l.owner_id != user)
        .take(2)
        .collect();

    // Through the connector: the header keeps the rule away.
    let change = OwnerChange {
        id: RecordId::new(leads[0].id.as_str()),
        from: None,
        to: OwnerId::new(user.as_str()),
        if_unmodified_since: None,
    };
    let outcomes = crm.apply(ObjectKind::Lead, &[change]).await.unwrap();
    assert_eq!(outcomes, vec![WriteOutcome::Applied]);
    let after = sim.state();
    assert_eq!(
        after
            .leads
            .iter()
            .find(|l| l.id == leads[0].id)
            .unwrap()
            .owner_id,
        user
    );

    // A raw update without the header: the org's rule overwrites the owner.
    let http = reqwest::Client::new();
    let response = http
        .patch(format!(
            "{}/services/data/v62.0/sobjects/Lead/{}",
            sim.base_url(),
            leads[1].id
        ))
        .bearer_auth(sim.token())
        .json(&serde_json::json!({"OwnerId": user}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let after = sim.state();
    assert_eq!(
        after
            .leads
            .iter()
            .find(|l| l.id == leads[1].id)
            .unwrap()
            .owner_id,
        queue,
        "the assignment rule reassigns without the header"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_interrupted_by_an_expired_session_recovers_with_one_token_request() {
    let (sim, crm) = connector(small_org()).await;
    let first = crm.changes(ObjectKind::Lead, None).await.unwrap();
    assert!(!first.done);
    let before = crm.token_requests();
    sim.set_faults(FaultScript {
        expire_sessions: true,
        ..FaultScript::default()
    });
    // Many concurrent calls fail with 401 at once: one token request serves them all.
    let cursor = first.cursor.clone();
    let calls = (0..6).map(|_| {
        let crm = crm.clone();
        let ids: Vec<RecordId> = first
            .changes
            .iter()
            .take(5)
            .map(|c| match c {
                Change::Upsert(r) => RecordId::new(r.id()),
                _ => unreachable!(),
            })
            .collect();
        tokio::spawn(async move { crm.current_owners(ObjectKind::Lead, &ids).await })
    });
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().len(), 5);
    }
    assert_eq!(crm.token_requests(), before + 1, "single-flight re-auth");
    let mut cursor = Some(cursor);
    let mut seen = first.changes.len();
    loop {
        let page = crm
            .changes(ObjectKind::Lead, cursor.as_ref())
            .await
            .unwrap();
        seen += page.changes.len();
        cursor = Some(page.cursor);
        if page.done {
            break;
        }
    }
    let live = sim.state().leads.iter().filter(|l| !l.is_deleted).count();
    assert_eq!(seen, live);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_daily_allocation_stops_cleanly_and_says_when_to_resume() {
    let (sim, crm) = connector(small_org()).await;
    let first = crm.changes(ObjectKind::Contact, None).await.unwrap();
    sim.set_faults(FaultScript {
        exhaust_after_calls: Some(0),
        ..FaultScript::default()
    });
    let err = crm
        .changes(ObjectKind::Contact, Some(&first.cursor))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::QuotaExhausted);
    assert_eq!(err.status, Some(403));
    let resume_at = err.resume_at.expect("a resume time");
    assert!(resume_at > Utc::now() && resume_at <= Utc::now() + chrono::Duration::hours(24));
    assert!(err.message.contains("resume"), "{}", err.message);
    // Further calls are refused locally, without spending calls the org does not have.
    let used = sim.stats().api_used;
    let again = crm
        .changes(ObjectKind::Contact, Some(&first.cursor))
        .await
        .unwrap_err();
    assert_eq!(again.kind, ErrorKind::QuotaExhausted);
    assert_eq!(sim.stats().api_used, used);
    assert!(crm.usage().throttled >= 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_pauses_before_eating_the_reserve_of_other_integrations() {
    let config = SalesforceSimConfig {
        daily_api_limit: 40,
        ..small_org()
    };
    let sim = spawn(config.clone()).await;
    let mut s = settings(&sim, refresh_auth(&config));
    s.daily_reserve = 30;
    let crm = Salesforce::new(s).unwrap();
    let mut cursor = None;
    let err = loop {
        match crm.changes(ObjectKind::Lead, cursor.as_ref()).await {
            Ok(page) => cursor = Some(page.cursor),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind, ErrorKind::QuotaExhausted);
    assert!(err.resume_at.is_some());
    let stats = sim.stats();
    assert!(
        stats.api_used <= 10,
        "used {} of 40 with 30 reserved",
        stats.api_used
    );
    assert_eq!(
        stats.limit_rejections, 0,
        "stopped before the org had to refuse"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_sharing_one_second_across_a_page_boundary_are_all_mirrored_after_a_restart() {
    let (sim, crm) = connector(small_org()).await;
    // Full sync to the end.
    let mut cursor = None;
    loop {
        let page = crm
            .changes(ObjectKind::Contact, cursor.as_ref())
            .await
            .unwrap();
        cursor = Some(page.cursor);
        if page.done {
            break;
        }
    }
    let stamped = sim
        .mutate(Mutation::BulkStamp {
            object: "Contact".into(),
            count: 450,
        })
        .unwrap()
        .ids;
    // First page of the incremental pass, then a "restart" from the stored text, with
    // the query locator expired (as after a long pause).
    let page = crm
        .changes(ObjectKind::Contact, cursor.as_ref())
        .await
        .unwrap();
    assert!(!page.done);
    let mut got: std::collections::BTreeSet<String> = page
        .changes
        .iter()
        .map(|c| match c {
            Change::Upsert(r) => r.id().to_owned(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let stored = page.cursor.0.clone();
    let mut value: serde_json::Value = serde_json::from_str(&stored).unwrap();
    value["next"] =
        serde_json::Value::String("/services/data/v62.0/query/01gEXPIREDLOCATORX-200".into());
    let restarted = Salesforce::new(crm.settings().clone()).unwrap();
    let mut cursor = Some(leadroute_crm::Cursor(value.to_string()));
    let mut repeats = 0;
    loop {
        let page = restarted
            .changes(ObjectKind::Contact, cursor.as_ref())
            .await
            .unwrap();
        for change in &page.changes {
            if let Change::Upsert(r) = change {
                if !got.insert(r.id().to_owned()) {
                    repeats += 1;
                }
            }
        }
        cursor = Some(page.cursor);
        if page.done {
            break;
        }
    }
    for id in &stamped {
        assert!(
            got.contains(id),
            "{id} stamped in the shared second was not mirrored"
        );
    }
    assert_eq!(repeats, 0, "rows already delivered were delivered again");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_flow_authenticates_with_a_signed_assertion() {
    let config = SalesforceSimConfig {
        jwt_certificate_pem: Some(fixture("test_jwt_key.pub.pem")),
        ..small_org()
    };
    let sim = spawn(config.clone()).await;
    let auth = SalesforceAuth::JwtBearer {
        client_id: config.client_id.clone(),
        username: config.username.clone(),
        private_key_pem: SecretString::from(fixture("test_jwt_key.pem")),
        audience: sim.base_url(),
    };
    let crm = Salesforce::new(settings(&sim, auth)).unwrap();
    let page = crm.changes(ObjectKind::Owner, None).await.unwrap();
    assert!(!page.changes.is_empty());
    assert_eq!(crm.instance_url().as_deref(), Some(sim.base_url().as_str()));
    // A wrong key is refused as an auth error, not retried forever.
    let wrong = SalesforceAuth::JwtBearer {
        client_id: config.client_id.clone(),
        username: "someone-else@example.com".into(),
        private_key_pem: SecretString::from(fixture("test_jwt_key.pem")),
        audience: sim.base_url(),
    };
    let err = Salesforce::new(settings(&sim, wrong))
        .unwrap()
        .changes(ObjectKind::Owner, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_rotation_hands_each_new_token_to_the_caller() {
    let config = SalesforceSimConfig {
        rotate_refresh_tokens: true,
        ..small_org()
    };
    let (sim, crm) = connector(config.clone()).await;
    let rotated: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = rotated.clone();
    crm.on_refresh_token_rotated(move |token| sink.lock().push(token.expose_secret().to_owned()));
    crm.changes(ObjectKind::Owner, None).await.unwrap();
    sim.set_faults(FaultScript {
        expire_sessions: true,
        ..FaultScript::default()
    });
    crm.changes(ObjectKind::Owner, None).await.unwrap();
    let rotated = rotated.lock().clone();
    assert_eq!(rotated.len(), 2, "one new refresh token per refresh");
    assert_ne!(rotated[0], config.refresh_token);
    assert_ne!(rotated[0], rotated[1]);
    assert_eq!(
        crm.current_refresh_token().unwrap().expose_secret(),
        rotated[1]
    );
    // The original token is dead: a connector still holding it cannot log in.
    let stale = Salesforce::new(settings(&sim, refresh_auth(&config))).unwrap();
    assert_eq!(
        stale
            .changes(ObjectKind::Owner, None)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Auth
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_and_pre_issued_sessions_work() {
    let config = SalesforceSimConfig {
        pre_issued_token: Some("00Dpre!issued.session.token".into()),
        ..small_org()
    };
    let sim = spawn(config.clone()).await;
    let cc = SalesforceAuth::ClientCredentials {
        client_id: config.client_id.clone(),
        client_secret: SecretString::from(config.client_secret.clone()),
    };
    let crm = Salesforce::new(settings(&sim, cc)).unwrap();
    assert!(
        !crm.changes(ObjectKind::Owner, None)
            .await
            .unwrap()
            .changes
            .is_empty()
    );

    let mut s = settings(
        &sim,
        SalesforceAuth::Session {
            token: SecretString::from("00Dpre!issued.session.token".to_owned()),
        },
    );
    s.instance_url = Some(sim.base_url());
    let crm = Salesforce::new(s).unwrap();
    assert!(
        !crm.changes(ObjectKind::Owner, None)
            .await
            .unwrap()
            .changes
            .is_empty()
    );
    // A pre-issued session cannot be renewed: expiry is a clear auth error.
    sim.set_faults(FaultScript {
        expire_sessions: true,
        ..FaultScript::default()
    });
    let err = crm.changes(ObjectKind::Owner, None).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.message.contains("pre-issued"), "{}", err.message);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_writes_report_each_record_and_strict_writes_detect_conflicts() {
    let config = SalesforceSimConfig {
        validation_rule: false,
        ..small_org()
    };
    let sim = spawn(config.clone()).await;
    let mut s = settings(&sim, refresh_auth(&config));
    s.strict_writes = true;
    let crm = Salesforce::new(s).unwrap();
    let state = sim.state();
    let user = state.users.iter().find(|u| u.is_active).unwrap().id.clone();
    let inactive = state
        .users
        .iter()
        .find(|u| !u.is_active)
        .map(|u| u.id.clone());
    let contacts: Vec<_> = state
        .contacts
        .iter()
        .filter(|c| !c.is_deleted)
        .take(250)
        .collect();
    let mut batch: Vec<OwnerChange> = contacts
        .iter()
        .map(|c| OwnerChange {
            id: RecordId::new(c.id.as_str()),
            from: None,
            to: OwnerId::new(user.as_str()),
            if_unmodified_since: None,
        })
        .collect();
    if let Some(inactive) = &inactive {
        batch[7].to = OwnerId::new(inactive.as_str());
    }
    let bulk = crm.apply_bulk(ObjectKind::Contact, &batch).await.unwrap();
    assert!(
        bulk.job_id
            .as_deref()
            .is_some_and(|id| id.starts_with("750"))
    );
    let outcomes = bulk.outcomes;
    assert_eq!(outcomes.len(), 250);
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 7 && inactive.is_some() {
            assert!(
                matches!(
                    outcome,
                    WriteOutcome::Rejected {
                        kind: RejectKind::InactiveOwner,
                        ..
                    }
                ),
                "{outcome:?}"
            );
        } else {
            assert_eq!(outcome, &WriteOutcome::Applied, "record {i}");
        }
    }
    // Strict mode: a record edited after the plan read it is a conflict.
    let lead = state
        .leads
        .iter()
        .find(|l| !l.is_deleted && !l.is_converted && l.owner_id != user)
        .unwrap();
    let read_at = stamp(&lead.system_modstamp);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sim.mutate(Mutation::Edit {
        object: "Lead".into(),
        id: lead.id.clone(),
        fields: serde_json::from_str(r#"{"LastName":"Edited"}"#).unwrap(),
    })
    .unwrap();
    let fresh = state
        .leads
        .iter()
        .find(|l| !l.is_deleted && !l.is_converted && l.owner_id != user && l.id != lead.id)
        .unwrap();
    let changes = [
        OwnerChange {
            id: RecordId::new(lead.id.as_str()),
            from: None,
            to: OwnerId::new(user.as_str()),
            if_unmodified_since: Some(read_at),
        },
        OwnerChange {
            id: RecordId::new(fresh.id.as_str()),
            from: None,
            to: OwnerId::new(user.as_str()),
            if_unmodified_since: Some(Utc::now()),
        },
    ];
    let outcomes = crm.apply(ObjectKind::Lead, &changes).await.unwrap();
    assert!(
        matches!(
            outcomes[0],
            WriteOutcome::Rejected {
                kind: RejectKind::Conflict,
                ..
            }
        ),
        "{:?}",
        outcomes[0]
    );
    assert_eq!(outcomes[1], WriteOutcome::Applied);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_job_does_not_fire_the_lead_assignment_rule_and_cleans_up_after_itself() {
    // REST would let this rule rewrite every owner we send (no header = TRUE); a Bulk
    // API 2.0 job runs it only when created with `assignmentRuleId`, which we never send.
    let config = SalesforceSimConfig {
        validation_rule: false,
        lead_assignment_rule: LeadAssignmentRule::Queue {
            queue_name: "Lead Intake".into(),
        },
        ..small_org()
    };
    let (sim, crm) = connector(config).await;
    let state = sim.state();
    let user = state.users.iter().find(|u| u.is_active).unwrap().id.clone();
    let leads: Vec<_> = state
        .leads
        .iter()
        .filter(|l| !l.is_deleted && !l.is_converted && l.owner_id != user)
        .take(300)
        .collect();
    let batch: Vec<OwnerChange> = leads
        .iter()
        .map(|l| OwnerChange {
            id: RecordId::new(l.id.as_str()),
            from: Some(OwnerId::new(l.owner_id.as_str())),
            to: OwnerId::new(user.as_str()),
            if_unmodified_since: None,
        })
        .collect();
    let calls_before = sim.stats().api_used;
    let bulk = crm.apply_bulk(ObjectKind::Lead, &batch).await.unwrap();
    assert!(bulk.outcomes.iter().all(|o| *o == WriteOutcome::Applied));
    let after = sim.state();
    for lead in &leads {
        let now = after.leads.iter().find(|l| l.id == lead.id).unwrap();
        assert_eq!(
            now.owner_id, user,
            "the assignment rule did not run on {}",
            lead.id
        );
    }
    let log = sim.write_log();
    assert!(log.iter().all(|w| w.source != "assignment_rule"));
    assert_eq!(
        log.iter()
            .filter(|w| w.field == "OwnerId" && w.source == "bulk2")
            .count(),
        300
    );
    // Every bulk call counted against the allocation: create, upload, close, polls,
    // two result files, delete; the job is gone afterwards.
    let used = sim.stats().api_used - calls_before;
    assert!(used >= 7, "{used} calls counted");
    assert!(used < 30, "{used} calls: polling backs off");
    let calls = sim.stats().calls;
    assert_eq!(calls.get("DELETE jobs/ingest/{id}"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("PATCH composite/sobjects"), None, "{calls:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_reports_merges_and_deletes_and_outbound_messages_become_hints() {
    let (sim, crm) = connector(small_org()).await;
    let state = sim.state();
    let contacts: Vec<_> = state
        .contacts
        .iter()
        .filter(|c| !c.is_deleted)
        .take(3)
        .collect();
    sim.mutate(Mutation::Merge {
        object: "Contact".into(),
        master_id: contacts[0].id.clone(),
        loser_ids: vec![contacts[1].id.clone()],
    })
    .unwrap();
    sim.mutate(Mutation::Delete {
        object: "Contact".into(),
        id: contacts[2].id.clone(),
    })
    .unwrap();
    let ids: Vec<RecordId> = contacts[1..]
        .iter()
        .map(|c| RecordId::new(c.id.as_str()))
        .collect();
    let changes = crm.fetch(ObjectKind::Contact, &ids).await.unwrap();
    assert!(changes.iter().any(|c| matches!(c, Change::Merged { loser, winner, .. } if loser.0 == contacts[1].id && winner.0 == contacts[0].id)));
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Deleted { id, .. } if id.0 == contacts[2].id))
    );
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Upsert(r) if r.id() == contacts[0].id))
    );
    // Owners: a user and a queue come back; a public group (also `00G`) is no owner.
    let user = state.users[0].id.clone();
    let queue = state
        .groups
        .iter()
        .find(|g| g.group_type.as_deref() == Some("Queue"))
        .unwrap()
        .id
        .clone();
    let group = state
        .groups
        .iter()
        .find(|g| g.group_type.as_deref() != Some("Queue"))
        .map(|g| g.id.clone());
    let mut ids = vec![RecordId::new(user.as_str()), RecordId::new(queue.as_str())];
    ids.extend(group.iter().map(|g| RecordId::new(g.as_str())));
    let changes = crm.fetch(ObjectKind::Owner, &ids).await.unwrap();
    assert!(changes.iter().any(|c| matches!(c, Change::Upsert(Record::Owner(o)) if o.id.0 == user && o.kind == OwnerKind::User)));
    assert!(changes.iter().any(|c| matches!(c, Change::Upsert(Record::Owner(o)) if o.id.0 == queue && o.kind == OwnerKind::Queue)));
    if let Some(group) = group {
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, Change::Deleted { id, .. } if id.0 == group))
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_messages_are_acknowledged_and_become_refetch_hints() {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;

    let (sim, crm) = connector(small_org()).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handler_crm = crm.clone();
    let app = axum::Router::new().route(
        "/outbound",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let crm = handler_crm.clone();
            let tx = tx.clone();
            async move {
                let request = leadroute_crm::InboundRequest {
                    method: "POST".into(),
                    url: "http://127.0.0.1/outbound".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect(),
                    body: body.to_vec(),
                    received_at: Utc::now(),
                };
                match crm.intake(&request) {
                    Ok(intake) => {
                        for hint in intake.hints {
                            let _ = tx.send(hint);
                        }
                        (
                            StatusCode::from_u16(intake.response.status).unwrap(),
                            [("content-type", intake.response.content_type)],
                            intake.response.body,
                        )
                            .into_response()
                    }
                    Err(e) => {
                        (StatusCode::from_u16(e.status()).unwrap(), e.to_string()).into_response()
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    sim.set_outbound_url(Some(format!("http://{addr}/outbound")));

    let lead = sim
        .state()
        .leads
        .iter()
        .find(|l| !l.is_deleted && !l.is_converted)
        .unwrap()
        .id
        .clone();
    sim.mutate(Mutation::Edit {
        object: "Lead".into(),
        id: lead.clone(),
        fields: serde_json::from_str(r#"{"LastName":"Pinged"}"#).unwrap(),
    })
    .unwrap();
    let hint = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let hint = rx.recv().await.expect("the handler lives");
            if hint.id.0 == lead {
                return hint;
            }
        }
    })
    .await
    .expect("the simulator delivers an outbound message within 10 s");
    assert_eq!(hint.object, ObjectKind::Lead);
    assert!(hint.dedupe_key.starts_with("salesforce:om:"));
    // The acknowledgement is what stops redelivery.
    tokio::time::timeout(Duration::from_secs(5), async {
        while sim.stats().outbound_acks == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the simulator records the acknowledgement");
    server.abort();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_connection_resets_are_retried_as_whole_calls() {
    let (sim, crm) = connector(small_org()).await;
    sim.set_faults(FaultScript {
        server_errors_next: 2,
        resets_next: 1,
        ..FaultScript::default()
    });
    let page = crm.changes(ObjectKind::Owner, None).await.unwrap();
    assert!(!page.changes.is_empty());
    assert!(crm.usage().retries >= 3, "{:?}", crm.usage());
    assert!(
        crm.usage().daily_max.is_some(),
        "Sforce-Limit-Info was read"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_is_lost_is_left_to_the_caller_not_resent_blind() {
    let config = SalesforceSimConfig {
        validation_rule: false,
        ..small_org()
    };
    let (sim, crm) = connector(config).await;
    let state = sim.state();
    let user = state.users.iter().find(|u| u.is_active).unwrap().id.clone();
    let contact = state
        .contacts
        .iter()
        .find(|c| !c.is_deleted && c.owner_id != user)
        .unwrap();
    sim.set_faults(FaultScript {
        path_contains: Some("/composite/sobjects".into()),
        lost_answer_rate: 1.0,
        ..FaultScript::default()
    });
    let change = OwnerChange {
        id: RecordId::new(contact.id.as_str()),
        from: None,
        to: OwnerId::new(user.as_str()),
        if_unmodified_since: None,
    };
    let err = crm.apply(ObjectKind::Contact, &[change]).await.unwrap_err();
    assert!(err.kind.is_outcome_unknown(), "{err}");
    // The write landed once; the connector did not send it again on its own (a
    // person could have changed the owner in between: the writer re-reads first).
    assert_eq!(sim.stats().calls.get("PATCH composite/sobjects"), Some(&1));
    let writes = sim
        .write_log()
        .into_iter()
        .filter(|w| w.id == contact.id && w.field == "OwnerId")
        .count();
    assert_eq!(writes, 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_rows_come_back_per_record_and_get_deleted_lists_deletions() {
    let config = SalesforceSimConfig {
        validation_rule: false,
        ..small_org()
    };
    let (sim, crm) = connector(config).await;
    let state = sim.state();
    let user = state.users.iter().find(|u| u.is_active).unwrap().id.clone();
    let contacts: Vec<_> = state
        .contacts
        .iter()
        .filter(|c| !c.is_deleted && c.owner_id != user)
        .take(2)
        .collect();
    sim.set_faults(FaultScript {
        lock_row_next: 1,
        ..FaultScript::default()
    });
    let batch: Vec<OwnerChange> = contacts
        .iter()
        .map(|c| OwnerChange {
            id: RecordId::new(c.id.as_str()),
            from: None,
            to: OwnerId::new(user.as_str()),
            if_unmodified_since: None,
        })
        .collect();
    let outcomes = crm.apply(ObjectKind::Contact, &batch).await.unwrap();
    assert!(
        matches!(&outcomes[0], WriteOutcome::Rejected { kind: RejectKind::Locked, code, .. } if code == "UNABLE_TO_LOCK_ROW"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], WriteOutcome::Applied);
    sim.set_faults(FaultScript::default());

    // The generated org has deletions from the past days; a fresh one falls in the
    // current minute, which getDeleted does not cover yet (latestDateCovered says so).
    sim.mutate(Mutation::Delete {
        object: "Contact".into(),
        id: contacts[0].id.clone(),
    })
    .unwrap();
    let start = Utc::now() - chrono::Duration::days(14);
    let window = crm
        .get_deleted(ObjectKind::Contact, start, Utc::now())
        .await
        .unwrap();
    let state = sim.state();
    assert!(!window.changes.is_empty(), "{window:?}");
    for change in &window.changes {
        let Change::Deleted { id, .. } = change else {
            panic!("{change:?}")
        };
        assert!(
            state.contacts.iter().any(|c| c.id == id.0 && c.is_deleted),
            "{id} is not deleted"
        );
    }
    let covered = window.latest_date_covered.expect("latestDateCovered");
    assert!(
        covered <= Utc::now(),
        "latestDateCovered never runs ahead of the org clock"
    );
    assert!(window.latest_date_covered.is_some());
    sim.shutdown().await;
}

/// Runs six concurrent owner reads against an org that allows one long-running request
/// and returns (all succeeded, concurrency rejections served, throttles seen).
async fn six_slow_reads(max_in_flight: usize) -> (bool, u64, u64) {
    let config = SalesforceSimConfig {
        long_running_threshold: Duration::from_millis(40),
        max_long_running: 1,
        ..small_org()
    };
    let sim = spawn(config.clone()).await;
    let mut s = settings(&sim, refresh_auth(&config));
    s.max_in_flight = max_in_flight;
    s.retry_base = Duration::from_millis(100);
    s.max_retries = 6;
    let crm = Salesforce::new(s).expect("valid settings");
    let ids: Vec<RecordId> = sim
        .state()
        .leads
        .iter()
        .take(3)
        .map(|l| RecordId::new(l.id.as_str()))
        .collect();
    crm.current_owners(ObjectKind::Lead, &ids)
        .await
        .expect("a read before any fault");
    sim.set_faults(FaultScript {
        slow_all: true,
        slow_ms: 600,
        ..FaultScript::default()
    });
    let mut tasks = Vec::new();
    for i in 0..6 {
        let crm = crm.clone();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            crm.current_owners(ObjectKind::Lead, &ids).await
        }));
        if i == 0 {
            // The first request is long-running by the time the others arrive.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let mut all_ok = true;
    for task in tasks {
        all_ok &= task.await.is_ok_and(|r| r.is_ok());
    }
    let rejections = sim.stats().limit_rejections;
    let throttled = crm.usage().throttled;
    sim.shutdown().await;
    (all_ok, rejections, throttled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_cap_keeps_long_requests_under_the_org_concurrency_limit() {
    let (ok, rejections, _) = six_slow_reads(1).await;
    assert!(ok);
    assert_eq!(
        rejections, 0,
        "one request in flight never meets the concurrency limit"
    );
    // Without the cap the org refuses some (ConcurrentRequests), and the connector
    // retries them later instead of failing.
    let (ok, rejections, throttled) = six_slow_reads(6).await;
    assert!(ok, "concurrency refusals are retried");
    assert!(
        rejections > 0 && throttled > 0,
        "rejections {rejections}, throttled {throttled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_visible_commit_stamped_before_the_watermark_is_still_mirrored() {
    let (sim, crm) = connector(small_org()).await;
    let options = conformance::Options {
        overlap: crm.settings().overlap,
        page_size: PAGE as usize,
        ..conformance::Options::default()
    };
    let mut mirror = conformance::Mirror::default();
    conformance::sync_until_done(&crm, &mut mirror, ObjectKind::Contact, &options)
        .await
        .unwrap();
    let state = sim.state();
    let user = state.users.iter().find(|u| u.is_active).unwrap().id.clone();
    let live: Vec<_> = state
        .contacts
        .iter()
        .filter(|c| !c.is_deleted && c.owner_id != user)
        .take(2)
        .collect();
    // Our write commits late: stamped now, visible only 1.5 s later.
    sim.set_faults(FaultScript {
        late_commit_ms: 1500,
        ..FaultScript::default()
    });
    let change = OwnerChange {
        id: RecordId::new(live[0].id.as_str()),
        from: None,
        to: OwnerId::new(user.as_str()),
        if_unmodified_since: None,
    };
    assert_eq!(
        crm.apply(ObjectKind::Contact, &[change]).await.unwrap(),
        vec![WriteOutcome::Applied]
    );
    sim.set_faults(FaultScript::default());
    // A later edit is visible at once and moves the watermark past the late one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sim.mutate(Mutation::Edit {
        object: "Contact".into(),
        id: live[1].id.clone(),
        fields: serde_json::from_str(r#"{"LastName":"Later"}"#).unwrap(),
    })
    .unwrap();
    conformance::sync_until_done(&crm, &mut mirror, ObjectKind::Contact, &options)
        .await
        .unwrap();
    let owner_in_mirror = |mirror: &conformance::Mirror| match mirror
        .records
        .get(&(ObjectKind::Contact, live[0].id.clone()))
    {
        Some(Record::Person(p)) => p.owner_id.clone(),
        _ => None,
    };
    assert_ne!(
        owner_in_mirror(&mirror),
        Some(OwnerId::new(user.as_str())),
        "not visible yet"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    conformance::sync_until_done(&crm, &mut mirror, ObjectKind::Contact, &options)
        .await
        .unwrap();
    assert_eq!(
        owner_in_mirror(&mirror),
        Some(OwnerId::new(user.as_str())),
        "the overlap window catches the late commit"
    );
    conformance::compare(
        "late_commit",
        &mirror,
        &SimOrg { sim: sim.clone() },
        ObjectKind::Contact,
    )
    .await
    .unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn a_started_bulk_job_writes_nothing_until_run_and_abort_ends_it_whatever_its_state() {
    let (sim, crm) = connector(SalesforceSimConfig {
        bulk_step_rows: 20,
        bulk_step_delay: std::time::Duration::from_millis(40),
        ..small_org()
    })
    .await;
    let state = sim.state();
    let user = state.users.iter().find(|u| u.is_active).unwrap().id.clone();
    let batch: Vec<OwnerChange> = state
        .leads
        .iter()
        .filter(|l| !l.is_deleted && !l.is_converted && l.owner_id != user)
        .take(200)
        .map(|l| OwnerChange {
            id: RecordId::new(l.id.as_str()),
            from: None,
            to: OwnerId::new(user.as_str()),
            if_unmodified_since: None,
        })
        .collect();
    let writes = |sim: &SalesforceSim| {
        sim.write_log()
            .iter()
            .filter(|w| w.source == "bulk2")
            .count()
    };

    // Started, never run: it stays Open and writes nothing; abort ends it.
    let open = crm.bulk_start(ObjectKind::Lead, &batch).await.unwrap();
    let open_id = open.id.clone().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(writes(&sim), 0, "an unclosed job processes nothing");
    let end = crm.bulk_abort(ObjectKind::Lead, &open_id).await.unwrap();
    assert_eq!(
        (end.state, end.processed),
        (leadroute_crm::BulkJobState::Aborted, 0)
    );
    // Aborting a final job again only reads it.
    let again = crm.bulk_abort(ObjectKind::Lead, &open_id).await.unwrap();
    assert_eq!(again.state, leadroute_crm::BulkJobState::Aborted);
    assert_eq!(writes(&sim), 0);

    // Run, then abandoned mid-way (a killed process): abort stops it part-way and
    // returns once it is final; nothing more is written after.
    let job = crm.bulk_start(ObjectKind::Lead, &batch).await.unwrap();
    let job_id = job.id.clone().unwrap();
    let crm = Arc::new(crm);
    let running = {
        let crm = crm.clone();
        tokio::spawn(async move { crm.bulk_run(job).await })
    };
    while writes(&sim) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    running.abort();
    let end = crm.bulk_abort(ObjectKind::Lead, &job_id).await.unwrap();
    assert_eq!(end.state, leadroute_crm::BulkJobState::Aborted, "{end:?}");
    assert!(end.processed > 0 && end.processed < 200, "{end:?}");
    let written = writes(&sim);
    assert_eq!(written as u64, end.processed);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(writes(&sim), written, "nothing written once abort returned");

    // A finished, deleted job is gone.
    let done = crm.apply_bulk(ObjectKind::Lead, &batch[..5]).await.unwrap();
    let end = crm
        .bulk_abort(ObjectKind::Lead, done.job_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(end.state, leadroute_crm::BulkJobState::Gone);
    sim.shutdown().await;
}
