//! The cluster's TLS files: a CA of its own and, per member, a server
//! certificate for every address a client may reach that member by.
//!
//! A client checking `sslmode=verify-full` compares the host it dialled
//! with the certificate the server presents. Through HAProxy (TCP
//! pass-through) the host dialled is HAProxy's, the certificate the
//! leader's, whichever member leads: so each member's certificate names its
//! own address, its name, and every HAProxy address of the cluster.

use super::SecretsError;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// How long the CA and the certificates are valid.
pub const VALID_DAYS: i64 = 3650;

pub struct MemberCert {
    pub name: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct Issued {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub members: Vec<MemberCert>,
}

fn tls(e: rcgen::Error) -> SecretsError {
    SecretsError::Tls(e.to_string())
}

/// A CA named after `scope` and one certificate per `(name, subject alt names)`.
pub fn issue(scope: &str, members: &[(String, Vec<String>)]) -> Result<Issued, SecretsError> {
    let now = OffsetDateTime::now_utc();
    let not_before = now - Duration::hours(1);
    let not_after = now + Duration::days(VALID_DAYS);

    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
    ca.distinguished_name
        .push(DnType::CommonName, format!("pgha cluster CA {scope}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_key = KeyPair::generate().map_err(tls)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(tls)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca, ca_key);

    let mut out = Vec::new();
    for (name, sans) in members {
        let mut p = CertificateParams::new(sans.clone()).map_err(tls)?;
        p.distinguished_name.push(DnType::CommonName, name.clone());
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.not_before = not_before;
        p.not_after = not_after;
        let key = KeyPair::generate().map_err(tls)?;
        let cert = p.signed_by(&key, &issuer).map_err(tls)?;
        out.push(MemberCert {
            name: name.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        });
    }
    Ok(Issued {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem,
        members: out,
    })
}
