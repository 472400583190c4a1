//! The sidecar's Prometheus metrics (`GET /metrics`), through `prometheus-client`.
//!
//! Names follow `leadroute_<noun>_<unit>`; counters are registered without `_total`
//! (the encoder appends it). Labels take few values: never a record id or email.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Every metric the sidecar exports.
pub struct Metrics {
    registry: Registry,
    /// First seen by leadroute → owner write acknowledged.
    pub speed_to_lead: Histogram,
    pub webhooks: Family<Labels, Counter>,
    pub writes: Family<Labels, Counter>,
    pub crm_calls: Family<Labels, Counter>,
    pub crm_rate_limit_remaining: Gauge,
    pub decisions: Family<Labels, Counter>,
    pub exceptions_open: Gauge,
    pub cursor_age: Family<Labels, Gauge<f64, AtomicU64>>,
    pub inbox_depth: Gauge,
    pub leader: Gauge,
    pub policy_reload_failures: Counter,
    /// SLA timers running (issue 12).
    pub sla_open: Gauge,
    pub sla_breaches: Family<Labels, Counter>,
    /// Acknowledged assignment → first touch, wall time.
    pub time_to_first_touch: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics::in_registry(Registry::default())
    }

    /// Metrics whose every sample carries `org="<name>"` (several orgs in one process;
    /// [`merge`] joins their texts into one exposition).
    pub fn for_org(org: &crate::domain::OrgId) -> Self {
        Metrics::in_registry(Registry::with_labels(std::iter::once((
            std::borrow::Cow::Borrowed("org"),
            std::borrow::Cow::Owned(org.to_string()),
        ))))
    }

    fn in_registry(mut registry: Registry) -> Self {
        let speed_to_lead = Histogram::new([
            0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
        ]);
        let m = Metrics {
            speed_to_lead,
            webhooks: Family::default(),
            writes: Family::default(),
            crm_calls: Family::default(),
            crm_rate_limit_remaining: Gauge::default(),
            decisions: Family::default(),
            exceptions_open: Gauge::default(),
            cursor_age: Family::default(),
            inbox_depth: Gauge::default(),
            leader: Gauge::default(),
            policy_reload_failures: Counter::default(),
            sla_open: Gauge::default(),
            sla_breaches: Family::default(),
            time_to_first_touch: Histogram::new([
                60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14_400.0, 28_800.0, 86_400.0, 172_800.0,
            ]),
            registry: Registry::default(),
        };
        registry.register(
            "leadroute_speed_to_lead_seconds",
            "Record first seen by leadroute to owner write acknowledged by the CRM",
            m.speed_to_lead.clone(),
        );
        registry.register(
            "leadroute_webhooks",
            "Webhook deliveries by result (accepted, duplicate, unauthorized, malformed, unavailable)",
            m.webhooks.clone(),
        );
        registry.register(
            "leadroute_writes",
            "Owner writes by outcome (applied, unchanged, skipped_changed, rejected, failed)",
            m.writes.clone(),
        );
        registry.register(
            "leadroute_crm_calls",
            "CRM API calls by kind (sync, refetch, read, write) and status",
            m.crm_calls.clone(),
        );
        registry.register(
            "leadroute_crm_rate_limit_remaining",
            "Calls left in the CRM's short rate-limit window at the last response",
            m.crm_rate_limit_remaining.clone(),
        );
        registry.register(
            "leadroute_decisions",
            "Routing decisions that changed an owner or raised an exception, by rule",
            m.decisions.clone(),
        );
        registry.register(
            "leadroute_exceptions_open",
            "Open exceptions in the queue",
            m.exceptions_open.clone(),
        );
        registry.register(
            "leadroute_cursor_age_seconds",
            "Time since the last successful poll of each object (stalled polling grows it)",
            m.cursor_age.clone(),
        );
        registry.register(
            "leadroute_inbox_depth",
            "Webhook hints waiting to be refetched",
            m.inbox_depth.clone(),
        );
        registry.register(
            "leadroute_leader",
            "1 while this process holds the org's lease and drives the org (polls, plans and writes), else 0 (standby)",
            m.leader.clone(),
        );
        registry.register(
            "leadroute_sla_open",
            "SLA timers running (assigned records not yet touched, breached or cancelled)",
            m.sla_open.clone(),
        );
        registry.register(
            "leadroute_sla_breaches",
            "SLA deadlines passed without a touch, by SLA",
            m.sla_breaches.clone(),
        );
        registry.register(
            "leadroute_time_to_first_touch_seconds",
            "Acknowledged assignment to first touch, wall time (met and late touches)",
            m.time_to_first_touch.clone(),
        );
        registry.register(
            "leadroute_policy_reload_failures",
            "Policy reloads refused because the edited file has errors",
            m.policy_reload_failures.clone(),
        );
        // A family shows only once a label set exists: start the known ones at 0 so a
        // dashboard sees every outcome from the first scrape.
        for result in [
            "accepted",
            "duplicate",
            "unauthorized",
            "malformed",
            "wrong_crm",
            "unavailable",
        ] {
            let _ = m
                .webhooks
                .get_or_create(&vec![("result", result.to_owned())]);
        }
        for outcome in [
            "applied",
            "unchanged",
            "skipped_changed",
            "rejected",
            "failed",
        ] {
            let _ = m
                .writes
                .get_or_create(&vec![("outcome", outcome.to_owned())]);
        }
        Metrics { registry, ..m }
    }

    /// Counts one event of a labelled counter family.
    pub fn inc(family: &Family<Labels, Counter>, label: &'static str, value: &str) {
        family.get_or_create(&vec![(label, value.to_owned())]).inc();
    }

    /// Adds `n` to a labelled counter family.
    pub fn add(family: &Family<Labels, Counter>, labels: &[(&'static str, &str)], n: u64) {
        if n == 0 {
            return;
        }
        let labels: Labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        family.get_or_create(&labels).inc_by(n);
    }

    /// The Prometheus (OpenMetrics) text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            // Writing to a String cannot fail; keep the endpoint answering anyway.
            out.clear();
        }
        out
    }
}

