//! One test per file in `scenarios/`, generated at compile time: a new scenario file is a new test
//! with no code change. Each runs on a fresh node of a real engine and must leave no container.

use std::path::PathBuf;

use etcd_harness::downloads::EtcdSource;
use etcd_harness::report;
use etcd_harness::runner::{self, Fixes, Harness, RunOptions};
use etcd_harness::scenario::Scenario;
use rstest::{fixture, rstest};

/// Engine connection, this test's labels and the node image (a cache hit after the first build;
/// concurrent tests share one build through the image lock).
#[fixture]
async fn harness() -> Harness {
    Harness::prepare(&mut |line| eprintln!("· {line}"))
        .await
        .expect("a Docker engine and the node image (see README: what it needs)")
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_expectations_hold(
    #[files("scenarios/*.toml")] file: PathBuf,
    #[future] harness: Harness,
) {
    let harness = harness.await;
    let scenario = Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let options = RunOptions {
        // `ETCD_HARNESS_ETCD=debian:trixie cargo test` runs the catalogue on another etcd.
        etcd: EtcdSource::from_env().unwrap_or_else(|e| panic!("{e}")),
        keep: false,
        // A failed scenario keeps its artefacts (the report prints where).
        artefacts: Some(etcd_harness::artefacts::root()),
        // A scenario's `[fix]` proves its fix.
        fixes: Fixes::AsScenario,
    };
    let report = runner::run(&harness, &scenario, &options)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
    let rendered = report::render(&report);
    assert!(report.holds(), "{rendered}");
    let left = harness.engine.containers_of(&harness.labels).await.unwrap();
    assert!(left.is_empty(), "containers left behind: {left:?}");
}
