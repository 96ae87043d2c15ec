//! What etcd and systemd say when etcd fails, harvested from their source: etcd's start-up, flag
//! and config validation, bootstrap, join and discovery error messages at its release tags
//! (`messages/etcd.toml`), and systemd's verdicts on a service — every `Result=` value, every exit
//! status of its exec set-up (`status=2xx/NAME`) and the unit-start errors it logs
//! (`messages/systemd.toml`). Each entry names the cause its words mean, explains them in a line,
//! and gives the fix where one follows from the words.
//!
//! The tables are data compiled into the binary; a template is matched as etcd fills it in (its
//! Go verbs, `%s %q %v %d`, stand for the text etcd put there, which the match captures).

use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use crate::cause::{Cause, Kind};

/// A Go (or systemd C) format verb: `%s`, `%q`, `%-5d`, `%.2f`, `%%`; the letter is its group.
pub static VERB: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"%[-+# 0]*[0-9]*(?:\.[0-9]+)?([a-zA-Z%])").expect("the verb pattern")
});

/// The shortest literal text a template must have to be matched: `%v` alone matches anything.
const MIN_LITERAL: usize = 10;

/// Where in etcd's start a message belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Command-line flags and environment variables.
    Flags,
    /// Cross-flag and config file validation.
    Config,
    /// Loading certificates and keys.
    Tls,
    /// Binding listeners.
    Listen,
    /// The data directory.
    DataDir,
    /// WAL, snapshots and the backend database.
    Storage,
    /// Forming or restarting the member.
    Bootstrap,
    /// Joining a running cluster.
    Join,
    /// Discovery.
    Discovery,
    /// What members say about each other.
    Peer,
    /// After start.
    Runtime,
}

impl Stage {
    /// The stage's name as the table spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flags => "flags",
            Self::Config => "config",
            Self::Tls => "tls",
            Self::Listen => "listen",
            Self::DataDir => "data-dir",
            Self::Storage => "storage",
            Self::Bootstrap => "bootstrap",
            Self::Join => "join",
            Self::Discovery => "discovery",
            Self::Peer => "peer",
            Self::Runtime => "runtime",
        }
    }
}

/// A message template of etcd's or systemd's, as the table has it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    template: String,
    versions: Vec<String>,
    source: String,
    #[serde(default)]
    stage: Option<Stage>,
    #[serde(deserialize_with = "cause_or_none")]
    cause: Option<Cause>,
    explanation: String,
    #[serde(default)]
    fix: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// A message of etcd's that only carries another error (`discovery failed: <the reason>`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wrapper {
    /// The message.
    pub template: String,
    /// The versions that print it.
    pub versions: Vec<String>,
    /// Where in the source.
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EtcdFile {
    message: Vec<RawMessage>,
    #[serde(default)]
    wrapper: Vec<Wrapper>,
}

/// A `Result=` value of a service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultValue {
    /// The value (`exit-code`).
    pub value: String,
    /// The systemd versions that have it.
    pub versions: Vec<String>,
    /// Where in systemd's source.
    pub source: String,
    /// What it means; `None` for `success`.
    #[serde(deserialize_with = "cause_or_none")]
    pub cause: Option<Cause>,
    /// One line.
    pub explanation: String,
    /// What to do, where the verdict says.
    #[serde(default)]
    pub fix: Option<String>,
}

/// An exit status of systemd's exec set-up (`status=203/EXEC`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitStatus {
    /// The number.
    pub code: u16,
    /// systemd's name for it.
    pub name: String,
    /// The systemd versions that have it.
    pub versions: Vec<String>,
    /// What it means; `None` for success.
    #[serde(deserialize_with = "cause_or_none")]
    pub cause: Option<Cause>,
    /// One line.
    pub explanation: String,
    /// What to do, where the status says.
    #[serde(default)]
    pub fix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemdFile {
    result: Vec<ResultValue>,
    exit_status: Vec<ExitStatus>,
    message: Vec<RawMessage>,
}

fn cause_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cause>, D::Error> {
    let name = String::deserialize(d)?;
    if name == "none" {
        return Ok(None);
    }
    Cause::from_name(&name).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown cause `{name}`: expected `none` or {}",
            crate::names::accepted::<Cause>()
        ))
    })
}

