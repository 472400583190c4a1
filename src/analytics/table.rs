//! The report's sections as named tables, and each table as Markdown, CSV or JSON.
//! `leadroute report` prints them and the console's `/analytics/{table}.csv|json`
//! downloads serve them, so both show the same numbers.

use serde_json::{Map, Value};

use super::speed::Band;
use super::{AnalyticsReport, Dimension};

/// One cell: text, a whole number, a decimal (shown with 2 places) or nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    Num(f64),
    Empty,
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Num(x) => format!("{x:.2}"),
            Cell::Empty => String::new(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Text(s) => Value::String(s.clone()),
            Cell::Int(n) => Value::from(*n),
            // Rounded as shown, so CSV and JSON agree.
            Cell::Num(x) => serde_json::Number::from_f64((x * 100.0).round() / 100.0)
                .map_or(Value::Null, Value::Number),
            Cell::Empty => Value::Null,
        }
    }
}

fn int(n: u64) -> Cell {
    Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn opt_num(x: Option<f64>) -> Cell {
    x.map_or(Cell::Empty, Cell::Num)
}

/// A named table with a title and columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The download name (`/analytics/{name}.csv`) and the `--table` value.
    pub name: &'static str,
    pub title: &'static str,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        // Writing to a Vec cannot fail; a failure would only drop the row.
        let _ = w.write_record(&self.columns);
        for row in &self.rows {
            let _ = w.write_record(row.iter().map(Cell::text));
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    /// An array of objects keyed by column name; numbers stay numbers.
    pub fn to_json_value(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    let obj: Map<String, Value> = self
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| ((*c).to_owned(), v.json()))
                        .collect();
                    Value::Object(obj)
                })
                .collect(),
        )
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.to_json_value()).unwrap_or_default();
        text.push('\n');
        text
    }

    pub fn to_markdown(&self) -> String {
        let esc = |s: String| s.replace('|', "\\|").replace('\n', " ");
        let mut out = format!("## {}\n\n| {} |\n|", self.title, self.columns.join(" | "));
        out.push_str(&"---|".repeat(self.columns.len()));
        out.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|c| esc(c.text())).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        if self.rows.is_empty() {
            out.push_str("\n(none in the window)\n");
        }
        out
    }

    /// Cells as display text, for HTML.
    pub fn text_rows(&self) -> impl Iterator<Item = Vec<String>> + '_ {
        self.rows.iter().map(|r| r.iter().map(Cell::text).collect())
    }
}

/// Which `leadroute report` a table belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Distribution,
    Fairness,
    Speed,
}

