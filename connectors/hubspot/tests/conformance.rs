//! The HubSpot connector passes the CRM conformance suite (`leadroute_crm::conformance`)
//! against the HubSpot simulator over real HTTP on 127.0.0.1.
//!
//! This file owns the HubSpot side of the suite: [`SimOrg`], the `OrgControl` that
//! drives the simulator (human edits through `Mutation`, ground truth from `state()`
//! mapped the way the connector maps the wire, token expiry and the daily limit through
//! the fault script, bulk stamps through a spreadsheet import).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use leadroute_crm::conformance::{self, OrgControl, WriteFixture};
use leadroute_crm::{
    AccountLink, AccountRecord, Crm, ObjectKind, OwnerChange, OwnerId, OwnerKind, OwnerRecord,
    PersonRecord, Record, RecordId,
};
use leadroute_hubspot::{HubSpot, HubSpotAuth, HubSpotSettings};
use leadroute_sim::hubspot::{
    Fault, FaultRule, FaultScript, HubSpotSim, HubSpotSimConfig, HubSpotState, Mutation,
    ObjectType, SimRecord, Trigger,
};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;

/// The connector's incremental search page (HubSpot's maximum): `bulk_stamp` stamps one
/// and a half of these, so the shared stamp straddles a page boundary.
const SEARCH_PAGE: usize = 200;

/// Overlap of the connector under test: short, because search lag is zero here.
const OVERLAP: Duration = Duration::from_secs(2);

fn sim_config() -> HubSpotSimConfig {
    HubSpotSimConfig {
        contacts: 700,
        companies: 120,
        owners: 10,
        // The index lag is the overlap's business, exercised elsewhere; here it would
        // only slow the suite down.
        search_lag: Duration::ZERO,
        ..HubSpotSimConfig::default()
    }
}

/// OAuth settings, so that expiring the issued access tokens is meaningful.
fn settings(sim: &HubSpotSim) -> HubSpotSettings {
    let config = sim.config();
    let mut s = HubSpotSettings::new(
        sim.base_url(),
        HubSpotAuth::OAuth {
            client_id: config.client_id.clone(),
            client_secret: SecretString::from(config.client_secret.clone()),
            refresh_token: SecretString::from(config.refresh_token.clone()),
        },
    );
    s.overlap = OVERLAP;
    s.request_timeout = Duration::from_secs(10);
    s.daily_reserve = 0;
    s
}

