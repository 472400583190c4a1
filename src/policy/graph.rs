//! The routing graph: rules in order, each with a "yes" edge to its action and a "no"
//! edge to the next rule, rendered as Graphviz DOT, Mermaid, or a self-contained SVG
//! (laid out here: one column of rules, one of actions; no Graphviz needed).

use std::fmt::Write as _;

use super::model::{Action, OnUnavailable, Policy};

/// An action node label: the action plus, for pools, their members.
fn action_label(policy: &Policy, action: &Action) -> String {
    match action {
        Action::Pool { pool } => {
            let p = &policy.pools[pool];
            let members: Vec<String> = p
                .members
                .iter()
                .map(|m| {
                    if m.weight > 1 {
                        format!("{}×{}", m.rep, m.weight)
                    } else {
                        m.rep.clone()
                    }
                })
                .collect();
            format!(
                "pool {pool} ({})\n{}",
                p.strategy.as_str(),
                members.join(", ")
            )
        }
        other => other.describe(),
    }
}

fn rule_label(policy: &Policy, i: usize) -> String {
    let r = &policy.rules[i];
    if r.conditions.is_empty() {
        return format!("{}\n(everything else)", r.name);
    }
    let conds: Vec<String> = r.conditions.iter().map(|c| c.describe()).collect();
    format!("{}\n{}", r.name, conds.join("\nand "))
}

/// One rule as the console draws it: its name, conditions, action lines and what
/// happens when its action finds nobody available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleNode {
    pub name: String,
    pub conditions: Vec<String>,
    pub action: Vec<String>,
    /// `pool`, `exception` or `other` (owner, queue, …).
    pub action_kind: &'static str,
    pub unavailable: Option<String>,
}

/// The rules in order, with the labels the DOT, Mermaid and SVG renderings use.
pub fn nodes(policy: &Policy) -> Vec<RuleNode> {
    policy
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            // Only actions that pick a person can find nobody available.
            let passes = matches!(
                r.action,
                Action::Pool { .. } | Action::Owner { .. } | Action::AccountOwner
            );
            let unavailable = match r.on_unavailable {
                OnUnavailable::Next if passes && i + 1 < policy.rules.len() => {
                    Some("nobody available: on to the next rule".to_owned())
                }
                OnUnavailable::Exception if passes => {
                    Some("nobody available: exception".to_owned())
                }
                _ => None,
            };
            RuleNode {
                name: r.name.clone(),
                conditions: rule_label(policy, i)
                    .lines()
                    .skip(1)
                    .map(str::to_owned)
                    .collect(),
                action: action_label(policy, &r.action)
                    .lines()
                    .map(str::to_owned)
                    .collect(),
                action_kind: match r.action {
                    Action::Pool { .. } => "pool",
                    Action::Exception { .. } => "exception",
                    _ => "other",
                },
                unavailable,
            }
        })
        .collect()
}

