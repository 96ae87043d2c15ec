//! The unit as systemd reads it: `systemd-analyze verify` on a copy, its lines sorted into what
//! is about the file (findings, on their lines) and what is about this host (left out).
//!
//! Why a copy and a filter, not `--root`: with `--root=<dir>` holding a stub `/usr/local/bin/etcd`,
//! systemd 252 no longer finds its own units there (`Unit sysinit.target not found`), so the stub
//! trades one complaint about the host for another. The file's own problems come as
//! `<path>:<line>: …`, the host's as `etcd.service: …` with no line: the filter is exact.

use std::time::Duration;

use super::unit_text::read_unit;
use super::{said, LintError, Rule, Said};

/// How long `systemd-analyze verify` may take on one unit (it takes a tenth of a second).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(20);

/// How [`verify`]'s output names the copy of the unit.
const COPY: &str = "<unit>";

/// What systemd-analyze said of a unit, or why it could not be asked.
pub(super) enum Verified {
    /// Its output, with [`COPY`] for the copy's path.
    Said(String),
    /// Why it did not run.
    Unavailable(String),
}

/// Runs `systemd-analyze verify` on a copy of `text` named `etcd.service` (the name systemd
/// gives it in the node) in a temporary directory.
pub(super) async fn verify(text: &str) -> Result<Verified, LintError> {
    let copy_error = |source| LintError::Copy { source };
    let dir = tempfile::tempdir().map_err(copy_error)?;
    let copy = dir.path().join("etcd.service");
    std::fs::write(&copy, text).map_err(copy_error)?;
    let run = tokio::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .arg(&copy)
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(VERIFY_TIMEOUT, run).await {
        Err(_) => {
            return Ok(Verified::Unavailable(format!(
                "`systemd-analyze verify` did not answer within {} s",
                VERIFY_TIMEOUT.as_secs()
            )))
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Verified::Unavailable(
                "systemd-analyze is not installed on this host (Debian: `apt-get install \
                 systemd`)"
                    .into(),
            ))
        }
        Ok(Err(e)) => {
            return Ok(Verified::Unavailable(format!(
                "failed to run systemd-analyze: {e}"
            )))
        }
        Ok(Ok(out)) => out,
    };
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Ok(Verified::Said(said.replace(&*copy.to_string_lossy(), COPY)))
}

/// What systemd-analyze's `output` says about the unit `text`: findings on its lines, and the
/// lines it could not place (neither the file's nor known to be the host's).
pub(super) fn findings(output: &str, text: &str) -> (Vec<Said>, Vec<String>) {
    let mut found = Vec::new();
    let mut unplaced = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some((n, message)) = line
            .strip_prefix(COPY)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|rest| rest.split_once(':'))
            .and_then(|(n, m)| Some((n.parse::<usize>().ok()?, m.trim())))
        {
            let (rule, fix) = about_a_line(message);
            found.push(said(
                rule,
                n,
                format!("systemd says `{message}`"),
                fix.into(),
            ));
            continue;
        }
        if let Some(message) = line.strip_prefix("etcd.service: ") {
            // About this host, not the file: the node has the executable, the host need not.
            let about_host = (message.starts_with("Command ")
                && message.contains("is not executable"))
                || (message.starts_with("Failed to create") && message.ends_with("not found."));
            if about_host || message.starts_with("Unit configuration has fatal error") {
                continue;
            }
            found.push(said(
                Rule::SystemdUnitInvalid,
                read_unit(text).service_line.max(1),
                format!("systemd refuses the unit: `{message}`"),
                "give [Service] what systemd requires (an ExecStart=, say)".into(),
            ));
            continue;
        }
        // The summary of what was said above.
        if line.starts_with("Unit etcd.service has a bad unit file setting") {
            continue;
        }
        unplaced.push(line.to_owned());
    }
    (found, unplaced)
}

/// The rule and the fix for what systemd says about a line.
fn about_a_line(message: &str) -> (Rule, &'static str) {
    if message.contains("Missing '='") || message.contains("outside of section") {
        (
            Rule::SystemdIgnoredLine,
            "make it `Key=value` in its section, or end the line before it with `\\` if it \
             continues ExecStart",
        )
    } else if message.starts_with("Unknown key") || message.starts_with("Unknown lvalue") {
        (
            Rule::SystemdUnknownKey,
            "spell the key as systemd.unit(5), systemd.service(5) and systemd.exec(5) do, in the \
             section they name, or remove it",
        )
    } else if message.starts_with("Unknown section") {
        (
            Rule::SystemdUnknownSection,
            "use [Unit], [Service] and [Install]",
        )
    } else {
        (
            Rule::SystemdBadSetting,
            "give the setting a value systemd accepts",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS_UNIT: &str = include_str!("../../../docker/units/etcd-tls.service");

    #[test]
    fn systemd_analyze_lines_about_the_file_are_findings_and_about_the_host_are_not() {
        // What systemd 252 printed for units with these mistakes (and for a Requires= of a unit
        // the host lacks), plus a line of unknown kind.
        let output = "<unit>:5: Unknown key 'Foo' in section [Service], ignoring.\n\
                      <unit>:9: Missing '=', ignoring line.\n\
                      <unit>:11: Unknown section 'Bogus'. Ignoring.\n\
                      <unit>:2: Failed to parse service type, ignoring: bogus\n\
                      etcd.service: Command /usr/local/bin/etcd is not executable: No such file or directory\n\
                      etcd.service: Failed to create etcd.service/start: Unit nonexist.service not found.\n\
                      etcd.service: Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing.\n\
                      etcd.service: Unit configuration has fatal error, unit will not be started.\n\
                      Unit etcd.service has a bad unit file setting.\n\
                      something else\n";
        let (found, unplaced) = findings(output, TLS_UNIT);
        let rules: Vec<(Rule, usize)> = found.iter().map(|f| (f.rule, f.line)).collect();
        let service = TLS_UNIT.lines().position(|l| l == "[Service]").unwrap() + 1;
        assert_eq!(
            rules,
            [
                (Rule::SystemdUnknownKey, 5),
                (Rule::SystemdIgnoredLine, 9),
                (Rule::SystemdUnknownSection, 11),
                (Rule::SystemdBadSetting, 2),
                (Rule::SystemdUnitInvalid, service),
            ]
        );
        assert_eq!(unplaced, ["something else"]);
    }
}
