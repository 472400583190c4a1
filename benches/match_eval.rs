//! The matching evaluation runner: generates a seeded messy world with ground truth
//! (src/matcher/eval.rs), matches every contact and prints precision, recall,
//! false-match rate and abstentions by category, against the targets (precision ≥ 0.999,
//! false-match rate ≤ 0.2 %, recall ≥ 0.95 on every matchable category, ≥ 90 % of every
//! should-abstain category abstained or unmatched).
//!
//! `cargo bench --bench match_eval -- [--seed N] [--orgs N] [--contacts N]`

use std::time::Instant;

use leadroute::matcher::eval::{EvalConfig, generate, score};
use leadroute::matcher::{Matcher, MatcherConfig};

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1)?.parse().ok()
}

fn main() {
    let defaults = EvalConfig::default();
    let config = EvalConfig {
        seed: arg("--seed").unwrap_or(defaults.seed),
        orgs: arg("--orgs").map_or(defaults.orgs, |n| n as usize),
        contacts: arg("--contacts").map_or(defaults.contacts, |n| n as usize),
    };
    let started = Instant::now();
    let set = generate(&config);
    let generated = started.elapsed();
    let matcher = Matcher::new(&set.accounts, &set.owners, &MatcherConfig::default());
    let started = Instant::now();
    let report = score(&matcher, &set);
    let scored = started.elapsed();
    println!(
        "matching evaluation: seed {} · {} organisations · {} accounts · {} contacts \
         (generated in {:.2?}, matched and scored in {:.2?})\n",
        config.seed,
        config.orgs,
        set.accounts.len(),
        set.cases.len(),
        generated,
        scored
    );
    println!("{}", report.table());
    println!("w.ent = matched another account of the right organisation; w.co = another company,");
    println!("or a match where the truth is no account. fmr = (w.ent + w.co) / cases; abst% =");
    println!("(ambiguous + unmatched) / cases. Categories without truth should be abstained.\n");
    let total = report.total;
    let precision_ok = total.precision() >= 0.999;
    let fmr_ok = total.false_match_rate() <= 0.002;
    println!(
        "precision {:.4} (target ≥ 0.999: {}) · false-match rate {:.3} % (target ≤ 0.2 %: {}) · recall {:.4}",
        total.precision(),
        if precision_ok { "met" } else { "MISSED" },
        100.0 * total.false_match_rate(),
        if fmr_ok { "met" } else { "MISSED" },
        total.recall()
    );
    let mut categories_ok = true;
    for (category, tally) in &report.by_category {
        let (ok, what) = if tally.positives > 0 {
            (
                tally.recall() >= 0.95,
                format!("recall {:.4} (≥ 0.95)", tally.recall()),
            )
        } else {
            (
                tally.abstain_rate() >= 0.90,
                format!("abstained {:.1} % (≥ 90 %)", 100.0 * tally.abstain_rate()),
            )
        };
        if !ok {
            categories_ok = false;
            println!("MISSED: {}: {what}", category.label());
        }
    }
    if categories_ok {
        println!("every category meets its recall or abstention target");
    }
    if !report.false_match_samples.is_empty() {
        println!("\nfalse-match samples:");
        for sample in &report.false_match_samples {
            println!("  {sample}");
        }
    }
    if !(precision_ok && fmr_ok && categories_ok) {
        std::process::exit(1);
    }
}
