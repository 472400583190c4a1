//! Shared helpers for the HubSpot simulator's HTTP tests: spawning a small
//! portal and calling it with the private-app token over loopback.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use leadroute_sim::hubspot::{HubSpotSim, HubSpotSimConfig, spawn};
use serde_json::Value;

/// A small portal with no search lag and generous limits.
pub fn config() -> HubSpotSimConfig {
    HubSpotSimConfig {
        contacts: 250,
        companies: 40,
        owners: 10,
        search_lag: Duration::ZERO,
        search_per_second: 1_000,
        ten_second_limit: 10_000,
        ..HubSpotSimConfig::default()
    }
}

pub async fn sim() -> HubSpotSim {
    sim_with(config()).await
}

pub async fn sim_with(config: HubSpotSimConfig) -> HubSpotSim {
    spawn(config).await.expect("simulator binds to 127.0.0.1:0")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client builds")
}

/// A response's status, headers and JSON body (Null when empty).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body reads");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("simulator answers JSON")
    };
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(sim: &HubSpotSim, path: &str) -> Reply {
    let r = client()
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(sim.token())
        .send()
        .await
        .expect("GET reaches the simulator");
    reply(r).await
}

pub async fn post(sim: &HubSpotSim, path: &str, body: &Value) -> Reply {
    let r = client()
        .post(format!("{}{path}", sim.base_url()))
        .bearer_auth(sim.token())
        .json(body)
        .send()
        .await
        .expect("POST reaches the simulator");
    reply(r).await
}

pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    reply(request.send().await.expect("request reaches the simulator")).await
}

/// Every page of a list endpoint; returns the ids in order.
pub async fn list_all_ids(sim: &HubSpotSim, object: &str, extra: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/crm/v3/objects/{object}?limit=100{extra}");
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let page = get(sim, &path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for r in page.body["results"].as_array().expect("results array") {
            ids.push(
                r["id"]
                    .as_str()
                    .expect("id is a string")
                    .parse()
                    .expect("numeric id"),
            );
        }
        match page.body["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    ids
}
