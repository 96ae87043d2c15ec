//! A node has the least privilege systemd needs. From inside it — where a scenario's commands and a
//! reader's etcd binaries run as root — no cgroup hierarchy's `release_agent` is writable, another
//! container's cgroups cannot be seen, PID 1 sits at the root of its own cgroup namespace (no host
//! path shows), no process holds CAP_SYS_ADMIN or can gain privileges, and nothing can be mounted.
//! On cgroup v1 and v2 alike (CI runs it in its cgroup v2 VM too).

use std::time::Duration;

use etcd_harness::node::{Node, NodeSpec};
use etcd_harness::runner::Harness;

/// CAP_SYS_ADMIN's bit in a capability set.
const CAP_SYS_ADMIN: u32 = 21;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_inside_a_node_the_host_and_other_containers_are_out_of_reach() {
    let harness = Harness::prepare(&mut |_| {})
        .await
        .expect("a Docker engine and the node image");
    let spec = NodeSpec::server(&harness.image);
    let (node, other) = tokio::try_join!(
        Node::start(&harness.engine, &harness.labels, &spec),
        Node::start(&harness.engine, &harness.labels, &spec),
    )
    .expect("two nodes boot");
    let probe = format!(
        r#"
for f in $(find /sys/fs/cgroup -name release_agent 2>/dev/null); do
  if test -w "$f"; then echo "writable: $f"; fi
done
find /sys/fs/cgroup -path '*{other}*' 2>/dev/null | sed 's/^/visible: /'
# The cgroup namespace is the node's own: PID 1 sits at its root (`/`, or systemd's `/init.scope`)
# in every hierarchy (v1's each, v2's one), never under the host's docker or system.slice path.
grep -vE '^[0-9]+:[^:]*:/(init\.scope)?$' /proc/1/cgroup | sed 's/^/host path: /'
for p in 1 self; do echo "$p $(grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/$p/status | tr -s '\t\n' '  ')"; done
mkdir -p /tmp/probe-mount && mount -t tmpfs probe /tmp/probe-mount 2>/dev/null && echo "mounted: tmpfs"
true
"#,
        other = other.id()
    );
    let out = node
        .shell(&probe, Duration::from_secs(30))
        .await
        .expect("the probe runs");
    assert_eq!(out.exit_code, 0, "{}{}", out.stdout, out.stderr);
    let report = out.stdout;
    for finding in ["writable:", "visible:", "mounted:", "host path:"] {
        assert!(!report.contains(finding), "{report}");
    }
    // PID 1 (systemd) and a command run as the steps run, each: no CAP_SYS_ADMIN, now or ever.
    let processes: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("1 ") || l.starts_with("self "))
        .collect();
    assert_eq!(processes.len(), 2, "{report}");
    for line in processes {
        let field = |name: &str| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == format!("{name}:"));
            words.next().unwrap_or_default().to_owned()
        };
        for set in ["CapEff", "CapBnd"] {
            let bits = u64::from_str_radix(&field(set), 16).expect(line);
            assert_eq!(
                bits >> CAP_SYS_ADMIN & 1,
                0,
                "{set} holds CAP_SYS_ADMIN: {line}"
            );
        }
        assert_eq!(field("NoNewPrivs"), "1", "{line}");
    }
}
