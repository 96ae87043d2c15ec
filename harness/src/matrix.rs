//! The matrix: scenarios × etcd versions on one engine, six runs at a time, as one table — a row per
//! scenario, a column per version, each cell `pass`, `FAIL` or `n.a.` with the cause the run's
//! diagnosis named. What failed is listed under the table, check by check.
//!
//! It only schedules runs and tabulates their reports; each run is [`runner::run`]'s.

use std::fmt;

use futures_util::StreamExt;

use crate::diagnose::Cause;
use crate::downloads::{self, EtcdSource};
use crate::report::Report;
use crate::runner::{self, Fixes, Harness, RunError, RunOptions};
use crate::scenario::Scenario;

/// Runs at a time: they mostly wait on timeouts inside their nodes.
const AT_ONCE: usize = 6;

/// What one run came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Pass,
    Fail,
    NotApplicable,
    /// The run could not be carried out (engine, image, PKI …).
    Error(String),
}

struct Cell {
    outcome: Outcome,
    cause: Option<Cause>,
    /// Whether the diagnosis's fix repaired the failure, when the run applied it.
    fixed: Option<bool>,
    /// For a failed run: the expectations that did not hold.
    failing: Vec<String>,
}

impl Cell {
    fn of(result: Result<Report, RunError>) -> Self {
        match result {
            Err(e) => Self {
                outcome: Outcome::Error(e.to_string()),
                cause: None,
                fixed: None,
                failing: Vec::new(),
            },
            Ok(report) if report.not_applicable.is_some() => Self {
                outcome: Outcome::NotApplicable,
                cause: None,
                fixed: None,
                failing: Vec::new(),
            },
            Ok(report) => {
                let mut failing: Vec<String> = report
                    .checks
                    .iter()
                    .filter(|c| c.applies && !c.holds)
                    .map(|c| format!("{}: {}", c.name, c.summary))
                    .collect();
                if let Some(failure) = &report.failure {
                    failing.insert(0, failure.clone());
                }
                failing.extend(
                    report
                        .fixes
                        .iter()
                        .filter(|round| !round.holds())
                        .map(|round| round.verdict()),
                );
                Self {
                    outcome: if report.holds() {
                        Outcome::Pass
                    } else {
                        Outcome::Fail
                    },
                    cause: report.diagnosis.as_ref().map(|d| d.cause),
                    fixed: report.fixes.last().map(|round| round.repaired()),
                    failing,
                }
            }
        }
    }

    fn label(&self) -> String {
        let outcome = match &self.outcome {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::NotApplicable => "n.a.",
            Outcome::Error(_) => "ERROR",
        };
        let mut label = match self.cause.filter(|c| *c != Cause::Unknown) {
            Some(cause) => format!("{outcome} · {cause}"),
            None => outcome.to_owned(),
        };
        match self.fixed {
            Some(true) => label.push_str(" · fixed"),
            Some(false) => label.push_str(" · fix fails"),
            None => {}
        }
        label
    }
}

/// The table of a matrix run.
pub struct Matrix {
    columns: Vec<String>,
    rows: Vec<(String, Vec<Cell>)>,
}

impl Matrix {
    /// True when no cell failed (n.a. cells are not failures).
    pub fn holds(&self) -> bool {
        self.rows
            .iter()
            .flat_map(|(_, cells)| cells)
            .all(|c| matches!(c.outcome, Outcome::Pass | Outcome::NotApplicable))
    }
}

impl fmt::Display for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self
            .rows
            .iter()
            .map(|(name, _)| name.len())
            .chain(["scenario".len()])
            .max()
            .unwrap_or(8);
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, heading)| {
                self.rows
                    .iter()
                    .map(|(_, cells)| cells[i].label().len())
                    .chain([heading.len()])
                    .max()
                    .unwrap_or(4)
            })
            .collect();
        write!(f, "{:<first$}", "scenario")?;
        for (heading, width) in self.columns.iter().zip(&widths) {
            write!(f, " | {heading:<width$}")?;
        }
        writeln!(f)?;
        write!(f, "{}", "-".repeat(first))?;
        for width in &widths {
            write!(f, "-|-{}", "-".repeat(*width))?;
        }
        writeln!(f)?;
        for (name, cells) in &self.rows {
            write!(f, "{name:<first$}")?;
            for (cell, width) in cells.iter().zip(&widths) {
                write!(f, " | {:<width$}", cell.label())?;
            }
            writeln!(f)?;
        }
        for (name, cells) in &self.rows {
            for (cell, column) in cells.iter().zip(&self.columns) {
                match &cell.outcome {
                    Outcome::Fail => {
                        writeln!(f, "\n{name} on {column}:")?;
                        for line in &cell.failing {
                            writeln!(f, "  {line}")?;
                        }
                    }
                    Outcome::Error(e) => writeln!(f, "\n{name} on {column}: could not run: {e}")?,
                    Outcome::Pass | Outcome::NotApplicable => {}
                }
            }
        }
        let cells: Vec<&Cell> = self.rows.iter().flat_map(|(_, c)| c).collect();
        let count = |o: fn(&Outcome) -> bool| cells.iter().filter(|c| o(&c.outcome)).count();
        writeln!(
            f,
            "\n{}: {} pass, {} fail, {} n.a. of {} runs",
            if self.holds() { "PASS" } else { "FAIL" },
            count(|o| *o == Outcome::Pass),
            count(|o| matches!(o, Outcome::Fail | Outcome::Error(_))),
            count(|o| *o == Outcome::NotApplicable),
            cells.len()
        )
    }
}

/// Runs every scenario on every source and tabulates the reports.
pub async fn run(
    harness: &Harness,
    scenarios: &[Scenario],
    sources: &[EtcdSource],
    progress: &mut dyn FnMut(&str),
) -> Result<Matrix, RunError> {
    let mut columns = Vec::new();
    for source in sources {
        let found = downloads::fetch(source).await?;
        columns.push(match found.version {
            Some(version) => format!("{source} ({version})"),
            None => source.to_string(),
        });
    }
    let jobs = scenarios.iter().enumerate().flat_map(|(row, scenario)| {
        sources.iter().enumerate().map(move |(column, source)| {
            let options = RunOptions {
                etcd: source.clone(),
                keep: false,
                artefacts: Some(crate::artefacts::root()),
                fixes: Fixes::AsScenario,
            };
            async move {
                let report = runner::run(harness, scenario, &options).await;
                (row, column, Cell::of(report))
            }
        })
    });
    let mut cells: Vec<Vec<Option<Cell>>> = scenarios
        .iter()
        .map(|_| sources.iter().map(|_| None).collect())
        .collect();
    let total = scenarios.len() * sources.len();
    let mut done = 0;
    let mut runs = futures_util::stream::iter(jobs).buffer_unordered(AT_ONCE);
    while let Some((row, column, cell)) = runs.next().await {
        done += 1;
        progress(&format!(
            "{done}/{total}: {} on {}: {}",
            scenarios[row].name,
            columns[column],
            cell.label()
        ));
        cells[row][column] = Some(cell);
    }
    let rows = scenarios
        .iter()
        .zip(cells)
        .map(|(scenario, cells)| {
            (
                scenario.name.clone(),
                cells
                    .into_iter()
                    .map(|c| {
                        c.unwrap_or(Cell {
                            outcome: Outcome::Error("never reported".into()),
                            cause: None,
                            fixed: None,
                            failing: Vec::new(),
                        })
                    })
                    .collect(),
            )
        })
        .collect();
    Ok(Matrix { columns, rows })
}
