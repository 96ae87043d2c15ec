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

/// The names of the source tree's `scenarios/*.toml`.
fn catalogue_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_binary_copied_elsewhere_brings_its_scenarios_and_scenarios_only_adds_to_them() {
    // What `cargo install` or a copied release binary is: nothing of the source tree beside it.
    let home = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let exe = home.path().join("etcd-harness");
    std::fs::copy(env!("CARGO_BIN_EXE_etcd-harness"), &exe).unwrap();
    let run = |args: &[&str]| {
        Command::new(&exe)
            .args(args)
            .current_dir(home.path())
            .env_remove("ETCD_HARNESS_SCENARIOS")
            .env("ETCD_HARNESS_CACHE", cache.path())
            .output()
            .expect("the copied binary runs")
    };
    let listed = |out: &Output| -> Vec<String> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
            .collect()
    };

    let out = run(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(listed(&out), catalogue_names(), "{}", stdout(&out));
    assert!(!stdout(&out).contains("(invalid"), "{}", stdout(&out));

    // The lint reads the scenario, its unit and its steps where the binary laid them out: the cache.
    let out = run(&["lint", "tutorial-tls"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let trees: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("builtin-")
        })
        .collect();
    assert_eq!(trees.len(), 1, "{trees:?}");
    assert!(trees[0].join("scenarios/tutorial-tls.toml").is_file());
    assert!(trees[0].join("scenarios/steps/seed.toml").is_file());
    assert!(trees[0].join("docker/units/etcd-tls.service").is_file());

    // A directory of one's own adds its scenarios beside the built-in ones.
    let mine = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(scenarios_dir().join("tutorial-tls.toml")).unwrap();
    std::fs::write(mine.path().join("my-tls.toml"), in_tempdir(&text)).unwrap();
    let dir = mine.path().to_str().unwrap();
    let out = run(&["list", "--scenarios", dir]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut expected = catalogue_names();
    expected.push("my-tls".to_owned());
    expected.sort();
    assert_eq!(listed(&out), expected, "{}", stdout(&out));
    let out = run(&["lint", "my-tls", "tutorial-tls", "--scenarios", dir]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
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
    let debian = etcd_harness::downloads::fetch(&etcd_harness::downloads::EtcdSource::default())
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

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `etcd-harness list | head -1`: the reader goes away before the list is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_etcd-harness"))
        .arg("list")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the etcd-harness binary runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_scenario_name_never_leads_out_of_the_scenarios_directory() {
    // With `scenarios/steps` as the directory, `../tutorial-tls` once loaded scenarios/tutorial-tls.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_etcd-harness"))
        .args(["run", "../tutorial-tls", "--scenarios"])
        .arg(scenarios_dir().join("steps"))
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no scenario file `../tutorial-tls`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_broken_etcd_tarball_is_refused_before_anything_starts_and_leaves_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("etcd-v3.6.0-linux-amd64.tar.gz");
    std::fs::write(&tarball, b"not a gzip archive").unwrap();
    let cache = tempfile::tempdir().unwrap();
    // No engine at all: the tarball must be the first thing judged.
    let out = harness(
        &["run", "tutorial-tls", "--etcd", tarball.to_str().unwrap()],
        &[
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
            ("ETCD_HARNESS_CACHE", cache.path().to_str().unwrap()),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("etcd-v3.6.0-linux-amd64.tar.gz"), "{err}");
    assert!(!err.contains("Docker engine"), "{err}");
    let partial: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".partial"))
        .collect();
    assert!(partial.is_empty(), "left in the cache: {partial:?}");
}

/// A container made by hand for a test; removed when dropped, also if the test panics.
struct Container(String);

impl Container {
    fn run(labels: &[String]) -> Self {
        let image = format!(
            "{}:{}",
            etcd_harness::image::NODE_REPO,
            etcd_harness::image::node_tag()
        );
        let mut args = vec!["run".to_owned(), "-d".to_owned()];
        for label in labels {
            args.extend(["--label".to_owned(), label.clone()]);
        }
        args.extend([image, "sleep".into(), "600".into()]);
        Self(crate::support::docker(&args))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_refuses_a_container_no_run_created_and_one_without_systemd() {
    crate::support::node_image().await;
    let strangers = Container::run(&[]);
    let out = harness(&["diagnose", &strangers.0], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("was not created by an etcd-harness run"),
        "{}",
        stderr(&out)
    );

    // Labelled as another host's run, so no sweep of this host ever judges it.
    let owner = etcd_harness::owner::Owner {
        namespace: "another-host:pid:[4026531836]".into(),
        pid: 1,
        start: 1,
    };
    let labels: Vec<String> = etcd_harness::engine::Labels::owned_by(owner)
        .pairs()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let without_systemd = Container::run(&labels);
    let out = harness(&["diagnose", &without_systemd.0], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("systemd is not PID 1") && stderr(&out).contains("`sleep`"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_etcd_directory_works() {
    let debian = etcd_harness::downloads::fetch(&etcd_harness::downloads::EtcdSource::default())
        .await
        .expect("Debian's etcd packages (apt-get update)");
    let cwd = tempfile::tempdir().unwrap();
    let dir = cwd.path().join("my/etcd");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&debian.etcd, dir.join("etcd")).unwrap();
    std::fs::copy(&debian.etcdctl, dir.join("etcdctl")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_etcd-harness"))
        .args(["run", "tutorial-as-written", "--etcd", "my/etcd"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", stderr(&out));
    assert!(
        stdout.contains("(directory /"),
        "an absolute origin: {stdout}"
    );
}

#[test]
fn the_matrix_prints_scenarios_by_version_with_not_applicable_cells() {
    let out = harness(
        &[
            "matrix",
            "tutorial-as-written",
            "upgrade-3.4-to-3.5",
            "--etcd",
            "debian:bookworm",
            "--etcd",
            "debian:trixie",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", stderr(&out));
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}:\n{stdout}"))
            .split('|')
            .map(|cell| cell.trim().to_owned())
            .collect::<Vec<_>>()
    };
    let header = row("scenario");
    assert!(header[1].starts_with("debian:bookworm (3.4."), "{stdout}");
    assert!(header[2].starts_with("debian:trixie (3.5."), "{stdout}");
    assert_eq!(
        row("tutorial-as-written")[1..],
        ["pass · fixed", "pass · fixed"],
        "{stdout}"
    );
    assert_eq!(row("upgrade-3.4-to-3.5")[1..], ["pass", "n.a."], "{stdout}");
    assert!(
        stdout.contains("PASS: 3 pass, 0 fail, 1 n.a. of 4 runs"),
        "{stdout}"
    );
}

#[test]
fn a_scenario_written_anywhere_gets_the_seeds_steps_and_keeps_its_paths_relative() {
    // What a user validating their own bootstrap writes first: a scenario and a unit of their own,
    // outside scenarios/, naming no steps file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/units/etcd.service"),
        dir.path().join("my-etcd.service"),
    )
    .unwrap();
    let file = dir.path().join("mine.toml");
    std::fs::write(
        &file,
        "description = \"my own unit, the seed's steps\"\nunit = \"my-etcd.service\"\n\
         [member]\nname = \"controller\"\npeer_url = \"http://127.0.0.1:2380\"\n\
         client_url = \"http://127.0.0.1:2379\"\n[checks]\nmember_list = \"pass\"\n",
    )
    .unwrap();
    let out = harness(&["run", file.to_str().unwrap()], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", stderr(&out));
    assert!(
        stdout.contains("mv etcd.service /etc/systemd/system/"),
        "{stdout}"
    );
}

#[test]
fn a_failed_run_keeps_its_artefacts_and_the_json_report_says_the_same_as_the_text() {
    // tutorial-tls passes its member list check: a scenario that wants it to fail, fails.
    let dir = tempfile::tempdir().unwrap();
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/units/etcd-tls.service");
    let file = dir.path().join("wants-a-failure.toml");
    std::fs::write(
        &file,
        format!(
            "description = \"expects the member list to fail, which it does not\"\n\
             unit = \"{}\"\n[member]\nname = \"controller\"\n\
             peer_url = \"http://127.0.0.1:2380\"\nclient_url = \"https://127.0.0.1:2379\"\n\
             [checks]\nmember_list = \"fail\"\n",
            unit.display()
        ),
    )
    .unwrap();
    let artefacts = dir.path().join("artefacts");
    let env = [("ETCD_HARNESS_ARTEFACTS", artefacts.to_str().unwrap())];
    let out = harness(&["run", file.to_str().unwrap(), "--report", "json"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["holds"], false);
    assert_eq!(report["scenario"], "wants-a-failure");
    let check = &report["checks"][0];
    assert_eq!(check["name"], "member list");
    assert_eq!(
        (check["expected"].as_str(), check["holds"].as_bool()),
        (Some("fail"), Some(false))
    );
    assert!(report["transcript"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));

    // Kept where the report says, under ETCD_HARNESS_ARTEFACTS: the reports and the node's evidence.
    let kept = Path::new(
        report["artefacts"]
            .as_str()
            .expect("the artefacts' directory"),
    );
    assert!(kept.starts_with(&artefacts), "{}", kept.display());
    let text = std::fs::read_to_string(kept.join("report.txt")).unwrap();
    assert!(text.contains("[FAIL] member list (must fail)"), "{text}");
    assert!(
        text.contains(&format!("artefacts: {}", kept.display())),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kept.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["checks"], report["checks"]);
    let node = kept.join("nodes/server");
    for file in [
        "journal.log",
        "unit.txt",
        "status.txt",
        "ss.txt",
        "certs/ca.crt",
        "certs/kube-apiserver.crt",
    ] {
        let content =
            std::fs::read_to_string(node.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!content.is_empty(), "{file} is empty");
    }
    assert!(std::fs::read_to_string(node.join("unit.txt"))
        .unwrap()
        .contains("ExecStart=/usr/local/bin/etcd"));
    // Never a private key.
    let keys: Vec<_> = walk(kept)
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "key")
                || std::fs::read_to_string(p).is_ok_and(|t| t.contains("PRIVATE KEY"))
        })
        .collect();
    assert!(
        keys.is_empty(),
        "private keys among the artefacts: {keys:?}"
    );
}

#[test]
fn run_fix_proves_the_fix_of_a_scenario_that_has_no_fix_table_and_says_when_nothing_failed() {
    let port_in_use = std::fs::read_to_string(scenarios_dir().join("port-in-use.toml")).unwrap();
    let without_fix = port_in_use
        .split("\n# After the failure")
        .next()
        .unwrap()
        .to_owned();
    assert!(!without_fix.contains("[fix]"), "{without_fix}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("port-taken.toml");
    std::fs::write(&file, in_tempdir(&without_fix)).unwrap();
    let out = harness(&["run", file.to_str().unwrap(), "--fix"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    for shown in [
        "diagnosis: port-in-use",
        "fix 1 — the diagnosis's fix (port-in-use):",
        // The unit crash-loops: the fix stops it before it frees the port, and starts it last.
        "  on server: systemctl stop etcd && kill ",
        "[ok  ] etcd.service on server after the fix: ActiveState=active",
        "ok: the diagnosis's fix (port-in-use) repairs the failure, as the scenario says",
    ] {
        assert!(text.contains(shown), "`{shown}` missing:\n{text}");
    }
    // The holder's pid in the fix is the one `ss -tlnp` showed on the port.
    let pid = text
        .lines()
        .find_map(|l| l.strip_prefix("  on server: systemctl stop etcd && kill "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    assert!(text.contains(&format!("pid={pid},")), "{text}");

    // Without a failure there is no fix to apply, and the run says so.
    let healthy = dir.path().join("healthy.toml");
    std::fs::write(
        &healthy,
        in_tempdir(
            "description = \"healthy\"\nunit = \"../docker/units/etcd-tls.service\"\n\
             [member]\nname = \"controller\"\npeer_url = \"http://127.0.0.1:2380\"\n\
             client_url = \"https://127.0.0.1:2379\"\n[checks]\nmember_list = \"pass\"\n",
        ),
    )
    .unwrap();
    let out = harness(&["run", healthy.to_str().unwrap(), "--fix"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("no fix applied: nothing failed: there is nothing to fix"),
        "{text}"
    );
    assert!(!text.contains("fix 1 —"), "{text}");
}

#[test]
fn a_fix_that_does_not_repair_the_failure_fails_the_run_showing_both_rounds() {
    // Two mistakes at once: a flag typo, and another process on etcd's port. The evidence shows
    // the typo (etcd exits on it before it binds), and its fix is right but not enough: etcd then
    // meets the port's holder.
    let flag_typo = std::fs::read_to_string(scenarios_dir().join("flag-typo.toml")).unwrap();
    let scenario = format!(
        "{}\n[[fault]]\nbefore = \"Step 5\"\nhold_port = 2379\n",
        in_tempdir(&flag_typo)
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo-and-port-taken.toml");
    std::fs::write(&file, scenario).unwrap();
    let artefacts = dir.path().join("artefacts");
    let env = [("ETCD_HARNESS_ARTEFACTS", artefacts.to_str().unwrap())];
    let out = harness(&["run", file.to_str().unwrap(), "--report", "json"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    // The failure round held: the typo was reproduced and diagnosed as the scenario says.
    assert_eq!(report["diagnosis"]["cause"], "bad-flag");
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["holds"] == true), "{checks:?}");
    // The fix round did not: etcd, its flag fixed, cannot bind the held port.
    let fixes = report["fixes"].as_array().unwrap();
    assert_eq!(fixes.len(), 1, "{fixes:?}");
    let round = &fixes[0];
    assert_eq!(round["fix"], "the diagnosis's fix (bad-flag)");
    assert_eq!(
        (round["repaired"].as_bool(), round["holds"].as_bool()),
        (Some(false), Some(false))
    );
    // The same fix for machines: the command, where it runs.
    assert_eq!(round["fix_steps"][0]["kind"], "run");
    assert_eq!(round["fix_steps"][0]["on"], "server");
    assert_eq!(report["diagnosis"]["fix_steps"], round["fix_steps"]);
    let steps = round["steps"].to_string();
    assert!(
        steps.contains("--client-cert-auht") && steps.contains("daemon-reload"),
        "{steps}"
    );
    let check = |name: &str| {
        round["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().is_some_and(|n| n.starts_with(name)))
            .unwrap_or_else(|| panic!("no check `{name}`: {round}"))
            .clone()
    };
    // Its restart fails (the held port), and the unit is left crash-looping.
    // The unit crash-loops: the fix stops it first.
    let step = check("fix step `systemctl stop etcd && sed -i");
    assert_eq!(
        (&step["holds"], &step["summary"]),
        (&false.into(), &"exit 1".into()),
        "{step}"
    );
    let unit = check("etcd.service on server after the fix");
    assert_eq!(unit["holds"], false, "{unit}");
    let text = std::fs::read_to_string(
        Path::new(report["artefacts"].as_str().unwrap()).join("report.txt"),
    )
    .unwrap();
    for shown in [
        "diagnosis: bad-flag",
        "fix 1 — the diagnosis's fix (bad-flag):",
        "[FAIL] etcd.service on server after the fix",
        "FAIL: the diagnosis's fix (bad-flag) does not repair the failure, but must repair it",
    ] {
        assert!(text.contains(shown), "`{shown}` missing:\n{text}");
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tls_unit() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/units/etcd-tls.service"),
    )
    .unwrap()
}

/// A catalogue scenario's text for a file outside `scenarios/`: its unit named by absolute path
/// (it gets the seed's steps, built in).
fn in_tempdir(scenario: &str) -> String {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/units/etcd-tls.service");
    scenario.replace("\"../docker/units/etcd-tls.service\"", &format!("{unit:?}"))
}

/// The 1-based line of `text` holding `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn lint_passes_the_tls_unit_with_the_seeds_steps() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/units/etcd-tls.service");
    let out = harness(&["lint", unit.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("lint: PASS — 0 error(s), 0 warning(s)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn lint_of_a_broken_unit_exits_1_naming_each_line_and_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("broken.service");
    let text = tls_unit()
        .replace("--client-cert-auth", "--client-cert-auht")
        .replace("Type=notify", "Type=notify\nRestartSecs=5")
        .replace(
            "--data-dir=/var/lib/etcd",
            "--data-dir=/var/lib/etcd-data \\",
        );
    std::fs::write(&unit, &text).unwrap();
    let out = harness(&["lint", unit.to_str().unwrap()], &[]);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let file = unit.display();
    for (needle, rule) in [
        ("--client-cert-auht", "flag-typo"),
        ("RestartSecs=5", "systemd-unknown-key"),
        ("--data-dir", "data-dir-not-created"),
        ("Restart=on-failure", "continuation-swallows-key"),
    ] {
        let at = format!("{file}:{}: {rule}: ", line_of(&text, needle));
        assert!(said.contains(&at), "{at}\n{said}");
    }
    assert!(
        said.contains("fix: spell it `--client-cert-auth`"),
        "{said}"
    );
    assert!(said.contains("lint: FAIL — 4 error(s)"), "{said}");
    // What systemd-analyze says about this host (no /usr/local/bin/etcd here) is not a finding.
    assert!(!said.contains("not executable"), "{said}");
}

#[test]
fn lint_passes_every_catalogue_scenario() {
    let out = harness(&["lint"], &[]);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{said}\n{}", stderr(&out));
    assert!(!said.contains("  error: "), "{said}");
    // The catalogue's deliberate mistakes are found, and expected.
    for (scenario, rule) in [
        ("cert-path-wrong", "cert-file-not-copied"),
        ("san-mismatch", "url-not-in-san"),
        ("flag-typo", "flag-typo"),
        (
            "cluster-name-not-in-initial-cluster",
            "name-not-in-initial-cluster",
        ),
        ("cluster-peer-san-mismatch", "url-not-in-san"),
        ("tutorial-as-written", "cert-copied-unused"),
    ] {
        let section = said
            .split("\n\n")
            .find(|s| {
                s.lines()
                    .next()
                    .is_some_and(|l| l.ends_with(&format!("/{scenario}.toml")))
            })
            .unwrap_or_else(|| panic!("{scenario} missing:\n{said}"));
        assert!(section.contains(&format!(": {rule}: ")), "{section}");
        assert!(section.contains("  expected: "), "{section}");
    }
}

#[test]
fn a_run_the_lint_refuses_exits_2_before_the_engine_is_touched() {
    // cert-path-wrong without its `[lint] expect`: the mistake is found, and nothing runs (no engine
    // is reachable, so getting as far as the engine would say so instead).
    let text = std::fs::read_to_string(scenarios_dir().join("cert-path-wrong.toml")).unwrap();
    let text = in_tempdir(&text[..text.find("[lint]").unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unexpected.toml");
    std::fs::write(&file, text).unwrap();
    let out = harness(
        &["run", file.to_str().unwrap()],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let unit = tls_unit();
    assert!(
        err.contains(&format!(
            "docker/units/etcd-tls.service:{}: cert-file-not-copied",
            line_of(&unit, "--cert-file")
        )),
        "{err}"
    );
    assert!(
        err.contains("fix: name the file the steps put there (/etc/etcd/kube-apiserver.crt)"),
        "{err}"
    );
    assert!(err.contains("[lint] expect"), "{err}");
    assert!(!err.contains("nonexistent/docker.sock"), "{err}");
}

#[test]
fn an_expected_finding_that_does_not_occur_fails_the_lint() {
    let text = std::fs::read_to_string(scenarios_dir().join("tutorial-tls.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("expects-too-much.toml");
    let text = format!("{}\n[lint]\nexpect = [\"flag-typo\"]\n", in_tempdir(&text));
    std::fs::write(&file, &text).unwrap();
    let out = harness(&["lint", file.to_str().unwrap()], &[]);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "{}:{}: `[lint] expect` names flag-typo, which the lint did not find",
            file.display(),
            text.lines().count()
        )),
        "{said}"
    );
}

#[test]
fn without_systemd_analyze_the_lint_says_so_and_does_not_fail() {
    let out = harness(&["lint", "tutorial-tls"], &[("PATH", "/nonexistent")]);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("warning: "), "{said}");
    assert!(
        said.contains("systemd-analyze-unavailable: on server: the unit was not read as systemd reads it: systemd-analyze is not installed"),
        "{said}"
    );
}

#[test]
fn doctor_reports_the_engine_its_cgroups_and_the_image_and_is_ready_here() {
    let out = harness(&["doctor"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", stderr(&out));
    // The engine CI runs on answers, with its API version; cgroups and the image are named.
    let line = |what: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("ok      {what}")))
            .unwrap_or_else(|| panic!("no ok line for {what}:\n{stdout}"))
            .to_owned()
    };
    assert!(line("engine").contains("(API 1."), "{stdout}");
    assert!(line("cgroups").contains(" driver"), "{stdout}");
    // Present, or to be built (a note, not missing) when no test has built it yet.
    let image = stdout.lines().find(|l| l[8..].starts_with("node image"));
    assert!(image.is_some_and(|l| !l.starts_with("MISSING")), "{stdout}");
    assert!(
        stdout.ends_with("ready: a run has what it needs\n"),
        "{stdout}"
    );
}

#[test]
fn doctor_without_an_engine_exits_1_naming_it_and_every_remedy_on_one_screen() {
    let out = harness(
        &["doctor", "--etcd", "debian:bookworm"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", stderr(&out));
    let engine = stdout.lines().position(|l| l.starts_with("MISSING engine"));
    let engine = engine.unwrap_or_else(|| panic!("{stdout}"));
    assert!(stdout
        .lines()
        .nth(engine)
        .unwrap()
        .contains("/nonexistent/docker.sock"));
    assert!(
        stdout
            .lines()
            .nth(engine + 1)
            .unwrap()
            .contains("podman.socket"),
        "{stdout}"
    );
    // The rest is still looked at: one screen, not one failure at a time.
    for what in ["etcd", "cache", "temp dir", "lint"] {
        assert!(
            stdout.lines().any(|l| l[8..].starts_with(what)),
            "{what}:\n{stdout}"
        );
    }
    assert!(stdout.contains("not ready: 1 missing piece(s)"), "{stdout}");
    assert!(stdout.lines().count() < 25, "more than a screen:\n{stdout}");
}
