//! Fixes for mistakes in the unit's configuration, made from etcd's and systemd's own words and
//! the unit as systemd loaded it: the flag, value, URL, user, file or section the words name, and
//! what the unit's other settings say it should be. Each is the command a reader would type on the
//! member; `None` where the words and the unit do not say what to change.

use crate::cause::Cause;
use crate::diagnose::{flag_values, Evidence};
use crate::settings::setting;

/// A command that rewrites the unit with sed's extended expressions and reloads it.
fn sed_unit(unit: &str, expressions: &[String]) -> String {
    let exprs: Vec<String> = expressions.iter().map(|e| format!("-e '{e}'")).collect();
    format!(
        "sed -i -E {} {unit} && systemctl daemon-reload",
        exprs.join(" ")
    )
}

/// [`sed_unit`], then etcd restarted on the unit as edited.
fn edit_unit(unit: &str, expressions: &[String]) -> String {
    format!("{} && systemctl restart etcd", sed_unit(unit, expressions))
}

/// `text` as an extended regular expression that matches it literally (the `#` delimiter too).
fn literal(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.[]*+?(){}|^$#".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// The expression that replaces `old` by `new` within the value of `--flag` only (`--flag v` or
/// `--flag=v`, a list or not).
fn in_flag(flag: &str, old: &str, new: &str) -> String {
    format!(
        "s#(--{flag}[ =]([^ ]*,)?){}#\\1{}#",
        literal(old),
        new.replace('#', "\\#")
    )
}

/// The text between the first `open` and the next `close` after it.
fn between<'a>(line: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let (_, rest) = line.split_once(open)?;
    rest.split_once(close).map(|(inside, _)| inside)
}

