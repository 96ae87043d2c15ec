//! Diagnosis: maps the evidence of a failure to a named cause, with a one-line explanation and the
//! fix. Evidence is what an operator following the seed's troubleshooting section would look at: the
//! failing command's output, the etcd journal, and the unit file as systemd loaded it.
//!
//! A cause is named only when the evidence shows it; anything else is [`Cause::Unknown`], never a
//! guess. The classifier is pure: gathering evidence from a node is [`gather`]'s job.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::engine::EngineError;
use crate::node::NodeHandle;
use crate::unit;

/// A named cause of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// The client spoke plain http to etcd's TLS client port.
    TlsRequired,
    /// The client spoke TLS (an `https://` endpoint) to a server that serves plain http.
    PlainHttpServer,
    /// The evidence matches no known cause.
    Unknown,
}

impl Cause {
    /// The cause's name, as scenario files spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::TlsRequired => "tls-required",
            Self::PlainHttpServer => "plain-http-server",
            Self::Unknown => "unknown",
        }
    }

    /// What happened, in one line.
    pub fn explanation(self) -> &'static str {
        match self {
            Self::TlsRequired => {
                "etcd serves clients over TLS with client-cert-auth, and the client connected \
                 without TLS (etcd's journal logs the rejected handshake; etcdctl only times out)"
            }
            Self::PlainHttpServer => {
                "the client dialled an https:// endpoint, but the unit serves clients over plain \
                 http (its --listen-client-urls are http://), so no TLS handshake can complete"
            }
            Self::Unknown => "the evidence matches no known cause; read it below",
        }
    }

    /// The fix, in the seed's terms.
    pub fn fix(self) -> &'static str {
        match self {
            Self::TlsRequired => {
                "give etcdctl TLS flags, as the seed's /registry/ read does: \
                 --endpoints=https://127.0.0.1:2379 --cacert=/etc/etcd/ca.crt \
                 --cert=/etc/etcd/kube-apiserver.crt --key=/etc/etcd/kube-apiserver.key"
            }
            Self::PlainHttpServer => {
                "either dial http://127.0.0.1:2379 without TLS flags, or make the unit serve TLS \
                 (--cert-file, --key-file, --trusted-ca-file, --client-cert-auth and https:// \
                 client URLs, as docker/units/etcd-tls.service does)"
            }
            Self::Unknown => "start from `journalctl -u etcd -n 50` and `systemctl status etcd`",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a diagnosis looks at.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The failing command's text (empty when a check, not a command, failed).
    pub command: String,
    /// Its output, stdout and stderr together.
    pub output: String,
    /// etcd's journal since the failing command started.
    pub journal: String,
    /// The unit file as systemd loaded it (`systemctl cat etcd`).
    pub unit_file: String,
}

/// A named cause and the evidence lines that show it.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    /// The cause.
    pub cause: Cause,
    /// The lines of evidence that identified it.
    pub shown_by: Vec<String>,
}

/// Names the cause the evidence shows, or [`Cause::Unknown`].
pub fn classify(evidence: &Evidence) -> Diagnosis {
    let rejected_plaintext: Vec<String> = evidence
        .journal
        .lines()
        .filter(|l| {
            l.contains("rejected connection")
                && l.contains("first record does not look like a TLS handshake")
        })
        .map(String::from)
        .collect();
    if !rejected_plaintext.is_empty() {
        return Diagnosis {
            cause: Cause::TlsRequired,
            shown_by: rejected_plaintext,
        };
    }
    if evidence.command.contains("https://") {
        let plain: Vec<String> = listen_client_urls(&evidence.unit_file)
            .into_iter()
            .filter(|url| url.starts_with("http://"))
            .map(|url| format!("unit: --listen-client-urls {url}"))
            .collect();
        if !plain.is_empty() {
            return Diagnosis {
                cause: Cause::PlainHttpServer,
                shown_by: plain,
            };
        }
    }
    Diagnosis {
        cause: Cause::Unknown,
        shown_by: Vec::new(),
    }
}

/// The values of `--listen-client-urls` in a unit file's text (either `--flag v` or `--flag=v`).
fn listen_client_urls(unit_file: &str) -> Vec<String> {
    let words: Vec<&str> = unit_file
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .collect();
    let mut urls = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let value = match word.strip_prefix("--listen-client-urls") {
            Some("") => words.get(i + 1).copied(),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        if let Some(value) = value {
            urls.extend(value.split(',').map(String::from));
        }
    }
    urls
}

/// Gathers the journal since `since_epoch` and the loaded unit file from `node`.
pub async fn gather(
    node: &NodeHandle,
    command: &str,
    output: &str,
    since_epoch: u64,
) -> Result<Evidence, EngineError> {
    let unit_file = node
        .exec(
            &["systemctl", "cat", "--no-pager", unit::UNIT],
            Duration::from_secs(10),
        )
        .await?;
    Ok(Evidence {
        command: command.to_owned(),
        output: output.to_owned(),
        journal: unit::journal(node, since_epoch).await?,
        unit_file: unit_file.stdout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS_UNIT: &str = include_str!("../../docker/units/etcd-tls.service");
    const HTTP_UNIT: &str = include_str!("../../docker/units/etcd.service");

    #[test]
    fn a_plaintext_client_rejected_by_a_tls_server_is_tls_required() {
        let evidence = Evidence {
            command: "etcdctl member list".into(),
            output: "Error: context deadline exceeded".into(),
            journal: "embed: rejected connection from \"127.0.0.1:40312\" (error \"tls: first \
                      record does not look like a TLS handshake\", ServerName \"\")"
                .into(),
            unit_file: TLS_UNIT.into(),
        };
        let diagnosis = classify(&evidence);
        assert_eq!(diagnosis.cause, Cause::TlsRequired);
        assert_eq!(diagnosis.shown_by.len(), 1);
    }

    #[test]
    fn an_https_read_of_the_http_unit_is_plain_http_server() {
        let evidence = Evidence {
            command: "etcdctl get x --endpoints=https://127.0.0.1:2379".into(),
            output: "Error: context deadline exceeded".into(),
            journal: String::new(),
            unit_file: HTTP_UNIT.into(),
        };
        let diagnosis = classify(&evidence);
        assert_eq!(diagnosis.cause, Cause::PlainHttpServer);
        assert_eq!(
            diagnosis.shown_by,
            ["unit: --listen-client-urls http://127.0.0.1:2379"]
        );
    }

    #[test]
    fn evidence_that_shows_nothing_known_is_unknown() {
        let evidence = Evidence {
            command: "etcdctl get x --endpoints=https://127.0.0.1:2379".into(),
            output: "Error: something new".into(),
            journal: "all quiet".into(),
            unit_file: TLS_UNIT.into(),
        };
        assert_eq!(classify(&evidence).cause, Cause::Unknown);
    }

    #[test]
    fn listen_client_urls_reads_both_flag_spellings_and_lists() {
        assert_eq!(
            listen_client_urls("ExecStart=etcd --listen-client-urls=https://a:1,http://b:2"),
            ["https://a:1", "http://b:2"]
        );
        assert_eq!(
            listen_client_urls("ExecStart=etcd \\\n  --listen-client-urls http://c:3 \\"),
            ["http://c:3"]
        );
    }
}
