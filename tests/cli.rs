//! The command's contract: exit 0 when a scenario's expectations hold, 1 when they don't, 2 on usage,
//! configuration or environment errors — with messages that name the file, field or remedy.

use std::path::Path;
use std::process::{Command, Output};

fn harness(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etcd-harness"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the etcd-harness binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn scenarios_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
}

#[test]
fn list_shows_every_scenario_with_its_description() {
    let out = harness(&["list"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for file in std::fs::read_dir(scenarios_dir()).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let line = stdout.lines().find(|l| l.starts_with(&name));
            assert!(
                line.is_some_and(|l| l.len() > name.len() + 10),
                "{name} missing:\n{stdout}"
            );
        }
    }
    assert!(!stdout.contains("(invalid"), "{stdout}");
}

#[test]
fn an_unknown_scenario_exits_2_listing_the_known_ones() {
    let out = harness(&["run", "no-such-scenario"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("no scenario `no-such-scenario`"), "{err}");
    assert!(err.contains("tutorial-tls"), "{err}");
}

#[test]
fn a_malformed_scenario_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "description = \"x\"\nunit = \"u\"\nmembr = 1\n").unwrap();
    let out = harness(&["run", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("typo.toml:3:"), "{err}");
    assert!(err.contains("unknown field `membr`"), "{err}");
}

#[test]
fn a_bad_etcd_source_exits_2_with_the_remedy() {
    let out = harness(
        &["run", "tutorial-tls", "--etcd", "/nonexistent/etcd.zip"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("etcd-vX.Y.Z-linux-amd64.tar.gz"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn no_engine_exits_2_naming_the_socket_and_how_to_start_one() {
    let out = harness(
        &["image"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unix:///nonexistent/docker.sock"), "{err}");
    assert!(err.contains("remedy: start one"), "{err}");
}

#[test]
fn expectations_that_do_not_hold_exit_1_and_say_which() {
    // The as-written unit works, so a scenario claiming member list fails is wrong: the expected
    // failure does not happen, and that must fail the run.
    let dir = tempfile::tempdir().unwrap();
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/units/etcd.service");
    let steps = scenarios_dir().join("steps/seed.toml");
    let file = dir.path().join("wrong.toml");
    std::fs::write(
        &file,
        format!(
            "description = \"claims the working unit fails\"\nunit = {unit:?}\nsteps = {steps:?}\n\
             [member]\nname = \"controller\"\nid = \"6702b0a34e2cfd39\"\n\
             peer_url = \"http://127.0.0.1:2380\"\nclient_url = \"http://127.0.0.1:2379\"\n\
             [checks]\nmember_list = \"fail\"\n"
        ),
    )
    .unwrap();
    let out = harness(&["run", file.to_str().unwrap()], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", stderr(&out));
    assert!(
        stdout.contains("[FAIL] member list (must fail)"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL: 0 of 1 checks hold"), "{stdout}");
}

#[test]
fn diagnosing_a_node_that_does_not_exist_exits_2_naming_it() {
    let out = harness(&["diagnose", "etcd-harness-no-such-node"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("failed to diagnose node `etcd-harness-no-such-node`"),
        "{err}"
    );
    assert!(
        err.matches("No such container").count() == 1,
        "each cause once: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_release_tarball_is_tested_instead_of_debians_etcd() {
    // No release archive can be downloaded here, so one is packed the way upstream lays it out,
    // from the Debian binaries: what matters is the path a user's tarball takes.
    let debian = etcd_harness::downloads::fetch(&etcd_harness::downloads::EtcdSource::Debian)
        .await
        .expect("Debian's etcd packages (apt-get update)");
    let dir = tempfile::tempdir().unwrap();
    let unique = "etcd-v3.4.23-linux-amd64";
    let tarball = dir.path().join(format!("{unique}.tar.gz"));
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&tarball).unwrap(),
        flate2::Compression::fast(),
    );
    let mut archive = tar::Builder::new(gz);
    archive
        .append_path_with_name(&debian.etcd, format!("{unique}/etcd"))
        .unwrap();
    archive
        .append_path_with_name(&debian.etcdctl, format!("{unique}/etcdctl"))
        .unwrap();
    archive
        .append_path_with_name(&debian.etcd, format!("{unique}/README-etcd.md"))
        .unwrap();
    archive.into_inner().unwrap().finish().unwrap();

    // A cache of its own, so the archive is extracted on every run rather than found cached.
    let cache = tempfile::tempdir().unwrap();
    let out = harness(
        &[
            "run",
            "tutorial-as-written",
            "--etcd",
            tarball.to_str().unwrap(),
        ],
        &[("ETCD_HARNESS_CACHE", cache.path().to_str().unwrap())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", stderr(&out));
    assert!(stdout.contains("etcd:     3.4.23 (upstream "), "{stdout}");
    let extracted = std::fs::read_dir(cache.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("etcd-upstream-etcd-v3.4.23-linux-amd64-")
        });
    assert!(extracted, "the archive was not extracted into the cache");
}
