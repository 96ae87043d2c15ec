//! The causes a diagnosis can name: one vocabulary, each cause with its name (as scenario files and
//! the harvested message tables spell it), a one-line explanation, and its kind — a specific
//! cause, a generic one that quotes a reason nobody wrote down, or a symptom (never the final word
//! when any evidence holds a reason). Imports nothing of the harness but the name table.

use std::fmt;

use crate::names::{by_name, Named};

/// What kind of answer a cause is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A reason, named: what to change follows from it.
    Specific,
    /// A reason etcd or systemd stated that no table entry knows: the diagnosis quotes it whole.
    Generic,
    /// What the operator sees (nothing listens, nothing explains): the final word only when no
    /// evidence holds a reason.
    Symptom,
}

/// A named cause of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// The unit file was never installed where systemd looks.
    UnitMissing,
    /// systemd could not execute etcd (missing, not executable, another architecture).
    ExecFailed,
    /// `ExecStart` passes a flag etcd does not know.
    BadFlag,
    /// A flag's value does not parse (a boolean, number, duration or choice).
    BadFlagValue,
    /// A URL flag's value is no valid URL (scheme, path, `host:port` form).
    BadUrl,
    /// A listen URL names a host name where etcd binds only IP addresses.
    UrlNotIp,
    /// `--listen-client-urls` is set without `--advertise-client-urls`.
    AdvertiseClientUrlsMissing,
    /// `--initial-advertise-peer-urls` disagrees with the member's URLs in `--initial-cluster`.
    AdvertisePeerUrlMismatch,
    /// `--initial-cluster` is malformed or disagrees with the cluster etcd finds.
    InitialClusterInvalid,
    /// Settings that exclude each other (a flag and its environment variable, timeouts that
    /// contradict, a config file and flags).
    ConflictingConfig,
    /// The unit's own URLs ask etcd to bind one address twice.
    OwnPortsOverlap,
    /// Another process holds etcd's port.
    PortInUse,
    /// A listen URL names an IP address this machine does not have.
    ListenAddressNotLocal,
    /// The key file does not belong to the certificate.
    KeyMismatch,
    /// A certificate, key or CA file is present but unusable, or the TLS flags are incomplete.
    TlsConfigInvalid,
    /// etcd may not read a file or directory it needs.
    PermissionDenied,
    /// The unit names a certificate or key file that does not exist.
    CertPath,
    /// The data directory cannot be created, accessed or written, or holds what etcd refuses.
    DataDirInvalid,
    /// Another process holds the data directory's lock.
    DataDirLocked,
    /// The write-ahead log is corrupt.
    WalCorrupt,
    /// The backend database or a snapshot file is unreadable or corrupt.
    BackendCorrupt,
    /// The unit file changed on disk and systemd still runs the old definition.
    StaleUnit,
    /// `--initial-cluster-state existing`, and no member of the cluster answers.
    ClusterStateExistingNoPeers,
    /// The member was bootstrapped before; its data directory is gone but the cluster knows it.
    MemberAlreadyBootstrapped,
    /// The member was removed from the cluster and starts with its old data.
    MemberRemoved,
    /// Members of different clusters (another token or cluster ID) talk to each other.
    ClusterIdMismatch,
    /// The members do not know this member's ID (never added, or removed and added anew).
    MemberUnknown,
    /// The member's data was wiped or restored from an older copy while the cluster kept it.
    MemberDataLost,
    /// Discovery failed.
    DiscoveryFailed,
    /// etcd refuses to run on this platform without `ETCD_UNSUPPORTED_ARCH`.
    UnsupportedPlatform,
    /// A cluster or storage version this etcd cannot work with (other than a downgrade).
    VersionIncompatible,
    /// The backend's quota is exhausted (`mvcc: database space exceeded`).
    SpaceExceeded,
    /// The client presented no certificate to a server that requires one.
    TlsNoClientCert,
    /// The client's certificate is signed by a CA etcd does not trust.
    TlsUnknownCa,
    /// The client spoke plain http to etcd's TLS client port.
    TlsPlainHttp,
    /// The client rejected the server's certificate because it lacks the name the client dialled.
    SanMismatch,
    /// The client rejected the server's certificate because it has expired.
    CertExpired,
    /// The client rejected the server's certificate: it does not trust the CA that signed it.
    TlsUntrustedServer,
    /// The client spoke TLS (an `https://` endpoint) to a server that serves plain http.
    PlainHttpServer,
    /// etcd is not running: nothing listens on its port (connection refused).
    NotRunning,
    /// An older etcd refused a data directory a newer one has written (a downgrade).
    DowngradeRefused,
    /// A cluster member cannot reach enough of its peers to form a majority.
    QuorumLost,
    /// The member's `--name` is not a key of `--initial-cluster`.
    NameNotInInitialCluster,
    /// Members refuse a member's certificate: another CA signed it.
    PeerUnknownCa,
    /// A member's certificate lacks the address its peers dial.
    PeerSanMismatch,
    /// A member's certificate lacks the clientAuth usage members need as each other's clients.
    PeerNoClientAuth,
    /// The other members refuse this member's certificate (their journals say why).
    PeerCertRejected,
    /// A member cannot connect to a peer's URL.
    PeerUnreachable,
    /// The unit's `User=` or `Group=` names an account the machine does not have.
    UserMissing,
    /// The unit's `WorkingDirectory=` does not exist.
    WorkingDirectoryMissing,
    /// The unit's `EnvironmentFile=` does not exist.
    EnvironmentFileMissing,
    /// systemd refuses to load the unit file (a bad or missing setting).
    UnitBadSetting,
    /// The unit is masked (linked to /dev/null).
    UnitMasked,
    /// A unit etcd.service requires failed.
    DependencyFailed,
    /// etcd did not stop within `TimeoutStopSec=`.
    StopTimeout,
    /// systemd ignored a line of the unit file: not a failure by itself.
    UnitSettingIgnored,
    /// A step of systemd's set-up before etcd runs failed (a limit, a namespace, a capability).
    UnitSetupFailed,
    /// The start did not finish within `TimeoutStartSec=`.
    StartTimeout,
    /// systemd gave up restarting the unit (`StartLimitBurst=` within `StartLimitIntervalSec=`).
    StartLimitHit,
    /// etcd was killed by a signal.
    KilledBySignal,
    /// The kernel's OOM killer ended etcd.
    OomKilled,
    /// etcd missed systemd's watchdog.
    Watchdog,
    /// etcd broke the start-up protocol of the unit's `Type=`.
    Protocol,
    /// etcd exited and said why, in words no table entry knows (quoted whole).
    EtcdRefusedToStart,
    /// systemd says the unit failed, in words no table entry knows (quoted whole).
    UnitFailedToStart,
    /// The evidence matches no known cause.
    Unknown,
}

