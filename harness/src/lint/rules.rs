//! The rules on one member's unit: each a pure function of the unit's etcd flags, what the
//! steps do and the names of the PKI's certificates, returning what it finds on which line, and
//! the fix.

use std::path::Path;

use super::facts::{on, Placement, StepFacts};
use super::shell::{absolute, base_name};
use super::unit_text::{read_unit, Etcd, Flag, Url};
use super::{said, Finding, Rule, Said, Sans, Unit};
use crate::pki::MemberName;
use crate::steps::EACH_HOST;

/// The files etcd reads its TLS material from.
pub(super) const TLS_FILES: [&str; 6] = [
    "cert-file",
    "key-file",
    "trusted-ca-file",
    "peer-cert-file",
    "peer-key-file",
    "peer-trusted-ca-file",
];

/// Every flag etcd 3.4 and 3.5 list in `etcd --help`, one a line (`#` lines say where from).
const ETCD_FLAGS: &str = include_str!("etcd-flags.txt");

/// True when etcd 3.4 or 3.5 defines `--name`.
fn known_flag(name: &str) -> bool {
    known_flags().any(|known| known == name)
}

fn known_flags() -> impl Iterator<Item = &'static str> {
    ETCD_FLAGS.lines().filter(|l| !l.starts_with('#'))
}

/// Every rule on one member's unit.
pub(super) fn unit_findings(
    unit: &Unit,
    facts: &StepFacts,
    sans: &Sans,
    not_checked: &mut Vec<String>,
) -> Vec<Finding> {
    let read = read_unit(&unit.text);
    let etcd = Etcd { flags: &read.flags };
    let mut found: Vec<Said> = read
        .swallowed
        .iter()
        .map(|(line, text)| swallowed(*line, text))
        .collect();
    found.extend(flag_typos(&etcd));
    found.extend(tls_files(&etcd, &unit.host, facts));
    found.extend(schemes(&etcd));
    found.extend(san_coverage(&etcd, &unit.host, facts, sans, not_checked));
    found.extend(name_in_initial_cluster(&etcd));
    found.extend(advertised_listened(&etcd));
    found.extend(data_dir(&etcd, &unit.host, facts));
    found.into_iter().map(|s| unit.said(s)).collect()
}

pub(super) fn swallowed(line: usize, text: &str) -> Said {
    said(
        Rule::ContinuationSwallowsKey,
        line,
        format!(
            "`{text}` follows a line ending in `\\`: systemd reads it as more of that line (etcd \
             gets `{text}` as an argument) and the setting is lost"
        ),
        format!(
            "remove the trailing `\\` of line {} to end ExecStart there",
            line - 1
        ),
    )
}

/// `flag-typo`: a flag etcd does not define, within two edits of one it does.
pub(super) fn flag_typos(etcd: &Etcd<'_>) -> Vec<Said> {
    etcd.flags
        .iter()
        .filter(|f| !known_flag(&f.name))
        .filter_map(|f| {
            let known = nearest_flag(&f.name)?;
            Some(said(
                Rule::FlagTypo,
                f.line,
                format!(
                    "`--{}` is not a flag of etcd: it exits at once with `flag provided but not \
                     defined: -{}`",
                    f.name, f.name
                ),
                format!("spell it `--{known}`"),
            ))
        })
        .collect()
}

/// The flag etcd defines that `name` (a flag etcd does not define, without its dashes) is a typo
/// of: the nearest within two edits.
pub fn nearest_flag(name: &str) -> Option<&'static str> {
    let (distance, known) = known_flags().map(|k| (edits(name, k), k)).min()?;
    (distance <= 2).then_some(known)
}

