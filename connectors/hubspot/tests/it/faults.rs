//! Faults: 429 storms and 5xx bursts slow a sync but lose nothing; OAuth tokens that
//! expire mid-run are refreshed; a dead credential stops with `Auth`, without looping.

use std::time::Duration;

use leadroute_crm::{Crm, ErrorKind, ObjectKind};
use leadroute_hubspot::{HubSpotAuth, HubSpotSettings};
use leadroute_sim::hubspot::{EndpointFamily, Fault, FaultRule, FaultScript, Trigger};
use secrecy::SecretString;

use crate::common::*;

fn rule(families: Vec<EndpointFamily>, fault: Fault, trigger: Trigger) -> FaultRule {
    FaultRule {
        families,
        fault,
        trigger,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_and_5xx_bursts_slow_the_sync_but_lose_nothing() {
    let sim = start(sim_config(600, 30)).await;
    sim.set_faults(FaultScript {
        seed: 3,
        rules: vec![
            rule(
                vec![EndpointFamily::List],
                Fault::RateLimit {
                    policy: "TEN_SECONDLY_ROLLING".into(),
                },
                Trigger::NextN { n: 1 },
            ),
            rule(
                vec![EndpointFamily::Search],
                Fault::RateLimit {
                    policy: "SECONDLY".into(),
                },
                Trigger::NextN { n: 3 },
            ),
            rule(
                vec![],
                Fault::ServerError { status: 503 },
                Trigger::Probability { p: 0.25 },
            ),
            rule(
                vec![EndpointFamily::List, EndpointFamily::Associations],
                Fault::ServerError { status: 502 },
                Trigger::Probability { p: 0.1 },
            ),
        ],
        expire_tokens: false,
    });
    let hs = connector(settings(&sim));
    let started = std::time::Instant::now();
    let (mut mirror, _) = Mirror::full(&hs).await;
    assert_mirror_matches(&mirror, &sim.state());
    let edits = Edits::new(&sim);
    let ids = live_ids(&sim.state().contacts);
    edits
        .batch_set(
            "contacts",
            &ids[..100],
            serde_json::json!({"jobtitle": "After storm"}),
        )
        .await;
    mirror.incremental(&hs).await;
    assert_mirror_matches(&mirror, &sim.state());
    let usage = hs.usage();
    assert!(usage.throttled >= 4, "{usage:?}");
    assert!(usage.retries >= usage.throttled, "{usage:?}");
    // The TEN_SECONDLY 429 made every task wait out the window.
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_and_slow_answers_are_retried() {
    let sim = start(sim_config(300, 10)).await;
    sim.set_faults(FaultScript {
        seed: 5,
        rules: vec![
            rule(
                vec![],
                Fault::ConnectionReset,
                Trigger::Probability { p: 0.2 },
            ),
            rule(
                vec![EndpointFamily::List],
                Fault::Slow { delay_ms: 1_500 },
                Trigger::NextN { n: 1 },
            ),
        ],
        expire_tokens: false,
    });
    let mut s = settings(&sim);
    // The slow answer outlives the timeout once and is retried.
    s.request_timeout = Duration::from_secs(1);
    let hs = connector(s);
    let (mirror, _) = Mirror::full(&hs).await;
    assert_mirror_matches(&mirror, &sim.state());
    assert!(hs.usage().retries >= 1);
}

fn oauth_settings(
    sim: &leadroute_sim::hubspot::HubSpotSim,
    refresh_token: &str,
) -> HubSpotSettings {
    let config = sim.config();
    let mut s = settings(sim);
    s.auth = HubSpotAuth::OAuth {
        client_id: config.client_id.clone(),
        client_secret: SecretString::from(config.client_secret.clone()),
        refresh_token: SecretString::from(refresh_token.to_owned()),
    };
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_tokens_expiring_mid_run_are_refreshed_and_the_sync_completes() {
    let mut config = sim_config(800, 20);
    config.access_token_ttl = Duration::from_secs(3);
    let sim = start(config).await;
    let refresh = sim.config().refresh_token.clone();
    let hs = connector(oauth_settings(&sim, &refresh));
    let (mut mirror, _) = Mirror::full(&hs).await;
    assert!(hs.oauth_refreshes() >= 1);
    // Revoke every issued access token behind the connector's back: the next call gets
    // a 401, refreshes once and carries on.
    sim.set_faults(FaultScript {
        expire_tokens: true,
        ..FaultScript::default()
    });
    let before = hs.oauth_refreshes();
    let edits = Edits::new(&sim);
    let ids = live_ids(&sim.state().contacts);
    edits
        .batch_set(
            "contacts",
            &ids[..50],
            serde_json::json!({"jobtitle": "Refreshed"}),
        )
        .await;
    // Long enough that the 3-second tokens are renewed ahead of expiry, too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    mirror.incremental(&hs).await;
    assert!(hs.oauth_refreshes() > before);
    assert_mirror_matches(&mirror, &sim.state());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_stops_with_auth_instead_of_looping() {
    let sim = start(sim_config(20, 5)).await;
    let hs = connector(oauth_settings(&sim, "not-the-refresh-token"));
    let err = hs.changes(ObjectKind::Contact, None).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(!err.is_retryable());

    // A bad static token: one 401, no retries.
    let mut s = settings(&sim);
    s.auth = HubSpotAuth::PrivateApp {
        token: SecretString::from("pat-na1-wrong"),
    };
    let hs = connector(s);
    let err = hs.changes(ObjectKind::Account, None).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert_eq!(hs.usage().retries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaching_the_daily_reserve_pauses_the_sync_until_the_reset() {
    let mut config = sim_config(2_000, 10);
    config.daily_limit = 40;
    let sim = start(config).await;
    let mut s = settings(&sim);
    s.daily_reserve = 30;
    let hs = connector(s);
    let mut cursor = None;
    let err = loop {
        match hs.changes(ObjectKind::Contact, cursor.as_ref()).await {
            Ok(page) => cursor = Some(page.cursor),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind, ErrorKind::QuotaExhausted, "{err}");
    assert!(err.resume_at.is_some_and(|t| t > chrono::Utc::now()));
    let usage = hs.usage();
    assert_eq!(usage.daily_max, Some(40));
    assert!(usage.daily_remaining.is_some_and(|r| r <= 30), "{usage:?}");
    // Stopped at the reserve: the remaining 30 calls are left for other integrations.
    assert!(sim.stats().daily_used <= 11, "{:?}", sim.stats().daily_used);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_429_is_not_retried() {
    let mut config = sim_config(2_000, 10);
    config.daily_limit = 3;
    let sim = start(config).await;
    let hs = connector(settings(&sim));
    let mut cursor = None;
    let err = loop {
        match hs.changes(ObjectKind::Contact, cursor.as_ref()).await {
            Ok(page) => cursor = Some(page.cursor),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind, ErrorKind::QuotaExhausted, "{err}");
    assert_eq!(hs.usage().retries, 0);
    assert!(err.resume_at.is_some());
}