/// The fix for one of the configuration causes, from `evidence` and the lines that showed it;
/// `unit` is the unit file's path.
pub fn for_cause(
    cause: Cause,
    evidence: &Evidence,
    shown_by: &[String],
    unit: &str,
) -> Option<String> {
    let words = shown_by.join("\n");
    let unit_file = &evidence.unit_file;
    match cause {
        Cause::UrlNotIp => {
            let url = between(&words, "expected IP in URL for binding (", ")")?;
            let (scheme, rest) = url.split_once("://")?;
            let (host, port) = rest.rsplit_once(':')?;
            let ip = advertised_ip(unit_file, port)
                .or_else(|| (host == "localhost").then(|| "127.0.0.1".to_owned()))?;
            let flag = ["listen-client-urls", "listen-peer-urls"]
                .into_iter()
                .find(|f| flag_values(unit_file, f).iter().any(|v| v == url))?;
            Some(edit_unit(
                unit,
                &[in_flag(flag, url, &format!("{scheme}://{ip}:{port}"))],
            ))
        }
        Cause::AdvertiseClientUrlsMissing => {
            let listen = flag_values(unit_file, "listen-client-urls");
            let first = listen.first()?;
            let all = listen.join(",");
            let expr = format!(
                "s#(--listen-client-urls[ =]{})#\\1 --advertise-client-urls={}#",
                literal(&all),
                all.replace("0.0.0.0", "127.0.0.1")
            );
            first.contains("://").then(|| edit_unit(unit, &[expr]))
        }
        Cause::BadFlagValue | Cause::BadUrl => {
            let value = between(&words, "invalid value \"", "\"")?;
            let flag = between(&words, "\" for flag -", ":")?;
            let better = if flag.ends_with("-urls") && !value.contains("://") {
                let tls = if flag.contains("peer") {
                    "peer-cert-file"
                } else {
                    "cert-file"
                };
                let scheme = if flag_values(unit_file, tls).is_empty() {
                    "http"
                } else {
                    "https"
                };
                format!("{scheme}://{value}")
            } else if let Some(ms) = value
                .strip_suffix("ms")
                .filter(|n| n.parse::<u64>().is_ok())
            {
                ms.to_owned()
            } else {
                let secs: u64 = value.strip_suffix('s')?.parse().ok()?;
                (secs * 1000).to_string()
            };
            Some(edit_unit(unit, &[in_flag(flag, value, &better)]))
        }
        Cause::AdvertisePeerUrlMismatch => {
            let member = between(&words, "--initial-cluster has ", " but missing")?;
            let (_, url) = member.split_once('=')?;
            let advertised = between(&words, "--initial-advertise-peer-urls=", " ")?;
            Some(edit_unit(
                unit,
                &[in_flag("initial-advertise-peer-urls", advertised, url)],
            ))
        }
        Cause::ConflictingConfig => conflicting(&words, evidence, unit),
        Cause::OwnPortsOverlap => {
            let overlap = shown_by
                .iter()
                .find_map(|l| between(l, "unit: ", " is in both"))?;
            let (host, port) = overlap.rsplit_once(':')?;
            let free = [2380, 2381, 2382]
                .into_iter()
                .map(|p: u16| p.to_string())
                .find(|p| p != port && !unit_file.contains(&format!(":{p}")))?;
            let moved = format!("{host}:{free}");
            let exprs: Vec<String> = [
                "listen-peer-urls",
                "initial-advertise-peer-urls",
                "initial-cluster",
            ]
            .into_iter()
            .map(|flag| {
                format!(
                    "s#(--{flag}[ =]([^ ]*,)?([^ ,]*=)?[a-z]+://){}#\\1{moved}#",
                    literal(overlap)
                )
            })
            .collect();
            Some(edit_unit(unit, &exprs))
        }
        Cause::ClusterStateExistingNoPeers => Some(edit_unit(
            unit,
            &[in_flag("initial-cluster-state", "existing", "new")],
        )),
        Cause::UserMissing => {
            let user = setting(unit_file, "User=")?;
            let data = data_dir(unit_file);
            Some(format!(
                "useradd --system --no-create-home --home-dir {data} {user} && chown -R {user}: {data} && chown {user}: /etc/etcd/*.key && systemctl restart etcd"
            ))
        }
        Cause::EnvironmentFileMissing => {
            let file = setting(unit_file, "EnvironmentFile=")?;
            let file = file.trim_start_matches('-');
            Some(format!(
                "touch {file} && chmod 600 {file} && systemctl restart etcd"
            ))
        }
        Cause::WorkingDirectoryMissing => {
            let dir = setting(unit_file, "WorkingDirectory=")?;
            let owner = setting(unit_file, "User=")
                .map(|u| format!(" && chown {u}: {dir}"))
                .unwrap_or_default();
            Some(format!("mkdir -p {dir}{owner} && systemctl restart etcd"))
        }
        Cause::UnitBadSetting => {
            // systemd names the section when it loads the unit, before it refuses to start it.
            let section = between(&words, "Unknown section '", "'")
                .or_else(|| between(&evidence.journal, "Unknown section '", "'"))?;
            let right = ["Unit", "Service", "Install"]
                .into_iter()
                .min_by_key(|s| crate::lint::edits(s, section))?;
            let expr = format!("s#^\\[{}\\]#[{right}]#", literal(section));
            Some(edit_unit(unit, &[expr]))
        }
        Cause::DataDirInvalid => {
            let data = data_dir(unit_file);
            let not_a_directory = words.contains("not a directory")
                || evidence
                    .data_dir
                    .as_deref()
                    .is_some_and(|s| !s.starts_with("directory"));
            not_a_directory.then(|| {
                format!(
                    "rm -f {data} && mkdir -p {data} && chmod 700 {data} && systemctl restart etcd"
                )
            })
        }
        Cause::WalCorrupt => {
            // A single member's log is its only copy: its backend (member/snap/db) still holds what
            // was applied, so the member is restored from it as a snapshot (its hash unchecked: a
            // copied db has none), with the identity the unit gives it, and the corrupt directory
            // kept beside it.
            let one = |f: &str| flag_values(unit_file, f).first().cloned();
            let members = flag_values(unit_file, "initial-cluster");
            let (data, name, peer) = (
                data_dir(unit_file),
                one("name")?,
                one("initial-advertise-peer-urls")?,
            );
            let token = one("initial-cluster-token")
                .unwrap_or_else(|| crate::topology::TUTORIAL_TOKEN.to_owned());
            (members.len() == 1).then(|| {
                format!(
                    "systemctl stop etcd && mv {data} {data}.corrupt && ETCDCTL_API=3 etcdctl snapshot restore {data}.corrupt/member/snap/db --skip-hash-check --name {name} --initial-cluster {} --initial-cluster-token {token} --initial-advertise-peer-urls {peer} --data-dir {data} && chmod 700 {data} && systemctl start etcd",
                    members.join(",")
                )
            })
        }
        Cause::StartTimeout => waited_for(evidence, unit),
        _ => None,
    }
}

