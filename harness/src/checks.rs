//! The checks that prove etcd works (or show how it doesn't), each judged against the scenario's
//! expectation: over the client URL with etcd-client (mutual TLS when the URL is https) — member
//! list, health, `/registry/` reads — and the seed's own commands run verbatim in the node (one that
//! follows, `journalctl -f`, stopped after a bounded time as a reader's Ctrl-C stops it).
//!
//! A check never panics or aborts the run: whatever happens becomes its [`CheckResult`].

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};
use semver::Version;
use tokio::sync::oneshot;

use crate::diagnose::{self, Diagnosis};
use crate::engine::EngineError;
use crate::node::NodeHandle;
use crate::pki::{self, Pki};
use crate::scenario::{Expect, ExpectedMember, SeedCommand, ASSIGNED, ETCD_VERSION};
use crate::transcript::{Entry, Origin};
use crate::unit::{self, UnitState};

/// How long a seed command may run (etcdctl gives up after its own 5 s command timeout; a command
/// that follows is stopped after at most [`crate::scenario::MAX_FOLLOW_SECS`]).
const SEED_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one check over etcd-client may take in all. A process that accepts connections on
/// etcd's port and never answers (another listener than etcd) would hold the TLS handshake forever:
/// the client's own timeouts cover the TCP connection and each request, not the handshake between.
const CHECK_DEADLINE: Duration = Duration::from_secs(30);

/// `check`, failed with what was seen when it has no answer within [`CHECK_DEADLINE`].
pub async fn bounded(
    name: &str,
    expected: Expect,
    check: impl std::future::Future<Output = CheckResult>,
) -> CheckResult {
    match tokio::time::timeout(crate::wait::scaled(CHECK_DEADLINE), check).await {
        Ok(result) => result,
        Err(_) => CheckResult::judged(
            name,
            expected,
            Err(vec![
                format!("no answer within {} s", CHECK_DEADLINE.as_secs()),
                "something accepts connections on the client port but does not answer as etcd \
                 would (ss -tlnp shows who listens)"
                    .into(),
            ]),
        ),
    }
}

/// The step the seed's commands are recorded under.
const SEED_STEP: &str = "Step 6: Verify etcd is Running";
/// How long a command that follows has to exit after its SIGINT before `timeout` kills it.
const SIGINT_GRACE: &str = "2";
/// `timeout`'s exit code when the command was still running at the deadline (and was signalled).
const TIMED_OUT: i64 = 124;
/// `timeout`'s exit code when the command outlived its signal and the grace, and was killed.
const KILLED: i64 = 128 + 9;
/// How long the unit must stay active with no restart before health passes.
pub const SETTLE_WINDOW: Duration = Duration::from_secs(1);

/// Keys an API server would write, with values; the secret is shaped as encryption-at-rest stores it.
pub const REGISTRY_KEYS: [(&str, &str); 3] = [
    (
        "/registry/pods/default/my-pod",
        "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"my-pod\"}}",
    ),
    (
        "/registry/services/default/kubernetes",
        "{\"kind\":\"Service\",\"metadata\":{\"name\":\"kubernetes\"}}",
    ),
    (
        "/registry/secrets/default/my-secret",
        "k8s:enc:aescbc:v1:key1:c2VhbGVkIGJ5IGV0Y2QtaGFybmVzcw==",
    ),
];

/// The result of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// What was checked ("member list", or the seed command's text).
    pub name: String,
    /// What the scenario expected of a check that may pass or fail; `None` for an observation the
    /// scenario states outright (a step's exit code, the unit's state, a journal line).
    pub expected: Option<Expect>,
    /// Whether the expectation holds (an expected failure that did not happen does not hold).
    pub holds: bool,
    /// False for an expectation that does not apply to the etcd version under test: it is shown
    /// as such, and neither holds nor fails.
    pub applies: bool,
    /// One line: what was observed.
    pub summary: String,
    /// Supporting lines (observed values, mismatches, evidence).
    pub details: Vec<String>,
    /// For a failure: the cause the evidence shows.
    pub diagnosis: Option<Diagnosis>,
    /// The command's transcript entry, for seed commands.
    pub entry: Option<Entry>,
    /// For a seed command that follows: the command run in a second terminal meanwhile.
    pub meanwhile: Option<Entry>,
}

