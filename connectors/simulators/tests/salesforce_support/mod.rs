//! Shared helpers for the Salesforce simulator tests: spawning a small org, an HTTP
//! client bound to its session, and the test-only JWT key pair.

#![allow(dead_code, unreachable_pub)]

use leadroute_sim::salesforce::{self, SalesforceSim, SalesforceSimConfig};
use serde_json::Value;

pub const VERSION: &str = "62.0";

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

pub fn small_config() -> SalesforceSimConfig {
    SalesforceSimConfig {
        leads: 300,
        contacts: 200,
        accounts: 60,
        users: 14,
        queues: 3,
        pre_issued_token: Some("00Dsim!test-token".to_owned()),
        jwt_certificate_pem: Some(fixture("salesforce_jwt_TEST_ONLY_cert.pem")),
        outbound_retry_base: std::time::Duration::from_millis(50),
        outbound_batch_window: std::time::Duration::from_millis(20),
        bulk_processing_delay: std::time::Duration::from_millis(20),
        ..SalesforceSimConfig::default()
    }
}

pub struct Org {
    pub sim: SalesforceSim,
    pub http: reqwest::Client,
    pub token: String,
}

pub async fn spawn(config: SalesforceSimConfig) -> Org {
    let sim = salesforce::spawn(config).await.expect("simulator starts");
    let token = sim.token();
    Org {
        sim,
        http: reqwest::Client::new(),
        token,
    }
}

pub async fn spawn_small() -> Org {
    spawn(small_config()).await
}

/// A response's status, headers and JSON body (Null when empty or not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Org {
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/services") || path.starts_with("/__sim") {
            format!("{}{path}", self.sim.base_url())
        } else {
            format!("{}/services/data/v{VERSION}/{path}", self.sim.base_url())
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("request reaches the simulator");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(self.url(path)).bearer_auth(&self.token))
            .await
    }

    pub async fn query(&self, soql: &str) -> Answer {
        self.send(
            self.http
                .get(self.url("query"))
                .query(&[("q", soql)])
                .bearer_auth(&self.token),
        )
        .await
    }

    pub async fn query_all(&self, soql: &str) -> Answer {
        self.send(
            self.http
                .get(self.url("queryAll"))
                .query(&[("q", soql)])
                .bearer_auth(&self.token),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .http
            .patch(self.url(path))
            .bearer_auth(&self.token)
            .json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    pub async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// A live lead that is not converted, not locked by the validation rule, and
    /// owned by an active user.
    pub fn writable_lead(&self) -> String {
        let state = self.sim.state();
        let active: std::collections::HashSet<_> = state
            .users
            .iter()
            .filter(|u| u.is_active)
            .map(|u| u.id.clone())
            .collect();
        state
            .leads
            .iter()
            .find(|l| {
                !l.is_deleted
                    && !l.is_converted
                    && !l.routing_locked
                    && active.contains(&l.owner_id)
            })
            .map(|l| l.id.clone())
            .expect("the generator makes writable leads")
    }

    /// An active user other than the integration user.
    pub fn active_user(&self, skip: usize) -> String {
        let state = self.sim.state();
        state
            .users
            .iter()
            .filter(|u| u.is_active && u.id != state.api_user_id)
            .nth(skip)
            .map(|u| u.id.clone())
            .expect("the generator makes active users")
    }

    pub fn inactive_user(&self) -> String {
        self.sim
            .state()
            .users
            .iter()
            .find(|u| !u.is_active)
            .map(|u| u.id.clone())
            .expect("the generator makes inactive users")
    }

    pub fn queue(&self, name: &str) -> String {
        self.sim
            .state()
            .groups
            .iter()
            .find(|g| g.name.as_deref() == Some(name))
            .map(|g| g.id.clone())
            .expect("queue exists")
    }
}
