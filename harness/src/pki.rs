//! The run's throwaway PKI, issued with rcgen: a CA and the `kube-apiserver` certificate the
//! tutorial reuses as etcd's server identity (and as the API server's client identity).
//!
//! Files go to a per-run directory on the host (keys mode 0600), named as the tutorial names them.
//! The CA's private key stays in memory and never reaches the node. This module does not decide
//! which files are copied where; the bootstrap's steps do.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::names::by_name;

/// The names the kube-apiserver certificate must answer to: loopback (the seed's endpoints), the
/// node's hostname, and the server's address in the tutorial's architecture diagram.
pub const KUBE_APISERVER_SANS: [&str; 4] = ["127.0.0.1", "localhost", "server", "10.240.0.10"];

/// Errors issuing or writing the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters.
    #[error("failed to issue the {what}: {source}")]
    Issue {
        /// Which certificate.
        what: &'static str,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// Writing a file failed.
    #[error("failed to write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A PEM certificate and its private key.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

/// The run's PKI: the CA (with its signing key, in memory only) and the kube-apiserver identity.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The kube-apiserver certificate and key.
    pub kube_apiserver: Identity,
}

/// What the server's certificate files (`kube-apiserver.crt/key`) are: right, or wrong in one of the
/// ways the tutorial's readers get them wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerCert {
    /// As the tutorial issues it.
    #[default]
    Valid,
    /// Without the `127.0.0.1` and `localhost` SANs the seed's clients dial.
    NoLoopbackSan,
    /// Expired yesterday.
    Expired,
    /// The key file holds a different key than the certificate's.
    KeyMismatch,
}

/// The identity a client presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientCert {
    /// The kube-apiserver certificate, as the seed's /registry/ read uses it.
    #[default]
    KubeApiserver,
    /// A certificate issued by another CA.
    OtherCa,
    /// No client certificate at all.
    None,
}

by_name!(ServerCert {
    "valid" => Valid,
    "no-loopback-san" => NoLoopbackSan,
    "expired" => Expired,
    "key-mismatch" => KeyMismatch,
});

by_name!(ClientCert {
    "kube-apiserver" => KubeApiserver,
    "other-ca" => OtherCa,
    "none" => None,
});

/// A cluster member as its certificate names it: its host name and its address on the run's
/// network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberName {
    /// Its host name (`controller-0`).
    pub host: String,
    /// Its address (`10.240.0.10`).
    pub address: String,
}

/// Whose certificate the members present to each other (and serve to clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberCerts {
    /// One certificate each, naming that member only.
    #[default]
    PerMember,
    /// One certificate for all, naming every member — as the 2021 edition of the tutorial does.
    Shared,
}

by_name!(MemberCerts { "per-member" => PerMember, "shared" => Shared });

/// What a member's peer certificate is: right, or wrong in one of the ways readers get it wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerCert {
    /// Issued by the run's CA for the member's names, serverAuth + clientAuth.
    #[default]
    Valid,
    /// Issued by another CA, which the other members do not trust.
    OtherCa,
    /// Lacking the member's address among its SANs.
    NoAddressSan,
    /// Without the clientAuth usage, though members present it as clients of each other.
    NoClientAuth,
}

by_name!(PeerCert {
    "valid" => Valid,
    "other-ca" => OtherCa,
    "no-address-san" => NoAddressSan,
    "no-client-auth" => NoClientAuth,
});