impl CheckResult {
    /// Narrows an expected failure: its summary or details must contain one of `errors`.
    pub fn expect_error(&mut self, errors: &[String]) {
        if errors.is_empty() {
            return;
        }
        let failed_as_expected = self.expected == Some(Expect::Fail) && self.holds;
        let text = format!("{}\n{}", self.summary, self.details.join("\n"));
        if failed_as_expected && !errors.iter().any(|e| text.contains(e.as_str())) {
            self.holds = false;
            let quoted: Vec<String> = errors.iter().map(|e| format!("`{e}`")).collect();
            self.details.push(format!(
                "expected the failure to mention {}",
                quoted.join(" or ")
            ));
        }
    }

    /// An expectation that does not apply to the etcd version under test, and why.
    pub fn not_applicable(name: &str, why: String) -> Self {
        Self {
            applies: false,
            ..Self::observed(name, true, why, Vec::new())
        }
    }

    /// A result for an expectation the runner judged itself.
    pub fn observed(name: &str, holds: bool, summary: String, details: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            expected: None,
            holds,
            applies: true,
            summary,
            details,
            diagnosis: None,
            entry: None,
            meanwhile: None,
        }
    }

    fn judged(name: &str, expected: Expect, observed: Result<String, Vec<String>>) -> Self {
        let (passed, summary, details) = match observed {
            Ok(summary) => (true, summary, Vec::new()),
            Err(mut lines) => {
                let summary = if lines.is_empty() {
                    "failed".to_owned()
                } else {
                    lines.remove(0)
                };
                (false, summary, lines)
            }
        };
        Self {
            name: name.to_owned(),
            expected: Some(expected),
            holds: passed == (expected == Expect::Pass),
            applies: true,
            summary,
            details,
            diagnosis: None,
            entry: None,
            meanwhile: None,
        }
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match (self.applies, self.holds) {
            (false, _) => "n.a.",
            (true, true) => "ok  ",
            (true, false) => "FAIL",
        };
        let expectation = match self.expected {
            Some(Expect::Pass) => " (must pass)",
            Some(Expect::Fail) => " (must fail)",
            None => "",
        };
        writeln!(f, "[{mark}] {}{expectation}: {}", self.name, self.summary)?;
        for line in &self.details {
            writeln!(f, "         {line}")?;
        }
        if let Some(d) = &self.diagnosis {
            writeln!(f, "         cause: {} — {}", d.cause, d.cause.explanation())?;
            for line in d.shown_by.iter().take(crate::report::MAX_EVIDENCE) {
                writeln!(f, "           evidence: {line}")?;
            }
            for line in d.fix.lines() {
                writeln!(f, "         fix: {line}")?;
            }
        }
        Ok(())
    }
}

/// What the harness's client brings to a TLS handshake.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The CA it verifies the server with (`None`: it trusts no CA, so it cannot verify etcd).
    pub ca_pem: Option<String>,
    /// The certificate and key it presents (`None`: no client certificate).
    pub identity: Option<pki::Identity>,
}

impl ClientTls {
    /// The seed's client: the run's CA and the kube-apiserver identity.
    pub fn seed(pki: &Pki) -> Self {
        Self {
            ca_pem: Some(pki.ca_pem()),
            identity: Some(pki.kube_apiserver.clone()),
        }
    }
}

/// Connects etcd-client to the forwarded client port: over TLS with `tls` when given, plain
/// otherwise.
pub async fn connect(
    local: SocketAddr,
    tls: Option<&ClientTls>,
) -> Result<Client, etcd_client::Error> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(5));
    let scheme = match tls {
        Some(tls) => {
            // The forward's local address is not the server's name; `localhost` is one of the
            // certificate's SANs, so hostname verification stays on.
            let mut config = TlsOptions::new().domain_name("localhost");
            if let Some(ca) = &tls.ca_pem {
                config = config.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some(id) = &tls.identity {
                config = config.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
            }
            options = options.with_tls(config);
            "https"
        }
        None => "http",
    };
    Client::connect([format!("{scheme}://{local}")], Some(options)).await
}