impl AnalyticsReport {
    /// The table names of a report section, the main one first.
    pub fn table_names(section: Section) -> &'static [&'static str] {
        match section {
            Section::Distribution => &["distribution", "distribution_daily"],
            Section::Fairness => &["fairness", "fairness_pools"],
            Section::Speed => &["speed", "speed_bands"],
        }
    }

    /// Every table of the report, in page order (`drift` last).
    pub fn tables(&self) -> Vec<Table> {
        [
            "distribution",
            "distribution_daily",
            "fairness_pools",
            "fairness",
            "speed",
            "speed_bands",
            "drift",
        ]
        .into_iter()
        .filter_map(|n| self.table(n))
        .collect()
    }

    /// One table by its name, `None` for an unknown name.
    pub fn table(&self, name: &str) -> Option<Table> {
        Some(match name {
            "distribution" => {
                let d = &self.distribution;
                let mut rows = Vec::new();
                for dim in Dimension::ALL {
                    for (value, n) in d.ranked(dim) {
                        let share = (d.total > 0).then(|| 100.0 * n as f64 / d.total as f64);
                        rows.push(vec![
                            Cell::Text(dim.as_str().to_owned()),
                            Cell::Text(value.to_owned()),
                            int(n),
                            opt_num(share),
                        ]);
                    }
                }
                Table {
                    name: "distribution",
                    title: "Distribution of assignments",
                    columns: vec!["dimension", "value", "assignments", "share_pct"],
                    rows,
                }
            }
            "distribution_daily" => Table {
                name: "distribution_daily",
                title: "Distribution per day (UTC)",
                columns: vec!["day", "dimension", "value", "assignments"],
                rows: self
                    .distribution
                    .daily
                    .iter()
                    .map(|((day, dim, value), n)| {
                        vec![
                            Cell::Text(day.to_string()),
                            Cell::Text(dim.as_str().to_owned()),
                            Cell::Text(value.clone()),
                            int(*n),
                        ]
                    })
                    .collect(),
            },
            "fairness" => Table {
                name: "fairness",
                title: "Fairness per rep (actual against target share)",
                columns: vec![
                    "pool",
                    "rep",
                    "owner_id",
                    "weight",
                    "tenure_picks",
                    "assigned",
                    "expected",
                    "actual_share_pct",
                    "target_share_pct",
                    "deviation_pct",
                ],
                rows: self
                    .fairness
                    .pools
                    .iter()
                    .flat_map(|p| {
                        p.reps.iter().map(|r| {
                            vec![
                                Cell::Text(p.pool.clone()),
                                Cell::Text(r.name.clone()),
                                Cell::Text(r.owner.0.clone()),
                                int(u64::from(r.weight)),
                                int(r.tenure_picks),
                                int(r.assigned),
                                Cell::Num(r.expected),
                                opt_num(r.actual_share_pct),
                                opt_num(r.target_share_pct),
                                opt_num(r.deviation_pct),
                            ]
                        })
                    })
                    .collect(),
            },
            "fairness_pools" => Table {
                name: "fairness_pools",
                title: "Fairness per pool (max deviation)",
                columns: vec![
                    "pool",
                    "picks",
                    "outside_roster",
                    "members",
                    "max_deviation_pct",
                    "max_deviation_records",
                    "roster",
                ],
                rows: self
                    .fairness
                    .pools
                    .iter()
                    .map(|p| {
                        vec![
                            Cell::Text(p.pool.clone()),
                            int(p.picks),
                            int(p.outside_roster),
                            int(p
                                .reps
                                .iter()
                                .filter(|r| r.in_roster || r.weight > 0)
                                .count() as u64),
                            Cell::Num(p.max_deviation_pct),
                            Cell::Num(p.max_deviation_records),
                            Cell::Text(
                                match self.fairness.roster_source {
                                    super::RosterSource::Recorded => "recorded",
                                    super::RosterSource::CurrentPolicy => "current policy",
                                }
                                .to_owned(),
                            ),
                        ]
                    })
                    .collect(),
            },
            "speed" => {
                let s = &self.speed;
                let mut rows = vec![
                    vec![Cell::Text("leads_first_seen".into()), int(s.leads)],
                    vec![Cell::Text("routed".into()), int(s.routed)],
                    vec![Cell::Text("not_written".into()), int(s.not_written)],
                ];
                for (p, ms) in &s.percentiles {
                    rows.push(vec![
                        Cell::Text(format!("p{p}_seconds")),
                        Cell::Num(*ms as f64 / 1000.0),
                    ]);
                }
                // SLA compliance only from real SLA timers (issue 12): none yet.
                match &self.sla {
                    Some(sla) => {
                        rows.push(vec![Cell::Text("sla_met".into()), int(sla.met)]);
                        rows.push(vec![Cell::Text("sla_breached".into()), int(sla.breached)]);
                        rows.push(vec![Cell::Text("sla_open".into()), int(sla.open)]);
                    }
                    None => rows.push(vec![Cell::Text("sla".into()), Cell::Empty]),
                }
                Table {
                    name: "speed",
                    title: "Speed-to-lead (first seen to owner written; nearest-rank percentiles)",
                    columns: vec!["metric", "value"],
                    rows,
                }
            }
            "speed_bands" => Table {
                name: "speed_bands",
                title: "Speed-to-lead bands",
                columns: vec!["band", "leads", "share_pct"],
                rows: self
                    .speed
                    .bands
                    .iter()
                    .map(|(band, n): &(Band, u64)| {
                        let share = (self.speed.routed > 0)
                            .then(|| 100.0 * *n as f64 / self.speed.routed as f64);
                        vec![Cell::Text(band.label().to_owned()), int(*n), opt_num(share)]
                    })
                    .collect(),
            },
            "drift" => Table {
                name: "drift",
                title: "Drift over time (scheduled drift reports)",
                columns: vec![
                    "at",
                    "records",
                    "in_policy",
                    "would_change",
                    "in_policy_pct",
                ],
                rows: self
                    .drift
                    .iter()
                    .map(|d| {
                        let pct =
                            (d.records > 0).then(|| 100.0 * d.in_policy as f64 / d.records as f64);
                        vec![
                            Cell::Text(d.at.to_rfc3339()),
                            int(d.records),
                            int(d.in_policy),
                            int(d.would_change),
                            opt_num(pct),
                        ]
                    })
                    .collect(),
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        Table {
            name: "t",
            title: "T",
            columns: vec!["name", "n", "pct"],
            rows: vec![
                vec![
                    Cell::Text("a, \"b\"|c".into()),
                    Cell::Int(3),
                    Cell::Num(33.333),
                ],
                vec![Cell::Text("d".into()), Cell::Int(0), Cell::Empty],
            ],
        }
    }

    #[test]
    fn csv_and_json_parse_back_to_the_same_cells() {
        let t = sample();
        let csv_text = t.to_csv();
        let mut r = csv::Reader::from_reader(csv_text.as_bytes());
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(&rows[0][0], "a, \"b\"|c");
        assert_eq!(&rows[0][2], "33.33");
        assert_eq!(&rows[1][2], "");
        let v: Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(v[0]["n"], 3);
        assert_eq!(v[0]["pct"], 33.33);
        assert!(v[1]["pct"].is_null());
        assert!(t.to_markdown().contains("a, \"b\"\\|c"));
    }
}