impl Pki {
    /// Identities for cluster `members`, in their order: each one's names are its host name, its
    /// address, `127.0.0.1` and `localhost` (a shared certificate names every member); all are
    /// serverAuth + clientAuth, since members are each other's clients. `faulty` makes one member's
    /// certificate wrong in its way (with `Shared`, that member gets a certificate of its own).
    pub fn member_identities(
        &self,
        members: &[MemberName],
        certs: MemberCerts,
        faulty: &[(String, PeerCert)],
    ) -> Result<Vec<Identity>, PkiError> {
        let now = OffsetDateTime::now_utc();
        let (not_before, not_after) = (now - Duration::hours(1), now + Duration::days(1));
        let mut shared: Option<Identity> = None;
        let mut identities = Vec::new();
        for (member, sans) in members.iter().zip(member_sans(members, certs, faulty)) {
            let fault = fault_of(faulty, member);
            let is_shared = certs == MemberCerts::Shared && fault == PeerCert::Valid;
            if let (true, Some(identity)) = (is_shared, &shared) {
                identities.push(identity.clone());
                continue;
            }
            let other;
            let issuer = if fault == PeerCert::OtherCa {
                other = new_ca("another CA")?;
                &other
            } else {
                &self.ca
            };
            let uses: &[ExtendedKeyUsagePurpose] = if fault == PeerCert::NoClientAuth {
                &[ExtendedKeyUsagePurpose::ServerAuth]
            } else {
                BOTH_USES
            };
            let name = if is_shared { "etcd" } else { &member.host };
            let (cert_pem, key) = leaf_with(issuer, name, sans, not_before, not_after, uses)?;
            let identity = Identity {
                cert_pem,
                key_pem: key.serialize_pem(),
            };
            if is_shared {
                shared = Some(identity.clone());
            }
            identities.push(identity);
        }
        Ok(identities)
    }

    /// Issues a fresh CA and a kube-apiserver certificate signed by it (serverAuth + clientAuth,
    /// SANs [`KUBE_APISERVER_SANS`]), valid from an hour ago for a day.
    pub fn issue() -> Result<Self, PkiError> {
        Self::issue_with(ServerCert::Valid)
    }

    /// Like [`Pki::issue`], with the server's certificate files made wrong as `server` says.
    pub fn issue_with(server: ServerCert) -> Result<Self, PkiError> {
        let now = OffsetDateTime::now_utc();
        let ca = new_ca("etcd-harness throwaway CA")?;
        let sans = server_sans(server);
        let (not_before, not_after) = match server {
            ServerCert::Expired => (now - Duration::days(2), now - Duration::days(1)),
            _ => (now - Duration::hours(1), now + Duration::days(1)),
        };
        let (cert_pem, key) = leaf(&ca, "kube-apiserver", sans, not_before, not_after)?;
        let key_pem = match server {
            ServerCert::KeyMismatch => KeyPair::generate()
                .map_err(issue("replacement key"))?
                .serialize_pem(),
            _ => key.serialize_pem(),
        };
        Ok(Self {
            kube_apiserver: Identity { cert_pem, key_pem },
            ca,
        })
    }

    /// Issues the kube-apiserver certificate and key anew, as [`Pki::issue`] does: what a reader
    /// does once the certificate is found wrong (expired, missing a name, not matching its key).
    pub fn reissue_server(&mut self) -> Result<(), PkiError> {
        let now = OffsetDateTime::now_utc();
        let (cert_pem, key) = leaf(
            &self.ca,
            "kube-apiserver",
            server_sans(ServerCert::Valid),
            now - Duration::hours(1),
            now + Duration::days(1),
        )?;
        self.kube_apiserver = Identity {
            cert_pem,
            key_pem: key.serialize_pem(),
        };
        Ok(())
    }

    /// Member `host`'s certificate issued anew as it should be: by the run's CA, for its names,
    /// serverAuth + clientAuth (`None` when `host` is no member).
    pub fn reissue_member(
        &self,
        members: &[MemberName],
        certs: MemberCerts,
        host: &str,
    ) -> Result<Option<Identity>, PkiError> {
        let identities = self.member_identities(members, certs, &[])?;
        Ok(members
            .iter()
            .zip(identities)
            .find(|(m, _)| m.host == host)
            .map(|(_, identity)| identity))
    }

