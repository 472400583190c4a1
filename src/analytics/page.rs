//! The `/analytics` page body: an HTML fragment with the report's tables and inline SVG
//! charts drawn here, server-side, with no script. The console mounts it inside its
//! layout and serves each table at `/analytics/{table}.csv` and `.json`
//! ([`AnalyticsReport::table`]); the fragment links there. Every piece of text from the
//! store (names, teams, sources, rules) is escaped.
//!
//! The charts are hand-built SVG (bars and columns), simpler than a plotting crate for
//! these shapes and with no new dependency.

use std::fmt::Write as _;

use super::table::Table;
use super::{AnalyticsReport, Dimension};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Bars drawn per chart at most; the rest are summed into "others".
const MAX_BARS: usize = 12;

/// A horizontal bar chart of labelled values.
fn bar_chart(title: &str, bars: &[(String, f64)], unit: &str) -> String {
    let row_h = 22;
    let label_w = 180;
    let bar_w = 360.0;
    let height = 30 + row_h * bars.len().max(1);
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max);
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 640 {height}\" \
         width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\"><title>{t}</title>",
        t = escape(title)
    );
    if bars.is_empty() {
        svg.push_str("<text x=\"10\" y=\"20\">no data in the window</text>");
    }
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 10 + i * row_h;
        let w = if max > 0.0 { bar_w * value / max } else { 0.0 };
        let _ = write!(
            svg,
            "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\" font-size=\"12\">{l}</text>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{w:.1}\" height=\"16\" fill=\"#3b6ea8\"/>\
             <text x=\"{vx:.1}\" y=\"{ty}\" font-size=\"12\">{v}{unit}</text>",
            lx = label_w - 6,
            ty = y + 13,
            l = escape(label),
            x = label_w,
            vx = f64::from(label_w) + w + 4.0,
            v = if value.fract() == 0.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.1}")
            },
            unit = escape(unit),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A column chart of a series (e.g. per day), labelled at its ends.
fn column_chart(title: &str, series: &[(String, f64)]) -> String {
    let (w, h, pad) = (640.0, 160.0, 24.0);
    let max = series.iter().map(|s| s.1).fold(0.0, f64::max);
    let n = series.len().max(1) as f64;
    let col = (w - 2.0 * pad) / n;
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {w} {h}\" \
         width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\"><title>{t}</title>",
        t = escape(title)
    );
    for (i, (label, value)) in series.iter().enumerate() {
        let ch = if max > 0.0 {
            (h - 2.0 * pad) * value / max
        } else {
            0.0
        };
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cw:.1}\" height=\"{ch:.1}\" fill=\"#3b6ea8\">\
             <title>{l}: {value}</title></rect>",
            x = pad + col * i as f64,
            y = h - pad - ch,
            cw = (col - 1.0).max(0.5),
            l = escape(label),
        );
    }
    if let (Some(first), Some(last)) = (series.first(), series.last()) {
        let _ = write!(
            svg,
            "<text x=\"{pad}\" y=\"{ly}\" font-size=\"11\">{a}</text>\
             <text x=\"{rx}\" y=\"{ly}\" font-size=\"11\" text-anchor=\"end\">{b}</text>\
             <text x=\"{pad}\" y=\"14\" font-size=\"11\">max {max:.0}</text>",
            ly = h - 6.0,
            a = escape(&first.0),
            rx = w - pad,
            b = escape(&last.0),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The first `MAX_BARS` values, the rest summed as "others".
fn top(values: Vec<(&str, u64)>) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = values
        .iter()
        .take(MAX_BARS)
        .map(|(l, n)| ((*l).to_owned(), *n as f64))
        .collect();
    let rest: u64 = values.iter().skip(MAX_BARS).map(|(_, n)| n).sum();
    if rest > 0 {
        out.push(("others".to_owned(), rest as f64));
    }
    out
}

/// A table as HTML with its download links.
fn html_table(table: &Table) -> String {
    let mut out = format!(
        "<section class=\"analytics-table\" id=\"{n}\"><h3>{t}</h3>\
         <p class=\"downloads\"><a href=\"/analytics/{n}.csv\">CSV</a> · \
         <a href=\"/analytics/{n}.json\">JSON</a></p>\
         <div class=\"scroll\"><table><thead><tr>",
        n = escape(table.name),
        t = escape(table.title)
    );
    for c in &table.columns {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr></thead><tbody>");
    for row in table.text_rows() {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>");
    }
    if table.rows.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"{}\">none in the window</td></tr>",
            table.columns.len()
        );
    }
    out.push_str("</tbody></table></div></section>");
    out
}

/// A table too long for the page: its title and download links only.
fn downloads_only(table: Option<Table>) -> String {
    let Some(table) = table else {
        return String::new();
    };
    format!(
        "<section class=\"analytics-table\" id=\"{n}\"><h3>{t}</h3>\
         <p>{rows} rows. <a href=\"/analytics/{n}.csv\">CSV</a> · \
         <a href=\"/analytics/{n}.json\">JSON</a></p></section>",
        n = escape(table.name),
        t = escape(table.title),
        rows = table.rows.len()
    )
}