/// A message template, compiled.
#[derive(Debug)]
pub struct Message {
    /// The template as the source writes it.
    pub template: String,
    /// The versions that print it (`3.4`, `3.5`, `3.6`; systemd's `252`, `257`).
    pub versions: Vec<String>,
    /// Where in the source.
    pub source: String,
    /// Where in etcd's start it belongs (etcd's messages only).
    pub stage: Option<Stage>,
    /// The cause its words mean; `None` for words that mean nothing is wrong.
    pub cause: Option<Cause>,
    /// One line.
    pub explanation: String,
    /// What to do, where the words say; `{1}`, `{2}` stand for the text the message carries.
    pub fix: Option<String>,
    /// The harvester's note.
    pub note: Option<String>,
    pattern: Option<Regex>,
    literal: usize,
}

/// A line matched by a template: the entry and the text the template's verbs stand for.
#[derive(Debug, Clone)]
pub struct Match<'a> {
    /// The entry.
    pub message: &'a Message,
    /// What etcd (or systemd) filled in, in the template's order.
    pub filled: Vec<String>,
}

impl Match<'_> {
    /// The entry's fix with the text the message carried filled in.
    pub fn fix(&self) -> Option<String> {
        let mut fix = self.message.fix.clone()?;
        for (i, value) in self.filled.iter().enumerate() {
            fix = fix.replace(&format!("{{{}}}", i + 1), value.trim_matches('"'));
        }
        Some(fix)
    }
}

impl Message {
    fn compile(raw: RawMessage) -> Self {
        let (pattern, literal) = template_regex(&raw.template);
        Self {
            pattern: (literal >= MIN_LITERAL).then_some(pattern),
            literal,
            template: raw.template,
            versions: raw.versions,
            source: raw.source,
            stage: raw.stage,
            cause: raw.cause,
            explanation: raw.explanation,
            fix: raw.fix,
            note: raw.note,
        }
    }

    /// The text the template's verbs stand for, when `text` holds the message.
    pub fn matches(&self, text: &str) -> Option<Vec<String>> {
        let caps = self.pattern.as_ref()?.captures(text)?;
        Some(
            caps.iter()
                .skip(1)
                .map(|m| m.map_or_else(String::new, |m| m.as_str().to_owned()))
                .collect(),
        )
    }

    /// Whether a journal expectation's text — often a part of the line — asserts this message:
    /// it holds the whole message, or the message's longest literal part when that part is long
    /// enough to be its own (16 characters or more).
    pub fn asserted_by(&self, text: &str) -> bool {
        const OWN: usize = 16;
        let longest = VERB
            .split(&self.template)
            .map(|part| part.trim_matches(|c: char| !c.is_alphanumeric()))
            .max_by_key(|part| part.len())
            .unwrap_or("");
        self.matches(text).is_some() || (longest.len() >= OWN && text.contains(longest))
    }

    /// Its cause, when that is a specific one.
    pub fn specific(&self) -> Option<Cause> {
        self.cause.filter(|c| c.kind() == Kind::Specific)
    }

    /// Whether version `v` prints it.
    pub fn in_version(&self, v: &str) -> bool {
        self.versions.iter().any(|have| have == v)
    }
}

/// The most specific of `messages` that `text` holds (the longest literal text wins).
fn most_specific<'a>(messages: &'a [Message], text: &str) -> Option<Match<'a>> {
    messages
        .iter()
        .filter_map(|message| {
            message
                .matches(text)
                .map(|filled| Match { message, filled })
        })
        .max_by_key(|m| m.message.literal)
}

