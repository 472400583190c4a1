//! Owner writes: per-record outcomes for partial failures, invalid owners, unknown ids
//! and duplicates; `current_owners` reads what was written.

use leadroute_crm::{Crm, ObjectKind, OwnerChange, OwnerId, RecordId, RejectKind, WriteOutcome};
use leadroute_sim::hubspot::{EndpointFamily, Fault, FaultRule, FaultScript, Trigger};

use crate::common::*;

fn change(id: u64, to: &str) -> OwnerChange {
    OwnerChange {
        id: RecordId::new(id.to_string()),
        from: None,
        to: OwnerId::new(to),
        if_unmodified_since: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_with_an_invalid_owner_and_unknown_ids_returns_per_record_outcomes() {
    let sim = start(sim_config(60, 5)).await;
    let hs = connector(settings(&sim));
    let state = sim.state();
    let owners = active_owner_ids(&state);
    let archived_owner = state.owners.iter().find(|o| o.archived).map(|o| o.id);
    let ids = live_ids(&state.contacts);
    let good = owners[0].to_string();
    let mut batch: Vec<OwnerChange> = ids[..10].iter().map(|id| change(*id, &good)).collect();
    batch[3] = change(ids[3], "999999999"); // no such owner: INVALID_OPTION, whole call 400
    if let Some(archived) = archived_owner {
        batch[6] = change(ids[6], &archived.to_string()); // deactivated owner: no option
    }
    batch.push(change(987_654_321, &good)); // unknown record
    batch.push(change(ids[0], &good)); // duplicate id

    let outcomes = hs.apply(ObjectKind::Contact, &batch).await.unwrap();
    assert_eq!(outcomes.len(), batch.len());
    for (i, outcome) in outcomes.iter().enumerate() {
        let expected_bad = i == 3 || (i == 6 && archived_owner.is_some());
        match outcome {
            WriteOutcome::Applied if i < 10 && !expected_bad => {}
            WriteOutcome::Rejected {
                kind: RejectKind::InactiveOwner,
                code,
                ..
            } if expected_bad => {
                assert_eq!(code, "INVALID_OPTION");
            }
            WriteOutcome::Rejected {
                kind: RejectKind::NotFound,
                ..
            } if i == 10 => {}
            WriteOutcome::Rejected { code, .. } if i == 11 => {
                assert_eq!(code, "DUPLICATE_ID_IN_BATCH")
            }
            other => panic!("input {i}: unexpected {other:?}"),
        }
    }
    // The good inputs were written, the bad ones not.
    let current = hs
        .current_owners(
            ObjectKind::Contact,
            &batch[..10].iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    for c in current {
        let i = batch.iter().position(|b| b.id == c.id).unwrap();
        let bad = i == 3 || (i == 6 && archived_owner.is_some());
        if bad {
            assert_ne!(
                c.owner_id,
                Some(batch[i].to.clone()),
                "record {} got a rejected owner",
                c.id
            );
        } else {
            assert_eq!(
                c.owner_id,
                Some(OwnerId::new(good.clone())),
                "record {}",
                c.id
            );
        }
    }
    // Never a duplicate id in one call, and nothing written twice.
    let log = sim.write_log();
    let writes_to_first = log
        .iter()
        .filter(|w| format!("{w:?}").contains(&format!("\"{}\"", ids[0])))
        .count();
    assert!(
        writes_to_first <= 1,
        "{writes_to_first} writes to {}",
        ids[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_207_partial_failure_marks_exactly_the_failed_ids() {
    let sim = start(sim_config(150, 5)).await;
    sim.set_faults(FaultScript {
        seed: 11,
        rules: vec![FaultRule {
            families: vec![EndpointFamily::BatchUpdate],
            fault: Fault::PartialBatchFailure {
                fraction: 0.2,
                category: "INTERNAL_ERROR".into(),
            },
            trigger: Trigger::Always,
        }],
        expire_tokens: false,
    });
    let hs = connector(settings(&sim));
    let state = sim.state();
    let owner = active_owner_ids(&state)[1].to_string();
    let ids = live_ids(&state.contacts);
    let batch: Vec<OwnerChange> = ids[..100].iter().map(|id| change(*id, &owner)).collect();
    let outcomes = hs.apply(ObjectKind::Contact, &batch).await.unwrap();
    let rejected: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, WriteOutcome::Rejected { .. }))
        .map(|(i, _)| i)
        .collect();
    assert!(
        !rejected.is_empty() && rejected.len() < 100,
        "{} rejected",
        rejected.len()
    );
    let current = hs
        .current_owners(
            ObjectKind::Contact,
            &batch.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    for c in current {
        let i = batch.iter().position(|b| b.id == c.id).unwrap();
        let written = c.owner_id == Some(OwnerId::new(owner.clone()));
        let was_already = state
            .contacts
            .iter()
            .find(|r| r.id.to_string() == c.id.0)
            .and_then(|r| r.properties.get("hubspot_owner_id"))
            == Some(&owner);
        if rejected.contains(&i) {
            assert!(
                !written || was_already,
                "record {} reported failed but written",
                c.id
            );
        } else {
            assert!(written, "record {} reported applied but not written", c.id);
        }
    }
}
