//! Scripted faults: 429 storms, 5xx bursts, slow responses, connection
//! resets, partial batch failures, expiring tokens and duplicate webhook
//! deliveries, each optionally scoped to endpoint families. Decisions come
//! from a seeded RNG, so the same script replays the same faults for the same
//! request sequence.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Groups of endpoints a fault can be scoped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointFamily {
    /// `GET /crm/v3/objects/{type}`.
    List,
    /// `GET /crm/v3/objects/{type}/{id}`.
    Read,
    /// `POST …/batch/read`.
    BatchRead,
    /// `POST …/batch/update`.
    BatchUpdate,
    /// Other writes: PATCH, DELETE, batch/archive, merge, association writes.
    Write,
    /// `POST …/search`.
    Search,
    /// `/crm/v3/owners`.
    Owners,
    /// `/crm/v4/…` association reads.
    Associations,
    /// `/oauth/…`.
    Oauth,
    /// Outgoing webhook deliveries.
    Webhooks,
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer 429 with the given policy's body (`TEN_SECONDLY_ROLLING`,
    /// `DAILY` or `SECONDLY`).
    RateLimit {
        /// Policy name as HubSpot spells it.
        #[serde(default = "default_policy")]
        policy: String,
    },
    /// Answer a 5xx with a HubSpot-like body.
    ServerError {
        /// 500, 502, 503 or 504 (others are served as given).
        status: u16,
    },
    /// Delay the response.
    Slow {
        /// Added latency.
        delay_ms: u64,
    },
    /// Drop the TCP connection (RST) without answering.
    ConnectionReset,
    /// On batch/update: this fraction of inputs (at least one) fails with a
    /// 207 error naming them; the rest is applied.
    PartialBatchFailure {
        /// 0.0–1.0.
        fraction: f64,
        /// Error category reported for the failed ids.
        #[serde(default = "default_partial_category")]
        category: String,
    },
    /// Webhooks: deliver the batch twice.
    DuplicateDelivery,
}

fn default_policy() -> String {
    "TEN_SECONDLY_ROLLING".into()
}

fn default_partial_category() -> String {
    "INTERNAL_ERROR".into()
}

/// When a rule fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Trigger {
    /// Each matching request with this probability (seeded).
    Probability {
        /// 0.0–1.0.
        p: f64,
    },
    /// The next `n` matching requests, then never again.
    NextN {
        /// How many.
        n: u32,
    },
    /// Every matching request.
    Always,
}

/// One scripted fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Families it applies to; empty = every CRM endpoint (OAuth token
    /// calls and webhook deliveries only when listed; never `/__sim`).
    #[serde(default)]
    pub families: Vec<EndpointFamily>,
    /// What happens.
    pub fault: Fault,
    /// When.
    pub trigger: Trigger,
}

/// The whole fault script; `FaultScript::default()` means "no faults".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultScript {
    /// Seed for probabilistic rules.
    #[serde(default)]
    pub seed: u64,
    /// Rules, checked in order; the first firing rule of each class wins.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
    /// Expire every OAuth access token issued so far, at once (the next call
    /// with one gets 401 `EXPIRED_AUTHENTICATION`).
    #[serde(default)]
    pub expire_tokens: bool,
}

/// The faults chosen for one request.
#[derive(Debug, Default, Clone)]
pub(crate) struct Decision {
    pub(crate) delay_ms: u64,
    /// Respond with this instead of handling (status, 429 policy if any).
    pub(crate) respond: Option<(u16, Option<String>)>,
    pub(crate) reset: bool,
    pub(crate) partial: Option<(f64, String)>,
    pub(crate) duplicate: bool,
}

/// Live state of a script: counters of `NextN` rules and the RNG.
pub(crate) struct FaultEngine {
    rules: Vec<(FaultRule, u32)>,
    rng: StdRng,
}

