//! etcd's log lines as one text, whatever their rendering. etcd 3.4 writes text; 3.5 and later
//! write JSON (`{"level":"warn",…,"msg":"check file permission","error":"directory \"/var/lib/etcd\"
//! exist, …"}`). A JSON line reads as `<msg>: <error>` behind its journal prefix, so a journal
//! expectation or a diagnosis written once — `check file permission: directory "/var/lib/etcd"
//! exist` — holds for both: it is etcd's message and fields that are matched, not their rendering.
//!
//! Who a line is about (`remote-peer-id`, `peer-id`, `remote-addr`) follows in parentheses, as 3.4's
//! text has it in the message. Lines that are not JSON (3.4's, systemd's) read as they are.

use std::borrow::Cow;

/// `line` as text: a JSON log line becomes `<prefix><msg>: <error>`; any other line is itself.
pub fn readable(line: &str) -> Cow<'_, str> {
    let Some(start) = line.find('{') else {
        return Cow::Borrowed(line);
    };
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&line[start..]) else {
        return Cow::Borrowed(line);
    };
    let Some(msg) = fields.get("msg").and_then(|m| m.as_str()) else {
        return Cow::Borrowed(line);
    };
    let mut text = format!("{}{}", &line[..start], msg.trim_end());
    if let Some(error) = fields.get("error").and_then(|e| e.as_str()) {
        text.push_str(": ");
        text.push_str(error);
    }
    // Who the line is about, as 3.4's text names it: the peer, or the remote address.
    for (key, label) in [
        ("remote-peer-id", "peer"),
        ("peer-id", "peer"),
        ("remote-addr", "from"),
        ("environment-variable", "environment-variable"),
    ] {
        if let Some(value) = fields.get(key).and_then(|v| v.as_str()) {
            text.push_str(&format!(" ({label} {value})"));
            break;
        }
    }
    Cow::Owned(text)
}

/// Each line of `journal` with its readable form.
pub fn lines(journal: &str) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
    journal.lines().map(|line| (line, readable(line)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_reads_as_its_message_and_error_behind_its_prefix() {
        let json = r#"Nov 25 19:33:51 server etcd[123]: {"level":"warn","ts":"2026-11-25T19:33:51.5Z","caller":"fileutil/fileutil.go:53","msg":"check file permission","error":"directory \"/var/lib/etcd\" exist, but the permission is \"drwxr-xr-x\". The recommended permission is \"-rwx------\" to prevent possible unprivileged access to the data"}"#;
        let text = r#"Nov 25 19:35:37 server etcd[139]: check file permission: directory "/var/lib/etcd" exist, but the permission is "drwxr-xr-x". The recommended permission is "-rwx------" to prevent possible unprivileged access to the data."#;
        let expectation = r#"check file permission: directory "/var/lib/etcd" exist, but the permission is "drwxr-xr-x""#;
        assert!(readable(json).contains(expectation), "{}", readable(json));
        assert!(readable(json).starts_with("Nov 25 19:33:51 server etcd[123]: check"));
        assert!(readable(text).contains(expectation));
        assert_eq!(readable(text), text, "a text line reads as itself");
    }

    #[test]
    fn a_json_line_about_a_peer_names_it() {
        let json = r#"etcd[1]: {"level":"warn","msg":"prober detected unhealthy status","remote-peer-id":"3a57933972cb5131","error":"x509: certificate signed by unknown authority"}"#;
        assert_eq!(
            readable(json),
            "etcd[1]: prober detected unhealthy status: x509: certificate signed by unknown \
             authority (peer 3a57933972cb5131)"
        );
    }

    #[test]
    fn a_line_without_a_message_or_not_json_reads_as_itself() {
        for line in [
            "systemd[1]: etcd.service: Failed with result 'exit-code'.",
            r#"etcd[1]: {"level":"info","no-message":true}"#,
            "etcd[1]: {not json",
        ] {
            assert_eq!(readable(line), line);
        }
    }
}
