//! Named leases on both backends: one holder at a time, epochs as fencing tokens,
//! expiry by the database's clock, and many racers with one winner.

use std::time::Duration;

use leadroute::store::{LeaseGrab, Store};

use crate::helpers::all_stores;

const LONG: Duration = Duration::from_secs(60);

fn held(grab: &LeaseGrab) -> Option<i64> {
    match grab {
        LeaseGrab::Held { epoch, .. } => Some(*epoch),
        LeaseGrab::Taken(_) => None,
    }
}

async fn story(store: &Store) -> anyhow::Result<()> {
    // First holder: epoch 1; renewing and re-acquiring keep it.
    let a = store.lease_acquire("org:north", "a", LONG).await?;
    assert_eq!(held(&a), Some(1));
    assert_eq!(
        held(&store.lease_acquire("org:north", "a", LONG).await?),
        Some(1)
    );
    assert!(store.lease_renew("org:north", "a", 1, LONG).await?);
    assert!(store.lease_is_current("org:north", "a", 1).await?);

    // Someone else is refused and told who holds it.
    match store.lease_acquire("org:north", "b", LONG).await? {
        LeaseGrab::Taken(lease) => {
            assert_eq!(lease.holder.as_deref(), Some("a"));
            assert_eq!(lease.epoch, 1);
            assert!(lease.expires_at.is_some());
        }
        other => panic!("b must not get a live lease: {other:?}"),
    }
    assert!(!store.lease_is_current("org:north", "b", 1).await?);

    // Another name is independent.
    assert_eq!(
        held(&store.lease_acquire("org:south", "b", LONG).await?),
        Some(1)
    );

    // A lapsed lease (TTL 0: expired by the database clock at once) is taken over with
    // a new epoch; the deposed holder can neither renew, nor pass the fence, nor release.
    assert!(
        store
            .lease_renew("org:north", "a", 1, Duration::ZERO)
            .await?
    );
    assert!(
        !store.lease_is_current("org:north", "a", 1).await?,
        "lapsed"
    );
    assert_eq!(
        held(&store.lease_acquire("org:north", "b", LONG).await?),
        Some(2)
    );
    assert!(!store.lease_renew("org:north", "a", 1, LONG).await?);
    assert!(!store.lease_is_current("org:north", "a", 1).await?);
    assert!(!store.lease_release("org:north", "a", 1).await?);
    assert!(store.lease_is_current("org:north", "b", 2).await?);

    // Released: free for anyone, and the next holder gets the next epoch.
    assert!(store.lease_release("org:north", "b", 2).await?);
    assert!(!store.lease_is_current("org:north", "b", 2).await?);
    assert_eq!(
        held(&store.lease_acquire("org:north", "a", LONG).await?),
        Some(3)
    );

    let all = store.leases("org:").await?;
    let names: Vec<_> = all.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["org:north", "org:south"]);
    assert!(
        store.leases("org_").await?.is_empty(),
        "a prefix is not a pattern"
    );
    assert_eq!(store.lease("org:none").await?, None);
    Ok(())
}

#[tokio::test]
async fn named_leases_fence_deposed_holders_on_every_backend() {
    for test in all_stores().await {
        let label = test.label;
        story(&test.store)
            .await
            .unwrap_or_else(|err| panic!("{label}: {err:#}"));
        test.cleanup().await;
    }
}

#[tokio::test]
async fn eight_racers_one_winner() {
    for test in all_stores().await {
        let label = test.label;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = test.store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .lease_acquire("org:race", &format!("p{i}"), LONG)
                    .await
            }));
        }
        let mut winners = 0;
        for task in tasks {
            let grab = task
                .await
                .unwrap_or_else(|e| panic!("{label}: {e}"))
                .unwrap_or_else(|e| panic!("{label}: {e:#}"));
            if held(&grab).is_some() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "{label}: exactly one racer holds the lease");
        test.cleanup().await;
    }
}
