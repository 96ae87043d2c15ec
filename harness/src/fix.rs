//! Fixes as data: what to do about a named cause, as the steps a reader would take — commands typed
//! on a member, files copied from the jumpbox, a certificate issued anew by the earlier sections'
//! PKI, flags given to the failing etcdctl command — which the harness prints and, the same data,
//! applies ([`crate::runner`] proves them by running the checks again).
//!
//! A fix is made from the evidence that named its cause (the holder of a port, the path that does
//! not exist, the flag etcd refused), so it names this failure's specifics; where the evidence does
//! not give what a fix needs, it is [`Fix::Advice`]: printed, never applied. The seed's own fixes
//! ([`seed_fix`]) are kept verbatim, so a run can show whether they repair what they claim to.

use std::fmt;

use crate::diagnose::{client_port, flag_values, holder, listening_on, Cause, Evidence};
use crate::topology::member_id;

/// Where the seed's bootstrap leaves the unit, when `systemctl cat` does not say.
const UNIT_PATH: &str = "/etc/systemd/system/etcd.service";

/// The jumpbox's etcd: the one the bootstrap installs (`downloads/controller/etcd`).
const JUMPBOX_ETCD: &str = "downloads/controller/etcd";

/// One step of a fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FixStep {
    /// A command typed on a member, in `/root`, as the reader would type it.
    Run {
        /// The member's host name.
        on: String,
        /// The command text.
        command: String,
    },
    /// `scp <files> root@<on>:~/` from the jumpbox.
    Scp {
        /// The member's host name.
        on: String,
        /// The files, relative to the jumpbox directory.
        files: Vec<String>,
    },
    /// A certificate and key issued anew by the run's CA (the earlier sections' PKI), valid, with
    /// the names the tutorial gives it, written to the jumpbox where the bootstrap copies it from.
    Reissue(Reissue),
    /// The failing etcdctl command again, with flags set (added, or replacing the flag's value)
    /// and flags removed.
    Retry {
        /// The failing command, as the evidence shows it (empty when it does not).
        command: String,
        /// `--flag=value` words to set.
        set: Vec<String>,
        /// Flags to remove (`--cacert`).
        remove: Vec<String>,
    },
}

/// Which certificate a [`FixStep::Reissue`] issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reissue {
    /// `kube-apiserver.crt/key`, the seed's server identity.
    Server,
    /// A cluster member's `nodes/<host>/kubernetes.crt/key`.
    Member(String),
}

impl Reissue {
    /// The files it writes on the jumpbox, relative to it.
    pub fn files(&self) -> Vec<String> {
        match self {
            Self::Server => vec!["kube-apiserver.crt".into(), "kube-apiserver.key".into()],
            Self::Member(host) => vec![
                format!("nodes/{host}/kubernetes.crt"),
                format!("nodes/{host}/kubernetes.key"),
            ],
        }
    }
}

/// What to do about a cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Steps the harness can take as the reader would, in order.
    Steps(Vec<FixStep>),
    /// What to do, where the evidence does not say enough for steps: printed, not applied.
    Advice(String),
}

impl Fix {
    /// The step that changes the failing command, if the fix is on the client's side.
    pub fn retry(&self) -> Option<&FixStep> {
        match self {
            Self::Steps(steps) => steps.iter().find(|s| matches!(s, FixStep::Retry { .. })),
            Self::Advice(_) => None,
        }
    }

    /// The fix's lines as a person reads them: each step behind where it is taken.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Advice(text) => vec![format!("{text} (advice: the harness cannot apply it)")],
            Self::Steps(steps) => steps.iter().map(FixStep::to_string).collect(),
        }
    }
}