by_name!(Cause {
    "unit-missing" => UnitMissing,
    "exec-failed" => ExecFailed,
    "bad-flag" => BadFlag,
    "bad-flag-value" => BadFlagValue,
    "bad-url" => BadUrl,
    "url-not-ip" => UrlNotIp,
    "advertise-client-urls-missing" => AdvertiseClientUrlsMissing,
    "advertise-peer-url-mismatch" => AdvertisePeerUrlMismatch,
    "initial-cluster-invalid" => InitialClusterInvalid,
    "conflicting-config" => ConflictingConfig,
    "own-ports-overlap" => OwnPortsOverlap,
    "port-in-use" => PortInUse,
    "listen-address-not-local" => ListenAddressNotLocal,
    "key-mismatch" => KeyMismatch,
    "tls-config-invalid" => TlsConfigInvalid,
    "permission-denied" => PermissionDenied,
    "cert-path" => CertPath,
    "data-dir-invalid" => DataDirInvalid,
    "data-dir-locked" => DataDirLocked,
    "wal-corrupt" => WalCorrupt,
    "backend-corrupt" => BackendCorrupt,
    "stale-unit" => StaleUnit,
    "cluster-state-existing-no-peers" => ClusterStateExistingNoPeers,
    "member-already-bootstrapped" => MemberAlreadyBootstrapped,
    "member-removed" => MemberRemoved,
    "cluster-id-mismatch" => ClusterIdMismatch,
    "member-unknown" => MemberUnknown,
    "member-data-lost" => MemberDataLost,
    "discovery-failed" => DiscoveryFailed,
    "unsupported-platform" => UnsupportedPlatform,
    "version-incompatible" => VersionIncompatible,
    "space-exceeded" => SpaceExceeded,
    "tls-no-client-cert" => TlsNoClientCert,
    "tls-unknown-ca" => TlsUnknownCa,
    "tls-plain-http" => TlsPlainHttp,
    "san-mismatch" => SanMismatch,
    "cert-expired" => CertExpired,
    "tls-untrusted-server" => TlsUntrustedServer,
    "plain-http-server" => PlainHttpServer,
    "not-running" => NotRunning,
    "downgrade-refused" => DowngradeRefused,
    "quorum-lost" => QuorumLost,
    "name-not-in-initial-cluster" => NameNotInInitialCluster,
    "peer-tls-unknown-ca" => PeerUnknownCa,
    "peer-san-mismatch" => PeerSanMismatch,
    "peer-no-client-auth" => PeerNoClientAuth,
    "peer-cert-rejected" => PeerCertRejected,
    "peer-unreachable" => PeerUnreachable,
    "user-missing" => UserMissing,
    "working-directory-missing" => WorkingDirectoryMissing,
    "environment-file-missing" => EnvironmentFileMissing,
    "unit-bad-setting" => UnitBadSetting,
    "unit-masked" => UnitMasked,
    "dependency-failed" => DependencyFailed,
    "stop-timeout" => StopTimeout,
    "unit-setting-ignored" => UnitSettingIgnored,
    "unit-setup-failed" => UnitSetupFailed,
    "start-timeout" => StartTimeout,
    "start-limit-hit" => StartLimitHit,
    "killed-by-signal" => KilledBySignal,
    "oom-killed" => OomKilled,
    "watchdog" => Watchdog,
    "protocol" => Protocol,
    "etcd-refused-to-start" => EtcdRefusedToStart,
    "unit-failed-to-start" => UnitFailedToStart,
    "unknown" => Unknown,
});