/// A Go (or systemd C) format string as a regex whose groups capture what each verb stands for,
/// and the length of its literal text.
fn template_regex(template: &str) -> (Regex, usize) {
    let mut pattern = String::new();
    let mut literal = 0;
    let mut last = 0;
    let verbs: Vec<_> = VERB.captures_iter(template).collect();
    for (i, caps) in verbs.iter().enumerate() {
        let whole = caps.get(0).expect("group 0");
        let text = &template[last..whole.start()];
        literal += text.trim().len();
        pattern.push_str(&regex::escape(text));
        let end = i + 1 == verbs.len() && whole.end() == template.len();
        pattern.push_str(match &caps[1] {
            "%" => "%",
            "d" | "i" | "u" => r"(-?\d+)",
            "x" | "X" => "([0-9a-fA-F]+)",
            "q" => r#"("(?:[^"\\]|\\.)*"|\S+)"#,
            _ if end => "(.+)",
            _ => "(.+?)",
        });
        last = whole.end();
    }
    let rest = &template[last..];
    literal += rest.trim().len();
    pattern.push_str(&regex::escape(rest));
    (
        Regex::new(&pattern).unwrap_or_else(|e| panic!("template `{template}`: {e}")),
        literal,
    )
}

/// etcd's messages.
#[derive(Debug)]
pub struct EtcdTable {
    /// The reasons etcd states.
    pub messages: Vec<Message>,
    /// The messages that only carry another error.
    pub wrappers: Vec<Wrapper>,
}

impl EtcdTable {
    /// The entry whose words `text` holds, most specific first.
    pub fn find(&self, text: &str) -> Option<Match<'_>> {
        most_specific(&self.messages, text)
    }
}

/// systemd's verdicts and messages.
#[derive(Debug)]
pub struct SystemdTable {
    /// Every `Result=` value.
    pub results: Vec<ResultValue>,
    /// Every exit status of its exec set-up.
    pub exit_statuses: Vec<ExitStatus>,
    /// The unit-start errors it logs.
    pub messages: Vec<Message>,
}

impl SystemdTable {
    /// The entry for `Result=value`.
    pub fn result(&self, value: &str) -> Option<&ResultValue> {
        self.results.iter().find(|r| r.value == value)
    }

    /// The entry for exit status `code`.
    pub fn exit_status(&self, code: u16) -> Option<&ExitStatus> {
        self.exit_statuses.iter().find(|s| s.code == code)
    }

    /// The entry whose words `text` holds, most specific first.
    pub fn find(&self, text: &str) -> Option<Match<'_>> {
        most_specific(&self.messages, text)
    }
}

static ETCD: LazyLock<EtcdTable> = LazyLock::new(|| {
    let file: EtcdFile = toml::from_str(include_str!("messages/etcd.toml"))
        .unwrap_or_else(|e| panic!("harness/src/messages/etcd.toml: {e}"));
    EtcdTable {
        messages: file.message.into_iter().map(Message::compile).collect(),
        wrappers: file.wrapper,
    }
});

static SYSTEMD: LazyLock<SystemdTable> = LazyLock::new(|| {
    let file: SystemdFile = toml::from_str(include_str!("messages/systemd.toml"))
        .unwrap_or_else(|e| panic!("harness/src/messages/systemd.toml: {e}"));
    SystemdTable {
        results: file.result,
        exit_statuses: file.exit_status,
        messages: file.message.into_iter().map(Message::compile).collect(),
    }
});

/// etcd's table (built into the binary; its unit test proves it parses).
pub fn etcd() -> &'static EtcdTable {
    &ETCD
}

/// systemd's table (built into the binary; its unit test proves it parses).
pub fn systemd() -> &'static SystemdTable {
    &SYSTEMD
}

/// How much of one version's messages the diagnosis knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// `3.4`, `3.5`, `3.6`, or systemd's `252`, `257`.
    pub version: String,
    /// Templates that version prints.
    pub templates: usize,
    /// Of those, how many mean a specific cause (not a generic one, not a symptom).
    pub specific: usize,
    /// How many give a fix.
    pub with_fix: usize,
    /// How many a catalogue scenario reproduces for real (its journal expectation holds the words).
    pub reproduced: usize,
}

/// Coverage of `messages` for each of `versions`; `reproduced(version)` are the texts real runs
/// assert on that version.
fn coverage_of(
    messages: &[Message],
    versions: &[&str],
    reproduced: &dyn Fn(&str) -> Vec<String>,
) -> Vec<Coverage> {
    versions
        .iter()
        .map(|v| {
            let reproduced = reproduced(v);
            let of: Vec<&Message> = messages.iter().filter(|m| m.in_version(v)).collect();
            Coverage {
                version: (*v).to_owned(),
                templates: of.len(),
                specific: of.iter().filter(|m| m.specific().is_some()).count(),
                with_fix: of.iter().filter(|m| m.fix.is_some()).count(),
                reproduced: of
                    .iter()
                    .filter(|m| reproduced.iter().any(|text| m.asserted_by(text)))
                    .count(),
            }
        })
        .collect()
}

