//! A unit file's text as systemd joins its lines — ExecStart's etcd flags, each with its line,
//! and `Key=value` lines a trailing backslash swallows — and etcd's URLs as the rules compare
//! them.

/// A flag of ExecStart: its name without dashes, its value, and the unit's line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Flag {
    pub(super) name: String,
    pub(super) value: Option<String>,
    pub(super) line: usize,
}

/// What the unit's text says of etcd: ExecStart's flags, and `Key=value` lines a continuation
/// swallows into the line before.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct UnitText {
    pub(super) flags: Vec<Flag>,
    /// The line of `[Service]` (0 if none).
    pub(super) service_line: usize,
    pub(super) swallowed: Vec<(usize, String)>,
}

/// Reads the unit as systemd joins its lines: a line ending in `\` continues on the next, comment
/// lines inside a continuation are skipped; the last `ExecStart=` of `[Service]` counts.
pub(super) fn read_unit(text: &str) -> UnitText {
    let mut out = UnitText::default();
    let mut section = String::new();
    // The words of the logical line being read, each with its line, and whether it is ExecStart.
    let mut words: Vec<(String, usize)> = Vec::new();
    let mut continuing = false;
    let mut exec = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        let mut content = line;
        if continuing {
            if line.starts_with(['#', ';']) {
                continue;
            }
            if let Some((key, _)) = line.split_once('=') {
                if is_key(key) {
                    out.swallowed.push((n, line.to_owned()));
                }
            }
        } else {
            words.clear();
            exec = false;
            if line.starts_with('[') {
                section = line.trim_matches(['[', ']']).to_owned();
                if section == "Service" {
                    out.service_line = n;
                }
                continue;
            }
            if line.is_empty() || line.starts_with(['#', ';']) {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            exec = section == "Service" && key.trim() == "ExecStart";
            content = value;
        }
        continuing = content.ends_with('\\');
        let content = content.trim_end_matches('\\');
        words.extend(content.split_whitespace().map(|w| (w.to_owned(), n)));
        if exec && !continuing && !words.is_empty() {
            out.flags = flags(&words);
        }
    }
    out
}

/// The value of etcd flag `name` (without its dashes) in the unit's ExecStart, as etcd reads it:
/// the last one given.
pub(crate) fn exec_flag(unit: &str, name: &str) -> Option<String> {
    let read = read_unit(unit);
    Etcd { flags: &read.flags }.value(name).map(String::from)
}

/// A systemd setting's name: a letter, then letters and digits.
pub(super) fn is_key(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key.chars().all(|c| c.is_ascii_alphanumeric())
}

/// ExecStart's words after the program, as flags: `--name value`, `--name=value`, or `--name`
/// alone when the next word is a flag too.
pub(super) fn flags(words: &[(String, usize)]) -> Vec<Flag> {
    let unquote = |w: &str| w.trim_matches(|c| c == '"' || c == '\'').to_owned();
    let mut out = Vec::new();
    let mut i = 1;
    while i < words.len() {
        let (word, line) = &words[i];
        if let Some(name) = word.strip_prefix('-').map(|w| w.trim_start_matches('-')) {
            let (name, value) = match name.split_once('=') {
                Some((name, value)) => (name, Some(unquote(value))),
                None => match words.get(i + 1) {
                    Some((next, _)) if !next.starts_with('-') => {
                        i += 1;
                        (name, Some(unquote(next)))
                    }
                    _ => (name, None),
                },
            };
            out.push(Flag {
                name: name.to_owned(),
                value,
                line: *line,
            });
        }
        i += 1;
    }
    out
}

/// A URL's parts, as far as the lint needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Url<'a> {
    pub(super) text: &'a str,
    pub(super) scheme: &'a str,
    pub(super) host: &'a str,
    pub(super) port: &'a str,
}

pub(super) fn parse_url(text: &str) -> Option<Url<'_>> {
    let (scheme, rest) = text.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, port) = v6.split_once(']')?;
            (host, port.trim_start_matches(':'))
        }
        None => authority.rsplit_once(':').unwrap_or((authority, "")),
    };
    Some(Url {
        text,
        scheme,
        host,
        port,
    })
}

/// etcd's defaults for URL flags left out.
pub(super) fn default_urls(flag: &str) -> &'static str {
    match flag {
        "listen-client-urls" | "advertise-client-urls" => "http://localhost:2379",
        _ => "http://localhost:2380",
    }
}

/// The unit's etcd flags, looked up as etcd's flag parsing does (the last one given counts).
pub(super) struct Etcd<'a> {
    pub(super) flags: &'a [Flag],
}

impl<'a> Etcd<'a> {
    pub(super) fn flag(&self, name: &str) -> Option<&'a Flag> {
        self.flags.iter().rev().find(|f| f.name == name)
    }

    pub(super) fn value(&self, name: &str) -> Option<&'a str> {
        self.flag(name)?.value.as_deref()
    }

    /// The URLs of a URL flag, each with its line; etcd's default when it is left out.
    pub(super) fn urls(&self, name: &str) -> Vec<(Url<'a>, usize)> {
        let (text, line) = match self.flag(name) {
            Some(Flag {
                value: Some(value),
                line,
                ..
            }) => (value.as_str(), *line),
            _ => (default_urls(name), 0),
        };
        text.split(',')
            .filter_map(|u| parse_url(u.trim()))
            .map(|u| (u, line))
            .collect()
    }

    /// `--initial-cluster`'s members: name and URL.
    pub(super) fn initial_cluster(&self) -> Vec<(&'a str, Url<'a>)> {
        self.value("initial-cluster")
            .unwrap_or_default()
            .split(',')
            .filter_map(|entry| {
                let (name, url) = entry.trim().split_once('=')?;
                Some((name, parse_url(url)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_flags_are_read_in_both_spellings_across_continuations() {
        let read = read_unit(
            "[Service]\n# c\nExecStart=/usr/local/bin/etcd --a 1 \\\n  --b=2 \\\n# comment\n  \
             --c \\\n  --d x\nRestart=on-failure\n",
        );
        let flags: Vec<(&str, Option<&str>, usize)> = read
            .flags
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_deref(), f.line))
            .collect();
        assert_eq!(
            flags,
            [
                ("a", Some("1"), 3),
                ("b", Some("2"), 4),
                ("c", None, 6),
                ("d", Some("x"), 7)
            ]
        );
        assert_eq!(read.service_line, 1);
        assert!(read.swallowed.is_empty());
    }
}