impl Cause {
    /// Every cause, in the vocabulary's order.
    pub fn all() -> impl Iterator<Item = Self> {
        <Self as Named>::NAMES.iter().map(|(_, cause)| *cause)
    }

    /// The cause's name, as scenario files spell it.
    pub fn name(self) -> &'static str {
        <Self as Named>::name(self)
    }

    /// The cause named `name`, if the vocabulary has it.
    pub fn from_name(name: &str) -> Option<Self> {
        <Self as Named>::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, cause)| *cause)
    }

    /// What kind of answer it is.
    pub fn kind(self) -> Kind {
        match self {
            Self::NotRunning | Self::Unknown | Self::UnitSettingIgnored => Kind::Symptom,
            Self::EtcdRefusedToStart | Self::UnitFailedToStart => Kind::Generic,
            _ => Kind::Specific,
        }
    }

    /// How far a cause explains a cluster's failure: a member that cannot start, or whose
    /// certificate its peers refuse, explains why others cannot reach it or lost their quorum; a
    /// stopped member explains why its peers cannot reach it; a lost quorum says what that costs
    /// and which members to start.
    pub fn weight(self) -> u8 {
        match self {
            Self::Unknown | Self::UnitSettingIgnored => 0,
            Self::PeerUnreachable => 1,
            Self::NotRunning => 2,
            Self::QuorumLost | Self::PeerCertRejected => 3,
            _ => 4,
        }
    }

    /// What happened, in one line.
    pub fn explanation(self) -> &'static str {
        match self {
            Self::UnitMissing => "systemd has no etcd.service: step 4 (mv etcd.service /etc/systemd/system/) did not happen",
            Self::ExecFailed => "systemd could not execute /usr/local/bin/etcd (status 203/EXEC): it is missing, not executable, or built for another architecture",
            Self::BadFlag => "etcd refused a flag in the unit's ExecStart that it does not define (a typo), and exited",
            Self::BadFlagValue => "etcd could not parse a flag's value (a number, duration, boolean or choice written another way), and exited",
            Self::BadUrl => "a URL flag of the unit's ExecStart is no URL etcd accepts (it needs scheme://IP:port, no path), so etcd exited",
            Self::UrlNotIp => "a listen URL names a host name, but etcd binds only IP addresses, so it exited",
            Self::AdvertiseClientUrlsMissing => "the unit sets --listen-client-urls but no --advertise-client-urls, which etcd then requires, so it exited",
            Self::AdvertisePeerUrlMismatch => "--initial-advertise-peer-urls does not match this member's URL in --initial-cluster, so etcd cannot find itself and exited",
            Self::InitialClusterInvalid => "--initial-cluster is malformed or disagrees with the cluster etcd finds, so it exited",
            Self::ConflictingConfig => "the unit gives etcd settings that contradict each other, so etcd refused them and exited",
            Self::OwnPortsOverlap => "the unit's own URLs ask etcd to listen on one address twice (peer and client on one port): etcd holds the first and cannot bind the second, though no other process holds it",
            Self::PortInUse => "another process already listens on etcd's port, so etcd cannot bind it and exits; systemd restarts it every RestartSec",
            Self::ListenAddressNotLocal => "a listen URL names an IP address this machine does not have, so etcd cannot bind it and exits",
            Self::KeyMismatch => "kube-apiserver.key does not hold the private key of kube-apiserver.crt, so etcd cannot load its TLS identity",
            Self::TlsConfigInvalid => "a certificate, key or CA file is there but etcd cannot use it, or the TLS flags are incomplete, so it exited",
            Self::PermissionDenied => "etcd's user may not read a certificate, key or its data directory",
            Self::CertPath => "the unit points etcd at a certificate or key path that does not exist",
            Self::DataDirInvalid => "etcd cannot create, open or write its --data-dir (it is not a directory, or not its user's), so it exited",
            Self::DataDirLocked => "another process holds the data directory's lock (a second etcd on the same --data-dir), so etcd waits or exits",
            Self::WalCorrupt => "etcd's write-ahead log in the data directory is corrupt, so etcd refuses to start on it",
            Self::BackendCorrupt => "etcd's database or a snapshot file in the data directory is unreadable or corrupt, so etcd refuses to start on it",
            Self::StaleUnit => "etcd.service changed on disk but systemd still runs the definition it loaded before",
            Self::ClusterStateExistingNoPeers => "--initial-cluster-state existing tells etcd to join a running cluster, but no member of --initial-cluster answers, so it exited (a first member needs `new`)",
            Self::MemberAlreadyBootstrapped => "the cluster already knows this member, whose data directory is gone: it must be removed and added anew, or start on its old data",
            Self::MemberRemoved => "this member was removed from the cluster and starts on its old data: the cluster refuses it",
            Self::ClusterIdMismatch => "members of different clusters (another --initial-cluster-token or data directory) talk to each other and refuse each other",
            Self::MemberUnknown => "the members do not know this member's ID: it was never added with etcdctl member add (or was removed and added anew), so they refuse it",
            Self::MemberDataLost => "the member's data directory was wiped, replaced or restored from an older copy while the cluster kept it as a member, so its log is shorter than the cluster remembers",
            Self::DiscoveryFailed => "etcd's discovery of its cluster failed, so it exited",
            Self::UnsupportedPlatform => "etcd refuses to run on this platform unless ETCD_UNSUPPORTED_ARCH is set",
            Self::VersionIncompatible => "the cluster's or the data's version is one this etcd cannot work with",
            Self::SpaceExceeded => "etcd's backend reached its quota (--quota-backend-bytes): it raised the NOSPACE alarm and refuses writes until compacted, defragmented and disarmed",
            Self::TlsNoClientCert => "etcd requires client certificates (--client-cert-auth) and the client presented none; etcdctl only reports a timeout",
            Self::TlsUnknownCa => "the client's certificate is signed by a CA that etcd's --trusted-ca-file does not hold",
            Self::TlsPlainHttp => "etcd serves clients over TLS and the client connected without TLS; etcd's journal logs the rejected handshake, etcdctl only times out",
            Self::SanMismatch => "the server certificate lacks the name or address the client dialled (127.0.0.1/localhost), so the client rejects it",
            Self::CertExpired => "the server certificate has expired, so the client rejects it",
            Self::TlsUntrustedServer => "the client cannot verify etcd's certificate: it was not given the CA that signed it (--cacert)",
            Self::PlainHttpServer => "the client dialled an https:// endpoint, but the unit serves clients over plain http, so no TLS handshake can complete",
            Self::NotRunning => "etcd is not running, so nothing listens on 127.0.0.1:2379 and connections are refused",
            Self::DowngradeRefused => "the data directory was written by a newer etcd minor version, and etcd refuses to run an older one on it (no in-place downgrade), so it exits; systemd restarts it every RestartSec",
            Self::QuorumLost => "this member runs, but cannot reach a majority of the cluster's members, so nothing can be committed: writes and linearizable reads time out (serializable reads are still served)",
            Self::NameNotInInitialCluster => "etcd's --name is not one of the names in --initial-cluster, so it cannot find itself in the cluster it is told to form, and exits",
            Self::PeerUnknownCa => "a member's certificate is signed by a CA the others' --peer-trusted-ca-file does not hold: they refuse its connections and cannot verify it as a server, so it never joins",
            Self::PeerSanMismatch => "a member's certificate lacks the address its peers dial (its peer URL), so they refuse it as a server: they cannot send to it, only receive what it sends them",
            Self::PeerNoClientAuth => "a member's certificate lacks the clientAuth usage, yet with --peer-client-cert-auth members are each other's clients, so its peers refuse its connections",
            Self::PeerCertRejected => "the other members refuse this member's certificate (remote error: tls: bad certificate); their journals say why",
            Self::PeerUnreachable => "a member cannot connect to a peer's URL: that peer's etcd is not running, or not listening on its peer address",
            Self::UserMissing => "the unit's User= (or Group=) names an account this machine does not have, so systemd cannot start etcd as it (status 217/USER)",
            Self::WorkingDirectoryMissing => "the unit's WorkingDirectory= does not exist, so systemd cannot start etcd there (status 200/CHDIR)",
            Self::EnvironmentFileMissing => "the unit's EnvironmentFile= does not exist (and is not marked optional with '-'), so systemd does not start etcd (Result=resources)",
            Self::UnitBadSetting => "systemd refuses to load etcd.service: a setting it needs is missing or wrong, so nothing is started",
            Self::UnitMasked => "etcd.service is masked (a link to /dev/null), so systemd refuses to start it",
            Self::DependencyFailed => "a unit etcd.service requires failed, so systemd did not start etcd",
            Self::StopTimeout => "etcd did not stop within TimeoutStopSec=, so systemd killed it",
            Self::UnitSettingIgnored => "systemd ignored a line of etcd.service (a warning, not a failure by itself)",
            Self::UnitSetupFailed => "systemd could not set up what the unit asks for before running etcd (a limit, a namespace, a capability, a directory)",
            Self::StartTimeout => "etcd did not report itself ready (Type=notify) within TimeoutStartSec=, so systemd killed it",
            Self::StartLimitHit => "etcd failed so often in a row that systemd stopped restarting it (StartLimitBurst= within StartLimitIntervalSec=): the unit is failed until reset; the first failure's words say why",
            Self::KilledBySignal => "etcd was killed by a signal",
            Self::OomKilled => "the kernel's OOM killer ended etcd: it ran out of the memory it may use",
            Self::Watchdog => "etcd did not answer systemd's watchdog in time (WatchdogSec=), so systemd killed it",
            Self::Protocol => "etcd did not follow the start-up protocol of the unit's Type= (for example Type=forking for a process that does not fork)",
            Self::EtcdRefusedToStart => "etcd exited and said why, in words the harvested table does not know; they are quoted below",
            Self::UnitFailedToStart => "systemd says the unit failed, in words the harvested table does not know; they are quoted below",
            Self::Unknown => "no known cause fits; below, what etcd and systemd say and who holds etcd's port",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_one_name_and_an_explanation() {
        let mut names: Vec<&str> = Cause::all().map(Cause::name).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a name given twice");
        for cause in Cause::all() {
            assert_eq!(Cause::from_name(cause.name()), Some(cause));
            assert!(!cause.explanation().is_empty(), "{cause}");
        }
    }

    #[test]
    fn symptoms_and_generic_causes_are_told_apart() {
        assert_eq!(Cause::NotRunning.kind(), Kind::Symptom);
        assert_eq!(Cause::Unknown.kind(), Kind::Symptom);
        assert_eq!(Cause::EtcdRefusedToStart.kind(), Kind::Generic);
        assert_eq!(Cause::PortInUse.kind(), Kind::Specific);
    }
}