/// The coverage of etcd's table per version (`reproduced(version)`: the texts the catalogue's
/// runs assert on it), and of systemd's messages (any version's texts: the node's systemd is one).
pub fn coverage(reproduced: &dyn Fn(&str) -> Vec<String>) -> (Vec<Coverage>, Vec<Coverage>) {
    let any = |_: &str| {
        ["3.4", "3.5", "3.6"]
            .iter()
            .flat_map(|v| reproduced(v))
            .collect()
    };
    (
        coverage_of(&etcd().messages, &["3.4", "3.5", "3.6"], reproduced),
        coverage_of(&systemd().messages, &["252", "257"], &any),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_matches_as_etcd_fills_it_and_captures_what_it_filled() {
        let (re, literal) =
            template_regex("couldn't find local name %q in the initial cluster configuration");
        let caps = re
            .captures(r#"etcdmain: couldn't find local name "ip-10" in the initial cluster configuration"#)
            .unwrap();
        assert_eq!(&caps[1], "\"ip-10\"");
        assert!(literal > 40);
        let (re, _) = template_regex("flag provided but not defined: -%s");
        assert_eq!(
            &re.captures("flag provided but not defined: -client-cert-auht")
                .unwrap()[1],
            "client-cert-auht"
        );
        let (re, _) = template_regex("status=%i/%s and 100%% sure");
        assert!(re.is_match("status=203/EXEC and 100% sure"));
    }

    #[test]
    fn the_tables_parse_and_every_template_compiles() {
        assert!(!etcd().messages.is_empty());
        assert!(!systemd().results.is_empty());
        assert!(!systemd().exit_statuses.is_empty());
        for message in etcd().messages.iter().chain(&systemd().messages) {
            assert!(!message.versions.is_empty(), "{}", message.template);
            assert!(!message.explanation.is_empty(), "{}", message.template);
        }
    }

    #[test]
    fn every_result_and_exec_status_names_a_cause() {
        for result in &systemd().results {
            assert!(
                result.cause.is_some() || result.value == "success",
                "Result={} names no cause",
                result.value
            );
        }
        for status in &systemd().exit_statuses {
            assert!(
                status.cause.is_some() || status.code == 0,
                "status {} names no cause",
                status.code
            );
        }
    }

    #[test]
    fn a_journal_expectation_asserts_a_message_by_its_words() {
        let message = Message::compile(RawMessage {
            template: "listen tcp %s: bind: address already in use".into(),
            versions: vec!["3.4".into()],
            source: String::new(),
            stage: None,
            cause: Some(Cause::PortInUse),
            explanation: "x".into(),
            fix: None,
            note: None,
        });
        assert!(message.asserted_by("listen tcp 127.0.0.1:2379: bind: address already in use"));
        assert!(message.asserted_by("bind: address already in use"));
        assert!(!message.asserted_by("address already"));
    }

    #[test]
    fn the_most_specific_template_wins() {
        let fix = |template: &str| RawMessage {
            template: template.into(),
            versions: vec!["3.4".into()],
            source: String::new(),
            stage: None,
            cause: Some(Cause::BadUrl),
            explanation: "x".into(),
            fix: Some("correct {1}".into()),
            note: None,
        };
        let messages: Vec<Message> = [
            fix("URL scheme must be %s: %s"),
            fix("URL scheme must be http, https, unix, or unixs: %s"),
        ]
        .into_iter()
        .map(Message::compile)
        .collect();
        let found = most_specific(
            &messages,
            "URL scheme must be http, https, unix, or unixs: 127.0.0.1:2380",
        )
        .unwrap();
        assert!(found.message.template.contains("unixs"));
        assert_eq!(found.fix().unwrap(), "correct 127.0.0.1:2380");
    }
}
