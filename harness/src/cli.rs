//! The command line: `run`, `list`, `lint`, `image`, `bench`. Exit codes: 0 when the scenario's
//! expectations hold, 1 when they don't, 2 on usage, configuration or environment errors.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::builtin::{Catalogue, CatalogueError};
use crate::downloads::{self, EtcdSource};
use crate::lint::{self, LintInput};
use crate::node::NodeHandle;
use crate::owner::Owner;
use crate::runner::{self, Fixes, Harness, RunOptions};
use crate::scenario::Scenario;
use crate::steps::Bootstrap;
use crate::transcript::Transcript;
use crate::{bench, diagnose, engine, image, matrix, reaper, report, soak};

/// Boot real etcd the way the tutorial does, in a throwaway systemd node, and prove it works.
#[derive(Parser)]
#[command(name = "etcd-harness", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario (a name from `list`, or a path to a scenario file).
    Run {
        /// Scenario name or file.
        scenario: String,
        #[command(flatten)]
        common: Common,
        /// Leave the node running afterwards and print how to enter it.
        #[arg(long)]
        keep: bool,
        /// After the failure is reproduced and diagnosed, apply the diagnosis's fix as a reader
        /// would, then run a healthy bootstrap's checks: the report shows both rounds.
        #[arg(long)]
        fix: bool,
        /// How to print the report: `text` for people, `json` (the same facts) for CI tools.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        report: ReportFormat,
    },
    /// List the scenarios with their descriptions.
    List {
        /// A directory of scenario files of your own, looked in before the built-in scenarios (a
        /// file there overrides the built-in one of the same name).
        #[arg(long, env = "ETCD_HARNESS_SCENARIOS")]
        scenarios: Option<PathBuf>,
    },
    /// Remove what runs left: the containers, networks and run directories of runs that have
    /// ended (every run does this for dead runs first); with `--kept`, also the nodes and
    /// directories kept with `run --keep`.
    Clean {
        /// Also remove nodes and run directories kept with `run --keep` (of runs that have ended).
        #[arg(long)]
        kept: bool,
    },
    /// The causes a diagnosis can name, and the harvested table of etcd's and systemd's messages
    /// each means (template, versions, source, explanation, fix).
    Causes {
        /// Instead, how much of the table the diagnosis covers, per version: templates, mapped to
        /// a specific cause, with a fix, reproduced by a catalogue scenario.
        #[arg(long)]
        coverage: bool,
        /// A directory of scenario files of your own, looked in before the built-in scenarios (what
        /// they assert counts as reproduced).
        #[arg(long, env = "ETCD_HARNESS_SCENARIOS")]
        scenarios: Option<PathBuf>,
    },
    /// Check scenarios before anything runs — the unit as systemd reads it, and the bootstrap's
    /// pieces against each other — printing each finding with its file, line and fix. Exits 1 on a
    /// finding that would stop a run.
    Lint {
        /// Scenario names or files, or unit files (`*.service`); default: every scenario.
        targets: Vec<String>,
        /// The steps a unit file is checked against (default: the seed's).
        #[arg(long)]
        steps: Option<PathBuf>,
        /// A directory of scenario files of your own, looked in before the built-in scenarios (a
        /// file there overrides the built-in one of the same name).
        #[arg(long, env = "ETCD_HARNESS_SCENARIOS")]
        scenarios: Option<PathBuf>,
    },
    /// Check, before any work, what this machine has of what a run needs — the engine and its API
    /// version, cgroup version and driver, where the node image comes from, the etcd source, free
    /// disk — with the remedy for each missing piece. Changes nothing. Exits 1 if a piece is missing.
    Doctor {
        /// The etcd source a run would use (as `run --etcd`).
        #[arg(long, env = "ETCD_HARNESS_ETCD")]
        etcd: Option<String>,
    },
    /// Build the node image if needed, and show it.
    Image,
    /// Time the phases of `tutorial-tls` against a bare systemd node and a bare etcd, and the 3- and
    /// 5-member clusters against `tutorial-tls`.
    Bench {
        #[command(flatten)]
        common: Common,
        /// How many measured rounds.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Skip the line that runs every scenario at once.
        #[arg(long)]
        no_catalogue: bool,
    },
    /// Interrupt runs at random moments (SIGINT, SIGTERM, SIGKILL), then run once normally, and count
    /// what they left: containers, networks, run directories. Exits 1 unless all are zero.
    Soak {
        /// How many interrupted runs.
        #[arg(long, default_value_t = 30)]
        runs: u32,
        /// The scenario each run runs.
        #[arg(long, default_value = "tutorial-tls")]
        scenario: String,
        /// Seed for the random moments (default: from the clock; the report prints it).
        #[arg(long)]
        seed: Option<u64>,
        /// The latest moment, in seconds from a run's start, at which a signal is sent.
        #[arg(long, default_value_t = 8.0)]
        latest: f64,
        #[command(flatten)]
        common: Common,
    },
    /// Run scenarios on several etcd versions and print one table: scenario rows, version columns.
    Matrix {
        /// The scenarios (names or files; default: every one, built in or in `--scenarios`).
        scenarios: Vec<String>,
        /// An etcd source, once per column (default: debian:bookworm, debian:trixie, debian:sid).
        #[arg(long = "etcd")]
        etcd: Vec<String>,
        /// A directory of scenario files of your own, looked in before the built-in scenarios (a
        /// file there overrides the built-in one of the same name).
        #[arg(long = "scenarios", env = "ETCD_HARNESS_SCENARIOS")]
        dir: Option<PathBuf>,
    },
    /// Watch a run and remove what it left once it has ended (started by every run; not for people).
    #[command(hide = true)]
    Reap {
        /// The run's owner, as its labels write it.
        owner: String,
    },
    /// Diagnose a node kept with `run --keep`: the seed's troubleshooting commands and the cause.
    Diagnose {
        /// The node's container id or name (as `run --keep` printed it).
        node: String,
    },
}

