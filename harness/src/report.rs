//! Renders a [`Report`] for people: the header (scenario, etcd version, image), the transcript, the
//! checks with their results and diagnoses, a failure's diagnosis, and the verdict.
//!
//! Text only for now; JUnit and JSON renderings belong beside this one.

use std::fmt::Write;

use crate::runner::Report;

/// Evidence lines shown per diagnosis (the same rejection is often logged once per retry).
pub const MAX_EVIDENCE: usize = 3;

/// The report as text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, report);
    out
}

fn write_report(out: &mut String, report: &Report) -> std::fmt::Result {
    writeln!(
        out,
        "scenario: {} — {}",
        report.scenario, report.description
    )?;
    writeln!(
        out,
        "etcd:     {} ({})",
        report.etcd_version.as_deref().unwrap_or("not installed"),
        report.etcd_origin
    )?;
    writeln!(out, "node:     {}", report.image)?;
    if let Some(why) = &report.not_applicable {
        return writeln!(out, "\nN/A: the scenario is {why}; nothing ran");
    }
    writeln!(out, "\ntranscript:")?;
    write!(out, "{}", report.transcript)?;
    if let Some(failure) = &report.failure {
        writeln!(out, "\nunexpected failure: {failure}")?;
    }
    if !report.checks.is_empty() {
        writeln!(out, "\nchecks:")?;
        for check in &report.checks {
            write!(out, "{check}")?;
        }
    }
    if let Some(d) = &report.diagnosis {
        writeln!(out, "\ndiagnosis: {} — {}", d.cause, d.cause.explanation())?;
        for line in d.shown_by.iter().take(MAX_EVIDENCE) {
            writeln!(out, "  evidence: {line}")?;
        }
        writeln!(out, "  fix: {}", d.cause.fix())?;
    }
    if let Some(kept) = &report.kept {
        let id = crate::engine::short(&kept.container);
        writeln!(out, "\nnode kept: docker exec -it {id} bash")?;
        writeln!(out, "PKI and jumpbox: {}", kept.jumpbox.display())?;
        writeln!(out, "remove it with: docker rm -f {id}")?;
    }
    let applicable: Vec<_> = report.checks.iter().filter(|c| c.applies).collect();
    let held = applicable.iter().filter(|c| c.holds).count();
    let not_applicable = report.checks.len() - applicable.len();
    writeln!(
        out,
        "\n{}: {held} of {} checks hold{}{}",
        if report.holds() { "PASS" } else { "FAIL" },
        applicable.len(),
        if not_applicable > 0 {
            format!(" ({not_applicable} not applicable to this etcd)")
        } else {
            String::new()
        },
        if report.failure.is_some() {
            "; the bootstrap did not get etcd running"
        } else {
            ""
        }
    )
}