impl fmt::Display for FixStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Run { on, command } => write!(f, "on {on}: {command}"),
            Self::Scp { on, files } => {
                write!(f, "on the jumpbox: scp {} root@{on}:~/", files.join(" "))
            }
            Self::Reissue(which) => write!(
                f,
                "on the jumpbox: issue {} anew from the CA in ca.crt, with the names the tutorial \
                 gives it (serverAuth and clientAuth, valid now)",
                which.files().join(" and ")
            ),
            Self::Retry { command, .. } if !command.is_empty() => {
                write!(f, "run `{}` instead", self.rewrite(command))
            }
            Self::Retry { set, remove, .. } => {
                let mut parts = Vec::new();
                if !set.is_empty() {
                    parts.push(format!("with {}", set.join(" ")));
                }
                if !remove.is_empty() {
                    parts.push(format!("without {}", remove.join(", ")));
                }
                write!(f, "run the failing etcdctl command {}", parts.join(" and "))
            }
        }
    }
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("; then "))
    }
}

impl FixStep {
    /// `command` with this step's flags set and removed; other steps leave it as it is.
    pub fn rewrite(&self, command: &str) -> String {
        let Self::Retry { set, remove, .. } = self else {
            return command.to_owned();
        };
        let flag_of = |word: &str| word.split('=').next().unwrap_or(word).to_owned();
        let dropped: Vec<String> = set
            .iter()
            .map(|w| flag_of(w))
            .chain(remove.iter().cloned())
            .collect();
        let mut words: Vec<String> = Vec::new();
        let mut skip_value = false;
        for word in command.split_whitespace() {
            if std::mem::take(&mut skip_value) && !word.starts_with('-') {
                continue;
            }
            if dropped.iter().any(|flag| *flag == flag_of(word)) {
                // `--flag value` as well as `--flag=value`.
                skip_value = !word.contains('=');
                continue;
            }
            words.push(word.to_owned());
        }
        words.extend(set.iter().cloned());
        words.join(" ")
    }
}