/// The report's rendering.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    /// For people.
    Text,
    /// For machines: the same facts as JSON.
    Json,
}

#[derive(clap::Args)]
struct Common {
    /// etcd to test: `debian:<suite>` (Debian's etcd-server/etcd-client of that suite), `vX.Y.Z`
    /// (an upstream release), an upstream etcd-vX.Y.Z-linux-amd64.tar.gz, or a directory holding
    /// etcd and etcdctl. Default: debian:bookworm (etcd 3.4).
    #[arg(long, env = "ETCD_HARNESS_ETCD")]
    etcd: Option<String>,
    /// A directory of scenario files of your own, looked in before the built-in scenarios (a file
    /// there overrides the built-in one of the same name).
    #[arg(long, env = "ETCD_HARNESS_SCENARIOS")]
    scenarios: Option<PathBuf>,
}

impl Common {
    /// The etcd source, checked before anything else starts — the engine, the sweep, the image —
    /// so a broken `--etcd` fails at once (and leaves nothing in the cache).
    async fn etcd_source(&self) -> anyhow::Result<EtcdSource> {
        let source = EtcdSource::parse_or_default(self.etcd.as_deref())?;
        downloads::fetch(&source).await?;
        Ok(source)
    }

    /// The scenarios: `--scenarios`, if given, before the built-in ones.
    fn catalogue(&self) -> Result<Catalogue, CatalogueError> {
        Catalogue::new(self.scenarios.clone())
    }
}

/// Parses arguments, runs the command, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        let mut run = Box::pin(dispatch(cli.command));
        let signal = tokio::select! {
            outcome = &mut run => return Ok(outcome),
            signal = interrupted() => signal,
        };
        eprintln!("interrupted by {}: removing this run's nodes", signal.name);
        // Dropping the run drops what it owns: its nodes (removed at once, no graceful stop) and its
        // run directory. Then the engine is asked for anything of this process still there — a node
        // whose create request was in flight, say — until it shows none.
        drop(run);
        match remove_this_process().await {
            Ok(()) => {}
            Err(e) => eprintln!("error: {}", render_error(&e)),
        }
        Err(signal)
    });
    match outcome {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::from(1),
        Ok(Err(e)) => {
            eprintln!("error: {}", render_error(&e));
            ExitCode::from(2)
        }
        Err(signal) => ExitCode::from(signal.exit_code),
    }
}

/// The error and its causes, each cause once: most messages already quote their source.
fn render_error(error: &anyhow::Error) -> String {
    let mut out = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !out.contains(&cause) {
            out.push_str(": ");
            out.push_str(&cause);
        }
    }
    out
}

/// Removes this process's containers and networks that are still there.
async fn remove_this_process() -> anyhow::Result<()> {
    let engine = engine::Engine::connect().await?;
    engine.remove_this_process().await?;
    Ok(())
}

/// A signal that ends a run, with the exit code a shell reports for it (128 + its number).
struct Signal {
    name: &'static str,
    exit_code: u8,
}

/// Resolves on Ctrl-C or SIGTERM. If no handler can be installed, never resolves (the signal then
/// ends the process, and the next run's sweep removes what it left).
async fn interrupted() -> Signal {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        Some(()) = int.recv() => Signal { name: "SIGINT", exit_code: 130 },
        Some(()) = term.recv() => Signal { name: "SIGTERM", exit_code: 143 },
    }
}

/// Writes `text` to standard output. A reader that went away (`etcd-harness list | head -1`) is not
/// an error: the rest is simply not shown.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("failed to write to standard output"),
    }
}

