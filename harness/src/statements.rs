//! What etcd and systemd said, as fields: each journal line of a member split into who said it
//! (etcd's process by its pid, or systemd), at what level, its message, its error and its named
//! fields. etcd 3.4 logs text (its level is the journal's priority, read apart: the `errors`
//! journal); 3.5+ logs JSON (`level`, `msg`, `error` and the rest). Pure: parsing only.

use std::collections::BTreeMap;

use regex::Regex;
use std::sync::LazyLock;

/// How serious a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Debug or info.
    Info,
    /// A warning.
    Warn,
    /// An error.
    Error,
    /// etcd exits after it (`fatal`, `panic`, 3.4's `C`/`F`).
    Fatal,
}

/// Who said a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// etcd's process with this pid.
    Etcd(u32),
    /// systemd (about the unit).
    Systemd,
    /// Anyone else, or a line without a journal prefix.
    Other,
}

/// One line, as fields.
#[derive(Debug, Clone)]
pub struct Said {
    /// Who said it.
    pub speaker: Speaker,
    /// Its level, where the line or the journal says it.
    pub level: Option<Level>,
    /// The message (3.5's `msg`; 3.4's and systemd's whole text).
    pub msg: String,
    /// 3.5's `error` field.
    pub error: Option<String>,
    /// 3.5's other string fields.
    pub fields: BTreeMap<String, String>,
    /// The line as text (`<msg>: <error>`), as a person reads it.
    pub text: String,
}

/// Everything a member's journal said, in order.
#[derive(Debug, Clone, Default)]
pub struct Statements {
    /// Each line.
    pub lines: Vec<Said>,
}

/// `ident[pid]: ` behind an optional `Mon DD HH:MM:SS host ` prefix.
static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[A-Z][a-z]{2} [ 0-9]\d \d{2}:\d{2}:\d{2}(?:\.\d+)? \S+ )?([A-Za-z0-9_.@()-]+)\[(\d+)\]: ")
        .expect("the prefix pattern")
});

/// 3.4's text levels when it writes to a terminal rather than to the journal (`C | `, `F | `).
static TEXT_LEVEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b([CEWNIDF]) \| ").expect("the level pattern"));

