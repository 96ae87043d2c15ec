//! The command line: `run`, `list`, `image`, `bench`. Exit codes: 0 when the scenario's expectations
//! hold, 1 when they don't, 2 on usage, configuration or environment errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::downloads::EtcdSource;
use crate::node::NodeHandle;
use crate::runner::{self, Harness, RunOptions};
use crate::scenario::{self, Scenario};
use crate::transcript::Transcript;
use crate::wait::{poll_until, Probe};
use crate::{bench, diagnose, engine, image, report};

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
    },
    /// List the scenarios with their descriptions.
    List {
        /// Directory holding scenario files.
        #[arg(long, env = "ETCD_HARNESS_SCENARIOS", default_value_os_t = default_scenarios())]
        scenarios: PathBuf,
    },
    /// Build the node image if needed, and show it.
    Image,
    /// Time the phases of `tutorial-tls` against a bare systemd node and a bare etcd.
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
    /// Diagnose a node kept with `run --keep`: the seed's troubleshooting commands and the cause.
    Diagnose {
        /// The node's container id or name (as `run --keep` printed it).
        node: String,
    },
}

#[derive(clap::Args)]
struct Common {
    /// etcd to test: an upstream etcd-vX.Y.Z-linux-amd64.tar.gz or a directory holding etcd and
    /// etcdctl (default: Debian's etcd-server/etcd-client packages).
    #[arg(long)]
    etcd: Option<PathBuf>,
    /// Directory holding scenario files.
    #[arg(long, env = "ETCD_HARNESS_SCENARIOS", default_value_os_t = default_scenarios())]
    scenarios: PathBuf,
}

impl Common {
    fn etcd_source(&self) -> anyhow::Result<EtcdSource> {
        Ok(match &self.etcd {
            Some(path) => EtcdSource::from_arg(path)?,
            None => EtcdSource::Debian,
        })
    }
}

fn default_scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
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
        let run = dispatch(cli.command);
        tokio::pin!(run);
        let signal = tokio::select! {
            outcome = &mut run => return Some(outcome),
            signal = interrupted() => signal,
        };
        eprintln!("interrupted by {signal}: removing this run's containers");
        // testcontainers' watchdog is removing them and then ends the process. The run is not polled
        // meanwhile, so nothing races it; should the watchdog not finish, dropping the run removes its
        // node.
        let _ = wait_for_watchdog().await;
        None
    });
    match outcome {
        Some(Ok(true)) => ExitCode::SUCCESS,
        Some(Ok(false)) => ExitCode::from(1),
        Some(Err(e)) => {
            eprintln!("error: {}", render_error(&e));
            ExitCode::from(2)
        }
        None => ExitCode::from(130),
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

/// Waits (bounded) until no container of this process is left.
async fn wait_for_watchdog() -> anyhow::Result<()> {
    let engine = engine::Engine::connect().await?;
    let gone = poll_until(
        "testcontainers' watchdog to remove this run's containers",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let left = engine.containers_of_this_process().await?;
            Ok::<_, engine::EngineError>(if left.is_empty() {
                Probe::Ready(())
            } else {
                Probe::Pending(format!("{} left", left.len()))
            })
        },
    )
    .await?;
    Ok(gone?)
}

/// Resolves on Ctrl-C or SIGTERM, naming the signal. If no handler can be installed, never resolves
/// (the watchdog still removes containers on signals).
async fn interrupted() -> &'static str {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        Ok(()) = tokio::signal::ctrl_c() => "SIGINT",
        Some(()) = term.recv() => "SIGTERM",
    }
}

/// Runs a command; `Ok(false)` means it ran and the expectations did not hold.
async fn dispatch(command: Command) -> anyhow::Result<bool> {
    let mut progress = |line: &str| eprintln!("· {line}");
    match command {
        Command::Run {
            scenario,
            common,
            keep,
        } => {
            let file = resolve(&scenario, &common.scenarios)?;
            let scenario = Scenario::load(&file)?;
            let options = RunOptions {
                etcd: common.etcd_source()?,
                keep,
            };
            let harness = Harness::prepare(&mut progress).await?;
            progress(&format!(
                "running {} on {} (run {})",
                scenario.name,
                harness.image.reference(),
                harness.labels.run_id()
            ));
            let report = runner::run(&harness, &scenario, &options).await?;
            print!("{}", report::render(&report));
            Ok(report.holds())
        }
        Command::List { scenarios } => {
            for file in scenario::discover(&scenarios)? {
                match Scenario::load(&file) {
                    Ok(s) => println!("{:<24} {}", s.name, s.description),
                    Err(e) => println!("{:<24} (invalid: {e})", stem(&file)),
                }
            }
            Ok(true)
        }
        Command::Image => {
            let engine = engine::Engine::connect().await?;
            let image = image::ensure(&engine, &mut progress).await?;
            println!("{} ({:?})", image.reference(), image.provenance);
            Ok(true)
        }
        Command::Bench {
            common,
            rounds,
            no_catalogue,
        } => {
            let file = resolve("tutorial-tls", &common.scenarios)?;
            let scenario = Scenario::load(&file)?;
            let catalogue = if no_catalogue {
                Vec::new()
            } else {
                scenario::discover(&common.scenarios)?
                    .iter()
                    .map(|f| Scenario::load(f))
                    .collect::<Result<_, _>>()?
            };
            let etcd = common.etcd_source()?;
            let table = bench::run(&scenario, &catalogue, &etcd, rounds, &mut progress).await?;
            print!("{table}");
            Ok(true)
        }
        Command::Diagnose { node } => {
            let engine = engine::Engine::connect().await?;
            let handle = NodeHandle::new(&engine, &node);
            let mut transcript = Transcript::default();
            let evidence = diagnose::troubleshoot(&handle, &mut transcript, 0)
                .await
                .with_context(|| format!("failed to diagnose node `{node}` (is it running?)"))?;
            let diagnosis = diagnose::classify(&evidence);
            print!("{transcript}");
            println!(
                "\ndiagnosis: {} — {}",
                diagnosis.cause,
                diagnosis.cause.explanation()
            );
            for line in diagnosis.shown_by.iter().take(report::MAX_EVIDENCE) {
                println!("  evidence: {line}");
            }
            println!("  fix: {}", diagnosis.cause.fix());
            // Diagnosing is the job; which cause it found is not a failure of the command.
            Ok(true)
        }
    }
}

/// A scenario argument: an existing file, or a name in the scenarios directory.
fn resolve(arg: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = Path::new(arg);
    if path.is_file() {
        return Ok(path.to_owned());
    }
    let named = dir.join(format!("{arg}.toml"));
    if named.is_file() {
        return Ok(named);
    }
    let known: Vec<String> = scenario::discover(dir)
        .with_context(|| format!("failed to list scenarios in {}", dir.display()))?
        .iter()
        .map(|f| stem(f))
        .collect();
    bail!(
        "no scenario `{arg}`: not a file, and not in {} (known: {})",
        dir.display(),
        known.join(", ")
    )
}

fn stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
