//! Who owns what a run leaves behind — containers, networks, host directories — identified well
//! enough that a later run can *prove* the owner dead before it removes anything.
//!
//! A pid alone proves nothing: pids are reused within minutes, and one engine may serve processes of
//! other hosts or pid namespaces (a CI fleet on one `DOCKER_HOST`, Docker-in-Docker) whose pids mean
//! nothing here. An [`Owner`] is a pid *namespace* (the kernel's boot id with the pid namespace's
//! inode: two hosts, two containers or two boots never share one), a pid in it, and that process's
//! start time (clock ticks since boot, `/proc/<pid>/stat` field 22), which tells a reused pid from
//! the process that took it first.
//!
//! This module only judges; the engine's sweep and the run directory remove.

use std::sync::OnceLock;

/// A process that owns resources: its pid namespace, pid and start time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `<boot id>:<pid namespace inode>`: equal only for processes that see the same pids.
    pub namespace: String,
    /// The process id in that namespace.
    pub pid: u32,
    /// The process's start time in clock ticks since boot.
    pub start: u64,
}

/// What a judge can say of an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The owning process still runs: its resources are in use.
    Alive,
    /// Provably gone (no such pid, or the pid now belongs to a process started later).
    Dead,
    /// Another host or pid namespace: the judge cannot see its processes, so never removes.
    Foreign,
}

impl Owner {
    /// This process.
    pub fn this_process() -> &'static Owner {
        static THIS: OnceLock<Owner> = OnceLock::new();
        THIS.get_or_init(|| Owner {
            namespace: namespace(),
            pid: std::process::id(),
            start: start_time(std::process::id()).unwrap_or_default(),
        })
    }

    /// How `judge`, a process of this host, sees this owner.
    pub fn verdict(&self, judge: &Owner) -> Verdict {
        if self.namespace != judge.namespace {
            return Verdict::Foreign;
        }
        match start_time(self.pid) {
            Some(start) if start == self.start => Verdict::Alive,
            // The pid exists but its process started at another time: the pid was reused.
            Some(_) | None => Verdict::Dead,
        }
    }

    /// The owner as one label value: `<namespace>/<pid>/<start>`.
    pub fn encode(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.pid, self.start)
    }

    /// Reads a value [`Owner::encode`] wrote; `None` for anything else.
    pub fn decode(value: &str) -> Option<Owner> {
        let mut parts = value.rsplitn(3, '/');
        let start = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let namespace = parts.next()?.to_owned();
        (!namespace.is_empty()).then_some(Owner {
            namespace,
            pid,
            start,
        })
    }
}

/// This process's pid namespace, told apart across hosts and boots.
fn namespace() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_owned())
        .unwrap_or_else(|_| "no-boot-id".to_owned());
    let pidns = std::fs::read_link("/proc/self/ns/pid")
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "pid:[unknown]".to_owned());
    format!("{boot}:{pidns}")
}

/// The start time of process `pid` in clock ticks since boot, if it exists.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Field 22 of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts with field 3 (the state), so field 22 is its 20th word.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_to_itself() {
        let me = Owner::this_process();
        assert!(me.start > 0, "{me:?}");
        assert_eq!(me.verdict(me), Verdict::Alive);
    }

    #[test]
    fn a_gone_pid_or_a_reused_one_is_dead_and_another_namespace_is_foreign() {
        let me = Owner::this_process();
        let gone = Owner {
            pid: u32::MAX,
            ..me.clone()
        };
        // pid 1 exists; an owner recorded with another start time had the pid before it.
        let pid1 = start_time(1).expect("pid 1 exists");
        let reused = Owner {
            pid: 1,
            start: pid1 + 1,
            ..me.clone()
        };
        let elsewhere = Owner {
            namespace: "another-host:pid:[4026531836]".into(),
            pid: 1,
            start: pid1,
        };
        assert_eq!(gone.verdict(me), Verdict::Dead);
        assert_eq!(reused.verdict(me), Verdict::Dead);
        assert_eq!(elsewhere.verdict(me), Verdict::Foreign);
    }

    #[test]
    fn an_owner_round_trips_through_its_label_value() {
        let me = Owner::this_process();
        assert_eq!(Owner::decode(&me.encode()).as_ref(), Some(me));
        assert_eq!(Owner::decode("1234"), None);
        assert_eq!(Owner::decode("/1/2"), None);
        assert_eq!(Owner::decode("ns/x/2"), None);
    }

    #[test]
    fn the_start_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat =
            "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1 2";
        assert_eq!(parse_start_time(stat), Some(98765));
    }
}