/// The fix for `cause`, made from `evidence` (the member whose evidence it is) and the lines that
/// showed the cause.
pub fn for_cause(cause: Cause, evidence: &Evidence, shown_by: &[String]) -> Fix {
    let host = evidence.host.clone();
    let run = |command: String| FixStep::Run {
        on: host.clone(),
        command,
    };
    let unit = unit_path(&evidence.unit_file);
    let reload_restart = "systemctl daemon-reload && systemctl restart etcd";
    let advice = |text: &str| Fix::Advice(text.to_owned());
    // The client's fix: the failing command with these flags set, those removed.
    let retry = |set: Vec<String>, remove: &[&str]| FixStep::Retry {
        command: evidence.command.clone(),
        set,
        remove: remove.iter().map(|f| (*f).to_owned()).collect(),
    };
    let tls = ClientFlags::of(&evidence.unit_file);
    let steps = match cause {
        Cause::UnitMissing => vec![run(
            "mv etcd.service /etc/systemd/system/ && systemctl daemon-reload && systemctl enable --now etcd".into(),
        )],
        Cause::ExecFailed => {
            if shown_by.iter().any(|l| l.contains("Permission denied")) {
                vec![run("chmod 755 /usr/local/bin/etcd && systemctl restart etcd".into())]
            } else {
                vec![
                    FixStep::Scp {
                        on: host.clone(),
                        files: vec![JUMPBOX_ETCD.into()],
                    },
                    run("mv etcd /usr/local/bin/ && chmod 755 /usr/local/bin/etcd && systemctl restart etcd".into()),
                ]
            }
        }
        Cause::BadFlag => {
            let typo = shown_by
                .iter()
                .find_map(|l| l.split_once("flag provided but not defined: -"))
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .map(|f| f.trim_start_matches('-').to_owned());
            let Some((typo, known)) =
                typo.and_then(|t| crate::lint::nearest_flag(&t).map(|k| (t, k)))
            else {
                return advice("correct the flag in the unit's ExecStart, then systemctl daemon-reload && systemctl restart etcd");
            };
            vec![run(format!(
                "sed -i 's/--{typo}\\b/--{known}/' {unit} && {reload_restart}"
            ))]
        }
        Cause::PortInUse => {
            let port = shown_by
                .iter()
                .find_map(|l| l.split_once(": bind: address already in use"))
                .and_then(|(before, _)| before.rsplit(':').next()?.parse::<u16>().ok())
                .unwrap_or(2379);
            let main = evidence.unit_state.as_ref().map_or(0, |s| s.main_pid);
            let holder = listening_on(&evidence.listening, port).and_then(holder);
            match holder.map(|(_, pid)| pid).filter(|pid| *pid != main) {
                Some(pid) => vec![run(format!("kill {pid} && systemctl restart etcd"))],
                None => return advice("find the holder with `ss -tlnp | grep 2379`, stop it, then systemctl restart etcd"),
            }
        }
        Cause::KeyMismatch | Cause::SanMismatch | Cause::CertExpired => {
            reinstall_identity(&evidence.unit_file, &host)
        }
        Cause::PermissionDenied => {
            let user = crate::settings::setting(&evidence.unit_file, "User=");
            let mut command = SEED_FIX_PERMISSIONS.join(" && ");
            if let Some(user) = user.filter(|u| u != "root") {
                command.push_str(&format!(" && chown {user}: /etc/etcd/*.key /var/lib/etcd"));
            }
            command.push_str(" && systemctl restart etcd");
            vec![run(command)]
        }
        Cause::CertPath => match replacement_path(evidence, shown_by) {
            Some((missing, present)) => vec![run(format!(
                "sed -i 's|{missing}|{present}|' {unit} && {reload_restart}"
            ))],
            None => return advice("make --cert-file/--key-file/--trusted-ca-file name the files in /etc/etcd, then systemctl daemon-reload && systemctl restart etcd"),
        },
        Cause::StaleUnit => vec![run(reload_restart.into())],
        Cause::TlsNoClientCert | Cause::TlsUnknownCa => vec![retry(vec![tls.cert, tls.key], &[])],
        Cause::TlsUntrustedServer => vec![retry(vec![tls.cacert], &[])],
        Cause::TlsPlainHttp => {
            let endpoint = client_endpoint(&evidence.unit_file, "https://");
            let set = vec![format!("--endpoints={endpoint}"), tls.cacert, tls.cert, tls.key];
            vec![retry(set, &[])]
        }
        Cause::PlainHttpServer => {
            let endpoint = client_endpoint(&evidence.unit_file, "http://");
            let set = vec![format!("--endpoints={endpoint}")];
            vec![retry(set, &["--cacert", "--cert", "--key"])]
        }
        Cause::NotRunning => {
            let enabled = evidence
                .unit_state
                .as_ref()
                .is_some_and(|s| s.unit_file_state == "enabled");
            vec![run(if enabled {
                "systemctl start etcd".into()
            } else {
                "systemctl daemon-reload && systemctl enable --now etcd".into()
            })]
        }
        Cause::DowngradeRefused => vec![
            FixStep::Scp {
                on: host.clone(),
                files: vec![JUMPBOX_ETCD.into()],
            },
            run("mv etcd /usr/local/bin/ && systemctl restart etcd".into()),
        ],
        Cause::NameNotInInitialCluster => match own_name(evidence, shown_by) {
            Some((wrong, right)) => vec![run(format!(
                "sed -i 's/--name {wrong}\\b/--name {right}/' {unit} && {reload_restart}"
            ))],
            None => return advice(cause_advice(cause)),
        },
        Cause::QuorumLost
        | Cause::PeerUnknownCa
        | Cause::PeerSanMismatch
        | Cause::PeerNoClientAuth
        | Cause::PeerCertRejected
        | Cause::PeerUnreachable
        | Cause::Unknown => return advice(cause_advice(cause)),
        _ => match crate::config_fix::for_cause(cause, evidence, shown_by, &unit) {
            Some(command) => vec![run(command)],
            None => return advice(cause_advice(cause)),
        },
    };
    Fix::Steps(after_start_limit(
        during_crash_loop(steps, evidence),
        evidence,
    ))
}