/// A property as the connector reads it: trimmed, empty means absent.
fn prop(record: &SimRecord, name: &str) -> Option<String> {
    record
        .properties
        .get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn stamp(ms: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(|| panic!("sim stamp {ms} ms is not a time"))
}

/// The simulator's live records of `object` as contract records, filled only where the
/// conformance fingerprint looks (id, owner, email, last name / name, links, stamp).
fn expected_records(state: &HubSpotState, object: ObjectKind) -> Vec<Record> {
    match object {
        ObjectKind::Contact => {
            // HubSpot serves no link to an archived company, so neither does the truth.
            let live_companies: std::collections::BTreeSet<u64> = state
                .companies
                .iter()
                .filter(|c| !c.archived)
                .map(|c| c.id)
                .collect();
            let mut links: BTreeMap<u64, Vec<AccountLink>> = BTreeMap::new();
            for a in &state.associations {
                if live_companies.contains(&a.company_id) {
                    links.entry(a.contact_id).or_default().push(AccountLink {
                        account_id: RecordId(a.company_id.to_string()),
                        primary: a.primary,
                    });
                }
            }
            state
                .contacts
                .iter()
                .filter(|c| !c.archived)
                .map(|c| {
                    Record::Person(PersonRecord {
                        id: RecordId(c.id.to_string()),
                        object: ObjectKind::Contact,
                        email: prop(c, "email").map(|e| e.to_ascii_lowercase()),
                        first_name: None,
                        last_name: prop(c, "lastname"),
                        company: None,
                        website: None,
                        country: None,
                        state: None,
                        owner_id: prop(c, "hubspot_owner_id").map(OwnerId),
                        accounts: Some(links.remove(&c.id).unwrap_or_default()),
                        owner_assigned_at: None,
                        // HubSpot contacts are never "converted".
                        converted: false,
                        created_at: None,
                        updated_at: stamp(c.updated_at_ms),
                        fields: Default::default(),
                        raw: serde_json::Value::Null,
                    })
                })
                .collect()
        }
        ObjectKind::Account => state
            .companies
            .iter()
            .filter(|c| !c.archived)
            .map(|c| {
                Record::Account(AccountRecord {
                    id: RecordId(c.id.to_string()),
                    name: prop(c, "name"),
                    domain: None,
                    website: None,
                    extra_domains: Vec::new(),
                    country: None,
                    state: None,
                    parent_id: prop(c, "hs_parent_company_id").map(RecordId),
                    owner_id: prop(c, "hubspot_owner_id").map(OwnerId),
                    employees: None,
                    industry: None,
                    created_at: None,
                    updated_at: stamp(c.updated_at_ms),
                    fields: Default::default(),
                    raw: serde_json::Value::Null,
                })
            })
            .collect(),
        // Deactivated users stay listed (archived=true) as inactive owners.
        ObjectKind::Owner => state
            .owners
            .iter()
            .map(|o| {
                let name = [o.first_name.trim(), o.last_name.trim()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                let email = Some(o.email.trim().to_ascii_lowercase()).filter(|e| !e.is_empty());
                Record::Owner(OwnerRecord {
                    id: OwnerId(o.id.to_string()),
                    kind: OwnerKind::User,
                    name: if name.is_empty() {
                        email.clone().unwrap_or_else(|| o.id.to_string())
                    } else {
                        name
                    },
                    email,
                    active: !o.archived,
                    teams: Vec::new(),
                    time_zone: None,
                    manager_id: None,
                    user_id: None,
                    updated_at: None,
                })
            })
            .collect(),
        ObjectKind::Lead | ObjectKind::Activity => Vec::new(),
    }
}

fn sim_object(object: ObjectKind) -> Result<ObjectType, String> {
    match object {
        ObjectKind::Contact => Ok(ObjectType::Contacts),
        ObjectKind::Account => Ok(ObjectType::Companies),
        other => Err(format!("HubSpot has no {other} records to edit")),
    }
}

/// Drives the HubSpot simulator for the conformance suite.
struct SimOrg {
    sim: HubSpotSim,
}

impl SimOrg {
    fn mutate(&self, m: Mutation) -> Result<Vec<String>, String> {
        self.sim.mutate(m).map(|r| r.ids)
    }

    fn active_owners(&self) -> Vec<String> {
        self.sim
            .state()
            .owners
            .into_iter()
            .filter(|o| !o.archived)
            .map(|o| o.id.to_string())
            .collect()
    }

    fn live(records: &[SimRecord]) -> Vec<String> {
        records
            .iter()
            .filter(|r| !r.archived)
            .map(|r| r.id.to_string())
            .collect()
    }
}

impl OrgControl for SimOrg {
    async fn random_edits(&self, seed: u64, count: usize) -> Result<(), String> {
        // Owner, lifecycle and field edits spread over contacts and companies...
        self.mutate(Mutation::RandomEdits { n: count, seed })?;
        // ...plus what only a person does: a delete, a merge (a new survivor id), a new
        // contact at a company, a new company link, and a deactivated user.
        let mut rng = StdRng::seed_from_u64(seed);
        let state = self.sim.state();
        let contacts = Self::live(&state.contacts);
        let companies = Self::live(&state.companies);
        let pick = |rng: &mut StdRng, from: &[String]| -> Result<String, String> {
            from.choose(rng)
                .cloned()
                .ok_or_else(|| "nothing live".into())
        };
        let doomed = pick(&mut rng, &contacts)?;
        self.mutate(Mutation::Archive {
            object: ObjectType::Contacts,
            id: doomed.clone(),
        })?;
        let others: Vec<String> = contacts.into_iter().filter(|c| *c != doomed).collect();
        let a = rng.random_range(0..others.len());
        let b = (a + 1 + rng.random_range(0..others.len() - 1)) % others.len();
        self.mutate(Mutation::Merge {
            object: ObjectType::Contacts,
            primary_id: others[a].clone(),
            merged_id: others[b].clone(),
        })?;
        let company = pick(&mut rng, &companies)?;
        let new_contact = self.mutate(Mutation::Create {
            object: ObjectType::Contacts,
            properties: BTreeMap::from([
                ("email".to_owned(), format!("newcomer{seed}@fresh.example")),
                ("firstname".to_owned(), "Nia".to_owned()),
                ("lastname".to_owned(), "Newcomer".to_owned()),
            ]),
            company_id: Some(company),
        })?;
        let also = pick(&mut rng, &companies)?;
        let contact = new_contact
            .first()
            .cloned()
            .ok_or("create returned no id")?;
        self.mutate(Mutation::Associate {
            contact_id: contact,
            company_id: also,
            primary: false,
        })?;
        let owners = self.active_owners();
        if owners.len() > 3 {
            self.mutate(Mutation::DeactivateOwner {
                owner_id: owners[owners.len() - 1].clone(),
            })?;
        }
        Ok(())
    }

    async fn expected(&self, object: ObjectKind) -> Result<Vec<Record>, String> {
        Ok(expected_records(&self.sim.state(), object))
    }

    /// HubSpot has no sessions: OAuth access tokens expire. Every token issued so far
    /// starts answering 401 `EXPIRED_AUTHENTICATION`.
    async fn expire_sessions(&self) -> Result<(), String> {
        self.sim.set_faults(FaultScript {
            expire_tokens: true,
            ..FaultScript::default()
        });
        Ok(())
    }

    /// The daily allocation running out is a 429 with `policyName: DAILY` on every call.
    async fn exhaust_quota(&self) -> Result<(), String> {
        self.sim.set_faults(FaultScript {
            rules: vec![FaultRule {
                families: Vec::new(),
                fault: Fault::RateLimit {
                    policy: "DAILY".into(),
                },
                trigger: Trigger::Always,
            }],
            ..FaultScript::default()
        });
        Ok(())
    }

    async fn restore_quota(&self) -> Result<(), String> {
        self.sim.set_faults(FaultScript::default());
        Ok(())
    }

    /// A spreadsheet import: `count` existing records get one identical
    /// `lastmodifieddate` millisecond.
    async fn bulk_stamp(&self, object: ObjectKind, count: usize) -> Result<Vec<RecordId>, String> {
        let ids = self.mutate(Mutation::BulkImport {
            object: sim_object(object)?,
            update: count,
            create: 0,
            properties: BTreeMap::new(),
            seed: 5,
        })?;
        Ok(ids.into_iter().map(RecordId).collect())
    }

    async fn write_fixture(&self, object: ObjectKind) -> Result<WriteFixture, String> {
        let kind = sim_object(object)?;
        let state = self.sim.state();
        let inactive = match state.owners.iter().find(|o| o.archived) {
            Some(o) => o.id.to_string(),
            None => {
                let id = self.active_owners().last().cloned().ok_or("no owners")?;
                self.mutate(Mutation::DeactivateOwner {
                    owner_id: id.clone(),
                })?;
                id
            }
        };
        let active: Vec<String> = self
            .active_owners()
            .into_iter()
            .filter(|o| *o != inactive)
            .collect();
        let table = match kind {
            ObjectType::Contacts => &state.contacts,
            ObjectType::Companies => &state.companies,
        };
        let live: Vec<(String, Option<String>)> = table
            .iter()
            .filter(|r| !r.archived)
            .map(|r| (r.id.to_string(), prop(r, "hubspot_owner_id")))
            .collect();
        let change = |(id, from): &(String, Option<String>), to: &str| OwnerChange {
            id: RecordId(id.clone()),
            from: from.clone().map(OwnerId),
            to: OwnerId::new(to),
            if_unmodified_since: None,
        };
        let mut fixture = WriteFixture::default();
        for (i, record) in live.iter().take(5).enumerate() {
            let to = active
                .iter()
                .find(|o| Some(*o) != record.1.as_ref())
                .ok_or("no other active owner")?;
            if i < 3 {
                fixture.good.push(change(record, to));
            } else {
                fixture.inactive_owner.push(change(record, &inactive));
            }
        }
        let doomed = live.last().ok_or("no live records")?;
        self.mutate(Mutation::Archive {
            object: kind,
            id: doomed.0.clone(),
        })?;
        fixture.deleted.push(change(doomed, &active[0]));
        Ok(fixture)
    }

    async fn owner_of(&self, object: ObjectKind, id: &RecordId) -> Result<Option<OwnerId>, String> {
        let state = self.sim.state();
        let table = match sim_object(object)? {
            ObjectType::Contacts => &state.contacts,
            ObjectType::Companies => &state.companies,
        };
        Ok(table
            .iter()
            .find(|r| r.id.to_string() == id.0)
            .and_then(|r| prop(r, "hubspot_owner_id"))
            .map(OwnerId))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_passes_the_crm_conformance_suite_over_http() {
    let sim = leadroute_sim::hubspot::spawn(sim_config())
        .await
        .expect("the simulator binds 127.0.0.1:0");
    let crm = HubSpot::new(settings(&sim)).expect("valid settings");
    let org = SimOrg { sim: sim.clone() };
    let options = conformance::Options {
        overlap: OVERLAP,
        page_size: SEARCH_PAGE,
        edits: 40,
        seed: 11,
        person_object: ObjectKind::Contact,
        ..conformance::Options::default()
    };
    let report = conformance::run(&crm, &org, &options)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(report.passed.len(), 7, "{report:?}");
    assert!(report.mirrored[&ObjectKind::Contact] >= 700, "{report:?}");
    assert!(report.mirrored[&ObjectKind::Account] >= 120, "{report:?}");
    // Expired tokens were replaced by refreshing, not by failing the sync.
    assert!(crm.oauth_refreshes() >= 2, "{}", crm.oauth_refreshes());
    assert_eq!(crm.kind(), leadroute_crm::CrmKind::Hubspot);
    sim.shutdown().await;
}
