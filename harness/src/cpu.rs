//! Busy CPU in core-seconds, as the kernel counts it: the whole machine's (`/proc/stat`), this
//! process's own (`/proc/self/stat`), and the container engine's daemons (dockerd and containerd, or
//! Podman's service, from `/proc/<pid>/stat` with their waited-for children).
//!
//! The bench samples before and after each phase; the difference is what the phase cost. The
//! machine's figure is everything (the nodes, every exec's runtime, the engine, the harness); what
//! is neither the harness nor the engine's daemons is the nodes' and their per-container runtime's
//! (the shims or conmon that relay each exec, runc). Those come and go with their containers, so
//! a sum over them would fall when one ends: they are left in the rest. Linux only; elsewhere a
//! sample is `None`.

use std::ops::Sub;
use std::time::Duration;

/// The kernel's unit in `/proc/stat` and `/proc/<pid>/stat`: USER_HZ, 100 on every Linux ABI.
const TICKS_PER_SECOND: u64 = 100;

/// The engine's long-lived daemons, by their command name (`/proc/<pid>/comm`).
const ENGINE_PROCESSES: [&str; 3] = ["dockerd", "containerd", "podman"];

/// Busy CPU so far, in core-seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// All cores, all processes: every tick that was not idle or waiting for I/O.
    pub machine: Duration,
    /// This process.
    pub harness: Duration,
    /// The engine's daemons.
    pub engine: Duration,
}

impl Usage {
    /// Now, or `None` where `/proc` cannot be read.
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let machine = machine_busy(&stat)?;
        let harness = process_busy(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        Some(Self {
            machine,
            harness,
            engine: engine_busy(),
        })
    }

    /// What is neither the harness's nor the engine daemons': the nodes and their runtimes.
    pub fn nodes_and_rest(&self) -> Duration {
        self.machine
            .saturating_sub(self.harness)
            .saturating_sub(self.engine)
    }
}

impl Sub for Usage {
    type Output = Usage;

    fn sub(self, earlier: Usage) -> Usage {
        Usage {
            machine: self.machine.saturating_sub(earlier.machine),
            harness: self.harness.saturating_sub(earlier.harness),
            engine: self.engine.saturating_sub(earlier.engine),
        }
    }
}

fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 1000 / TICKS_PER_SECOND)
}

/// The `cpu` line of `/proc/stat`: user, nice, system, idle, iowait, irq, softirq, steal, …; busy
/// is all but idle and iowait (guest time is already inside user).
fn machine_busy(stat: &str) -> Option<Duration> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let busy: u64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(ticks(busy))
}

/// utime + stime + cutime + cstime of one `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after its closing one.
fn process_busy(stat: &str) -> Option<Duration> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3; utime..cstime are fields 14..17.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let sum = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(ticks(sum))
}

/// The engine daemons' busy CPU.
fn engine_busy() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            ENGINE_PROCESSES.contains(&comm.trim()).then_some(())?;
            process_busy(&std::fs::read_to_string(e.path().join("stat")).ok()?)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_is_busy_in_all_but_idle_and_iowait() {
        let stat = "cpu  100 20 30 5000 70 1 2 3 0 0\ncpu0 50 10 15 2500 35 0 1 1 0 0\n";
        assert_eq!(machine_busy(stat), Some(Duration::from_millis(1560)));
        assert_eq!(machine_busy("intr 1 2 3\n"), None);
    }

    #[test]
    fn a_process_is_busy_in_its_own_and_its_waited_childrens_time_past_a_spaced_name() {
        let stat = "4242 (tokio (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 8 0";
        assert_eq!(process_busy(stat), Some(Duration::from_millis(3100)));
        assert_eq!(process_busy("4242 (short) S 1"), None);
    }

    #[test]
    fn this_process_and_the_machine_are_read_and_differences_never_go_below_zero() {
        let first = Usage::now().expect("/proc on Linux");
        let mut spin = 0u64;
        for i in 0..30_000_000u64 {
            spin = spin.wrapping_add(i ^ (spin >> 3));
        }
        std::hint::black_box(spin);
        let second = Usage::now().expect("/proc on Linux");
        let spent = second - first;
        assert!(spent.harness > Duration::ZERO, "{spent:?}");
        assert!(spent.machine >= spent.harness / 2, "{spent:?}");
        let backwards = first - second;
        assert_eq!(backwards.machine, Duration::ZERO);
        assert_eq!(backwards.harness, Duration::ZERO);
    }
}
