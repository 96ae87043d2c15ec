//! A step's shell text read the way bash reads it, only as far as the lint needs: simple
//! commands and their words, `cp`/`mv` targets, heredocs and the text bash writes for them, and
//! the tutorial's `$(hostname …)` assignments. Not a shell parser: what it does not understand
//! it leaves as written, for the lint to say it did not check.

use crate::pki::MemberName;

/// What `cp`/`mv` with arguments `args` (flags left out) put where: `(dir, name)`. With one source
/// and a target not ending in `/`, the target is a directory or the file's new name: both count.
pub(super) fn copies(args: &[&str]) -> Vec<(String, String)> {
    let Some((target, sources)) = args.split_last() else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = sources
        .iter()
        .map(|s| (absolute(target), base_name(s).to_owned()))
        .collect();
    if let ([_], false) = (sources, target.ends_with('/')) {
        let path = absolute(target);
        if let Some((dir, name)) = path.rsplit_once('/') {
            out.push((
                if dir.is_empty() { "/" } else { dir }.to_owned(),
                name.to_owned(),
            ));
        }
    }
    out
}

/// Directories a command creates as etcd's data directory (`snapshot restore --data-dir …`).
pub(super) fn data_dirs(text: &str) -> Vec<String> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .filter(|w| !w.is_empty())
        .collect();
    let mut dirs = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let dir = match word.strip_prefix("--data-dir") {
            Some("") => words.get(i + 1).copied(),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        if let Some(dir) = dir.filter(|d| !d.contains('$')) {
            dirs.push(absolute(dir));
        }
    }
    dirs
}

/// A path as the node sees it from a step's working directory, `/root`: absolute, no trailing `/`.
pub(super) fn absolute(path: &str) -> String {
    let path = path.trim_matches(|c| c == '"' || c == '\'');
    let path = match path.strip_prefix('~') {
        Some(rest) => format!("/root{rest}"),
        None if path.starts_with('/') => path.to_owned(),
        None => format!("/root/{path}"),
    };
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
        .trim_end_matches("/.")
        .to_owned()
}

pub(super) fn base_name(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// A script's simple commands (by line), its heredocs, and its text without heredoc bodies.
#[derive(Debug, Default)]
pub(super) struct Script {
    pub(super) commands: Vec<Command>,
    pub(super) heredocs: Vec<Heredoc>,
    pub(super) text: String,
}

/// One simple command: its words (quotes removed) and its line in the script (0-based).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Command {
    pub(super) words: Vec<String>,
    pub(super) line: usize,
}

/// `cat <<EOF > target`: what it writes where, and the variables assigned before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Heredoc {
    pub(super) target: String,
    /// False for a quoted delimiter (`<<'EOF'`): bash writes the body as it is.
    pub(super) expands: bool,
    pub(super) body: Vec<String>,
    /// The script's line of the body's first line (0-based).
    pub(super) first_line: usize,
    /// `NAME=value` lines before it, in order.
    pub(super) assignments: Vec<(String, String)>,
}

/// Reads a step's shell text: simple commands split at `&&`, `||`, `;`, `|` and braces; heredocs
/// with their bodies and target.
pub(super) fn read_script(script: &str) -> Script {
    let mut out = Script::default();
    let mut assignments: Vec<(String, String)> = Vec::new();
    let mut lines = script.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        out.text.push_str(line);
        out.text.push('\n');
        if let Some((name, value)) = assignment(line) {
            assignments.push((name, value));
        }
        let opener = heredoc_opener(line);
        let code = opener.as_ref().map_or(line, |o| &line[..o.at]);
        for words in simple_commands(code) {
            out.commands.push(Command { words, line: n });
        }
        let Some(opener) = opener else { continue };
        let mut body = Vec::new();
        for (_, line) in lines.by_ref() {
            if line.trim() == opener.delimiter {
                break;
            }
            body.push(line.to_owned());
        }
        if let Some(target) = opener.target {
            out.heredocs.push(Heredoc {
                target,
                expands: opener.expands,
                body,
                first_line: n + 1,
                assignments: assignments.clone(),
            });
        }
    }
    out
}