/// A unit that restarts on its own (`Restart=` after a failure) must not be edited under a pending
/// restart: after `daemon-reload`, its restart timer can start etcd with the new configuration a
/// moment before the fix's own `systemctl restart` kills it mid-bootstrap — and an etcd killed
/// before its first configuration entry is written leaves a data directory it can never start from
/// (`restarting member … voters=()`, then `publish error: etcdserver: request timed out` until
/// systemd's start timeout; measured twice in one CI run). So there each fix that ends in a restart
/// stops the unit first and starts it last.
fn during_crash_loop(steps: Vec<FixStep>, evidence: &Evidence) -> Vec<FixStep> {
    let looping = evidence
        .unit_state
        .as_ref()
        .is_some_and(|s| s.sub_state == "auto-restart" || s.restarts > 0);
    if !looping {
        return steps;
    }
    each_command(steps, |command| {
        match command.strip_suffix("systemctl restart etcd") {
            Some(edits) => format!("systemctl stop etcd && {edits}systemctl start etcd"),
            None => command,
        }
    })
}

/// `steps` with each command a step runs on a node rewritten by `rewrite`.
fn each_command(steps: Vec<FixStep>, rewrite: impl Fn(String) -> String) -> Vec<FixStep> {
    steps
        .into_iter()
        .map(|step| match step {
            FixStep::Run { on, command } => FixStep::Run {
                on,
                command: rewrite(command),
            },
            other => other,
        })
        .collect()
}

/// A unit systemd stopped restarting (`Result=start-limit-hit`) refuses a start until its
/// failures are forgotten: each restart of the fix resets them first.
fn after_start_limit(steps: Vec<FixStep>, evidence: &Evidence) -> Vec<FixStep> {
    // systemd 252 says so in its words and keeps `Result=exit-code`; later ones set the result.
    let limited = evidence
        .unit_state
        .as_ref()
        .is_some_and(|s| s.result == "start-limit-hit")
        || evidence
            .journal
            .contains("Start request repeated too quickly");
    if !limited {
        return steps;
    }
    each_command(steps, |command| {
        command
            .replace(
                "systemctl restart etcd",
                "systemctl reset-failed etcd && systemctl restart etcd",
            )
            .replace(
                "systemctl start etcd",
                "systemctl reset-failed etcd && systemctl start etcd",
            )
    })
}

/// What to do about a cause whose steps one member's evidence cannot give.
fn cause_advice(cause: Cause) -> &'static str {
    match cause {
        Cause::NameNotInInitialCluster => "make --name this member's key in --initial-cluster, then systemctl daemon-reload && systemctl restart etcd",
        Cause::QuorumLost => "start etcd on the members the evidence shows unreachable (systemctl start etcd on each) until a majority runs",
        Cause::PeerUnknownCa => "issue the member's certificate from the CA every --peer-trusted-ca-file names, copy it to /etc/etcd/ on that member and restart its etcd",
        Cause::PeerSanMismatch => "reissue the member's certificate with its address among its SANs, copy it to /etc/etcd/ and restart its etcd",
        Cause::PeerNoClientAuth => "reissue the member's certificate with both serverAuth and clientAuth, copy it to /etc/etcd/ and restart its etcd",
        Cause::PeerCertRejected => "read `journalctl -u etcd` on the other members for the x509 reason, and reissue this member's certificate accordingly",
        Cause::PeerUnreachable => "on the member the evidence names: systemctl status etcd and journalctl -u etcd -n 50; make sure its --listen-peer-urls holds the address the others dial",
        _ => "start from `journalctl -u etcd -n 50` and `systemctl status etcd`",
    }
}

/// The fix for a cluster's cause, made from every member's evidence: a lost quorum is repaired by
/// starting the members that are down; a certificate its peers refuse, by issuing that member's
/// anew. `None` when one member's fix is the cluster's.
pub fn for_cluster(cause: Cause, nodes: &[Evidence], shown_by: &[String]) -> Option<Fix> {
    let advice = || Fix::Advice(cause_advice(cause).into());
    match cause {
        Cause::QuorumLost => {
            let down: Vec<FixStep> = nodes
                .iter()
                .filter(|e| {
                    e.unit_state
                        .as_ref()
                        .is_some_and(|s| s.active != crate::unit::ActiveState::Active)
                })
                .map(|e| FixStep::Run {
                    on: e.host.clone(),
                    command: "systemctl start etcd".into(),
                })
                .collect();
            Some(if down.is_empty() {
                advice()
            } else {
                Fix::Steps(down)
            })
        }
        Cause::PeerUnknownCa | Cause::PeerSanMismatch | Cause::PeerNoClientAuth => Some(
            refused_member(nodes, shown_by).map_or_else(advice, |refused| {
                Fix::Steps(reinstall_identity(&refused.unit_file, &refused.host))
            }),
        ),
        _ => None,
    }
}