/// The `/analytics` page body for `report`.
pub fn render(report: &AnalyticsReport) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<div class=\"analytics\"><h2>Routing analytics</h2>\
         <p class=\"window\">From {} to {} (UTC) · generated {}</p>",
        escape(&report.window.from.format("%Y-%m-%d %H:%M").to_string()),
        escape(&report.window.to.format("%Y-%m-%d %H:%M").to_string()),
        escape(&report.generated_at.format("%Y-%m-%d %H:%M:%S").to_string()),
    );
    let table = |name: &str| {
        report
            .table(name)
            .map(|t| html_table(&t))
            .unwrap_or_default()
    };

    // Distribution.
    let d = &report.distribution;
    let _ = write!(
        out,
        "<h2>Distribution</h2><p>{} assignments in the window.</p>",
        d.total
    );
    let per_day: Vec<(String, f64)> = d
        .per_day
        .iter()
        .map(|(day, n)| (day.to_string(), *n as f64))
        .collect();
    out.push_str(&column_chart("Assignments per day", &per_day));
    for dim in Dimension::ALL {
        out.push_str(&bar_chart(
            &format!("Assignments by {}", dim.as_str()),
            &top(d.ranked(dim)),
            "",
        ));
    }
    out.push_str(&table("distribution"));
    // Thousands of rows over a month: a download, not a page table.
    out.push_str(&downloads_only(report.table("distribution_daily")));

    // Fairness.
    out.push_str("<h2>Fairness</h2>");
    if report.fairness.roster_source == super::RosterSource::CurrentPolicy {
        out.push_str(
            "<p class=\"note\">No pool roster was recorded for this window: the current \
             policy's pools are taken as unchanged over it.</p>",
        );
    }
    for pool in &report.fairness.pools {
        let bars: Vec<(String, f64)> = pool
            .reps
            .iter()
            .filter_map(|r| r.deviation_pct.map(|dv| (r.name.clone(), dv.abs())))
            .take(MAX_BARS)
            .collect();
        out.push_str(&bar_chart(
            &format!(
                "Pool {}: |actual − target share| per rep (max {:.1} points)",
                pool.pool, pool.max_deviation_pct
            ),
            &bars,
            " pt",
        ));
    }
    out.push_str(&table("fairness_pools"));
    out.push_str(&table("fairness"));

    // Speed-to-lead and SLA.
    let s = &report.speed;
    let pct = |p: u32| {
        s.percentiles.iter().find(|(q, _)| *q == p).map_or_else(
            || "–".to_owned(),
            |(_, ms)| format!("{:.1} s", *ms as f64 / 1000.0),
        )
    };
    let _ = write!(
        out,
        "<h2>Speed-to-lead</h2><p>{} leads first seen, {} routed; p50 {}, p95 {} \
         (nearest rank).</p>",
        s.leads,
        s.routed,
        pct(50),
        pct(95)
    );
    let bands: Vec<(String, f64)> = s
        .bands
        .iter()
        .map(|(b, n)| (b.label().to_owned(), *n as f64))
        .collect();
    out.push_str(&bar_chart("Routed leads by speed band", &bands, ""));
    out.push_str(&table("speed"));
    out.push_str(&table("speed_bands"));
    out.push_str("<h2>SLA compliance</h2>");
    match &report.sla {
        Some(sla) => {
            let _ = write!(
                out,
                "<p>{} met, {} breached, {} open.</p>",
                sla.met, sla.breached, sla.open
            );
        }
        None => out.push_str("<p class=\"note\">No SLA timers recorded.</p>"),
    }

    // Drift over time.
    out.push_str("<h2>Drift over time</h2>");
    let drift: Vec<(String, f64)> = report
        .drift
        .iter()
        .map(|p| {
            let pct = if p.records > 0 {
                100.0 * p.in_policy as f64 / p.records as f64
            } else {
                0.0
            };
            (p.at.format("%Y-%m-%d %H:%M").to_string(), pct)
        })
        .collect();
    if drift.is_empty() {
        out.push_str(
            "<p class=\"note\">No scheduled drift reports in the window (set \
             <code>[drift] schedule</code>).</p>",
        );
    } else {
        out.push_str(&column_chart(
            "Records in policy (%) per drift report",
            &drift,
        ));
    }
    out.push_str(&table("drift"));
    out.push_str("</div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::{AssignmentFact, Inputs, OwnerFact, Window, build};
    use crate::domain::{ObjectKind, OwnerId};
    use chrono::{TimeZone, Utc};

    #[test]
    fn the_page_escapes_every_name_and_links_each_table() {
        let now = Utc.with_ymd_and_hms(2026, 12, 8, 0, 0, 0).unwrap();
        let window = Window {
            from: now - chrono::Duration::days(2),
            to: now,
        };
        let evil = "<script>alert('x')</script>";
        let inputs = Inputs {
            assignments: vec![AssignmentFact {
                at: now - chrono::Duration::hours(1),
                object: ObjectKind::Lead,
                owner: OwnerId::new("1"),
                pool: Some("p&q".into()),
                rule: evil.into(),
                source: Some("\"Web\"".into()),
            }],
            owners: [(
                OwnerId::new("1"),
                OwnerFact {
                    name: evil.into(),
                    team: Some(evil.into()),
                },
            )]
            .into(),
            ..Inputs::default()
        };
        let html = render(&build(now, window, &inputs));
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("p&amp;q"));
        for t in build(now, window, &inputs).tables() {
            assert!(
                html.contains(&format!("/analytics/{}.csv", t.name)),
                "{}",
                t.name
            );
            assert!(html.contains(&format!("/analytics/{}.json", t.name)));
        }
        assert!(html.contains("<svg"));
        assert!(html.contains("No SLA timers recorded"));
    }
}
