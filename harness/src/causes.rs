//! The `causes` command's two pages: the vocabulary of causes with the harvested messages each
//! means, and the coverage of those messages — per version, how many templates there are, how
//! many mean a specific cause, how many give a fix, and how many a catalogue scenario reproduces
//! for real (its journal expectation, asserted on a real run, holds the message).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use semver::Version;

use crate::cause::{Cause, Kind};
use crate::messages::{self, Coverage, Message};
use crate::scenario::{self, JournalPattern, Scenario};

/// The table: each cause, its kind and explanation, then the messages of etcd and systemd that
/// mean it, and systemd's `Result=` values and exit statuses.
pub fn table() -> String {
    let mut by_cause: BTreeMap<Option<Cause>, Vec<(&str, &Message)>> = BTreeMap::new();
    for message in &messages::etcd().messages {
        by_cause
            .entry(message.cause)
            .or_default()
            .push(("etcd", message));
    }
    for message in &messages::systemd().messages {
        by_cause
            .entry(message.cause)
            .or_default()
            .push(("systemd", message));
    }
    let systemd = messages::systemd();
    let mut out = String::new();
    for cause in Cause::all() {
        let kind = match cause.kind() {
            Kind::Specific => "",
            Kind::Generic => " (generic: quotes the reason)",
            Kind::Symptom => " (a symptom: only when no evidence holds a reason)",
        };
        let _ = writeln!(out, "{cause}{kind}\n  {}", cause.explanation());
        for status in systemd
            .exit_statuses
            .iter()
            .filter(|s| s.cause == Some(cause))
        {
            let _ = writeln!(
                out,
                "  systemd status={}/{}: {}",
                status.code, status.name, status.explanation
            );
        }
        for result in systemd.results.iter().filter(|r| r.cause == Some(cause)) {
            let _ = writeln!(
                out,
                "  systemd Result={}: {}",
                result.value, result.explanation
            );
        }
        for (who, message) in by_cause.get(&Some(cause)).into_iter().flatten() {
            let stage = message
                .stage
                .map_or(String::new(), |s| format!(" {}:", s.name()));
            let _ = writeln!(
                out,
                "  {who} {} [{}]{stage} {}",
                message.versions.join(","),
                message.source,
                message.template
            );
            if let Some(fix) = &message.fix {
                let _ = writeln!(out, "      fix: {fix}");
            }
        }
    }
    out
}

/// The coverage page, with what the scenario `files` assert as reproduced.
pub fn coverage(files: &[PathBuf]) -> Result<String, scenario::ScenarioError> {
    let scenarios: Vec<Scenario> = files
        .iter()
        .map(|file| Scenario::load(file))
        .collect::<Result<_, _>>()?;
    let reproduced = |version: &str| -> Vec<String> {
        let at = match version {
            "3.4" => Version::new(3, 4, 23),
            "3.5" => Version::new(3, 5, 16),
            _ => Version::new(3, 6, 0),
        };
        scenarios
            .iter()
            .filter(|s| crate::versions::applies(s.etcd.as_ref(), Some(&at)))
            .flat_map(|s| &s.journal)
            .filter(|j| crate::versions::applies(j.etcd.as_ref(), Some(&at)))
            .filter_map(|j| match &j.pattern {
                JournalPattern::Contains(text) => Some(text.clone()),
                JournalPattern::Matches(_) => None,
            })
            .collect()
    };
    let (etcd, systemd) = messages::coverage(&reproduced);
    let mut out = String::new();
    let row = |out: &mut String, who: &str, c: &Coverage| {
        let pct = |n: usize| 100.0 * n as f64 / c.templates.max(1) as f64;
        let _ = writeln!(
            out,
            "{who:<8} {:<6} {:>9} {:>9} ({:>3.0} %) {:>9} ({:>3.0} %) {:>11}",
            c.version,
            c.templates,
            c.specific,
            pct(c.specific),
            c.with_fix,
            pct(c.with_fix),
            c.reproduced
        );
    };
    let _ = writeln!(
        out,
        "{:<8} {:<6} {:>9} {:>17} {:>17} {:>11}",
        "table", "version", "templates", "specific cause", "with a fix", "reproduced"
    );
    for c in &etcd {
        row(&mut out, "etcd", c);
    }
    for c in &systemd {
        row(&mut out, "systemd", c);
    }
    let table = messages::systemd();
    let unmapped_results = table
        .results
        .iter()
        .filter(|r| r.cause.is_none() && r.value != "success")
        .count();
    let setup: Vec<_> = table
        .exit_statuses
        .iter()
        .filter(|s| (200..255).contains(&s.code))
        .collect();
    let unmapped_setup = setup
        .iter()
        .filter(|s| s.cause.is_none_or(|c| c.kind() != Kind::Specific))
        .count();
    let _ = writeln!(
        out,
        "systemd Result= values: {} ({} without a cause); exec set-up statuses (status=2xx): {} ({} without a specific cause); other exit statuses: {}",
        table.results.len(),
        unmapped_results,
        setup.len(),
        unmapped_setup,
        table.exit_statuses.len() - setup.len()
    );
    let _ = writeln!(
        out,
        "etcd wrapper messages (carry another error, not counted): {}",
        messages::etcd().wrappers.len()
    );
    Ok(out)
}
