//! The run's throwaway PKI, issued with rcgen: a CA and the `kube-apiserver` certificate the
//! tutorial reuses as etcd's server identity (and as the API server's client identity).
//!
//! Files go to a per-run directory on the host (keys mode 0600), named as the tutorial names them.
//! The CA's private key stays in memory and never reaches the node. This module does not decide
//! which files are copied where; the bootstrap's steps do.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

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

impl Pki {
    /// Issues a fresh CA and a kube-apiserver certificate signed by it (serverAuth + clientAuth,
    /// SANs [`KUBE_APISERVER_SANS`]), valid from an hour ago for a day.
    pub fn issue() -> Result<Self, PkiError> {
        let issue = |what| move |source| PkiError::Issue { what, source };
        let now = OffsetDateTime::now_utc();
        let ca_key = KeyPair::generate().map_err(issue("CA key"))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(issue("CA"))?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "etcd-harness throwaway CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params.not_before = now - Duration::hours(1);
        ca_params.not_after = now + Duration::days(1);
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(issue("CA"))?;

        let key = KeyPair::generate().map_err(issue("kube-apiserver key"))?;
        let mut params = CertificateParams::new(KUBE_APISERVER_SANS.map(String::from).to_vec())
            .map_err(issue("kube-apiserver certificate"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(1);
        let cert = params
            .signed_by(&key, &ca)
            .map_err(issue("kube-apiserver certificate"))?;
        Ok(Self {
            kube_apiserver: Identity {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
            ca,
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

fn write(path: &Path, content: &str, mode: u32) -> Result<(), PkiError> {
    let err = |source| PkiError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::write(path, content).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::GeneralName;
    use x509_parser::pem::parse_x509_pem;

    fn parse(pem: &str) -> x509_parser::pem::Pem {
        parse_x509_pem(pem.as_bytes()).expect("valid PEM").1
    }

    #[test]
    fn kube_apiserver_certificate_has_the_sans_the_seed_dials() {
        let pki = Pki::issue().unwrap();
        let pem = parse(&pki.kube_apiserver.cert_pem);
        let cert = pem.parse_x509().unwrap();
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = sans
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => d.to_string(),
                GeneralName::IPAddress(ip) => {
                    ip.iter().map(u8::to_string).collect::<Vec<_>>().join(".")
                }
                other => format!("{other:?}"),
            })
            .collect();
        for want in KUBE_APISERVER_SANS {
            assert!(
                names.contains(&want.to_owned()),
                "{want} missing from {names:?}"
            );
        }
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