/// The member whose certificate the lines show refused: the one the most other members name, by
/// address (`rejected connection from "10.240.0.12:…"` on 3.4, `(from 10.240.0.12:…)` on 3.5,
/// `valid for 127.0.0.1, not 10.240.0.12`) or by member ID (`peer 3a57…`). The refused member's
/// own lines name its peers too, but only it does: its peers both name it. `None` on a tie.
fn refused_member<'a>(nodes: &'a [Evidence], shown_by: &[String]) -> Option<&'a Evidence> {
    let mut named: Vec<(usize, &Evidence)> = nodes
        .iter()
        .filter_map(|evidence| {
            let peer_url = flag_value(&evidence.unit_file, "--initial-advertise-peer-urls")?;
            let address = peer_url.split("://").nth(1)?.split(':').next()?.to_owned();
            let token = flag_value(&evidence.unit_file, "--initial-cluster-token")
                .unwrap_or_else(|| crate::topology::TUTORIAL_TOKEN.to_owned());
            let id = member_id(&[&peer_url], &token);
            let by = nodes
                .iter()
                .filter(|other| other.host != evidence.host)
                .filter(|other| {
                    shown_by
                        .iter()
                        .filter_map(|line| line.strip_prefix(&format!("{}: ", other.host)))
                        .any(|line| mentions(line, &address) || line.contains(&id))
                })
                .count();
            (by > 0).then_some((by, evidence))
        })
        .collect();
    named.sort_unstable_by_key(|(by, _)| std::cmp::Reverse(*by));
    match named.as_slice() {
        [(most, refused), rest @ ..] if rest.first().is_none_or(|(next, _)| next < most) => {
            Some(refused)
        }
        _ => None,
    }
}

