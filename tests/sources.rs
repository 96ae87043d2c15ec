//! etcd by upstream version (`--etcd vX.Y.Z`), through a real HTTP server on 127.0.0.1 laid out as
//! upstream's releases: the archive is downloaded (through a redirect, as upstream's are), verified
//! against the release's SHA256SUMS, cached, and found in the cache the second time; a checksum
//! mismatch or a missing version is refused with exit 2 and nothing cached. No machine here reaches
//! upstream, so the archive is packed from Debian's binaries: etcd 3.6 itself is untested.

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const VERSION: &str = "v3.6.99";

/// A release server on 127.0.0.1 that answers from a fixed set of paths and logs each request.
struct Releases {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Releases {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A response: a body, or a redirect to another path.
#[derive(Clone)]
enum Answer {
    Body(Vec<u8>),
    Redirect(String),
}

impl Releases {
    async fn serve(files: HashMap<String, Answer>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                log.lock().unwrap().push(path.clone());
                let (status, headers, body) = match files.get(&path) {
                    Some(Answer::Body(body)) => ("200 OK", String::new(), body.clone()),
                    Some(Answer::Redirect(to)) => {
                        ("302 Found", format!("Location: {to}\r\n"), Vec::new())
                    }
                    None => ("404 Not Found", String::new(), b"Not Found".to_vec()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
            }
        });
        Self {
            base,
            requests,
            task,
        }
    }

    fn requested(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

/// An archive laid out as upstream's release, packed from Debian's binaries.
async fn release_archive() -> Vec<u8> {
    let debian = etcd_harness::downloads::fetch(&Default::default())
        .await
        .expect("Debian's etcd packages");
    let top = format!("etcd-{VERSION}-linux-amd64");
    let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    archive
        .append_path_with_name(&debian.etcd, format!("{top}/etcd"))
        .unwrap();
    archive
        .append_path_with_name(&debian.etcdctl, format!("{top}/etcdctl"))
        .unwrap();
    archive.into_inner().unwrap().finish().unwrap()
}

fn files(archive: &[u8], listed_sha256: &str) -> HashMap<String, Answer> {
    let name = format!("etcd-{VERSION}-linux-amd64.tar.gz");
    HashMap::from([
        (
            format!("/{VERSION}/SHA256SUMS"),
            Answer::Body(format!("{listed_sha256}  {name}\n").into_bytes()),
        ),
        // Upstream's downloads redirect to a storage host; this one to another path.
        (
            format!("/{VERSION}/{name}"),
            Answer::Redirect("/storage/archive".into()),
        ),
        ("/storage/archive".into(), Answer::Body(archive.to_vec())),
    ])
}

fn run(args: &[&str], releases: &Releases, cache: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_etcd-harness"))
        .args(args)
        .env("ETCD_HARNESS_RELEASES", &releases.base)
        .env("ETCD_HARNESS_CACHE", cache)
        .output()
        .expect("the etcd-harness binary runs")
}

fn cached(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("etcd-upstream-") && !n.ends_with(".lock"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_is_downloaded_verified_cached_and_found_in_the_cache_the_second_time() {
    let archive = release_archive().await;
    let sha256 = hex::encode(Sha256::digest(&archive));
    let releases = Releases::serve(files(&archive, &sha256)).await;
    let cache = tempfile::tempdir().unwrap();
    let args = ["run", "tutorial-as-written", "--etcd", VERSION];

    let first = run(&args, &releases, cache.path());
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains(&format!("etcd:     3.4.23 (upstream {VERSION}")),
        "{stdout}"
    );
    let name = format!("etcd-{VERSION}-linux-amd64.tar.gz");
    assert_eq!(
        releases.requested(),
        [
            format!("/{VERSION}/SHA256SUMS"),
            format!("/{VERSION}/{name}"),
            "/storage/archive".to_owned()
        ]
    );
    assert_eq!(
        cached(cache.path()),
        [format!(
            "etcd-upstream-etcd-{VERSION}-linux-amd64-{}",
            &sha256[..12]
        )]
    );

    let second = run(&args, &releases, cache.path());
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    assert_eq!(
        releases.requested(),
        [format!("/{VERSION}/SHA256SUMS")],
        "the second run must find the archive in the cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_that_does_not_match_the_releases_checksum_is_refused_and_not_kept() {
    let archive = release_archive().await;
    let wrong = hex::encode(Sha256::digest(b"another archive"));
    let releases = Releases::serve(files(&archive, &wrong)).await;
    let cache = tempfile::tempdir().unwrap();
    let out = run(
        &["run", "tutorial-tls", "--etcd", VERSION],
        &releases,
        cache.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refused") && err.contains(&wrong), "{err}");
    assert!(
        err.contains(&hex::encode(Sha256::digest(&archive))),
        "{err}"
    );
    let left: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("upstream"))
        .collect();
    assert!(left.is_empty(), "kept in the cache: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_does_not_exist_exits_2_naming_it() {
    let releases = Releases::serve(HashMap::new()).await;
    let cache = tempfile::tempdir().unwrap();
    let out = run(
        &["run", "tutorial-tls", "--etcd", "v3.6.98"],
        &releases,
        cache.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("failed to find etcd v3.6.98"), "{err}");
    assert!(err.contains("HTTP 404") && err.contains("remedy"), "{err}");
}

#[test]
fn an_unknown_debian_suite_exits_2_naming_it_and_the_remedy() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_etcd-harness"))
        .args(["run", "tutorial-tls", "--etcd", "debian:nosuchsuite"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Debian suite `nosuchsuite`"), "{err}");
    assert!(err.contains("remedy: name a suite"), "{err}");
}

#[test]
fn a_debian_suite_without_etcd_exits_2_naming_the_package_and_the_remedy() {
    // bookworm-updates carries only the few packages updated since the release: no etcd.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_etcd-harness"))
        .args(["run", "tutorial-tls", "--etcd", "debian:bookworm-updates"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("failed to download `etcd-server` from Debian bookworm-updates"),
        "{err}"
    );
    assert!(
        err.contains("remedy: this suite does not ship etcd"),
        "{err}"
    );
}