/// Joins the expositions of several registries with the same families (one per org)
/// into one: each family's `# HELP`/`# TYPE`/`# UNIT` lines once, then every
/// registry's samples of it, and one `# EOF`.
pub fn merge(texts: &[String]) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut families: std::collections::HashMap<String, (Vec<String>, Vec<String>)> =
        std::collections::HashMap::new();
    for text in texts {
        let mut current = String::new();
        for line in text.lines() {
            if line == "# EOF" {
                continue;
            }
            if let Some(rest) = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
                .or_else(|| line.strip_prefix("# UNIT "))
            {
                let name = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if name != current {
                    current = name.clone();
                }
                let entry = families.entry(name.clone()).or_insert_with(|| {
                    order.push(name.clone());
                    (Vec::new(), Vec::new())
                });
                if !entry.0.iter().any(|l| l == line) {
                    entry.0.push(line.to_owned());
                }
                continue;
            }
            let entry = families.entry(current.clone()).or_insert_with(|| {
                order.push(current.clone());
                (Vec::new(), Vec::new())
            });
            entry.1.push(line.to_owned());
        }
    }
    let mut out = String::new();
    for name in &order {
        if let Some((headers, samples)) = families.get(name) {
            for line in headers.iter().chain(samples) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_family_the_issue_names_is_exported() {
        let metrics = Metrics::new();
        Metrics::inc(&metrics.webhooks, "result", "accepted");
        metrics.speed_to_lead.observe(0.3);
        Metrics::add(&metrics.crm_calls, &[("kind", "sync"), ("status", "ok")], 2);
        Metrics::inc(&metrics.decisions, "rule", "account-based");
        metrics
            .cursor_age
            .get_or_create(&vec![("object", "contact".to_owned())])
            .set(1.5);
        let text = metrics.render();
        for name in [
            "leadroute_speed_to_lead_seconds_bucket",
            "leadroute_webhooks_total{result=\"accepted\"} 1",
            "leadroute_writes_total{outcome=\"rejected\"} 0",
            "leadroute_webhooks_total{result=\"unauthorized\"} 0",
            "leadroute_crm_calls_total{kind=\"sync\",status=\"ok\"} 2",
            "leadroute_crm_rate_limit_remaining",
            "leadroute_decisions_total{rule=\"account-based\"} 1",
            "leadroute_exceptions_open",
            "leadroute_cursor_age_seconds{object=\"contact\"} 1.5",
            "leadroute_inbox_depth",
            "leadroute_leader",
            "leadroute_policy_reload_failures_total",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn several_orgs_metrics_merge_into_one_exposition_with_an_org_label() {
        let north = Metrics::for_org(&crate::domain::OrgId::new("north").unwrap());
        let south = Metrics::for_org(&crate::domain::OrgId::new("south").unwrap());
        Metrics::inc(&north.webhooks, "result", "accepted");
        south.leader.set(1);
        let text = merge(&[north.render(), south.render()]);
        assert!(
            text.contains("leadroute_webhooks_total{org=\"north\",result=\"accepted\"} 1"),
            "{text}"
        );
        assert!(text.contains("leadroute_leader{org=\"south\"} 1"), "{text}");
        assert!(text.contains("leadroute_leader{org=\"north\"} 0"), "{text}");
        assert_eq!(
            text.matches("# TYPE leadroute_leader gauge").count(),
            1,
            "{text}"
        );
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
    }
}