impl FaultEngine {
    pub(crate) fn new(script: &FaultScript) -> FaultEngine {
        FaultEngine {
            rules: script
                .rules
                .iter()
                .map(|r| {
                    let left = match r.trigger {
                        Trigger::NextN { n } => n,
                        _ => 0,
                    };
                    (r.clone(), left)
                })
                .collect(),
            rng: StdRng::seed_from_u64(script.seed),
        }
    }

    /// Decides the faults for one request of `family`.
    pub(crate) fn decide(&mut self, family: EndpointFamily) -> Decision {
        let mut decision = Decision::default();
        for (rule, left) in &mut self.rules {
            let applies = if rule.families.is_empty() {
                !matches!(family, EndpointFamily::Webhooks | EndpointFamily::Oauth)
            } else {
                rule.families.contains(&family)
            };
            if !applies {
                continue;
            }
            let relevant = match &rule.fault {
                Fault::PartialBatchFailure { .. } => family == EndpointFamily::BatchUpdate,
                Fault::DuplicateDelivery => family == EndpointFamily::Webhooks,
                _ => true,
            };
            if !relevant {
                continue;
            }
            let fires = match rule.trigger {
                Trigger::Always => true,
                Trigger::Probability { p } => self.rng.random_bool(p.clamp(0.0, 1.0)),
                Trigger::NextN { .. } => {
                    if *left > 0 {
                        *left -= 1;
                        true
                    } else {
                        false
                    }
                }
            };
            if !fires {
                continue;
            }
            match &rule.fault {
                Fault::Slow { delay_ms } => decision.delay_ms = decision.delay_ms.max(*delay_ms),
                Fault::ConnectionReset => decision.reset = true,
                Fault::RateLimit { policy } if decision.respond.is_none() => {
                    decision.respond = Some((429, Some(policy.clone())));
                }
                Fault::ServerError { status } if decision.respond.is_none() => {
                    decision.respond = Some((*status, None));
                }
                Fault::PartialBatchFailure { fraction, category } => {
                    decision.partial = Some((*fraction, category.clone()));
                }
                Fault::DuplicateDelivery => decision.duplicate = true,
                _ => {}
            }
        }
        decision
    }

    /// A seeded draw for choosing which batch inputs fail.
    pub(crate) fn pick(&mut self, len: usize, fraction: f64) -> Vec<usize> {
        if len == 0 {
            return Vec::new();
        }
        let mut chosen: Vec<usize> = (0..len)
            .filter(|_| self.rng.random_bool(fraction.clamp(0.0, 1.0)))
            .collect();
        if chosen.is_empty() {
            chosen.push(self.rng.random_range(0..len));
        }
        chosen
    }

    /// Jitter for webhook retries.
    pub(crate) fn jitter(&mut self) -> f64 {
        self.rng.random_range(0.75..1.25)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_n_fires_exactly_n_times_for_its_family() {
        let mut engine = FaultEngine::new(&FaultScript {
            seed: 1,
            rules: vec![FaultRule {
                families: vec![EndpointFamily::Search],
                fault: Fault::ServerError { status: 502 },
                trigger: Trigger::NextN { n: 2 },
            }],
            expire_tokens: false,
        });
        assert!(engine.decide(EndpointFamily::List).respond.is_none());
        assert_eq!(
            engine.decide(EndpointFamily::Search).respond,
            Some((502, None))
        );
        assert_eq!(
            engine.decide(EndpointFamily::Search).respond,
            Some((502, None))
        );
        assert!(engine.decide(EndpointFamily::Search).respond.is_none());
    }

    #[test]
    fn probabilistic_faults_replay_under_the_same_seed() {
        let script = FaultScript {
            seed: 9,
            rules: vec![FaultRule {
                families: vec![],
                fault: Fault::RateLimit {
                    policy: default_policy(),
                },
                trigger: Trigger::Probability { p: 0.3 },
            }],
            expire_tokens: false,
        };
        let run = |s: &FaultScript| {
            let mut e = FaultEngine::new(s);
            (0..50)
                .map(|_| e.decide(EndpointFamily::List).respond.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(&script), run(&script));
        assert!(run(&script).iter().any(|x| *x));
    }
}
