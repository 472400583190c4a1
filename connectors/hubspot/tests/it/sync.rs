//! Full and incremental sync against the simulator: equality with the portal after
//! edits, windows over 10,000 changes, shared timestamps, merges, archives, restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use leadroute_crm::{Change, Crm, ObjectKind, Record};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use leadroute_sim::hubspot::{Mutation, ObjectType};

use crate::common::*;

fn upserted_ids(changes: &[Change], object: ObjectKind) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert(r) if r.object() == object => Some(r.id().to_owned()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_then_incremental_sync_mirrors_the_portal_after_random_edits() {
    let sim = start(sim_config(400, 50)).await;
    let hs = connector(settings(&sim));
    let (mut mirror, full_calls) = Mirror::full(&hs).await;
    assert_mirror_matches(&mirror, &sim.state());
    // Owners (500/page, two passes) + companies and contacts at 100 per list page.
    let minimum = 2 + 1 + 4;
    assert!(
        full_calls >= minimum && full_calls <= minimum + 4,
        "full sync used {full_calls} calls"
    );

    let state = sim.state();
    let owners = active_owner_ids(&state);
    let contacts = live_ids(&state.contacts);
    let companies = live_ids(&state.companies);
    let edits = Edits::new(&sim);
    let mut rng = StdRng::seed_from_u64(7);
    let mut picked: Vec<u64> = contacts.clone();
    picked.shuffle(&mut rng);
    let mut picked = picked.into_iter();
    for _ in 0..25 {
        let id = picked.next().unwrap();
        let owner = owners[rng.random_range(0..owners.len())];
        edits
            .set(
                "contacts",
                id,
                json!({"hubspot_owner_id": owner.to_string()}),
            )
            .await;
    }
    for _ in 0..5 {
        let id = companies[rng.random_range(0..companies.len())];
        let owner = owners[rng.random_range(0..owners.len())];
        edits
            .set(
                "companies",
                id,
                json!({"hubspot_owner_id": owner.to_string()}),
            )
            .await;
    }
    for _ in 0..4 {
        edits.archive("contacts", picked.next().unwrap()).await;
    }
    edits.archive("companies", companies[0]).await;
    for _ in 0..2 {
        let (a, b) = (picked.next().unwrap(), picked.next().unwrap());
        edits.merge("contacts", a, b).await;
    }
    for _ in 0..4 {
        let company = companies[rng.random_range(1..companies.len())];
        edits.set_primary(picked.next().unwrap(), company).await;
    }
    let batch: Vec<u64> = picked.by_ref().take(60).collect();
    edits
        .batch_set(
            "contacts",
            &batch[..50],
            json!({"lifecyclestage": "opportunity"}),
        )
        .await;

    // And a person working in the UI: owner, stage and field edits.
    let edited = sim
        .mutate(Mutation::RandomEdits { n: 80, seed: 9 })
        .unwrap();
    sim.mutate(Mutation::DeactivateOwner {
        owner_id: owners[0].to_string(),
    })
    .unwrap();
    // The simulated human stamps each edit a millisecond apart, running slightly ahead of
    // the clock; search shows them once their stamp has passed.
    wait_until_searchable(edited.at_ms).await;

    mirror.incremental(&hs).await;
    assert_mirror_matches(&mirror, &sim.state());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_stamping_over_ten_thousand_records_with_one_timestamp_is_read_completely() {
    let mut config = sim_config(10_300, 20);
    config.ten_second_limit = 3_000;
    config.search_per_second = 50;
    let sim = start(config).await;
    let mut s = settings(&sim);
    s.search_per_second = 50;
    let hs = connector(s);
    let (mut mirror, _) = Mirror::full(&hs).await;
    let import = sim
        .mutate(Mutation::BulkImport {
            object: ObjectType::Contacts,
            update: 10_250,
            create: 150,
            properties: Default::default(),
            seed: 1,
        })
        .unwrap();
    assert_eq!(import.ids.len(), 10_400);
    let run = sync_until_done(
        &hs,
        ObjectKind::Contact,
        mirror.cursors.get(&ObjectKind::Contact).cloned(),
    )
    .await;
    let seen: BTreeSet<String> = upserted_ids(&run.changes, ObjectKind::Contact)
        .into_iter()
        .collect();
    let missing: Vec<&String> = import.ids.iter().filter(|id| !seen.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} imported records not read",
        missing.len()
    );
    let imported: BTreeSet<&String> = import.ids.iter().collect();
    let reads = upserted_ids(&run.changes, ObjectKind::Contact)
        .into_iter()
        .filter(|id| imported.contains(id))
        .count();
    assert_eq!(
        reads,
        import.ids.len(),
        "imported records read more than once"
    );
    mirror.apply(&run.changes);
    mirror.cursors.insert(ObjectKind::Contact, run.cursor);
    assert_mirror_matches(&mirror, &sim.state());
    let bad_requests = sim.stats().statuses.get(&400).copied().unwrap_or(0);
    assert_eq!(bad_requests, 0, "the search cap was hit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_more_than_ten_thousand_changes_is_read_completely() {
    let mut config = sim_config(10_400, 20);
    // A generous portal limit so the test spends its time on the connector, not waiting.
    config.ten_second_limit = 3_000;
    config.search_per_second = 50;
    let sim = start(config).await;
    let mut s = settings(&sim);
    s.search_per_second = 50;
    let hs = connector(s);
    let (mut mirror, _) = Mirror::full(&hs).await;

    let ids = live_ids(&sim.state().contacts);
    let edits = Edits::new(&sim);
    for chunk in ids.chunks(100) {
        edits
            .batch_set("contacts", chunk, json!({"jobtitle": "Buyer"}))
            .await;
    }
    let run = sync_until_done(
        &hs,
        ObjectKind::Contact,
        mirror.cursors.get(&ObjectKind::Contact).cloned(),
    )
    .await;
    let seen: BTreeSet<String> = upserted_ids(&run.changes, ObjectKind::Contact)
        .into_iter()
        .collect();
    assert!(
        seen.len() >= ids.len(),
        "only {} of {} changes read",
        seen.len(),
        ids.len()
    );
    mirror.apply(&run.changes);
    mirror.cursors.insert(ObjectKind::Contact, run.cursor);
    assert_mirror_matches(&mirror, &sim.state());
    let stats = sim.stats();
    let text = format!("{stats:?}");
    assert!(
        !text.contains("cannot page past"),
        "hit the search cap: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_sharing_timestamps_across_page_boundaries_are_read_once_each() {
    let sim = start(sim_config(700, 10)).await;
    let hs = connector(settings(&sim));
    let (mut mirror, _) = Mirror::full(&hs).await;
    let ids = live_ids(&sim.state().contacts);
    let edits = Edits::new(&sim);
    // Seven batch updates: each stamps its 100 records with one timestamp, so search
    // pages of 200 end inside groups of equal timestamps.
    for chunk in ids.chunks(100) {
        edits
            .batch_set("contacts", chunk, json!({"jobtitle": "Shared stamp test"}))
            .await;
    }
    let run = sync_until_done(
        &hs,
        ObjectKind::Contact,
        mirror.cursors.get(&ObjectKind::Contact).cloned(),
    )
    .await;
    let upserts = upserted_ids(&run.changes, ObjectKind::Contact);
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for id in &upserts {
        *counts.entry(id).or_default() += 1;
    }
    // Only the overlap window (records edited within 2 s before the full sync started
    // — none here) may repeat; within the run, ties must not.
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "records read twice: {repeated:?}");
    assert_eq!(counts.len(), ids.len(), "distinct records read vs edited");
    mirror.apply(&run.changes);
    assert_mirror_matches(&mirror, &sim.state());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_resolve_to_the_survivor_and_archives_arrive_as_deletions() {
    let sim = start(sim_config(120, 10)).await;
    let hs = connector(settings(&sim));
    let (mut mirror, _) = Mirror::full(&hs).await;
    let ids = live_ids(&sim.state().contacts);
    let edits = Edits::new(&sim);
    let survivor = edits.merge("contacts", ids[0], ids[1]).await;
    edits.archive("contacts", ids[2]).await;

    let runs = mirror.incremental(&hs).await;
    let contact_changes: Vec<&Change> = runs.iter().flat_map(|r| &r.changes).collect();
    for loser in [ids[0], ids[1]] {
        assert!(
            contact_changes
                .iter()
                .any(|c| matches!(c, Change::Merged { loser: l, winner, .. }
                if l.0 == loser.to_string() && winner.0 == survivor.to_string())),
            "no Merged for {loser}"
        );
    }
    assert!(
        contact_changes
            .iter()
            .any(|c| matches!(c, Change::Deleted { id, .. } if id.0 == ids[2].to_string()))
    );
    assert_mirror_matches(&mirror, &sim.state());

    // fetch on a merged-away id answers Merged + the survivor; an archived id, Deleted.
    let fetched = hs
        .fetch(
            ObjectKind::Contact,
            &[
                ids[0].to_string().as_str().into(),
                ids[2].to_string().as_str().into(),
            ],
        )
        .await
        .unwrap();
    assert!(
        fetched
            .iter()
            .any(|c| matches!(c, Change::Merged { loser, winner, .. }
        if loser.0 == ids[0].to_string() && winner.0 == survivor.to_string()))
    );
    assert!(
        fetched.iter().any(
            |c| matches!(c, Change::Upsert(Record::Person(p)) if p.id.0 == survivor.to_string())
        )
    );
    assert!(
        fetched
            .iter()
            .any(|c| matches!(c, Change::Deleted { id, .. } if id.0 == ids[2].to_string()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_the_stored_cursor_rereads_only_the_overlap_window() {
    let sim = start(sim_config(150, 10)).await;
    let s = settings(&sim);
    let overlap = s.overlap;
    let hs = connector(s.clone());
    let (mut mirror, _) = Mirror::full(&hs).await;
    mirror.incremental(&hs).await;
    let ids = live_ids(&sim.state().contacts);
    let edits = Edits::new(&sim);
    let old: Vec<u64> = ids[..5].to_vec();
    let recent: Vec<u64> = ids[5..10].to_vec();
    for id in &old {
        edits
            .set("contacts", *id, json!({"jobtitle": "Old edit"}))
            .await;
    }
    tokio::time::sleep(overlap + Duration::from_millis(500)).await;
    for id in &recent {
        edits
            .set("contacts", *id, json!({"jobtitle": "Recent edit"}))
            .await;
    }
    mirror.incremental(&hs).await;
    let stored = mirror.cursors[&ObjectKind::Contact].clone();
    drop(hs);

    // A new process: new client, same stored cursor, nothing changed since.
    let restarted = connector(s);
    let run = sync_until_done(&restarted, ObjectKind::Contact, Some(stored)).await;
    let reread: BTreeSet<String> = upserted_ids(&run.changes, ObjectKind::Contact)
        .into_iter()
        .collect();
    for id in &old {
        assert!(
            !reread.contains(&id.to_string()),
            "{id} was edited before the overlap window"
        );
    }
    let allowed: BTreeSet<String> = recent.iter().map(u64::to_string).collect();
    assert!(
        reread.is_subset(&allowed),
        "re-read outside the overlap window: {reread:?}"
    );
    mirror.apply(&run.changes);
    assert_mirror_matches(&mirror, &sim.state());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_run_resumes_without_gaps_or_rereads() {
    let sim = start(sim_config(1_000, 10)).await;
    let s = settings(&sim);
    let hs = connector(s.clone());
    let (mut mirror, _) = Mirror::full(&hs).await;
    mirror.incremental(&hs).await;
    let ids = live_ids(&sim.state().contacts);
    let edits = Edits::new(&sim);
    for id in &ids[..450] {
        edits
            .set("contacts", *id, json!({"jobtitle": "Changed"}))
            .await;
    }
    // Two pages, then the process dies.
    let mut cursor = mirror.cursors.get(&ObjectKind::Contact).cloned();
    let mut read: Vec<String> = Vec::new();
    for _ in 0..2 {
        let page = hs
            .changes(ObjectKind::Contact, cursor.as_ref())
            .await
            .unwrap();
        read.extend(upserted_ids(&page.changes, ObjectKind::Contact));
        mirror.apply(&page.changes);
        cursor = Some(page.cursor);
    }
    drop(hs);
    let restarted = connector(s);
    let run = sync_until_done(&restarted, ObjectKind::Contact, cursor).await;
    read.extend(upserted_ids(&run.changes, ObjectKind::Contact));
    mirror.apply(&run.changes);
    // Records the run's overlap window re-reads (untouched, older) are fine; every
    // edited record must arrive exactly once across the restart.
    let edited: BTreeSet<String> = ids[..450].iter().map(u64::to_string).collect();
    let read: Vec<&String> = read.iter().filter(|id| edited.contains(*id)).collect();
    let unique: BTreeSet<&&String> = read.iter().collect();
    assert_eq!(unique.len(), 450);
    assert_eq!(
        read.len(),
        450,
        "records were read twice across the restart"
    );
    mirror.cursors.insert(ObjectKind::Contact, run.cursor);
    assert_mirror_matches(&mirror, &sim.state());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_edited_while_a_run_pages_do_not_push_others_out_of_the_scan() {
    // With `after` offsets, re-stamping a record already read moves it to the end of
    // the sorted result and shifts every later record one place left: the record at
    // the next page boundary would be skipped. Restarting at the last timestamp cannot.
    let sim = start(sim_config(2_000, 10)).await;
    let hs = connector(settings(&sim));
    let (mut mirror, _) = Mirror::full(&hs).await;
    mirror.incremental(&hs).await;
    let before = chrono::Utc::now().timestamp_millis();
    let edits = sim
        .mutate(Mutation::RandomEdits { n: 900, seed: 21 })
        .unwrap();
    wait_until_searchable(edits.at_ms).await;
    // Edits that rewrote a value already held are no-ops and stamp nothing.
    let edited: BTreeSet<String> = sim
        .state()
        .contacts
        .iter()
        .filter(|c| !c.archived && c.updated_at_ms >= before)
        .map(|c| c.id.to_string())
        .collect();
    assert!(edited.len() > 400, "{} contacts edited", edited.len());

    let mut cursor = mirror.cursors.get(&ObjectKind::Contact).cloned();
    let first = hs
        .changes(ObjectKind::Contact, cursor.as_ref())
        .await
        .unwrap();
    let first_ids = upserted_ids(&first.changes, ObjectKind::Contact);
    assert!(first_ids.len() >= 150 && !first.done);
    let mut read: BTreeSet<String> = first_ids.iter().cloned().collect();
    mirror.apply(&first.changes);
    cursor = Some(first.cursor);
    let owner = active_owner_ids(&sim.state())[0].to_string();
    for id in first_ids.iter().take(20) {
        sim.mutate(Mutation::UpdateProperties {
            object: ObjectType::Contacts,
            id: id.clone(),
            properties: [("jobtitle".to_owned(), format!("Moved {owner}"))].into(),
        })
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rest = sync_until_done(&hs, ObjectKind::Contact, cursor).await;
    read.extend(upserted_ids(&rest.changes, ObjectKind::Contact));
    let missed: Vec<&String> = edited.iter().filter(|id| !read.contains(*id)).collect();
    assert!(missed.is_empty(), "edited records skipped: {missed:?}");
    mirror.apply(&rest.changes);
    mirror.cursors.insert(ObjectKind::Contact, rest.cursor);
    // The random edits touched companies too.
    mirror.incremental(&hs).await;
    assert_mirror_matches(&mirror, &sim.state());
}