impl Statements {
    /// Parses a journal (`ident[pid]: message` lines, with or without journalctl's date and host)
    /// and its lines at priority err and above (`errors`, the same rendering; may be empty).
    pub fn parse(journal: &str, errors: &str) -> Self {
        let errors: Vec<&str> = errors.lines().map(str::trim).collect();
        let lines = journal
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| Self::said(line, errors.contains(&line.trim())))
            .collect();
        Self { lines }
    }

    fn said(line: &str, at_error_priority: bool) -> Said {
        let (speaker, body) = match PREFIX.captures(line) {
            Some(caps) => {
                let pid = caps[2].parse().unwrap_or(0);
                let speaker = match &caps[1] {
                    "etcd" => Speaker::Etcd(pid),
                    // `(etcd)[212]` is systemd's own process before it executes etcd.
                    "systemd" => Speaker::Systemd,
                    ident if ident.starts_with('(') => Speaker::Systemd,
                    _ => Speaker::Other,
                };
                (speaker, &line[caps.get(0).map_or(0, |m| m.end())..])
            }
            None => (Speaker::Other, line),
        };
        let text = crate::etcdlog::readable(body).trim().to_owned();
        let json = body
            .find('{')
            .and_then(|at| serde_json::from_str::<serde_json::Value>(&body[at..]).ok());
        let (level, msg, error, fields) = match json {
            Some(serde_json::Value::Object(map)) if map.contains_key("msg") => {
                let level = map.get("level").and_then(|l| l.as_str()).map(|l| match l {
                    "fatal" | "panic" | "dpanic" => Level::Fatal,
                    "error" => Level::Error,
                    "warn" => Level::Warn,
                    _ => Level::Info,
                });
                let get = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                let fields = map
                    .iter()
                    .filter(|(k, _)| {
                        !["level", "ts", "caller", "msg", "error"].contains(&k.as_str())
                    })
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect();
                (level, get("msg").unwrap_or_default(), get("error"), fields)
            }
            _ => {
                let level = TEXT_LEVEL
                    .captures(body)
                    .map(|c| match &c[1] {
                        "C" | "F" => Level::Fatal,
                        "E" => Level::Error,
                        "W" => Level::Warn,
                        _ => Level::Info,
                    })
                    .or(at_error_priority.then_some(Level::Error));
                (level, body.trim().to_owned(), None, BTreeMap::new())
            }
        };
        Said {
            speaker,
            level,
            msg,
            error,
            fields,
            text,
        }
    }

    /// etcd's lines.
    pub fn etcd(&self) -> impl DoubleEndedIterator<Item = &Said> {
        self.lines
            .iter()
            .filter(|s| matches!(s.speaker, Speaker::Etcd(_)))
    }

    /// systemd's lines about the unit.
    pub fn systemd(&self) -> impl DoubleEndedIterator<Item = &Said> {
        self.lines.iter().filter(|s| s.speaker == Speaker::Systemd)
    }

    /// The pid of etcd's last run: the last etcd process the journal shows.
    pub fn last_pid(&self) -> Option<u32> {
        self.etcd().last().and_then(|s| match s.speaker {
            Speaker::Etcd(pid) => Some(pid),
            _ => None,
        })
    }

    /// Whether etcd's last run ended: systemd logged the end of a main process after its lines.
    pub fn last_run_ended(&self) -> bool {
        let last_etcd = self
            .lines
            .iter()
            .rposition(|s| matches!(s.speaker, Speaker::Etcd(_)));
        let last_exit = self
            .lines
            .iter()
            .rposition(|s| s.speaker == Speaker::Systemd && s.msg.contains("Main process exited"));
        matches!((last_etcd, last_exit), (Some(e), Some(x)) if x > e)
    }

    /// What etcd's last run gave as its reasons, last first. A run that ended: every line it
    /// wrote but its informational ones (3.5 warns `failed to verify flags` before it exits; 3.4's
    /// text, read without the journal's priorities, has no level, and may follow its error with
    /// its usage). A run still going: its error and fatal lines.
    ///
    /// A run systemd has just restarted, which has said nothing at error level yet, gives no
    /// reason of its own: then the run before it, which ended, gives its reasons (the journal was
    /// read a moment after a crash loop's next start).
    pub fn reasons(&self) -> Vec<&Said> {
        let Some(pid) = self.last_pid() else {
            return Vec::new();
        };
        if self.last_run_ended() {
            return self.reasons_of(pid, Level::Warn);
        }
        let reasons = self.reasons_of(pid, Level::Error);
        let before = self.etcd().rev().find_map(|s| match s.speaker {
            Speaker::Etcd(other) if other != pid => Some(other),
            _ => None,
        });
        match before {
            Some(previous) if reasons.is_empty() => self.reasons_of(previous, Level::Warn),
            _ => reasons,
        }
    }

    /// The lines of etcd's run `pid` at level `least` or above (without a level: only when
    /// `least` is a warning), last first.
    fn reasons_of(&self, pid: u32, least: Level) -> Vec<&Said> {
        let mut reasons: Vec<&Said> = self
            .etcd()
            .filter(|s| s.speaker == Speaker::Etcd(pid))
            .filter(|s| s.level.map_or(least == Level::Warn, |l| l >= least))
            .collect();
        reasons.reverse();
        reasons
    }

    /// The reason to quote when no table entry knows it: the latest line etcd's last run wrote
    /// at warning level or above, or, without levels, the latest that reads as an error.
    pub fn last_words(&self) -> Option<&Said> {
        const ERROR_WORDS: [&str; 14] = [
            "error", "invalid", "failed", "cannot", "couldn't", "not ", "in use", "denied",
            "no such", "refus", "unable", "must", "required", "mismatch",
        ];
        let reasons = self.reasons();
        reasons
            .iter()
            .find(|s| s.level.is_some())
            .or_else(|| {
                reasons.iter().find(|s| {
                    let text = s.text.to_lowercase();
                    ERROR_WORDS.iter().any(|w| text.contains(w))
                })
            })
            .or(reasons.first())
            .copied()
    }

    /// The exit status systemd reported for the last main process that ended
    /// (`status=217/USER`): the number and systemd's name for it.
    pub fn exit_status(&self) -> Option<(u16, String)> {
        static STATUS: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"status=(\d+)/([A-Z_]+)").expect("the status pattern"));
        self.systemd()
            .filter_map(|s| STATUS.captures(&s.msg))
            .next_back()
            .and_then(|c| Some((c[1].parse().ok()?, c[2].to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_just_restarted_that_said_no_error_yet_leaves_the_reasons_to_the_run_before() {
        // Measured in a loaded run: the journal read just after a crash loop's next start.
        let journal = "Dec 03 13:26:01 server etcd[144]: cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs
Dec 03 13:26:01 server systemd[1]: etcd.service: Main process exited, code=exited, status=1/FAILURE
Dec 03 13:26:01 server systemd[1]: etcd.service: Failed with result 'exit-code'.
Dec 03 13:26:06 server systemd[1]: etcd.service: Scheduled restart job, restart counter is at 1.
Dec 03 13:26:06 server systemd[1]: Starting etcd.service - etcd...
Dec 03 13:26:06 server etcd[151]: etcd Version: 3.4.23";
        let said = Statements::parse(journal, "");
        assert!(!said.last_run_ended());
        let reasons: Vec<&str> = said.reasons().iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            reasons,
            ["cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs"]
        );
        // Once the new run states an error, it is the new run's.
        let erring = format!("{journal}\nDec 03 13:26:07 server etcd[151]: {{\"level\":\"error\",\"msg\":\"new trouble\"}}");
        let said = Statements::parse(&erring, "");
        let reasons: Vec<&Said> = said.reasons();
        assert_eq!(reasons.len(), 1);
        assert_eq!(reasons[0].speaker, Speaker::Etcd(151));
    }

    #[test]
    fn a_3_5_line_splits_into_level_message_error_and_fields() {
        let journal = r#"Dec 03 08:00:01 server etcd[140]: {"level":"fatal","ts":"x","caller":"etcdmain/etcd.go:204","msg":"discovery failed","error":"couldn't find local name \"ip\" in the initial cluster configuration","stacktrace":"…"}
Dec 03 08:00:01 server systemd[1]: etcd.service: Main process exited, code=exited, status=1/FAILURE"#;
        let said = Statements::parse(journal, "");
        let etcd: Vec<&Said> = said.etcd().collect();
        assert_eq!(etcd[0].level, Some(Level::Fatal));
        assert_eq!(etcd[0].msg, "discovery failed");
        assert!(etcd[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("couldn't find local name"));
        assert_eq!(etcd[0].fields["stacktrace"], "…");
        assert!(said.last_run_ended());
        assert_eq!(said.reasons()[0].msg, "discovery failed");
        assert_eq!(said.exit_status(), Some((1, "FAILURE".into())));
    }

    #[test]
    fn a_3_4_runs_reasons_are_its_last_words_or_its_error_priority_lines() {
        let journal = "etcd[7]: etcd Version: 3.4.23\netcd[9]: loaded\netcd[9]: listen tcp 127.0.0.1:2379: bind: address already in use\netcd[9]:   etcd grpc-proxy\nsystemd[1]: etcd.service: Main process exited, code=exited, status=1/FAILURE\n";
        let said = Statements::parse(journal, "");
        assert_eq!(said.last_pid(), Some(9));
        assert_eq!(said.reasons().len(), 3);
        assert!(said.reasons().iter().all(|s| s.speaker == Speaker::Etcd(9)));
        // The usage that follows the error is not quoted as the reason.
        assert_eq!(
            said.last_words().unwrap().msg,
            "listen tcp 127.0.0.1:2379: bind: address already in use"
        );
        // With the journal's priorities, the error line is the one quoted.
        let errors = "etcd[9]: listen tcp 127.0.0.1:2379: bind: address already in use\n";
        let said = Statements::parse(journal, errors);
        assert_eq!(said.last_words().unwrap().level, Some(Level::Error));
        // systemd's process before it executes etcd speaks as systemd.
        let said = Statements::parse(
            "(etcd)[212]: etcd.service: Failed to determine user credentials: No such process\n",
            "",
        );
        assert_eq!(said.lines[0].speaker, Speaker::Systemd);
        // A run still going, without levels, gave no reason.
        let said = Statements::parse("etcd[9]: serving\n", "");
        assert!(said.reasons().is_empty());
    }
}