    /// A client identity issued by a CA of its own, unknown to etcd.
    pub fn other_ca_client() -> Result<Identity, PkiError> {
        let now = OffsetDateTime::now_utc();
        let other = new_ca("another CA")?;
        let (cert_pem, key) = leaf(
            &other,
            "kube-apiserver",
            KUBE_APISERVER_SANS.map(String::from).to_vec(),
            now - Duration::hours(1),
            now + Duration::days(1),
        )?;
        Ok(Identity {
            cert_pem,
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA certificate, PEM (`ca.crt`).
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// Writes `ca.crt`, `kube-apiserver.crt` and `kube-apiserver.key` (0600) into `dir`, as the
    /// tutorial's earlier sections leave them on the jumpbox. The CA key is not written.
    pub fn write_to(&self, dir: &Path) -> Result<(), PkiError> {
        write(&dir.join("ca.crt"), &self.ca_pem(), 0o644)?;
        write(
            &dir.join("kube-apiserver.crt"),
            &self.kube_apiserver.cert_pem,
            0o644,
        )?;
        write(
            &dir.join("kube-apiserver.key"),
            &self.kube_apiserver.key_pem,
            0o600,
        )
    }
}

impl Identity {
    /// Writes `<name>.crt` (0644) and `<name>.key` (0600) into `dir`.
    pub fn write_to(&self, dir: &Path, name: &str) -> Result<(), PkiError> {
        write(&dir.join(format!("{name}.crt")), &self.cert_pem, 0o644)?;
        write(&dir.join(format!("{name}.key")), &self.key_pem, 0o600)
    }
}

/// The names of the kube-apiserver certificate that `server` makes.
pub fn server_sans(server: ServerCert) -> Vec<String> {
    match server {
        ServerCert::NoLoopbackSan => vec!["server".into(), "10.240.0.10".into()],
        _ => KUBE_APISERVER_SANS.map(String::from).to_vec(),
    }
}

/// Each member's certificate's names, in `members`' order, as [`Pki::member_identities`] issues
/// them: its host name and address (a member Docker addresses, none given, by its host name only;
/// a shared certificate names every member), then `127.0.0.1` and `localhost`; a
/// [`PeerCert::NoAddressSan`] member's lacks its address.
pub fn member_sans(
    members: &[MemberName],
    certs: MemberCerts,
    faulty: &[(String, PeerCert)],
) -> Vec<Vec<String>> {
    let names_of = |member: &MemberName| {
        [member.host.clone(), member.address.clone()]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect::<Vec<_>>()
    };
    members
        .iter()
        .map(|member| {
            let fault = fault_of(faulty, member);
            let mut sans: Vec<String> = if certs == MemberCerts::Shared && fault == PeerCert::Valid
            {
                members.iter().flat_map(names_of).collect()
            } else {
                names_of(member)
                    .into_iter()
                    .filter(|n| fault != PeerCert::NoAddressSan || *n != member.address)
                    .collect()
            };
            sans.extend(["127.0.0.1", "localhost"].map(String::from));
            sans
        })
        .collect()
}

/// What is wrong with `member`'s certificate, as `faulty` says.
fn fault_of(faulty: &[(String, PeerCert)], member: &MemberName) -> PeerCert {
    faulty
        .iter()
        .find(|(host, _)| *host == member.host)
        .map_or(PeerCert::Valid, |(_, fault)| *fault)
}

/// What a diagnosis needs to know of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// Its DNS and IP subject alternative names.
    pub sans: Vec<String>,
    /// Whether it is outside its validity period now.
    pub expired: bool,
}

/// Reads the SANs and validity of the PEM certificate `pem`; `None` if it is not one.
pub fn inspect(pem: &str) -> Option<CertFacts> {
    use x509_parser::extensions::GeneralName;
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let sans = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    GeneralName::IPAddress(ip) if ip.len() == 4 => {
                        Some(ip.iter().map(u8::to_string).collect::<Vec<_>>().join("."))
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(CertFacts {
        sans,
        expired: !cert.validity().is_valid(),
    })
}

fn issue(what: &'static str) -> impl Fn(rcgen::Error) -> PkiError {
    move |source| PkiError::Issue { what, source }
}

fn new_ca(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>, PkiError> {
    let now = OffsetDateTime::now_utc();
    let key = KeyPair::generate().map_err(issue("CA key"))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(issue("CA"))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(1);
    CertifiedIssuer::self_signed(params, key).map_err(issue("CA"))
}

/// The usages of a certificate that serves and is presented as a client's.
const BOTH_USES: &[ExtendedKeyUsagePurpose] = &[
    ExtendedKeyUsagePurpose::ServerAuth,
    ExtendedKeyUsagePurpose::ClientAuth,
];

/// A serverAuth + clientAuth certificate for `sans`, signed by `ca`, and its key.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    sans: Vec<String>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(String, KeyPair), PkiError> {
    leaf_with(ca, name, sans, not_before, not_after, BOTH_USES)
}

/// A certificate with extended key usages `uses` for `sans`, signed by `ca`, and its key.
fn leaf_with(
    ca: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    sans: Vec<String>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    uses: &[ExtendedKeyUsagePurpose],
) -> Result<(String, KeyPair), PkiError> {
    let key = KeyPair::generate().map_err(issue("certificate key"))?;
    let mut params = CertificateParams::new(sans).map_err(issue("certificate"))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = uses.to_vec();
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, ca).map_err(issue("certificate"))?;
    Ok((cert.pem(), key))
}

fn write(path: &Path, content: &str, mode: u32) -> Result<(), PkiError> {
    let err = |source| PkiError::Write {
        path: path.to_owned(),
        source,
    };
    // Created with its final mode, so a private key is never readable by others, not even for the
    // moment between a write and a chmod; one issued anew replaces the file.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    std::io::Write::write_all(&mut file, content.as_bytes()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::pem::parse_x509_pem;

    fn parse(pem: &str) -> x509_parser::pem::Pem {
        parse_x509_pem(pem.as_bytes()).expect("valid PEM").1
    }

    fn members() -> Vec<MemberName> {
        (0..3)
            .map(|i| MemberName {
                host: format!("controller-{i}"),
                address: format!("10.240.0.1{i}"),
            })
            .collect()
    }

    /// The extended key usages of a PEM certificate: (serverAuth, clientAuth).
    fn uses(pem: &str) -> (bool, bool) {
        let pem = parse(pem);
        let cert = pem.parse_x509().unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        (eku.server_auth, eku.client_auth)
    }

    fn signed_by_run_ca(pki: &Pki, pem: &str) -> bool {
        let ca_pem = parse(&pki.ca_pem());
        let ca = ca_pem.parse_x509().unwrap();
        let leaf_pem = parse(pem);
        let leaf = leaf_pem.parse_x509().unwrap();
        leaf.verify_signature(Some(ca.public_key())).is_ok()
    }

    #[test]
    fn each_member_gets_a_peer_certificate_for_its_own_names() {
        let pki = Pki::issue().unwrap();
        let ids = pki
            .member_identities(&members(), MemberCerts::PerMember, &[])
            .unwrap();
        assert_eq!(ids.len(), 3);
        for (i, id) in ids.iter().enumerate() {
            let facts = inspect(&id.cert_pem).unwrap();
            let host = format!("controller-{i}");
            let address = format!("10.240.0.1{i}");
            assert_eq!(
                facts.sans,
                [host.as_str(), &address, "127.0.0.1", "localhost"]
            );
            assert_eq!(uses(&id.cert_pem), (true, true));
            assert!(signed_by_run_ca(&pki, &id.cert_pem));
        }
    }

    #[test]
    fn a_shared_certificate_names_every_member() {
        let pki = Pki::issue().unwrap();
        let ids = pki
            .member_identities(&members(), MemberCerts::Shared, &[])
            .unwrap();
        assert!(ids.iter().all(|id| id.cert_pem == ids[0].cert_pem));
        let facts = inspect(&ids[0].cert_pem).unwrap();
        for name in [
            "controller-0",
            "10.240.0.10",
            "controller-2",
            "10.240.0.12",
            "127.0.0.1",
        ] {
            assert!(facts.sans.contains(&name.to_owned()), "{name}: {facts:?}");
        }
    }

    #[test]
    fn a_faulty_peer_certificate_is_faulty_in_exactly_its_way_and_only_for_its_member() {
        let pki = Pki::issue().unwrap();
        let faults = |fault| vec![("controller-1".to_owned(), fault)];
        let ids = pki
            .member_identities(&members(), MemberCerts::Shared, &faults(PeerCert::OtherCa))
            .unwrap();
        assert!(!signed_by_run_ca(&pki, &ids[1].cert_pem));
        assert!(signed_by_run_ca(&pki, &ids[0].cert_pem) && ids[0].cert_pem == ids[2].cert_pem);

        let ids = pki
            .member_identities(
                &members(),
                MemberCerts::PerMember,
                &faults(PeerCert::NoAddressSan),
            )
            .unwrap();
        let facts = inspect(&ids[1].cert_pem).unwrap();
        assert_eq!(facts.sans, ["controller-1", "127.0.0.1", "localhost"]);
        assert!(inspect(&ids[0].cert_pem)
            .unwrap()
            .sans
            .contains(&"10.240.0.10".to_owned()));

        let ids = pki
            .member_identities(
                &members(),
                MemberCerts::PerMember,
                &faults(PeerCert::NoClientAuth),
            )
            .unwrap();
        assert_eq!(uses(&ids[1].cert_pem), (true, false));
        assert_eq!(uses(&ids[2].cert_pem), (true, true));
    }

    #[test]
    fn kube_apiserver_certificate_has_the_sans_the_seed_dials() {
        let pki = Pki::issue().unwrap();
        let facts = inspect(&pki.kube_apiserver.cert_pem).unwrap();
        for want in KUBE_APISERVER_SANS {
            assert!(
                facts.sans.contains(&want.to_owned()),
                "{want} missing from {facts:?}"
            );
        }
        assert!(!facts.expired);
    }

    #[test]
    fn faulty_server_certificates_are_faulty_in_exactly_their_way() {
        let no_san = Pki::issue_with(ServerCert::NoLoopbackSan).unwrap();
        let facts = inspect(&no_san.kube_apiserver.cert_pem).unwrap();
        assert_eq!(facts.sans, ["server", "10.240.0.10"]);
        assert!(!facts.expired);

        let expired = Pki::issue_with(ServerCert::Expired).unwrap();
        let facts = inspect(&expired.kube_apiserver.cert_pem).unwrap();
        assert!(facts.expired);
        assert!(facts.sans.contains(&"127.0.0.1".to_owned()));

        let key_matches = |pki: &Pki| {
            let cert_pem = parse(&pki.kube_apiserver.cert_pem);
            let cert = cert_pem.parse_x509().unwrap();
            let key = KeyPair::from_pem(&pki.kube_apiserver.key_pem).unwrap();
            *cert.public_key().subject_public_key.data == *key.public_key_raw()
        };
        assert!(key_matches(&Pki::issue().unwrap()));
        assert!(!key_matches(
            &Pki::issue_with(ServerCert::KeyMismatch).unwrap()
        ));
    }

    #[test]
    fn another_cas_client_certificate_does_not_chain_to_the_run_ca() {
        let pki = Pki::issue().unwrap();
        let ca_pem = parse(&pki.ca_pem());
        let ca = ca_pem.parse_x509().unwrap();
        let other = Pki::other_ca_client().unwrap();
        let leaf_pem = parse(&other.cert_pem);
        let leaf = leaf_pem.parse_x509().unwrap();
        assert!(leaf.verify_signature(Some(ca.public_key())).is_err());
    }

    #[test]
    fn kube_apiserver_certificate_serves_and_authenticates_clients() {
        let pki = Pki::issue().unwrap();
        let pem = parse(&pki.kube_apiserver.cert_pem);
        let cert = pem.parse_x509().unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!cert.is_ca());
        assert!(cert.validity().is_valid());
    }

    #[test]
    fn kube_apiserver_certificate_chains_to_the_ca() {
        let pki = Pki::issue().unwrap();
        let ca_pem = parse(&pki.ca_pem());
        let ca = ca_pem.parse_x509().unwrap();
        assert!(ca.is_ca());
        let leaf_pem = parse(&pki.kube_apiserver.cert_pem);
        let leaf = leaf_pem.parse_x509().unwrap();
        assert_eq!(leaf.issuer(), ca.subject());
        leaf.verify_signature(Some(ca.public_key()))
            .expect("signed by the CA");
        let other = Pki::issue().unwrap();
        let other_ca_pem = parse(&other.ca_pem());
        let other_ca = other_ca_pem.parse_x509().unwrap();
        assert!(leaf.verify_signature(Some(other_ca.public_key())).is_err());
    }

    #[test]
    fn files_are_written_as_the_tutorial_names_them_and_the_key_is_private() {
        let pki = Pki::issue().unwrap();
        let dir = tempfile::tempdir().unwrap();
        pki.write_to(dir.path()).unwrap();
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("kube-apiserver.key"), 0o600);
        assert_eq!(mode("kube-apiserver.crt"), 0o644);
        assert_eq!(mode("ca.crt"), 0o644);
        assert!(
            !dir.path().join("ca.key").exists(),
            "the CA key stays in memory"
        );
    }
}
