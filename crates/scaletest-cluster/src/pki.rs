//! Certificates and keys of one simulated cluster: a CA, the apiserver's
//! serving cert, an admin client cert (`system:masters`), the service-account
//! signing key, and the admin kubeconfig every component uses. Reused when the
//! data dir already holds them, so a restarted supervisor keeps its clients valid.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PkiError {
    #[error("cannot generate {what}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Paths of everything [`ensure`] writes.
#[derive(Clone, Debug)]
pub struct Pki {
    pub ca_cert: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    pub service_account_key: PathBuf,
    pub service_account_pub: PathBuf,
    pub admin_kubeconfig: PathBuf,
}

impl Pki {
    pub fn at(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            service_account_key: dir.join("sa.key"),
            service_account_pub: dir.join("sa.pub"),
            admin_kubeconfig: dir.join("admin.kubeconfig"),
        }
    }

    fn files(&self) -> [&Path; 8] {
        [
            &self.ca_cert,
            &self.serving_cert,
            &self.serving_key,
            &self.admin_cert,
            &self.admin_key,
            &self.service_account_key,
            &self.service_account_pub,
            &self.admin_kubeconfig,
        ]
    }
}

fn generate(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Generate { what, source }
}

fn write(path: &Path, contents: &str) -> Result<(), PkiError> {
    std::fs::write(path, contents).map_err(|source| PkiError::Write { path: path.to_owned(), source })
}

/// Writes the cluster's PKI and admin kubeconfig into `dir` (unless present)
/// for an apiserver reachable at `server_url`. `extra_sans` adds names or IPs
/// to the serving cert (e.g. a pod IP in kube mode).
pub fn ensure(dir: &Path, server_url: &str, extra_sans: &[String]) -> Result<Pki, PkiError> {
    let pki = Pki::at(dir);
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Write { path: dir.to_owned(), source })?;
    if pki.files().iter().all(|f| f.exists()) {
        // The kubeconfig names the apiserver's port, which may differ this time.
        write(&pki.admin_kubeconfig, &kubeconfig(&pki, server_url))?;
        return Ok(pki);
    }

    let ca_key = KeyPair::generate().map_err(generate("CA key"))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(generate("CA"))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "scaletest-ca");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca, ca_key).map_err(generate("CA"))?;

    let serving_key = KeyPair::generate().map_err(generate("serving key"))?;
    let mut sans = vec!["localhost".to_string(), "kubernetes".into(), "kubernetes.default".into()];
    sans.extend(extra_sans.iter().filter(|s| s.parse::<IpAddr>().is_err()).cloned());
    let mut serving = CertificateParams::new(sans).map_err(generate("serving cert"))?;
    let ips = ["127.0.0.1", "::1", "10.0.0.1"].iter().map(|s| s.to_string());
    for ip in ips.chain(extra_sans.iter().cloned()).filter_map(|s| s.parse::<IpAddr>().ok()) {
        serving.subject_alt_names.push(SanType::IpAddress(ip));
    }
    serving.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &ca).map_err(generate("serving cert"))?;

    let admin_key = KeyPair::generate().map_err(generate("admin key"))?;
    let mut admin = CertificateParams::new(Vec::<String>::new()).map_err(generate("admin cert"))?;
    admin.distinguished_name.push(DnType::CommonName, "scaletest-admin");
    admin.distinguished_name.push(DnType::OrganizationName, "system:masters");
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &ca).map_err(generate("admin cert"))?;

    // ECDSA P-256 (ES256): accepted for service-account token signing.
    let sa = KeyPair::generate().map_err(generate("service-account key"))?;

    write(&pki.ca_cert, &ca.pem())?;
    write(&pki.serving_cert, &serving_cert.pem())?;
    write(&pki.serving_key, &serving_key.serialize_pem())?;
    write(&pki.admin_cert, &admin_cert.pem())?;
    write(&pki.admin_key, &admin_key.serialize_pem())?;
    write(&pki.service_account_key, &sa.serialize_pem())?;
    write(&pki.service_account_pub, &sa.public_key_pem())?;
    write(&pki.admin_kubeconfig, &kubeconfig(&pki, server_url))?;
    Ok(pki)
}

/// An admin kubeconfig for `server_url` naming the certificate files of `pki`.
pub fn kubeconfig(pki: &Pki, server_url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: scaletest
  cluster:
    server: {server_url}
    certificate-authority: {ca}
users:
- name: scaletest-admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: scaletest
  context:
    cluster: scaletest
    user: scaletest-admin
current-context: scaletest
",
        ca = pki.ca_cert.display(),
        cert = pki.admin_cert.display(),
        key = pki.admin_key.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_everything_once_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ensure(dir.path(), "https://127.0.0.1:1234", &["10.1.2.3".into(), "c0.svc".into()]).unwrap();
        for f in pki.files() {
            assert!(f.exists(), "{} missing", f.display());
        }
        let ca = std::fs::read_to_string(&pki.ca_cert).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        let again = ensure(dir.path(), "https://127.0.0.1:5678", &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&again.ca_cert).unwrap(), ca, "CA must be reused");
        let kc = std::fs::read_to_string(&again.admin_kubeconfig).unwrap();
        assert!(kc.contains("server: https://127.0.0.1:5678"), "{kc}");
    }
}