fn esc_dot(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn to_dot(policy: &Policy) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph routing {{");
    let _ = writeln!(
        s,
        "  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];"
    );
    let _ = writeln!(
        s,
        "  label=\"{} (version {})\";",
        esc_dot(policy.name.as_deref().unwrap_or(&policy.source)),
        policy.version
    );
    let _ = writeln!(s, "  start [shape=oval, label=\"contact / lead\"];");
    for (i, _) in policy.rules.iter().enumerate() {
        let _ = writeln!(s, "  r{i} [label=\"{}\"];", esc_dot(&rule_label(policy, i)));
        let _ = writeln!(
            s,
            "  a{i} [shape=box, style=rounded, label=\"{}\"];",
            esc_dot(&action_label(policy, &policy.rules[i].action))
        );
    }
    let _ = writeln!(
        s,
        "  exc [shape=octagon, label=\"exception\\nno_eligible_rep / ambiguous_match\"];"
    );
    if !policy.rules.is_empty() {
        let _ = writeln!(s, "  start -> r0;");
    }
    for (i, r) in policy.rules.iter().enumerate() {
        let _ = writeln!(s, "  r{i} -> a{i} [label=\"yes\"];");
        if i + 1 < policy.rules.len() {
            let _ = writeln!(s, "  r{i} -> r{} [label=\"no\"];", i + 1);
            if r.on_unavailable == OnUnavailable::Next
                && !matches!(r.action, Action::Exception { .. } | Action::Queue { .. })
            {
                let _ = writeln!(
                    s,
                    "  a{i} -> r{} [style=dashed, label=\"unavailable\"];",
                    i + 1
                );
            }
        }
        if r.on_unavailable == OnUnavailable::Exception
            && !matches!(r.action, Action::Exception { .. } | Action::Queue { .. })
        {
            let _ = writeln!(s, "  a{i} -> exc [style=dashed, label=\"unavailable\"];");
        }
    }
    let _ = writeln!(s, "}}");
    s
}

fn esc_mermaid(s: &str) -> String {
    s.replace('"', "#quot;").replace('\n', "<br/>")
}

pub fn to_mermaid(policy: &Policy) -> String {
    let mut s = String::from("flowchart LR\n  start([contact / lead])\n");
    for (i, _) in policy.rules.iter().enumerate() {
        let _ = writeln!(s, "  r{i}[\"{}\"]", esc_mermaid(&rule_label(policy, i)));
        let _ = writeln!(
            s,
            "  a{i}(\"{}\")",
            esc_mermaid(&action_label(policy, &policy.rules[i].action))
        );
    }
    let _ = writeln!(s, "  exc{{{{\"exception\"}}}}");
    if !policy.rules.is_empty() {
        let _ = writeln!(s, "  start --> r0");
    }
    for (i, r) in policy.rules.iter().enumerate() {
        let _ = writeln!(s, "  r{i} -->|yes| a{i}");
        let passes = !matches!(r.action, Action::Exception { .. } | Action::Queue { .. });
        if i + 1 < policy.rules.len() {
            let _ = writeln!(s, "  r{i} -->|no| r{}", i + 1);
            if r.on_unavailable == OnUnavailable::Next && passes {
                let _ = writeln!(s, "  a{i} -.->|unavailable| r{}", i + 1);
            }
        }
        if r.on_unavailable == OnUnavailable::Exception && passes {
            let _ = writeln!(s, "  a{i} -.->|unavailable| exc");
        }
    }
    s
}

fn esc_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A self-contained SVG: rules down the left, actions on the right.
pub fn to_svg(policy: &Policy) -> String {
    const W: i64 = 300;
    const GAP: i64 = 36;
    const LINE: i64 = 14;
    let rule_x = 40;
    let action_x = rule_x + W + 120;
    let mut y = 70;
    let mut boxes = Vec::new();
    for i in 0..policy.rules.len() {
        let rl: Vec<String> = rule_label(policy, i).lines().map(str::to_owned).collect();
        let al: Vec<String> = action_label(policy, &policy.rules[i].action)
            .lines()
            .map(str::to_owned)
            .collect();
        let h = (rl.len().max(al.len()) as i64) * LINE + 16;
        boxes.push((y, h, rl, al));
        y += h + GAP;
    }
    let height = y + 20;
    let width = action_x + W + 40;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="Helvetica,Arial,sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{rule_x}" y="24" font-size="15" font-weight="bold">{} — policy {}</text>"#,
        esc_xml(policy.name.as_deref().unwrap_or(&policy.source)),
        policy.version
    );
    let _ = writeln!(
        s,
        r##"<text x="{rule_x}" y="48" fill="#555">contact / lead enters at the top; first rule that matches wins</text>"##
    );
    let text_block = |s: &mut String, x: i64, y: i64, lines: &[String], bold_first: bool| {
        for (k, l) in lines.iter().enumerate() {
            let weight = if bold_first && k == 0 {
                r#" font-weight="bold""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}"{weight}>{}</text>"#,
                x + 8,
                y + 18 + k as i64 * LINE,
                esc_xml(l)
            );
        }
    };
    for (i, (by, h, rl, al)) in boxes.iter().enumerate() {
        let r = &policy.rules[i];
        let fill = if r.is_default { "#eef2f7" } else { "#ffffff" };
        let _ = writeln!(
            s,
            r##"<rect x="{rule_x}" y="{by}" width="{W}" height="{h}" rx="3" fill="{fill}" stroke="#333"/>"##
        );
        text_block(&mut s, rule_x, *by, rl, true);
        let afill = match r.action {
            Action::Exception { .. } => "#fdecea",
            Action::Pool { .. } => "#e8f5e9",
            _ => "#fff8e1",
        };
        let _ = writeln!(
            s,
            r##"<rect x="{action_x}" y="{by}" width="{W}" height="{h}" rx="10" fill="{afill}" stroke="#333"/>"##
        );
        text_block(&mut s, action_x, *by, al, false);
        let mid = by + h / 2;
        let _ = writeln!(
            s,
            r##"<line x1="{}" y1="{mid}" x2="{action_x}" y2="{mid}" stroke="#555" marker-end="url(#arrow)"/><text x="{}" y="{}" fill="#2e7d32">yes</text>"##,
            rule_x + W,
            rule_x + W + 50,
            mid - 4
        );
        if let Some((ny, _, _, _)) = boxes.get(i + 1) {
            let x = rule_x + W / 2;
            let _ = writeln!(
                s,
                r##"<line x1="{x}" y1="{}" x2="{x}" y2="{ny}" stroke="#555" marker-end="url(#arrow)"/><text x="{}" y="{}" fill="#c62828">no</text>"##,
                by + h,
                x + 6,
                by + h + 22
            );
            let passes = !matches!(r.action, Action::Exception { .. } | Action::Queue { .. });
            if r.on_unavailable == OnUnavailable::Next && passes {
                let _ = writeln!(
                    s,
                    r##"<path d="M {} {} C {} {}, {} {}, {} {}" fill="none" stroke="#999" stroke-dasharray="4 3" marker-end="url(#arrow)"/>"##,
                    action_x + W / 2,
                    by + h,
                    action_x + W / 2,
                    ny - 8,
                    rule_x + W + 40,
                    ny - 8,
                    rule_x + W,
                    ny + 10
                );
            }
        }
    }
    let _ = writeln!(s, "</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
[settings]
name = "graph-test"

[reps.ann]
owner = "1"
name = "Ann \"The\" Closer"

[reps.bob]
owner = "2"

[pools.inbound]
strategy = "weighted"
members = [{ rep = "ann", weight = 2 }, "bob"]

[territories.emea]
countries = ["DE", "FR"]
reps = ["ann"]

[[rules]]
name = "big-accounts"
when = [{ match = "matched" }, { field = "account.owner", exists = true }]
action = "account_owner"

[[rules]]
name = "emea"
when = [{ territory = "emea" }]
action = "pool"
pool = "inbound"

[default]
action = "owner"
rep = "bob"
"#;

    fn policy() -> Policy {
        crate::policy::parse("graph.toml", POLICY).unwrap().0
    }

    #[test]
    fn dot_has_one_node_per_rule_and_action_with_yes_and_no_edges_in_order() {
        let p = policy();
        let dot = to_dot(&p);
        assert!(dot.starts_with("digraph"), "{dot}");
        assert!(dot.trim_end().ends_with('}'), "{dot}");
        let rules = ["big-accounts", "emea", "default"];
        let mut last = 0;
        for r in rules {
            let at = dot.find(r).unwrap_or_else(|| panic!("{r} missing:\n{dot}"));
            assert!(at >= last, "rules out of order:\n{dot}");
            last = at;
        }
        // The pool's members with weights; a quote in a name is escaped, not broken.
        assert!(dot.contains("pool inbound (weighted)"), "{dot}");
        assert!(dot.contains("ann×2"), "{dot}");
        assert!(!dot.contains("Ann \"The\""), "an unescaped quote:\n{dot}");
        // One "yes" edge per rule to its action, one "no" edge to each next rule.
        let n = p.rules.len();
        assert_eq!(n, 3, "two rules and the default");
        assert_eq!(dot.matches("[label=\"yes\"]").count(), n, "{dot}");
        assert_eq!(dot.matches("[label=\"no\"]").count(), n - 1, "{dot}");
        assert!(dot.contains("r0 -> r1 [label=\"no\"]"), "{dot}");
        assert!(dot.contains("r1 -> r2 [label=\"no\"]"), "{dot}");
    }

    #[test]
    fn mermaid_and_svg_name_every_rule_and_the_svg_is_balanced() {
        let p = policy();
        let mermaid = to_mermaid(&p);
        assert!(
            mermaid.starts_with("flowchart") || mermaid.starts_with("graph"),
            "{mermaid}"
        );
        for r in ["big-accounts", "emea", "default"] {
            assert!(mermaid.contains(r), "{r} missing:\n{mermaid}");
        }
        let svg = to_svg(&p);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        for r in ["big-accounts", "emea", "default"] {
            assert!(svg.contains(r), "{r} missing");
        }
        // Every opened element is closed (or self-closed).
        for tag in ["g", "text", "svg"] {
            let open =
                svg.matches(&format!("<{tag} ")).count() + svg.matches(&format!("<{tag}>")).count();
            let close = svg.matches(&format!("</{tag}>")).count();
            assert_eq!(open, close, "<{tag}> unbalanced");
        }
        assert!(!svg.contains("\"The\""), "a raw quote in SVG text");
    }
}
