//! The console's page models: one askama template (`templates/console/`) per struct.
//! Askama escapes every value, so nothing from the CRM can inject markup.

use askama::Template;

/// What every page's frame shows: who is logged in, the CSRF token for its forms, the
/// active tab and a one-off notice.
pub(super) struct Chrome {
    pub(super) title: String,
    pub(super) nav: &'static str,
    pub(super) user: String,
    pub(super) role: &'static str,
    pub(super) can_act: bool,
    pub(super) csrf: String,
    pub(super) org: String,
    pub(super) notice: Option<String>,
}

#[derive(Template)]
#[template(path = "console/login.html")]
pub(super) struct Login {
    pub(super) csrf: String,
    pub(super) error: Option<String>,
    pub(super) next: String,
}

#[derive(Template)]
#[template(path = "console/message.html")]
pub(super) struct Message {
    pub(super) chrome: Chrome,
    pub(super) heading: String,
    pub(super) text: String,
}

/// One labelled figure on the overview.
pub(super) struct Figure {
    pub(super) label: &'static str,
    pub(super) value: String,
    pub(super) note: String,
    /// `ok`, `warn` or `bad`: the figure's colour.
    pub(super) tone: &'static str,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
pub(super) struct Overview {
    pub(super) chrome: Chrome,
    pub(super) body: OverviewFigures,
}

#[derive(Template)]
#[template(path = "console/overview_figures.html")]
pub(super) struct OverviewFigures {
    pub(super) updated: String,
    pub(super) health: Vec<Figure>,
    pub(super) today: Vec<Figure>,
    pub(super) outcomes: Vec<(String, u64)>,
}

/// One rule of the graph with its counts.
pub(super) struct GraphRule {
    pub(super) position: usize,
    pub(super) name: String,
    pub(super) conditions: Vec<String>,
    pub(super) action: Vec<String>,
    pub(super) action_kind: &'static str,
    pub(super) records: u64,
    pub(super) applied: u64,
    pub(super) exceptions: u64,
    pub(super) link: String,
    /// The bar's width in percent of the busiest rule.
    pub(super) share: u64,
    pub(super) fallthrough: Option<String>,
    /// Records decided by a later rule: those that went down this rule's "no" edge.
    pub(super) passed: u64,
}

#[derive(Template)]
#[template(path = "console/graph.html")]
pub(super) struct Graph {
    pub(super) chrome: Chrome,
    pub(super) policy: String,
    pub(super) version: String,
    pub(super) windows: Vec<(&'static str, bool)>,
    pub(super) window: String,
    pub(super) body: GraphRules,
    pub(super) other: Vec<(String, u64)>,
}

/// The graph's rules with their counts: refreshed alone by `/partials/graph`.
#[derive(Template)]
#[template(path = "console/graph_rules.html")]
pub(super) struct GraphRules {
    pub(super) window: String,
    pub(super) rules: Vec<GraphRule>,
}

pub(super) struct PersonRow {
    pub(super) reference: String,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) company: String,
    pub(super) owner: String,
}

#[derive(Template)]
#[template(path = "console/records.html")]
pub(super) struct Records {
    pub(super) chrome: Chrome,
    pub(super) q: String,
    pub(super) heading: String,
    pub(super) rows: Vec<PersonRow>,
    pub(super) searched: bool,
}

#[derive(Template)]
#[template(path = "console/record.html")]
pub(super) struct Record {
    pub(super) chrome: Chrome,
    pub(super) reference: String,
    pub(super) facts: Vec<(&'static str, String)>,
    pub(super) decision: Option<String>,
    pub(super) journey: String,
    pub(super) missing: Option<String>,
}

pub(super) struct ExceptionView {
    pub(super) id: i64,
    pub(super) record: String,
    pub(super) kind: String,
    pub(super) rule: String,
    pub(super) reason: String,
    pub(super) desired: String,
    pub(super) age: String,
    pub(super) can_retry: bool,
    /// The reps this record may be given to: the rule's pool members when its rule
    /// routes to a pool, else every active user. (id, "Name <email>").
    pub(super) owners: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "console/exceptions.html")]
pub(super) struct Exceptions {
    pub(super) chrome: Chrome,
    pub(super) kind: String,
    pub(super) rule: String,
    pub(super) age: String,
    pub(super) kinds: Vec<String>,
    pub(super) rules: Vec<String>,
    pub(super) ages: Vec<(&'static str, &'static str)>,
    pub(super) rows: Vec<ExceptionView>,
    pub(super) total: usize,
    pub(super) shown: usize,
    /// Active users a record may be given to: (id, "Name <email>").
    pub(super) owners: Vec<(String, String)>,
}

pub(super) struct RunView {
    pub(super) id: String,
    pub(super) kind: String,
    pub(super) parent: String,
    pub(super) started: String,
    pub(super) status: String,
    pub(super) applied: u64,
    pub(super) skipped: u64,
    pub(super) failed: u64,
    pub(super) pending: u64,
}

pub(super) struct AuditView {
    pub(super) at: String,
    pub(super) actor: String,
    pub(super) action: String,
    pub(super) target: String,
    pub(super) run: String,
    pub(super) outcome: String,
}

#[derive(Template)]
#[template(path = "console/runs.html")]
pub(super) struct Runs {
    pub(super) chrome: Chrome,
    pub(super) runs: Vec<RunView>,
    pub(super) audit: Vec<AuditView>,
}

pub(super) struct EntryView {
    pub(super) seq: i64,
    pub(super) record: String,
    pub(super) change: String,
    pub(super) rule: String,
    pub(super) outcome: String,
    pub(super) detail: String,
}

#[derive(Template)]
#[template(path = "console/run.html")]
pub(super) struct Run {
    pub(super) chrome: Chrome,
    pub(super) run: RunView,
    pub(super) message: String,
    pub(super) entries: Vec<EntryView>,
    pub(super) more: usize,
    pub(super) can_roll_back: bool,
}

#[derive(Template)]
#[template(path = "console/rollback.html")]
pub(super) struct Rollback {
    pub(super) chrome: Chrome,
    pub(super) run: String,
    pub(super) would_revert: u64,
    pub(super) left: Vec<(u64, String)>,
}

#[derive(Template)]
#[template(path = "console/analytics.html")]
pub(super) struct Analytics {
    pub(super) chrome: Chrome,
    /// The window choices as `<option>`s (fixed texts), the one asked for selected.
    pub(super) options: String,
    /// `crate::analytics::page::render`'s fragment: every text in it is escaped there.
    pub(super) body: String,
}