/// True when `line` holds `address` as a whole address (`10.240.0.1` is not in `10.240.0.12`).
fn mentions(line: &str, address: &str) -> bool {
    line.match_indices(address).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + address.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.')
            && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// The seed's "Fix permissions" block, verbatim.
pub const SEED_FIX_PERMISSIONS: [&str; 3] = [
    "chmod 700 /var/lib/etcd",
    "chmod 644 /etc/etcd/*.crt",
    "chmod 600 /etc/etcd/*.key",
];

/// The seed's own fix for `cause`, where it gives one: "Fix permissions" for the permission causes
/// of "etcd won't start", followed by its "Restart etcd"; "Restart etcd" alone for an etcd that is
/// not running or runs an old definition. Applied on member `host`.
pub fn seed_fix(cause: Cause, host: &str) -> Option<Fix> {
    let run = |command: &str| FixStep::Run {
        on: host.to_owned(),
        command: command.to_owned(),
    };
    let restart = run("systemctl restart etcd");
    match cause {
        Cause::PermissionDenied => {
            let mut steps: Vec<FixStep> = SEED_FIX_PERMISSIONS.iter().map(|c| run(c)).collect();
            steps.push(restart);
            Some(Fix::Steps(steps))
        }
        Cause::NotRunning | Cause::StaleUnit => Some(Fix::Steps(vec![restart])),
        _ => None,
    }
}

/// The unit's path, from `systemctl cat`'s first line (`# /etc/systemd/system/etcd.service`).
fn unit_path(unit_file: &str) -> String {
    unit_file
        .lines()
        .find_map(|l| l.strip_prefix("# /"))
        .map(|rest| format!("/{}", rest.trim()))
        .unwrap_or_else(|| UNIT_PATH.to_owned())
}

/// The first value of `flag` in the unit's text (`--flag v` or `--flag=v`).
fn flag_value(unit_file: &str, flag: &str) -> Option<String> {
    flag_values(unit_file, flag).into_iter().next()
}

/// The files the unit serves with, which an etcdctl on the member may use as its client identity
/// and trust (the seed's /registry/ read does).
struct ClientFlags {
    cacert: String,
    cert: String,
    key: String,
}

impl ClientFlags {
    fn of(unit_file: &str) -> Self {
        let file = |flag: &str, default: &str| {
            flag_value(unit_file, flag).unwrap_or_else(|| format!("/etc/etcd/{default}"))
        };
        Self {
            cacert: format!("--cacert={}", file("--trusted-ca-file", "ca.crt")),
            cert: format!("--cert={}", file("--cert-file", "kube-apiserver.crt")),
            key: format!("--key={}", file("--key-file", "kube-apiserver.key")),
        }
    }
}

/// The client URL on loopback the unit listens on, with `scheme` (the seed dials 127.0.0.1:2379).
fn client_endpoint(unit_file: &str, scheme: &str) -> String {
    format!("{scheme}127.0.0.1:{}", client_port(unit_file))
}

/// Steps that issue the identity the unit serves with anew and put it in place: the seed's
/// `kube-apiserver` pair, or a cluster member's `kubernetes` pair.
fn reinstall_identity(unit_file: &str, host: &str) -> Vec<FixStep> {
    let cert = flag_value(unit_file, "--cert-file").unwrap_or_default();
    let reissue = if cert.ends_with("/kube-apiserver.crt") || cert.is_empty() {
        Reissue::Server
    } else {
        Reissue::Member(host.to_owned())
    };
    let names: Vec<String> = reissue
        .files()
        .iter()
        .map(|f| f.rsplit('/').next().unwrap_or(f).to_owned())
        .collect();
    vec![
        FixStep::Reissue(reissue.clone()),
        FixStep::Scp {
            on: host.to_owned(),
            files: reissue.files(),
        },
        FixStep::Run {
            on: host.to_owned(),
            command: format!(
                "cp {} /etc/etcd/ && systemctl restart etcd",
                names.join(" ")
            ),
        },
    ]
}

/// The path etcd could not open and the file of `/etc/etcd` that takes its place: the only one
/// there of the same kind (a CA certificate for `--trusted-ca-file`, a key for a key flag, another
/// certificate otherwise).
fn replacement_path(evidence: &Evidence, shown_by: &[String]) -> Option<(String, String)> {
    let missing = shown_by.iter().find_map(|l| {
        let (_, rest) = l.split_once("open ")?;
        let path = rest.split(':').next()?;
        path.starts_with("/etc/etcd/").then(|| path.to_owned())
    })?;
    let flag = evidence
        .unit_file
        .lines()
        .flat_map(str::split_whitespace)
        .find(|w| w.ends_with(&format!("={missing}")))?
        .split('=')
        .next()?
        .to_owned();
    let ca = flag.ends_with("trusted-ca-file");
    let key = flag.ends_with("key-file");
    let fits = |name: &&String| {
        if ca {
            name.as_str() == "ca.crt"
        } else if key {
            name.ends_with(".key")
        } else {
            name.ends_with(".crt") && name.as_str() != "ca.crt"
        }
    };
    let candidates: Vec<&String> = evidence.etc_etcd.iter().filter(fits).collect();
    match candidates.as_slice() {
        [one] => Some((missing, format!("/etc/etcd/{one}"))),
        _ => None,
    }
}

/// The name the member runs with and the one `--initial-cluster` gives its peer URL.
fn own_name(evidence: &Evidence, shown_by: &[String]) -> Option<(String, String)> {
    let wrong = shown_by.iter().find_map(|l| {
        let (_, rest) = l.split_once("couldn't find local name \"")?;
        rest.split('"').next().map(String::from)
    })?;
    let peer_url = flag_value(&evidence.unit_file, "--initial-advertise-peer-urls")?;
    let right = flag_values(&evidence.unit_file, "--initial-cluster")
        .into_iter()
        .find_map(|member| {
            let (name, url) = member.split_once('=')?;
            (url == peer_url).then(|| name.to_owned())
        })?;
    Some((wrong, right))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_sets_replaces_and_removes_flags() {
        let add = FixStep::Retry {
            command: String::new(),
            set: vec!["--cacert=/etc/etcd/ca.crt".into()],
            remove: Vec::new(),
        };
        assert_eq!(
            add.rewrite("etcdctl member list"),
            "etcdctl member list --cacert=/etc/etcd/ca.crt"
        );
        let replace = FixStep::Retry {
            command: "etcdctl get x --cacert=/etc/etcd/ca.crt".into(),
            set: vec!["--cert=/etc/etcd/kube-apiserver.crt".into()],
            remove: vec!["--key".into()],
        };
        assert_eq!(
            replace.rewrite(
                "etcdctl get x --cert=/root/faulty/c.crt --key /root/faulty/c.key -w json"
            ),
            "etcdctl get x -w json --cert=/etc/etcd/kube-apiserver.crt"
        );
        // Printed as the command to run instead, when the evidence has the failing one.
        assert_eq!(
            replace.to_string(),
            "run `etcdctl get x --cacert=/etc/etcd/ca.crt --cert=/etc/etcd/kube-apiserver.crt` instead"
        );
        assert_eq!(
            add.to_string(),
            "run the failing etcdctl command with --cacert=/etc/etcd/ca.crt"
        );
    }

    #[test]
    fn a_crash_looping_units_fix_stops_it_first_and_starts_it_last() {
        let edit = |command: &str| {
            vec![FixStep::Run {
                on: "server".into(),
                command: command.into(),
            }]
        };
        let state = |show: &str| Evidence {
            unit_state: Some(crate::unit::UnitState::parse(show)),
            ..Default::default()
        };
        let fix = "sed -i 's/a/b/' /etc/systemd/system/etcd.service && systemctl daemon-reload && systemctl restart etcd";
        let looping =
            state("ActiveState=activating\nSubState=auto-restart\nNRestarts=3\nResult=exit-code\n");
        assert_eq!(
            during_crash_loop(edit(fix), &looping),
            edit("systemctl stop etcd && sed -i 's/a/b/' /etc/systemd/system/etcd.service && systemctl daemon-reload && systemctl start etcd")
        );
        // Caught between two restarts, it has restarted all the same.
        let starting = state("ActiveState=activating\nSubState=start\nNRestarts=1\n");
        assert_ne!(during_crash_loop(edit(fix), &starting), edit(fix));
        // A unit that never restarted keeps its fix; so does a fix that does not restart.
        let failed = state("ActiveState=failed\nSubState=failed\nNRestarts=0\n");
        assert_eq!(during_crash_loop(edit(fix), &failed), edit(fix));
        assert_eq!(
            during_crash_loop(edit("chmod 700 /var/lib/etcd"), &looping),
            edit("chmod 700 /var/lib/etcd")
        );
    }

    #[test]
    fn the_seeds_fix_is_its_own_text() {
        let Some(Fix::Steps(steps)) = seed_fix(Cause::PermissionDenied, "server") else {
            panic!("the seed gives a permission fix");
        };
        let lines: Vec<String> = steps.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "on server: chmod 700 /var/lib/etcd",
                "on server: chmod 644 /etc/etcd/*.crt",
                "on server: chmod 600 /etc/etcd/*.key",
                "on server: systemctl restart etcd",
            ]
        );
        assert_eq!(seed_fix(Cause::PortInUse, "server"), None);
    }

    #[test]
    fn unit_path_and_flags_come_from_the_unit_as_loaded() {
        let unit = "# /etc/systemd/system/etcd.service\n[Service]\nUser=etcd\nExecStart=/usr/local/bin/etcd \\\n  --cert-file=/etc/etcd/kubernetes.crt \\\n  --initial-advertise-peer-urls https://10.240.0.12:2380\n";
        assert_eq!(unit_path(unit), "/etc/systemd/system/etcd.service");
        assert_eq!(unit_path(""), UNIT_PATH);
        assert_eq!(
            crate::settings::setting(unit, "User=").as_deref(),
            Some("etcd")
        );
        assert_eq!(
            flag_value(unit, "--initial-advertise-peer-urls").as_deref(),
            Some("https://10.240.0.12:2380")
        );
        assert_eq!(
            reinstall_identity(unit, "controller-2")[0],
            FixStep::Reissue(Reissue::Member("controller-2".into()))
        );
    }
}