/// The edit distance of two short strings.
pub fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// `cert-file-not-copied`: each TLS file the unit names is in the directory the steps copy it to.
pub(super) fn tls_files(etcd: &Etcd<'_>, host: &str, facts: &StepFacts) -> Vec<Said> {
    let mut out = Vec::new();
    for name in TLS_FILES {
        let Some(flag) = etcd.flag(name) else {
            continue;
        };
        let Some(path) = flag
            .value
            .as_deref()
            .filter(|p| p.starts_with('/') && !p.contains('$'))
        else {
            continue;
        };
        let (dir, file) = path.rsplit_once('/').unwrap_or(("/", path));
        let placed: Vec<&Placement> = facts.placed_on(host).collect();
        if placed.iter().any(|p| p.dir == dir && p.name == file) {
            continue;
        }
        let elsewhere: Vec<&str> = placed
            .iter()
            .filter(|p| p.name == file)
            .map(|p| p.dir.as_str())
            .collect();
        let what = if elsewhere.is_empty() {
            format!(
                "--{name} names {path}, but no step copies `{file}` to {host}: etcd cannot open \
                 it and exits (`systemctl start` may still succeed)"
            )
        } else {
            format!(
                "--{name} names {path}, but the steps copy `{file}` to {} only, not {dir}",
                elsewhere.join(", ")
            )
        };
        let extension = file.rsplit_once('.').map_or("", |(_, e)| e);
        // What the steps put there that no other flag names: the file meant, most likely.
        let named_elsewhere = |path: &str| TLS_FILES.iter().any(|f| etcd.value(f) == Some(path));
        let there: Vec<String> = placed
            .iter()
            .filter(|p| p.dir == dir && p.name.ends_with(&format!(".{extension}")))
            .map(|p| format!("{dir}/{}", p.name))
            .filter(|p| !named_elsewhere(p))
            .collect();
        let fix = if there.is_empty() {
            format!("copy `{file}` into {dir} in a step (as the seed's step 3: `cp … {dir}/`)")
        } else {
            format!(
                "name the file the steps put there ({}), or copy `{file}` there",
                there.join(" or ")
            )
        };
        out.push(said(Rule::CertFileNotCopied, flag.line, what, fix));
    }
    out
}

/// `https-without-cert` and `cert-without-https`, for clients and for peers.
pub(super) fn schemes(etcd: &Etcd<'_>) -> Vec<Said> {
    let mut out = Vec::new();
    let sides = [
        (
            "client",
            vec!["listen-client-urls", "advertise-client-urls"],
            ("cert-file", "key-file"),
        ),
        (
            "peer",
            vec!["listen-peer-urls", "initial-advertise-peer-urls"],
            ("peer-cert-file", "peer-key-file"),
        ),
    ];
    for (side, url_flags, (cert, key)) in sides {
        let mut urls: Vec<(Url<'_>, usize)> = url_flags.iter().flat_map(|f| etcd.urls(f)).collect();
        if side == "peer" {
            let line = etcd.flag("initial-cluster").map_or(0, |f| f.line);
            urls.extend(etcd.initial_cluster().into_iter().map(|(_, u)| (u, line)));
        }
        let has = |name: &str| etcd.value(name).is_some();
        if let Some((url, line)) = urls.iter().find(|(u, _)| u.scheme == "https") {
            if !has(cert) || !has(key) {
                out.push(said(
                    Rule::HttpsWithoutCert,
                    *line,
                    format!(
                        "{side} URL {} is https, but the unit has no --{}: etcd refuses to \
                         start (`TLS key/cert (--{cert}, --{key}) must be provided`)",
                        url.text,
                        if has(cert) { key } else { cert }
                    ),
                    format!("give --{cert} and --{key} (the certificate the steps copy)"),
                ));
            }
        } else if let Some(flag) = etcd.flag(cert) {
            out.push(said(
                Rule::CertWithoutHttps,
                flag.line,
                format!(
                    "--{cert} is given, but every {side} URL is http ({}): etcd serves plain \
                     http and the certificate is never used",
                    urls.iter()
                        .map(|(u, _)| u.text)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "make the {side} URLs https:// (as --{cert} means), or drop the {side} TLS \
                     flags"
                ),
            ));
        }
    }
    out
}

/// `url-not-in-san`: the host of every https URL etcd serves is a name of the certificate it
/// serves there.
pub(super) fn san_coverage(
    etcd: &Etcd<'_>,
    host: &str,
    facts: &StepFacts,
    sans: &Sans,
    not_checked: &mut Vec<String>,
) -> Vec<Said> {
    let mut out = Vec::new();
    let sides = [
        ("cert-file", ["listen-client-urls", "advertise-client-urls"]),
        (
            "peer-cert-file",
            ["listen-peer-urls", "initial-advertise-peer-urls"],
        ),
    ];
    for (cert, url_flags) in sides {
        let Some(path) = etcd.value(cert).filter(|p| !p.contains('$')) else {
            continue;
        };
        let Some((names, whose)) = certificate_names(path, host, facts, sans) else {
            not_checked.push(format!(
                "on {host}: the names of {path} (--{cert}): no step copies it from the jumpbox's \
                 PKI, so url-not-in-san is not checked"
            ));
            continue;
        };
        for flag in url_flags {
            for (url, line) in etcd.urls(flag) {
                let wildcard = ["0.0.0.0", "::", ""].contains(&url.host);
                if url.scheme != "https" || wildcard || url.host.contains('$') {
                    continue;
                }
                if names.iter().any(|n| n.eq_ignore_ascii_case(url.host)) {
                    continue;
                }
                out.push(said(
                    Rule::UrlNotInSan,
                    line,
                    format!(
                        "--{flag} {} is served with {path} ({whose}), whose names are {}: a \
                         client dialling {} rejects it (`certificate is not valid for {}`)",
                        url.text,
                        names.join(", "),
                        url.host,
                        url.host
                    ),
                    format!(
                        "issue the certificate with {} among its names, or use a URL whose host \
                         it names",
                        url.host
                    ),
                ));
            }
        }
    }
    out
}

/// The names of the certificate at `path` on `host`, traced by its file name to the jumpbox file
/// an `scp` copies to that node: `kube-apiserver.crt`, or a member's `nodes/<host>/…`.
pub(super) fn certificate_names<'s>(
    path: &str,
    host: &str,
    facts: &StepFacts,
    sans: &'s Sans,
) -> Option<(&'s [String], String)> {
    let name = base_name(path);
    facts.placed_on(host).find_map(|p| {
        let from = p.from.as_deref().filter(|_| p.name == name)?;
        if from == "kube-apiserver.crt" {
            return Some((
                sans.server.as_slice(),
                "the kube-apiserver certificate".into(),
            ));
        }
        let owner = from.strip_prefix("nodes/")?.split('/').next()?;
        let owner = if owner == EACH_HOST { host } else { owner };
        sans.members
            .iter()
            .find(|(h, _)| h == owner)
            .map(|(_, names)| (names.as_slice(), format!("{owner}'s certificate")))
    })
}

