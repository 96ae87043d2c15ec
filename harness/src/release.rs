//! Upstream etcd releases by version: `etcd-vX.Y.Z-linux-amd64.tar.gz` and the release's
//! `SHA256SUMS`, fetched over HTTP(S) from upstream's release URL — or a mirror named by
//! `ETCD_HARNESS_RELEASES` — and verified before anything is kept.
//!
//! It returns the verified archive's bytes; extracting and caching them is [`crate::downloads`]'
//! job. Redirects (upstream's downloads redirect to a storage host) are followed.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};

/// Environment variable naming the base URL of the releases (a mirror laid out as upstream's).
pub const RELEASES_ENV: &str = "ETCD_HARNESS_RELEASES";

/// Upstream's release downloads: `<base>/<version>/<file>`.
pub const UPSTREAM_RELEASES: &str = "https://github.com/etcd-io/etcd/releases/download";

/// How long one download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// How many redirects a download follows.
const MAX_REDIRECTS: usize = 5;

/// Errors fetching a release.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// `--etcd vX.Y.Z` is not a version.
    #[error("failed to read `{given}` as an etcd version: expected vX.Y.Z, e.g. v3.6.5")]
    BadVersion {
        /// What was given.
        given: String,
    },
    /// The release (or its checksums) does not exist.
    #[error(
        "failed to find etcd {version} at {url} (HTTP {status})\n  remedy: name a released \
         version (see upstream's releases), or set {RELEASES_ENV} to a mirror that has it"
    )]
    NotFound {
        /// The version.
        version: String,
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The release's checksums do not list the archive.
    #[error("failed to find {file} in {url}: the release's SHA256SUMS does not list it")]
    NotListed {
        /// The archive's file name.
        file: String,
        /// The checksums' URL.
        url: String,
    },
    /// The archive is not the one the release published.
    #[error(
        "refused {url}: its SHA256 is {got}, but the release's SHA256SUMS says {expected}; \
         nothing was kept\n  remedy: retry (a broken download), or check the mirror in {RELEASES_ENV}"
    )]
    ChecksumMismatch {
        /// The archive's URL.
        url: String,
        /// What SHA256SUMS says.
        expected: String,
        /// What the download hashes to.
        got: String,
    },
    /// The request failed.
    #[error("failed to download {url}: {detail}\n  remedy: check the network, or set {RELEASES_ENV} to a reachable mirror")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
}

/// A release archive, verified against the release's checksums.
pub struct Verified {
    /// The archive's file name (`etcd-vX.Y.Z-linux-amd64.tar.gz`).
    pub file: String,
    /// Its URL.
    pub url: String,
    /// Its SHA256, hex.
    pub sha256: String,
}

/// The archive file name of `version`, after checking it reads as `vX.Y.Z`.
pub fn archive_name(version: &str) -> Result<String, ReleaseError> {
    let numbers = version.strip_prefix('v').unwrap_or_default();
    let parts: Vec<&str> = numbers.split('.').collect();
    let valid = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !valid {
        return Err(ReleaseError::BadVersion {
            given: version.to_owned(),
        });
    }
    Ok(format!("etcd-{version}-linux-amd64.tar.gz"))
}

/// The base URL of releases: `ETCD_HARNESS_RELEASES`, else upstream's.
pub fn base_url() -> String {
    std::env::var(RELEASES_ENV)
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| UPSTREAM_RELEASES.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// What the release's `SHA256SUMS` says the archive of `version` hashes to.
pub async fn expected(version: &str) -> Result<Verified, ReleaseError> {
    let file = archive_name(version)?;
    let base = base_url();
    let sums_url = format!("{base}/{version}/SHA256SUMS");
    let sums = get(&sums_url, version).await?;
    let sums = String::from_utf8_lossy(&sums);
    let sha256 = sums
        .lines()
        .find_map(|line| {
            let (hash, name) = line.split_once(char::is_whitespace)?;
            (name.trim().trim_start_matches('*') == file).then(|| hash.to_lowercase())
        })
        .ok_or_else(|| ReleaseError::NotListed {
            file: file.clone(),
            url: sums_url.clone(),
        })?;
    Ok(Verified {
        url: format!("{base}/{version}/{file}"),
        file,
        sha256,
    })
}

/// Downloads the archive `verified` names and checks it against its SHA256.
pub async fn download(verified: &Verified, version: &str) -> Result<Vec<u8>, ReleaseError> {
    let bytes = get(&verified.url, version).await?;
    let got = hex::encode(Sha256::digest(&bytes));
    if got != verified.sha256 {
        return Err(ReleaseError::ChecksumMismatch {
            url: verified.url.clone(),
            expected: verified.sha256.clone(),
            got,
        });
    }
    Ok(bytes)
}

/// GETs `url`, following redirects; a 404 is a missing `version`.
async fn get(url: &str, version: &str) -> Result<Vec<u8>, ReleaseError> {
    let http = |detail: String| ReleaseError::Http {
        url: url.to_owned(),
        detail,
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| http(e.to_string()))?
    .with_root_certificates(native_roots())
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let fetch = async {
        let mut current = url.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let uri: hyper::Uri = current.parse().map_err(|e| http(format!("{e}")))?;
            let response = client
                .get(uri.clone())
                .await
                .map_err(|e| http(e.to_string()))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(hyper::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| http(format!("HTTP {status} without a Location")))?;
                current = resolve(&uri, location);
                continue;
            }
            if status == hyper::StatusCode::NOT_FOUND {
                return Err(ReleaseError::NotFound {
                    version: version.to_owned(),
                    url: current,
                    status: status.as_u16(),
                });
            }
            if !status.is_success() {
                return Err(http(format!("HTTP {status}")));
            }
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| http(e.to_string()))?;
            return Ok(body.to_bytes().to_vec());
        }
        Err(http(format!("more than {MAX_REDIRECTS} redirects")))
    };
    tokio::time::timeout(DOWNLOAD_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| {
            Err(http(format!(
                "no answer within {} s",
                DOWNLOAD_TIMEOUT.as_secs()
            )))
        })
}

/// A redirect's `Location`, absolute or relative to the URI that answered it.
fn resolve(answered: &hyper::Uri, location: &str) -> String {
    match (
        location.starts_with('/'),
        answered.scheme_str(),
        answered.authority(),
    ) {
        (true, Some(scheme), Some(authority)) => format!("{scheme}://{authority}{location}"),
        _ => location.to_owned(),
    }
}

/// The host's trusted roots; certificates it cannot parse are skipped (a download over https then
/// fails with a clear TLS error rather than here).
fn native_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_redirect_stays_on_the_host_that_answered() {
        let answered: hyper::Uri = "https://example.test:8443/v3.6.5/x.tar.gz".parse().unwrap();
        assert_eq!(
            resolve(&answered, "/store/1"),
            "https://example.test:8443/store/1"
        );
        assert_eq!(
            resolve(&answered, "https://other.test/a"),
            "https://other.test/a"
        );
    }

    #[test]
    fn a_version_must_read_vx_y_z() {
        assert_eq!(
            archive_name("v3.6.5").unwrap(),
            "etcd-v3.6.5-linux-amd64.tar.gz"
        );
        for bad in ["3.6.5", "v3.6", "v3.6.x", "v3.6.5-rc.0", "latest"] {
            let err = archive_name(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }
}