/// The fix for settings that exclude each other: an environment variable a flag shadows (the
/// variable's `Environment=` line goes, or its line in the `EnvironmentFile=`), or an election
/// timeout under five heartbeats (set to ten, etcd's own default ratio).
fn conflicting(words: &str, evidence: &Evidence, unit: &str) -> Option<String> {
    let unit_file = &evidence.unit_file;
    if words.contains("shadowed by corresponding command-line flag") {
        let var = between(words, "conflicting environment variable \"", "\"")
            .or_else(|| between(words, "environment-variable ", ")"))?;
        let in_unit = unit_file
            .lines()
            .any(|l| l.trim_start().starts_with("Environment=") && l.contains(&format!("{var}=")));
        return Some(if in_unit {
            edit_unit(unit, &[format!("/^Environment=.*{var}=/d")])
        } else {
            let file = setting(unit_file, "EnvironmentFile=")?;
            format!(
                "sed -i '/^{var}=/d' {} && systemctl restart etcd",
                file.trim_start_matches('-')
            )
        });
    }
    let heartbeat: u64 = between(words, "--heartbeat-interval[", "ms]")?
        .parse()
        .ok()?;
    let election = between(words, "--election-timeout[", "ms]")?;
    let set = flag_values(unit_file, "election-timeout");
    let old = set.first().map_or(election, String::as_str);
    Some(edit_unit(
        unit,
        &[in_flag(
            "election-timeout",
            old,
            &(heartbeat * 10).to_string(),
        )],
    ))
}

/// The unit's data directory.
fn data_dir(unit_file: &str) -> String {
    flag_values(unit_file, "data-dir")
        .first()
        .cloned()
        .unwrap_or_else(|| "/var/lib/etcd".into())
}

/// A start that timed out waiting for members of `--initial-cluster` whose peer URLs etcd could
/// not dial (`dial tcp 127.0.0.2:2380: connect: connection refused`): of a single member, those
/// members are taken out of `--initial-cluster`, and the data directory, which already records
/// them as voters of a cluster that never formed, is set aside. A cluster's member needs its peers
/// started instead (the cluster's advice).
fn waited_for(evidence: &Evidence, unit: &str) -> Option<String> {
    let unit_file = &evidence.unit_file;
    let own = flag_values(unit_file, "name").first().cloned()?;
    let dialled: Vec<&str> = evidence
        .journal
        .lines()
        .filter_map(|l| between(l, "dial tcp ", ": connect"))
        .collect();
    let absent: Vec<String> = flag_values(unit_file, "initial-cluster")
        .into_iter()
        .filter(|m| {
            let (name, url) = m.split_once('=').unwrap_or((m, ""));
            name != own && dialled.iter().any(|a| url.ends_with(&format!("://{a}")))
        })
        .collect();
    if absent.is_empty() || evidence.host.is_empty() {
        return None;
    }
    let mut exprs = Vec::new();
    for member in &absent {
        exprs.push(format!(
            "s#(--initial-cluster[ =]){},#\\1#",
            literal(member)
        ));
        exprs.push(format!("s#,{}##", literal(member)));
    }
    let data = data_dir(unit_file);
    let edit = sed_unit(unit, &exprs);
    Some(format!(
        "{edit} && systemctl stop etcd && mv {data}/member {data}.unformed-member && systemctl start etcd"
    ))
}