/// `name-not-in-initial-cluster`.
pub(super) fn name_in_initial_cluster(etcd: &Etcd<'_>) -> Vec<Said> {
    let cluster = etcd.initial_cluster();
    let (Some(flag), false) = (etcd.flag("initial-cluster"), cluster.is_empty()) else {
        return Vec::new();
    };
    let (name, line) = match etcd.flag("name") {
        Some(Flag {
            value: Some(name),
            line,
            ..
        }) => (name.as_str(), *line),
        _ => ("default", flag.line),
    };
    if name.contains('$') || cluster.iter().any(|(n, _)| *n == name) {
        return Vec::new();
    }
    let names: Vec<&str> = cluster.iter().map(|(n, _)| *n).collect();
    vec![said(
        Rule::NameNotInInitialCluster,
        line,
        format!(
            "--name is `{name}`, which --initial-cluster does not name ({}): etcd exits with \
             `couldn't find local name \"{name}\" in the initial cluster configuration`",
            names.join(", ")
        ),
        format!(
            "give --name as --initial-cluster names this member (one of {}), or add \
             `{name}=<its peer URL>` to --initial-cluster",
            names.join(", ")
        ),
    )]
}

/// `advertised-not-listened`: every advertised URL is one etcd listens on (or a wildcard listen
/// URL on its port).
pub(super) fn advertised_listened(etcd: &Etcd<'_>) -> Vec<Said> {
    let loopback = |h: &str| h == "127.0.0.1" || h.eq_ignore_ascii_case("localhost");
    let same_host = |a: &str, b: &str| a.eq_ignore_ascii_case(b) || (loopback(a) && loopback(b));
    let mut out = Vec::new();
    for (advertise, listen) in [
        ("advertise-client-urls", "listen-client-urls"),
        ("initial-advertise-peer-urls", "listen-peer-urls"),
    ] {
        let listened = etcd.urls(listen);
        if etcd.flag(advertise).is_none() || listened.iter().any(|(u, _)| u.text.contains('$')) {
            continue;
        }
        for (url, line) in etcd.urls(advertise) {
            let served = listened.iter().any(|(l, _)| {
                l.scheme == url.scheme
                    && l.port == url.port
                    && (same_host(l.host, url.host) || ["0.0.0.0", "::", ""].contains(&l.host))
            });
            if served || url.text.contains('$') {
                continue;
            }
            out.push(said(
                Rule::AdvertisedNotListened,
                line,
                format!(
                    "--{advertise} {} is not among --{listen} ({}): whoever is told this URL \
                     cannot reach etcd there",
                    url.text,
                    listened
                        .iter()
                        .map(|(u, _)| u.text)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "add {} to --{listen} (or listen on {}://0.0.0.0:{}), or advertise a URL \
                     etcd listens on",
                    url.text, url.scheme, url.port
                ),
            ));
        }
    }
    out
}