/// Member list shows exactly the expected member, started, not a learner.
pub async fn member_list(
    client: Result<&mut Client, &str>,
    expected: Expect,
    members: &[ExpectedMember],
) -> CheckResult {
    let observed = async {
        let client = client.map_err(|e| vec![format!("no client connection: {e}")])?;
        let response = client
            .member_list()
            .await
            .map_err(|e| vec![format!("member list failed: {e}")])?;
        // As etcdctl prints them: ID (hex), status, name, peer URLs, client URLs, learner.
        let line = |id: &str, name: &str, peers: &str, clients: &str, learner: bool| {
            format!("{id}, started, {name}, {peers}, {clients}, {learner}")
        };
        let mut got: Vec<String> = response
            .members()
            .iter()
            .map(|m| {
                line(
                    &format!("{:x}", m.id()),
                    m.name(),
                    &m.peer_urls().join(","),
                    &m.client_urls().join(","),
                    m.is_learner(),
                )
            })
            .collect();
        // A member `etcdctl member add` added has an ID drawn from the time: shown, not compared.
        for (got, member) in got.iter_mut().zip(response.members()) {
            if members
                .iter()
                .any(|m| m.id.is_none() && m.name == member.name())
            {
                *got = got.replacen(&format!("{:x}", member.id()), ASSIGNED, 1);
            }
        }
        let mut want: Vec<String> = members
            .iter()
            .map(|m| {
                let id = m.id.as_deref().unwrap_or(ASSIGNED);
                line(id, &m.name, &m.peer_url, &m.client_url, false)
            })
            .collect();
        got.sort();
        want.sort();
        if got != want {
            let mut lines = vec!["the members differ from the expected ones".to_owned()];
            lines.extend(got.iter().map(|l| format!("got:      {l}")));
            lines.extend(want.iter().map(|l| format!("expected: {l}")));
            return Err(lines);
        }
        Ok(match got.as_slice() {
            [only] => only.clone(),
            all => format!(
                "{} members as expected: {}",
                all.len(),
                members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
    .await;
    CheckResult::judged("member list", expected, observed)
}

/// The unit stayed active with no restart through the settle window, and a linearizable read is
/// served; reports the read's latency as etcdctl's `endpoint health` does.
pub async fn health(
    client: Result<&mut Client, &str>,
    expected: Expect,
    node: &NodeHandle,
    active: Option<&UnitState>,
    active_since: Instant,
) -> CheckResult {
    let observed = async {
        let active = active.ok_or_else(|| vec!["etcd.service never became active".to_owned()])?;
        let settled = unit::stays_active(node, active, active_since, SETTLE_WINDOW)
            .await
            .map_err(|e| vec![e.to_string()])?;
        let client = client.map_err(|e| vec![format!("no client connection: {e}")])?;
        let start = Instant::now();
        // A default get is linearizable: it must go through the leader and a quorum, as etcdctl's
        // health probe does.
        client
            .get("health", None)
            .await
            .map_err(|e| vec![format!("linearizable read failed: {e}")])?;
        Ok(format!(
            "healthy: successfully served a linearizable read: took = {:?}; etcd.service active, \
             NRestarts={} unchanged over {:.1}s",
            start.elapsed(),
            settled.restarts,
            active_since.elapsed().as_secs_f64()
        ))
    }
    .await;
    CheckResult::judged("health", expected, observed)
}

/// Keys written as an API server would are read back by prefix (keys only, in order), and every
/// value round-trips.
pub async fn registry(client: Result<&mut Client, &str>, expected: Expect) -> CheckResult {
    let observed = async {
        let client = client.map_err(|e| vec![format!("no client connection: {e}")])?;
        for (key, value) in REGISTRY_KEYS {
            client
                .put(key, value, None)
                .await
                .map_err(|e| vec![format!("put {key} failed: {e}")])?;
        }
        let listed = client
            .get(
                "/registry/",
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
            .map_err(|e| vec![format!("prefix read of /registry/ failed: {e}")])?;
        let keys: Vec<String> = listed
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect();
        let mut want: Vec<&str> = REGISTRY_KEYS.iter().map(|(k, _)| *k).collect();
        want.sort_unstable();
        // Other keys may live under /registry/ (an API server's, a scenario's): the written ones
        // must all be listed, in key order among them.
        let ours: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| want.contains(k))
            .collect();
        if ours != want {
            return Err(vec![
                "the keys-only prefix read did not list the written keys in order".to_owned(),
                format!("got:      {keys:?}"),
                format!("expected: {want:?} among them"),
            ]);
        }
        if listed.kvs().iter().any(|kv| !kv.value().is_empty()) {
            return Err(vec!["a keys-only read returned values".to_owned()]);
        }
        for (key, value) in REGISTRY_KEYS {
            let got = client
                .get(key, None)
                .await
                .map_err(|e| vec![format!("get {key} failed: {e}")])?;
            let got = got.kvs().first().map(|kv| kv.value().to_vec());
            if got.as_deref() != Some(value.as_bytes()) {
                return Err(vec![format!(
                    "{key}: value did not round-trip: got {:?}",
                    got.map(|v| String::from_utf8_lossy(&v).into_owned())
                )]);
            }
        }
        Ok(format!(
            "{} keys under /registry/ listed in order, values round-trip",
            keys.len()
        ))
    }
    .await;
    CheckResult::judged("/registry/ prefix read", expected, observed)
}

/// Runs one of the seed's commands verbatim in the node and compares what it prints with the seed's
/// expected output (where [`ETCD_VERSION`] is `version`, the version under test); a failure is
/// diagnosed. A command that follows is stopped after its time, and must still be running then.
pub async fn seed_command(
    node: &NodeHandle,
    command: &SeedCommand,
    version: Option<&Version>,
) -> CheckResult {
    let since = unit::epoch_now();
    let judged = |observed| CheckResult::judged(&command.run, command.expect, observed);
    let expected = match expected_output(&command.output, version) {
        Ok(lines) => lines,
        Err(e) => return judged(Err(vec![e])),
    };
    let ran = match command.follow() {
        Some(window) => follow(node, command, window).await,
        None => node
            .shell(&command.run, SEED_COMMAND_TIMEOUT)
            .await
            .map(|out| {
                (
                    Entry::of_exec(SEED_STEP, node.host(), &command.run, out),
                    None,
                )
            }),
    };
    let (entry, meanwhile) = match ran {
        Ok(ran) => ran,
        Err(e) => return judged(Err(vec![e.to_string()])),
    };
    let printed = entry.output();
    let first_line = printed.lines().next().unwrap_or("").to_owned();
    // etcdctl prints its verdict last (after any retry warnings).
    let last_line = printed
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let observed = if let Some(problem) = follow_problem(command, &entry, meanwhile.as_ref()) {
        Err(vec![problem])
    } else if !entry.succeeded() {
        Err(vec![format!("exit {}: {last_line}", entry.exit_code)])
    } else if let Some(missing) = missing_lines(&expected, &printed) {
        Err(vec![
            format!("exit 0, but the output differs from the seed's: missing `{missing}`"),
            format!("printed: {}", printed.trim_end().replace('\n', " | ")),
        ])
    } else if let Some(after) = entry.stopped_after {
        Ok(format!(
            "still following after {}s, stopped with SIGINT; printed {} lines, the expected ones \
             among them",
            after.as_secs(),
            printed.lines().count()
        ))
    } else {
        Ok(format!("exit 0: {first_line}"))
    };
    let mut result = judged(observed);
    if let (Some(run), Some(ran)) = (&command.meanwhile, &meanwhile) {
        result.details.push(format!(
            "meanwhile, in a second terminal: `{run}` exit {}",
            ran.exit_code
        ));
    }
    let failed = !entry.succeeded();
    result.entry = Some(entry);
    result.meanwhile = meanwhile;
    if failed {
        match diagnose::gather(node, &command.run, &printed, since, Default::default()).await {
            Ok(evidence) => {
                let diagnosis = diagnose::classify(&evidence);
                if command.expect == Expect::Fail {
                    judge_failure(&mut result, command, &printed, &diagnosis);
                }
                result.diagnosis = Some(diagnosis);
            }
            Err(e) => {
                result.holds = false;
                result
                    .details
                    .push(format!("could not gather evidence: {e}"));
            }
        }
    }
    result
}

/// The seed's expected lines with [`ETCD_VERSION`] replaced by the version under test.
fn expected_output(output: &[String], version: Option<&Version>) -> Result<Vec<String>, String> {
    output
        .iter()
        .map(|line| match version {
            _ if !line.contains(ETCD_VERSION) => Ok(line.clone()),
            Some(version) => Ok(line.replace(ETCD_VERSION, &version.to_string())),
            None => Err(format!(
                "`{line}` names the version under test, which this run could not read \
                 (`etcd --version` did not run on this host)"
            )),
        })
        .collect()
}

/// Runs a command that follows (`journalctl -f`) verbatim for `window`, then stops it with SIGINT
/// as a reader's Ctrl-C does (`timeout` sends it, and SIGKILL after a grace). Once it has printed
/// its backlog, `command.meanwhile` runs in a second exec, so what that logs is printed by
/// following. Returns the follower's entry (stopped, when it was still running) and the other's.
async fn follow(
    node: &NodeHandle,
    command: &SeedCommand,
    window: Duration,
) -> Result<(Entry, Option<Entry>), EngineError> {
    let secs = window.as_secs().to_string();
    let argv = [
        "timeout",
        "--signal=INT",
        "--kill-after",
        SIGINT_GRACE,
        &secs,
        "bash",
        "-c",
        &command.run,
    ];
    let (printed, backlog_shown) = oneshot::channel();
    let follower = node.exec_telling_first_output(&argv, SEED_COMMAND_TIMEOUT, printed);
    let meanwhile = async {
        match (&command.meanwhile, backlog_shown.await) {
            (Some(run), Ok(())) => {
                let out = node.shell(run, SEED_COMMAND_TIMEOUT).await?;
                Ok(Some(Entry {
                    origin: Origin::Meanwhile,
                    ..Entry::of_exec(SEED_STEP, node.host(), run, out)
                }))
            }
            // Nothing to run, or the follower printed nothing: `follow_problem` says so.
            _ => Ok(None),
        }
    };
    let (out, meanwhile) = tokio::join!(follower, meanwhile);
    let mut entry = Entry::of_exec(SEED_STEP, node.host(), &command.run, out?);
    if entry.exit_code == TIMED_OUT {
        entry.stopped_after = Some(window);
    }
    Ok((entry, meanwhile?))
}

/// For a command that follows: why it was not shown to follow, if it was not — it exited on its own,
/// or outlived its SIGINT; the command meant to run meanwhile never ran, or failed.
fn follow_problem(
    command: &SeedCommand,
    entry: &Entry,
    meanwhile: Option<&Entry>,
) -> Option<String> {
    let window = command.follow()?;
    if entry.stopped_after.is_none() {
        return Some(match entry.exit_code {
            KILLED => format!(
                "still running after {}s, but it outlived SIGINT by {SIGINT_GRACE}s and was killed",
                window.as_secs()
            ),
            code => format!(
                "exit {code} after {:.2}s, before the {}s it was to follow: it does not follow",
                entry.duration.as_secs_f64(),
                window.as_secs()
            ),
        });
    }
    match (&command.meanwhile, meanwhile) {
        (Some(run), None) => Some(format!(
            "it printed nothing, so `{run}` was never run meanwhile"
        )),
        (Some(run), Some(ran)) if !ran.succeeded() => Some(format!(
            "meanwhile, `{run}` exit {}: {}",
            ran.exit_code,
            ran.output().lines().last().unwrap_or("")
        )),
        _ => None,
    }
}

/// Narrows an expected failure: it must fail the way the scenario says (error text, cause).
fn judge_failure(
    result: &mut CheckResult,
    command: &SeedCommand,
    printed: &str,
    diagnosis: &Diagnosis,
) {
    if let Some(error) = &command.error {
        if !printed.contains(error.as_str()) {
            result.holds = false;
            result
                .details
                .push(format!("expected the failure to print `{error}`"));
        }
    }
    if let Some(cause) = command.cause {
        if diagnosis.cause != cause {
            result.holds = false;
            result.details.push(format!(
                "expected cause `{cause}`, the evidence shows `{}`",
                diagnosis.cause
            ));
        }
    }
}

/// The first expected line not found (in order) among `printed`'s lines; `{*}` matches any text.
fn missing_lines(expected: &[String], printed: &str) -> Option<String> {
    let mut lines = printed.lines();
    expected
        .iter()
        .find(|pattern| !lines.any(|line| line_matches(pattern, line.trim_end())))
        .cloned()
}

fn line_matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split("{*}");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// What one member says of the cluster (`endpoint status`).
struct Status {
    member: String,
    id: u64,
    cluster_id: u64,
    leader: u64,
    raft_term: u64,
}

/// Every member agrees on one leader — one of them — on the cluster ID and on the raft term.
/// `clients` are one per member: its name and its client. Each member's ID is the one it answers
/// with, so members `etcdctl member add` added (IDs drawn from the time) are named too.
pub async fn cluster_agrees(clients: &mut [(String, Result<Client, String>)]) -> CheckResult {
    let observed = async {
        let mut statuses = Vec::new();
        for (member, client) in clients.iter_mut() {
            let client = client
                .as_mut()
                .map_err(|e| vec![format!("{member}: no client connection: {e}")])?;
            let status = client
                .status()
                .await
                .map_err(|e| vec![format!("{member}: status failed: {e}")])?;
            statuses.push(Status {
                member: member.clone(),
                id: status.header().map_or(0, |h| h.member_id()),
                cluster_id: status.header().map_or(0, |h| h.cluster_id()),
                leader: status.leader(),
                raft_term: status.raft_term(),
            });
        }
        let said: Vec<String> = statuses
            .iter()
            .map(|s| {
                format!(
                    "{}: leader {:x}, cluster {:x}, term {}",
                    s.member, s.leader, s.cluster_id, s.raft_term
                )
            })
            .collect();
        let first = &statuses[0];
        let agree = statuses.iter().all(|s| {
            (s.leader, s.cluster_id, s.raft_term)
                == (first.leader, first.cluster_id, first.raft_term)
        });
        let leader = statuses
            .iter()
            .find(|s| s.id == first.leader)
            .map(|s| s.member.clone());
        match (agree, leader) {
            (true, Some(leader)) => Ok(format!(
                "{} members agree: leader {leader}, cluster {:x}, term {}",
                statuses.len(),
                first.cluster_id,
                first.raft_term
            )),
            (false, _) => Err([vec!["the members disagree".to_owned()], said].concat()),
            (true, None) => {
                Err([vec!["the leader is none of the members".to_owned()], said].concat())
            }
        }
    }
    .await;
    CheckResult::judged("one leader, one cluster, one term", Expect::Pass, observed)
}

/// A key written through the first member is read, linearizably, through every other.
pub async fn replicated(clients: &mut [(String, Result<Client, String>)]) -> CheckResult {
    const KEY: &str = "/registry/configmaps/default/replicated";
    let observed = async {
        let value = format!("written through {}", clients[0].0);
        let mut read_by = Vec::new();
        for (i, (member, client)) in clients.iter_mut().enumerate() {
            let client = client
                .as_mut()
                .map_err(|e| vec![format!("{member}: no client connection: {e}")])?;
            if i == 0 {
                client
                    .put(KEY, value.as_str(), None)
                    .await
                    .map_err(|e| vec![format!("put through {member} failed: {e}")])?;
                continue;
            }
            let got = client
                .get(KEY, None)
                .await
                .map_err(|e| vec![format!("linearizable read through {member} failed: {e}")])?;
            match got.kvs().first().map(|kv| kv.value()) {
                Some(read) if read == value.as_bytes() => read_by.push(member.clone()),
                other => {
                    return Err(vec![format!(
                        "{member} read {:?} for {KEY}",
                        other.map(String::from_utf8_lossy)
                    )])
                }
            }
        }
        Ok(format!(
            "written through {}, read back through {}",
            clients[0].0,
            read_by.join(", ")
        ))
    }
    .await;
    CheckResult::judged(
        "a write through one member is read through every other",
        Expect::Pass,
        observed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_a_latency_and_nothing_else_is_loose() {
        let health = "127.0.0.1:2379 is healthy: successfully committed proposal: took = {*}";
        assert!(line_matches(
            health,
            "127.0.0.1:2379 is healthy: successfully committed proposal: took = 1.234ms"
        ));
        assert!(!line_matches(health, "127.0.0.1:2379 is unhealthy: failed"));
        assert!(line_matches("exact", "exact"));
        assert!(!line_matches("exact", "exact but longer"));
        assert!(line_matches("a{*}b{*}c", "a--b--c"));
        assert!(!line_matches("a{*}b{*}c", "a--c--b"));
    }

    #[test]
    fn expected_lines_must_appear_in_order() {
        let expected = vec!["one".to_owned(), "two".to_owned()];
        assert_eq!(missing_lines(&expected, "zero\none\ntwo\n"), None);
        assert_eq!(
            missing_lines(&expected, "two\none\n"),
            Some("two".to_owned())
        );
    }

    #[test]
    fn the_version_placeholder_is_the_version_under_test() {
        let output = vec![
            "etcdctl version: {etcd_version}".to_owned(),
            "API version: {*}".to_owned(),
        ];
        let version = Version::new(3, 5, 16);
        let expected = expected_output(&output, Some(&version)).unwrap();
        assert_eq!(expected, ["etcdctl version: 3.5.16", "API version: {*}"]);
        assert_eq!(
            missing_lines(&expected, "etcdctl version: 3.4.23\nAPI version: 3.4\n"),
            Some("etcdctl version: 3.5.16".to_owned())
        );
        let unknown = expected_output(&output, None).unwrap_err();
        assert!(unknown.contains("could not read"), "{unknown}");
        assert_eq!(expected_output(&output[1..], None).unwrap(), &output[1..]);
    }

    fn ran(command: &str, exit_code: i64, stdout: &str, seconds: f64) -> Entry {
        let out = crate::engine::ExecOutput {
            exit_code,
            stdout: stdout.into(),
            stderr: String::new(),
            duration: Duration::from_secs_f64(seconds),
        };
        Entry::of_exec(SEED_STEP, "server", command, out)
    }

    #[test]
    fn a_command_that_follows_must_still_run_when_stopped_and_what_runs_meanwhile_must_pass() {
        let command: SeedCommand = toml::from_str(
            "run = \"journalctl -u etcd -f\"\nfollow_for = 3\nmeanwhile = \"etcdctl defrag\"",
        )
        .unwrap();
        let stopped = Entry {
            stopped_after: command.follow(),
            ..ran(&command.run, TIMED_OUT, "backlog\n", 3.1)
        };
        let defrag = ran("etcdctl defrag", 0, "Finished defragmenting\n", 0.1);
        assert_eq!(follow_problem(&command, &stopped, Some(&defrag)), None);
        assert!(
            stopped.succeeded(),
            "stopped while following is how it ends"
        );

        let exited = ran(&command.run, 0, "backlog\n", 0.2);
        let problem = follow_problem(&command, &exited, Some(&defrag)).unwrap();
        assert!(problem.contains("exit 0 after 0.20s"), "{problem}");
        assert!(problem.contains("it does not follow"), "{problem}");
        let killed = ran(&command.run, KILLED, "", 5.0);
        let problem = follow_problem(&command, &killed, Some(&defrag)).unwrap();
        assert!(problem.contains("outlived SIGINT"), "{problem}");

        let problem = follow_problem(&command, &stopped, None).unwrap();
        assert!(problem.contains("printed nothing"), "{problem}");
        let failed = ran(
            "etcdctl defrag",
            1,
            "Error: context deadline exceeded\n",
            5.0,
        );
        let problem = follow_problem(&command, &stopped, Some(&failed)).unwrap();
        assert_eq!(
            problem,
            "meanwhile, `etcdctl defrag` exit 1: Error: context deadline exceeded"
        );

        let plain: SeedCommand = toml::from_str("run = \"etcdctl version\"").unwrap();
        assert_eq!(
            follow_problem(&plain, &exited, None),
            None,
            "not a follower"
        );
    }

    #[test]
    fn an_expected_failure_that_does_not_happen_does_not_hold() {
        let result = CheckResult::judged("x", Expect::Fail, Ok("exit 0".into()));
        assert!(!result.holds);
        let result = CheckResult::judged("x", Expect::Fail, Err(vec!["exit 1".into()]));
        assert!(result.holds);
    }
}