/// The simple commands of a line of shell, as words with their quotes removed: split at `&&`,
/// `||`, `;`, `|`, braces and parentheses outside quotes.
pub(super) fn simple_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_default().push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (None, c) if c.is_whitespace() || "&|;{}()".contains(c) => {
                words.extend(word.take());
                if !c.is_whitespace() && !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            (None, c) => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

/// `NAME=value` (or `export NAME=value`) as a whole line.
pub(super) fn assignment(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (name, value) = line.split_once('=')?;
    let is_name = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    is_name.then(|| (name.to_owned(), value.to_owned()))
}

/// A heredoc's start on a line: where `<<` is, the delimiter, whether the body expands, and the
/// file it is written to (`> path`, `tee path`).
pub(super) struct Opener {
    pub(super) at: usize,
    pub(super) delimiter: String,
    pub(super) expands: bool,
    pub(super) target: Option<String>,
}

pub(super) fn heredoc_opener(line: &str) -> Option<Opener> {
    let at = line.find("<<")?;
    let rest = line[at + 2..].trim_start_matches('-').trim_start();
    let quoted = rest.starts_with(['\'', '"']);
    let delimiter: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if delimiter.is_empty() {
        return None;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let target = words
        .iter()
        .enumerate()
        .find_map(|(i, w)| match *w {
            ">" | "tee" => words.get(i + 1).copied(),
            w if w.starts_with('>') && !w.starts_with(">>") && w.len() > 1 => Some(&w[1..]),
            _ => None,
        })
        .map(|t| t.trim_matches(|c| c == '"' || c == '\'').to_owned());
    Some(Opener {
        at,
        delimiter,
        expands: !quoted,
        target,
    })
}

/// What a step's `NAME=value` gives on `member`: `$(hostname -s)` its host name, `$(hostname -I …)`
/// its address (when the scenario places it), a literal itself; anything else is not known.
pub(super) fn assigned(value: &str, member: &MemberName) -> Option<String> {
    let value = value.trim().trim_matches('"');
    if let Some(inner) = value.strip_prefix("$(").and_then(|v| v.strip_suffix(')')) {
        let mut words = inner.split_whitespace();
        if words.next() != Some("hostname") {
            return None;
        }
        return match words.next() {
            None | Some("-s") | Some("--short") => Some(member.host.clone()),
            Some("-I") | Some("-i") | Some("--all-ip-addresses") if !member.address.is_empty() => {
                Some(member.address.clone())
            }
            _ => None,
        };
    }
    let literal = !value.is_empty() && !value.contains(['$', '`', ' ', '\'', '"']);
    literal.then(|| value.to_owned())
}

/// The text bash writes for an unquoted heredoc `body`: `\\`, `\$` and `` \` `` lose their
/// backslash, a backslash before the end of a line joins the lines, `$NAME` and `${NAME}` of `vars`
/// are replaced (others stay as written). Also, for each line of the text, its line of the body.
pub(super) fn expand(body: &[String], vars: &[(String, String)]) -> (String, Vec<usize>) {
    let source = body.join("\n") + "\n";
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::new();
    let mut lines = vec![0];
    let mut body_line = 0;
    let mut i = 0;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('\\', Some('\n')) => {
                body_line += 1;
                i += 2;
            }
            ('\\', Some(c @ ('\\' | '$' | '`'))) => {
                out.push(*c);
                i += 2;
            }
            ('$', Some(_)) => {
                let braced = chars[i + 1] == '{';
                let start = i + 1 + usize::from(braced);
                let end = (start..chars.len())
                    .find(|&j| !(chars[j].is_ascii_alphanumeric() || chars[j] == '_'))
                    .unwrap_or(chars.len());
                let name: String = chars[start..end].iter().collect();
                let closed = !braced || chars.get(end) == Some(&'}');
                match vars.iter().find(|(n, _)| *n == name) {
                    Some((_, value)) if !name.is_empty() && closed => {
                        out.push_str(value);
                        i = end + usize::from(braced);
                    }
                    _ => {
                        out.push('$');
                        i += 1;
                    }
                }
            }
            ('\n', _) => {
                out.push('\n');
                body_line += 1;
                if i + 1 < chars.len() {
                    lines.push(body_line);
                }
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    (out, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heredoc_unit_is_read_as_bash_writes_it_on_each_member() {
        let script = "INTERNAL_IP=$(hostname -I | awk '{print $1}')\nETCD_NAME=$(hostname -s)\n\
                      cat <<EOF > /etc/systemd/system/etcd.service\n[Service]\n\
                      ExecStart=/usr/local/bin/etcd \\\\\n  --name ${ETCD_NAME} \\\\\n  \
                      --listen-peer-urls https://${INTERNAL_IP}:2380 $OTHER\nEOF\nsystemctl \
                      daemon-reload\n";
        let read = read_script(script);
        let heredoc = &read.heredocs[0];
        assert_eq!(heredoc.target, "/etc/systemd/system/etcd.service");
        assert_eq!(heredoc.first_line, 3);
        assert!(heredoc.expands);
        let member = MemberName {
            host: "controller-2".into(),
            address: "10.240.0.12".into(),
        };
        let vars: Vec<(String, String)> = heredoc
            .assignments
            .iter()
            .filter_map(|(n, v)| Some((n.clone(), assigned(v, &member)?)))
            .collect();
        let (text, lines) = expand(&heredoc.body, &vars);
        assert_eq!(
            text,
            "[Service]\nExecStart=/usr/local/bin/etcd \\\n  --name controller-2 \\\n  \
             --listen-peer-urls https://10.240.0.12:2380 $OTHER\n"
        );
        assert_eq!(lines, [0, 1, 2, 3]);
        assert_eq!(
            read.commands.last().unwrap().words,
            ["systemctl", "daemon-reload"]
        );
        assert!(
            !read.text.contains("--name"),
            "heredoc bodies are not commands"
        );
        let joined = expand(&["a \\".into(), "b".into(), "c".into()], &[]);
        assert_eq!(joined, ("a b\nc\n".into(), vec![0, 2]));
        let quoted = heredoc_opener("cat > /x/etcd.service <<'EOF'").unwrap();
        assert_eq!(
            (quoted.expands, quoted.target.as_deref()),
            (false, Some("/x/etcd.service"))
        );
    }

    #[test]
    fn a_data_directory_is_read_from_the_flag_in_both_spellings() {
        assert_eq!(
            data_dirs("FLAGS=\"--name x --data-dir /var/lib/etcd\"\netcdutl --data-dir=/d"),
            ["/var/lib/etcd", "/d"]
        );
    }

    #[test]
    fn only_known_commands_give_a_host_name_or_an_address() {
        let member = MemberName {
            host: "ip-10-240-0-12".into(),
            address: String::new(),
        };
        assert_eq!(
            assigned("$(hostname -s)", &member).as_deref(),
            Some("ip-10-240-0-12")
        );
        assert_eq!(assigned("$(hostname -I | awk '{print $1}')", &member), None);
        assert_eq!(
            assigned("etcd-cluster-0", &member).as_deref(),
            Some("etcd-cluster-0")
        );
        assert_eq!(assigned("$(cat /etc/name)", &member), None);
    }
}