/// Runs a command; `Ok(false)` means it ran and the expectations did not hold.
async fn dispatch(command: Command) -> anyhow::Result<bool> {
    crate::wait::check_time_scale()?;
    let mut progress = |line: &str| eprintln!("· {line}");
    match command {
        Command::Run {
            scenario,
            common,
            keep,
            fix,
            report: format,
        } => {
            let file = common.catalogue()?.resolve(&scenario)?;
            let scenario = Scenario::load(&file)?;
            // Before the engine, the image or etcd is touched (the run lints again, as every run).
            for finding in lint::preflight(&scenario).await?.findings {
                if !finding.expected {
                    progress(&format!("lint warning: {finding}"));
                }
            }
            let options = RunOptions {
                etcd: common.etcd_source().await?,
                keep,
                artefacts: Some(crate::artefacts::root()),
                fixes: if fix {
                    Fixes::Always
                } else {
                    Fixes::AsScenario
                },
            };
            reaper::start();
            let harness = Harness::prepare(&mut progress).await?;
            progress(&format!(
                "running {} on {} (run {})",
                scenario.name,
                harness.image.reference(),
                harness.labels.run_id()
            ));
            let report = runner::run(&harness, &scenario, &options).await?;
            match format {
                ReportFormat::Text => emit(&report::render(&report))?,
                ReportFormat::Json => emit(&format!("{:#}\n", report::to_json(&report)))?,
            }
            Ok(report.holds())
        }
        Command::List { scenarios } => {
            let mut out = String::new();
            for file in Catalogue::new(scenarios)?.files()? {
                match Scenario::load(&file) {
                    Ok(s) => writeln!(out, "{:<24} {}", s.name, s.description)?,
                    Err(e) => writeln!(out, "{:<24} (invalid: {e})", stem(&file))?,
                }
            }
            emit(&out)?;
            Ok(true)
        }
        Command::Clean { kept } => {
            let engine = engine::Engine::connect().await?;
            let me = crate::owner::Owner::this_process();
            let swept = engine.sweep_stale(me).await?;
            let dirs = crate::rundir::RunDir::sweep_stale(me);
            let (kept_nodes, kept_dirs) = if kept {
                (
                    engine.remove_kept(me).await?,
                    crate::rundir::RunDir::remove_kept(me),
                )
            } else {
                (0, 0)
            };
            emit(&format!(
                "removed: {} containers and networks and {dirs} run directories of ended runs; {kept_nodes} kept containers and networks and {kept_dirs} kept run directories{}\n",
                swept.removed,
                if kept { "" } else { " (kept ones stay: --kept removes them)" }
            ))?;
            Ok(true)
        }
        Command::Causes {
            coverage,
            scenarios,
        } => {
            emit(&if coverage {
                crate::causes::coverage(&Catalogue::new(scenarios)?.files()?)?
            } else {
                crate::causes::table()
            })?;
            Ok(true)
        }
        Command::Lint {
            targets,
            steps,
            scenarios,
        } => lint(&targets, steps.as_deref(), &Catalogue::new(scenarios)?).await,
        Command::Doctor { etcd } => {
            let source = EtcdSource::parse_or_default(etcd.as_deref())?;
            let report = crate::doctor::examine(&source).await;
            emit(&report.to_string())?;
            Ok(report.ready())
        }
        Command::Image => {
            let engine = engine::Engine::connect().await?;
            let image = image::ensure(&engine, &mut progress).await?;
            emit(&format!("{} ({:?})\n", image.reference(), image.provenance))?;
            Ok(true)
        }
        Command::Bench {
            common,
            rounds,
            no_catalogue,
        } => {
            let scenarios = common.catalogue()?;
            let file = scenarios.resolve("tutorial-tls")?;
            let scenario = Scenario::load(&file)?;
            let clusters = bench::CLUSTER_TARGETS
                .iter()
                .map(|(name, target)| {
                    Ok(bench::ClusterLine {
                        scenario: Scenario::load(&scenarios.resolve(name)?)?,
                        target: *target,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let catalogue = if no_catalogue {
                Vec::new()
            } else {
                scenarios
                    .files()?
                    .iter()
                    .map(|f| Scenario::load(f))
                    .collect::<Result<_, _>>()?
            };
            let etcd = common.etcd_source().await?;
            reaper::start();
            let table = bench::run(
                &scenario,
                &clusters,
                &catalogue,
                &etcd,
                rounds,
                &mut progress,
            )
            .await?;
            emit(&table.to_string())?;
            Ok(true)
        }
        Command::Soak {
            runs,
            scenario,
            seed,
            latest,
            common,
        } => {
            // Judge the scenario and etcd once here, so the runs are interrupted, not refused.
            Scenario::load(&common.catalogue()?.resolve(&scenario)?)?;
            let etcd = common.etcd_source().await?;
            // The runs find the built-in scenarios themselves: `--scenarios` only if one was given.
            let mut run_args = vec!["--etcd".to_owned(), etcd.to_string()];
            if let Some(dir) = &common.scenarios {
                run_args.extend(["--scenarios".to_owned(), path_arg(dir)]);
            }
            let latest = Duration::try_from_secs_f64(latest)
                .ok()
                .filter(|d| *d > Duration::from_millis(300))
                .context("--latest must be a number of seconds above 0.3")?;
            let options = soak::SoakOptions {
                runs,
                scenario,
                run_args,
                seed: seed.unwrap_or_else(|| {
                    std::time::UNIX_EPOCH
                        .elapsed()
                        .map(|d| d.as_nanos() as u64)
                        .unwrap_or(1)
                }),
                latest,
            };
            let report = soak::run(&options, &mut progress).await?;
            emit(&report.to_string())?;
            Ok(report.clean())
        }
        Command::Matrix {
            scenarios,
            etcd,
            dir,
        } => {
            let catalogue = Catalogue::new(dir)?;
            let files = if scenarios.is_empty() {
                catalogue.files()?
            } else {
                scenarios
                    .iter()
                    .map(|s| catalogue.resolve(s))
                    .collect::<Result<_, _>>()?
            };
            let scenarios = files
                .iter()
                .map(|f| Scenario::load(f))
                .collect::<Result<Vec<_>, _>>()?;
            let etcd = if etcd.is_empty() {
                ["debian:bookworm", "debian:trixie", "debian:sid"]
                    .map(String::from)
                    .to_vec()
            } else {
                etcd
            };
            let mut sources = Vec::new();
            for arg in &etcd {
                let source = EtcdSource::parse(arg)?;
                downloads::fetch(&source).await?;
                sources.push(source);
            }
            reaper::start();
            let harness = Harness::prepare(&mut progress).await?;
            let matrix = matrix::run(&harness, &scenarios, &sources, &mut progress).await?;
            emit(&matrix.to_string())?;
            Ok(matrix.holds())
        }
        Command::Reap { owner } => {
            let owner = Owner::decode(&owner)
                .with_context(|| format!("`{owner}` is not a run's owner label"))?;
            reaper::watch(&owner).await?;
            Ok(true)
        }
        Command::Diagnose { node } => {
            let engine = engine::Engine::connect().await?;
            let handle = NodeHandle::adopt(&engine, &node)
                .await
                .with_context(|| format!("failed to diagnose node `{node}`"))?;
            let mut transcript = Transcript::default();
            let evidence = diagnose::troubleshoot(&handle, &mut transcript, 0, None)
                .await
                .with_context(|| format!("failed to diagnose node `{node}` (is it running?)"))?;
            let diagnosis = diagnose::classify(&evidence);
            let mut out = transcript.to_string();
            writeln!(
                out,
                "\ndiagnosis: {} — {}",
                diagnosis.cause,
                diagnosis.cause.explanation()
            )?;
            for line in diagnosis.shown_by.iter().take(report::MAX_EVIDENCE) {
                writeln!(out, "  evidence: {line}")?;
            }
            for line in diagnosis.fix.lines() {
                writeln!(out, "  fix: {line}")?;
            }
            emit(&out)?;
            // Diagnosing is the job; which cause it found is not a failure of the command.
            Ok(true)
        }
    }
}

/// `lint`: every target's findings (every scenario's when none is named); true when none would
/// stop a run.
async fn lint(
    targets: &[String],
    steps: Option<&Path>,
    scenarios: &Catalogue,
) -> anyhow::Result<bool> {
    let targets: Vec<String> = if targets.is_empty() {
        scenarios
            .files()?
            .iter()
            .map(|f| f.display().to_string())
            .collect()
    } else {
        targets.to_vec()
    };
    let mut out = String::new();
    let mut holds = true;
    for target in &targets {
        let report = if target.ends_with(".service") {
            let seed = scenarios.steps("seed.toml");
            let steps = match steps {
                Some(file) => Bootstrap::load(file)?,
                None if seed.is_file() => Bootstrap::load(&seed)?,
                None => Bootstrap::seed()?,
            };
            lint::lint(&LintInput::unit(Path::new(target), &steps)).await?
        } else {
            let scenario = Scenario::load(&scenarios.resolve(target)?)?;
            lint::lint(&LintInput::scenario(&scenario)).await?
        };
        holds &= report.holds();
        writeln!(
            out,
            "{target}
{report}"
        )?;
    }
    emit(&out)?;
    Ok(holds)
}

/// A path as an argument for a child run: absolute, so the child's working directory does not matter.
fn path_arg(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

fn stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