/// `data-dir-not-created`: `--data-dir` is a directory the steps create on that node.
pub(super) fn data_dir(etcd: &Etcd<'_>, host: &str, facts: &StepFacts) -> Vec<Said> {
    let Some(flag) = etcd.flag("data-dir") else {
        return Vec::new();
    };
    let Some(dir) = flag.value.as_deref().filter(|d| !d.contains('$')) else {
        return Vec::new();
    };
    let dir = absolute(dir);
    let created: Vec<&str> = facts
        .dirs
        .iter()
        .filter(|(h, _)| on(h, host))
        .map(|(_, d)| d.as_str())
        .collect();
    if created.contains(&dir.as_str()) {
        return Vec::new();
    }
    vec![said(
        Rule::DataDirNotCreated,
        flag.line,
        format!(
            "--data-dir is {dir}, which no step creates on {host} (they create {}): etcd makes \
             it itself, without the steps' `chmod 700`, and the steps prepare a directory etcd \
             never uses",
            if created.is_empty() {
                "none".to_owned()
            } else {
                created.join(", ")
            }
        ),
        format!("create it in a step (`mkdir -p {dir} && chmod 700 {dir}`), or point --data-dir at the directory the steps create"),
    )]
}

/// `cert-copied-unused`: certificates and keys a step copies on a node (`cp`/`mv`) that neither
/// that node's unit nor any step's command names, one finding per command.
pub(super) fn unused_copies(
    units: &[Unit],
    facts: &StepFacts,
    members: &[MemberName],
) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for member in members {
        let mine: Vec<&Unit> = units.iter().filter(|u| u.host == member.host).collect();
        if mine.is_empty() {
            continue;
        }
        let unit_values: Vec<String> = mine
            .iter()
            .flat_map(|u| read_unit(&u.text).flags)
            .filter_map(|f| f.value)
            .collect();
        let named = |path: &str| {
            unit_values.iter().any(|v| v == path)
                || facts
                    .texts
                    .iter()
                    .any(|(h, text)| on(h, &member.host) && text.contains(path))
        };
        let unused: Vec<&Placement> = facts
            .placed_on(&member.host)
            .filter(|p| p.from.is_none())
            .filter(|p| [".crt", ".pem", ".key"].iter().any(|e| p.name.ends_with(e)))
            .filter(|p| !named(&format!("{}/{}", p.dir, p.name)))
            .collect();
        let mut commands: Vec<(&Path, usize, &str)> = unused
            .iter()
            .map(|p| (p.file.as_path(), p.line, p.dir.as_str()))
            .collect();
        commands.dedup();
        for (file, line, dir) in commands {
            let paths: Vec<String> = unused
                .iter()
                .filter(|p| p.line == line && p.file == file && p.dir == dir)
                .map(|p| format!("{dir}/{}", p.name))
                .collect();
            out.push(Finding {
                rule: Rule::CertCopiedUnused,
                file: file.to_owned(),
                line,
                host: member.host.clone(),
                what: format!(
                    "this copies {}, which neither etcd.service's TLS flags nor any step name: \
                     etcd runs without {}",
                    paths.join(", "),
                    if paths.len() == 1 { "it" } else { "them" }
                ),
                fix: "give the unit the TLS flags and https:// URLs the copy is for (as \
                      docker/units/etcd-tls.service), or drop the copy"
                    .into(),
                expected: false,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::facts::seed_facts;
    use super::*;
    use crate::pki;
    use std::path::PathBuf;

    const TLS_UNIT: &str = include_str!("../../../docker/units/etcd-tls.service");
    const HTTP_UNIT: &str = include_str!("../../../docker/units/etcd.service");

    fn server_sans(names: &[&str]) -> Sans {
        Sans {
            server: names.iter().map(|n| n.to_string()).collect(),
            members: vec![("server".into(), vec!["server".into()])],
        }
    }

    fn unit(text: &str) -> Unit {
        Unit {
            text: text.to_owned(),
            host: "server".into(),
            file: PathBuf::from("etcd.service"),
            lines: (1..=text.lines().count()).collect(),
            how: "",
        }
    }

    /// The rules found on `text` with the seed's steps and a PKI whose server names `sans`.
    fn rules_on(text: &str, sans: &[&str]) -> Vec<(Rule, usize)> {
        let mut notes = Vec::new();
        unit_findings(&unit(text), &seed_facts(), &server_sans(sans), &mut notes)
            .into_iter()
            .map(|f| (f.rule, f.line))
            .collect()
    }

    fn rules_of(text: &str) -> Vec<(Rule, usize)> {
        rules_on(text, &pki::KUBE_APISERVER_SANS)
    }

    /// The 1-based line of `text` holding `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn the_seeds_units_with_the_seeds_steps_have_no_finding() {
        assert_eq!(rules_of(TLS_UNIT), []);
        assert_eq!(rules_of(HTTP_UNIT), []);
    }

    #[test]
    fn a_key_after_a_trailing_backslash_is_swallowed_into_exec_start() {
        let text = TLS_UNIT.replace("--data-dir=/var/lib/etcd", "--data-dir=/var/lib/etcd \\");
        let line = text
            .lines()
            .position(|l| l == "Restart=on-failure")
            .unwrap()
            + 1;
        assert_eq!(rules_of(&text), [(Rule::ContinuationSwallowsKey, line)]);
    }

    #[test]
    fn a_misspelled_flag_is_a_typo_and_a_flag_far_from_any_is_not_guessed_at() {
        let typo = TLS_UNIT.replace("--client-cert-auth", "--client-cert-auht");
        assert_eq!(
            rules_of(&typo),
            [(Rule::FlagTypo, line_of(&typo, "--client-cert-auht"))]
        );
        let newer = TLS_UNIT.replace("--client-cert-auth", "--feature-gates=X=true");
        assert_eq!(rules_of(&newer), []);
        assert_eq!(edits("client-cert-auht", "client-cert-auth"), 2);
        assert_eq!(edits("", "abc"), 3);
    }

    #[test]
    fn tls_files_must_be_where_the_steps_copy_them() {
        let cases = [
            // (the unit's --cert-file, the rules found)
            ("/etc/etcd/kube-apiserver.crt", vec![]),
            ("/etc/etcd/kubernetes.crt", vec![Rule::CertFileNotCopied]),
            ("/root/kube-apiserver.crt", vec![]),
            ("/var/lib/kube-apiserver.crt", vec![Rule::CertFileNotCopied]),
        ];
        for (path, want) in cases {
            let text = TLS_UNIT.replace("/etc/etcd/kube-apiserver.crt", path);
            let got: Vec<Rule> = rules_of(&text).into_iter().map(|(r, _)| r).collect();
            assert_eq!(got, want, "{path}");
        }
        let mut notes = Vec::new();
        let text = TLS_UNIT.replace("/etc/etcd/kube-apiserver.crt", "/etc/etcd/kubernetes.crt");
        let found = unit_findings(&unit(&text), &seed_facts(), &server_sans(&[]), &mut notes);
        assert_eq!(found[0].line, line_of(&text, "--cert-file"));
        assert!(
            found[0].fix.contains("/etc/etcd/kube-apiserver.crt"),
            "{}",
            found[0].fix
        );
    }

    #[test]
    fn schemes_agree_with_the_tls_flags_for_clients_and_peers() {
        let no_cert = TLS_UNIT
            .replace("  --cert-file=/etc/etcd/kube-apiserver.crt \\\n", "")
            .replace("  --key-file=/etc/etcd/kube-apiserver.key \\\n", "");
        let cert_plain = TLS_UNIT.replace("https://", "http://");
        let peer_https = TLS_UNIT.replace("http://127.0.0.1:2380", "https://127.0.0.1:2380");
        let peer_cert = TLS_UNIT.replace(
            "--client-cert-auth",
            "--client-cert-auth --peer-cert-file=/etc/etcd/kube-apiserver.crt",
        );
        let cases = [
            (no_cert, vec![Rule::HttpsWithoutCert]),
            (cert_plain, vec![Rule::CertWithoutHttps]),
            (peer_https, vec![Rule::HttpsWithoutCert]),
            (peer_cert, vec![Rule::CertWithoutHttps]),
        ];
        for (text, want) in cases {
            let got: Vec<Rule> = rules_of(&text).into_iter().map(|(r, _)| r).collect();
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn https_hosts_must_be_names_of_the_certificate_served() {
        let found = rules_on(
            TLS_UNIT,
            &pki::server_sans(pki::ServerCert::NoLoopbackSan)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            found,
            [
                (Rule::UrlNotInSan, line_of(TLS_UNIT, "--listen-client-urls")),
                (
                    Rule::UrlNotInSan,
                    line_of(TLS_UNIT, "--advertise-client-urls")
                )
            ],
            "listen and advertise client URLs, both 127.0.0.1"
        );
        let wildcard = TLS_UNIT.replace(
            "--listen-client-urls https://127.0.0.1:2379",
            "--listen-client-urls https://0.0.0.0:2379",
        );
        assert_eq!(rules_on(&wildcard, &["127.0.0.1"]), []);
    }

    #[test]
    fn the_name_must_be_a_key_of_the_initial_cluster() {
        let renamed = TLS_UNIT.replace("--name controller", "--name controller-0");
        assert_eq!(
            rules_of(&renamed),
            [(Rule::NameNotInInitialCluster, line_of(TLS_UNIT, "--name"))]
        );
        let unnamed = TLS_UNIT.replace("  --name controller \\\n", "");
        assert_eq!(
            rules_of(&unnamed).len(),
            1,
            "etcd's default name, `default`"
        );
    }

    #[test]
    fn advertised_urls_must_be_listened_on() {
        let elsewhere = TLS_UNIT.replace(
            "--advertise-client-urls https://127.0.0.1:2379",
            "--advertise-client-urls https://10.240.0.10:2379",
        );
        assert_eq!(
            rules_of(&elsewhere),
            [(
                Rule::AdvertisedNotListened,
                line_of(TLS_UNIT, "--advertise-client-urls")
            )]
        );
        let wildcard = elsewhere.replace(
            "--listen-client-urls https://127.0.0.1:2379",
            "--listen-client-urls https://0.0.0.0:2379",
        );
        assert_eq!(rules_of(&wildcard), []);
        let localhost = TLS_UNIT.replace(
            "--advertise-client-urls https://127.0.0.1:2379",
            "--advertise-client-urls https://localhost:2379",
        );
        assert_eq!(rules_of(&localhost), []);
    }

    #[test]
    fn the_data_dir_must_be_one_the_steps_create() {
        let other = TLS_UNIT.replace("--data-dir=/var/lib/etcd", "--data-dir=/var/lib/etcd-data");
        assert_eq!(
            rules_of(&other),
            [(Rule::DataDirNotCreated, line_of(TLS_UNIT, "--data-dir"))]
        );
    }

    #[test]
    fn certificates_copied_for_a_plain_http_unit_are_a_warning_on_the_copy() {
        let facts = seed_facts();
        let members = [MemberName {
            host: "server".into(),
            address: String::new(),
        }];
        assert_eq!(unused_copies(&[unit(TLS_UNIT)], &facts, &members), []);
        let found = unused_copies(&[unit(HTTP_UNIT)], &facts, &members);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].rule, Rule::CertCopiedUnused);
        assert!(found[0].file.ends_with("scenarios/steps/seed.toml"));
        let seed = include_str!("../../../scenarios/steps/seed.toml");
        assert_eq!(found[0].line, line_of(seed, "  cp ca.crt"), "step 3's `cp`");
        assert!(
            found[0].what.contains(
                "/etc/etcd/ca.crt, /etc/etcd/kube-apiserver.key, /etc/etcd/kube-apiserver.crt"
            ),
            "{}",
            found[0].what
        );
    }
}