/// The IP of the advertised URL (client or peer) on `port`, where the unit gives one.
fn advertised_ip(unit_file: &str, port: &str) -> Option<String> {
    ["advertise-client-urls", "initial-advertise-peer-urls"]
        .into_iter()
        .flat_map(|f| flag_values(unit_file, f))
        .find_map(|url| {
            let (_, rest) = url.split_once("://")?;
            let (host, p) = rest.trim_end_matches('/').rsplit_once(':')?;
            (p == port && host.parse::<std::net::IpAddr>().is_ok()).then(|| host.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS_UNIT: &str = include_str!("../../docker/units/etcd-tls.service");
    const UNIT: &str = "/etc/systemd/system/etcd.service";

    fn fix(cause: Cause, unit_file: &str, line: &str) -> Option<String> {
        let evidence = Evidence {
            unit_file: unit_file.to_owned(),
            ..Evidence::default()
        };
        for_cause(cause, &evidence, &[line.to_owned()], UNIT)
    }

    /// Each fix applied to the unit's text by the sed it prints: the words' mistake is undone.
    fn sed(unit_file: &str, command: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.service");
        std::fs::write(&path, unit_file).unwrap();
        let sed = command
            .split(" && ")
            .next()
            .unwrap()
            .replace(UNIT, &path.display().to_string());
        let status = std::process::Command::new("bash")
            .arg("-c")
            .arg(&sed)
            .status()
            .unwrap();
        assert!(status.success(), "{sed}");
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn a_host_name_in_a_listen_url_becomes_the_ip_the_unit_advertises() {
        let unit = TLS_UNIT.replace(
            "--listen-client-urls https://127.0.0.1:2379",
            "--listen-client-urls https://server:2379",
        );
        let line = "error verifying flags, expected IP in URL for binding (https://server:2379). See 'etcd --help'.";
        let command = fix(Cause::UrlNotIp, &unit, line).unwrap();
        assert_eq!(sed(&unit, &command), TLS_UNIT);
    }

    #[test]
    fn a_missing_advertise_url_is_the_listen_url() {
        let unit = TLS_UNIT.replace("  --advertise-client-urls https://127.0.0.1:2379 \\\n", "");
        let line = "failed to verify flags: --advertise-client-urls is required when --listen-client-urls is set explicitly";
        let fixed = sed(
            &unit,
            &fix(Cause::AdvertiseClientUrlsMissing, &unit, line).unwrap(),
        );
        assert_eq!(
            flag_values(&fixed, "advertise-client-urls"),
            ["https://127.0.0.1:2379"]
        );
    }

    #[test]
    fn a_value_written_another_way_is_written_as_etcd_parses_it() {
        for (from, to, line) in [
            (
                "--heartbeat-interval=100ms",
                "--heartbeat-interval=100",
                r#"invalid value "100ms" for flag -heartbeat-interval: parse error"#,
            ),
            (
                "--listen-peer-urls http://127.0.0.1:2380",
                "--listen-peer-urls 127.0.0.1:2380",
                r#"invalid value "127.0.0.1:2380" for flag -listen-peer-urls: parse "127.0.0.1:2380": first path segment in URL cannot contain colon"#,
            ),
        ] {
            let broken = if from.contains("heartbeat") {
                TLS_UNIT.replace("--client-cert-auth", &format!("--client-cert-auth {from}"))
            } else {
                TLS_UNIT.replace(from, to)
            };
            let fixed = sed(&broken, &fix(Cause::BadFlagValue, &broken, line).unwrap());
            if from.contains("heartbeat") {
                assert!(
                    fixed.contains("--client-cert-auth --heartbeat-interval=100 "),
                    "{fixed}"
                );
            } else {
                assert_eq!(fixed, TLS_UNIT);
            }
        }
    }

    #[test]
    fn an_advertised_peer_url_becomes_the_members_url_in_the_initial_cluster() {
        let unit = TLS_UNIT.replace(
            "--initial-advertise-peer-urls http://127.0.0.1:2380",
            "--initial-advertise-peer-urls http://127.0.0.1:2381",
        );
        let line = r#"--initial-cluster has controller=http://127.0.0.1:2380 but missing from --initial-advertise-peer-urls=http://127.0.0.1:2381 (resolved urls: "http://127.0.0.1:2381" != "http://127.0.0.1:2380")"#;
        assert_eq!(
            sed(
                &unit,
                &fix(Cause::AdvertisePeerUrlMismatch, &unit, line).unwrap()
            ),
            TLS_UNIT
        );
    }

    #[test]
    fn conflicting_settings_lose_the_shadowed_variable_or_get_ten_heartbeats() {
        let unit = TLS_UNIT.replace(
            "[Service]\n",
            "[Service]\nEnvironment=ETCD_NAME=controller\n",
        );
        let line = "conflicting environment variable is shadowed by corresponding command-line flag (either unset environment variable or disable flag)) (environment-variable ETCD_NAME)";
        assert_eq!(
            sed(&unit, &fix(Cause::ConflictingConfig, &unit, line).unwrap()),
            TLS_UNIT
        );
        let unit = TLS_UNIT.replace(
            "--client-cert-auth",
            "--client-cert-auth --heartbeat-interval=500 --election-timeout=1000",
        );
        let line = "failed to verify flags: --election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[500ms]";
        let fixed = sed(&unit, &fix(Cause::ConflictingConfig, &unit, line).unwrap());
        assert!(fixed.contains("--election-timeout=5000"), "{fixed}");
    }

    #[test]
    fn overlapping_ports_move_the_peer_urls_only() {
        let unit = TLS_UNIT
            .replace("http://127.0.0.1:2380", "http://127.0.0.1:2379")
            .replace("https://127.0.0.1:2379", "http://127.0.0.1:2379");
        let line = "unit: 127.0.0.1:2379 is in both --listen-client-urls and --listen-peer-urls";
        let fixed = sed(&unit, &fix(Cause::OwnPortsOverlap, &unit, line).unwrap());
        assert_eq!(
            flag_values(&fixed, "listen-peer-urls"),
            ["http://127.0.0.1:2380"]
        );
        assert_eq!(
            flag_values(&fixed, "initial-advertise-peer-urls"),
            ["http://127.0.0.1:2380"]
        );
        assert_eq!(
            flag_values(&fixed, "initial-cluster"),
            ["controller=http://127.0.0.1:2380"]
        );
        assert_eq!(
            flag_values(&fixed, "listen-client-urls"),
            ["http://127.0.0.1:2379"]
        );
    }

    #[test]
    fn systemds_settings_name_the_user_file_directory_and_section() {
        let unit = TLS_UNIT.replace("[Service]\n", "[Servcie]\nUser=etcd\nEnvironmentFile=/etc/etcd/etcd.env\nWorkingDirectory=/var/lib/etcd-data\n");
        assert!(fix(Cause::UserMissing, &unit, "")
            .unwrap()
            .starts_with("useradd --system --no-create-home --home-dir /var/lib/etcd etcd && "));
        assert_eq!(
            fix(Cause::EnvironmentFileMissing, &unit, "").unwrap(),
            "touch /etc/etcd/etcd.env && chmod 600 /etc/etcd/etcd.env && systemctl restart etcd"
        );
        assert_eq!(fix(Cause::WorkingDirectoryMissing, &unit, "").unwrap(), "mkdir -p /var/lib/etcd-data && chown etcd: /var/lib/etcd-data && systemctl restart etcd");
        let fixed = sed(
            &unit,
            &fix(
                Cause::UnitBadSetting,
                &unit,
                "/etc/systemd/system/etcd.service:5: Unknown section 'Servcie'. Ignoring.",
            )
            .unwrap(),
        );
        assert!(fixed.contains("\n[Service]\n"), "{fixed}");
    }
}
