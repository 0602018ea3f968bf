//! X.509 for the S/MIME channel, through rcgen: the account's personal
//! CA, device signing and shared encryption certificates, the CRL, CSRs,
//! PEM handling and PKCS#12 files. No account logic: `channel.rs` decides
//! what to issue.

use p256::ecdsa::signature::Signer;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm,
    PKCS_ECDSA_P256_SHA256,
};

/// Errors issuing certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmimeError {
    /// rcgen refused.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// A public key that is not a P-256 point.
    #[error("not a P-256 public key")]
    BadKey,
    /// A CMS message that is malformed, not for us, or does not verify.
    #[error("CMS: {0}")]
    Cms(String),
    /// PKCS#12 files are always protected.
    #[error("an empty PKCS#12 password is refused")]
    EmptyPassword,
    /// The PKCS#12 writer failed.
    #[error("PKCS#12: {0}")]
    Pkcs12(String),
    /// A validity time out of range.
    #[error("certificate validity {0} is out of range")]
    Time(i64),
}

/// A P-256 signing key as rcgen's signer (deterministic ECDSA, RFC 6979).
pub struct P256Signer {
    key: p256::ecdsa::SigningKey,
    public: Vec<u8>,
}

impl std::fmt::Debug for P256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P256Signer").finish_non_exhaustive()
    }
}

impl P256Signer {
    /// Wrap a key.
    pub fn new(key: p256::ecdsa::SigningKey) -> P256Signer {
        let public = key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        P256Signer { key, public }
    }

    /// The key (OCSP answers sign through `signature`'s traits, not rcgen's).
    pub(crate) fn key(&self) -> &p256::ecdsa::SigningKey {
        &self.key
    }
}

impl PublicKeyData for P256Signer {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for P256Signer {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig: p256::ecdsa::Signature = self.key.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

/// A device's public P-256 key (uncompressed SEC1 point).
#[derive(Debug, Clone)]
pub struct P256Public(Vec<u8>);

impl P256Public {
    /// Check and wrap an uncompressed point.
    pub fn new(sec1: &[u8]) -> Result<P256Public, SmimeError> {
        p256::PublicKey::from_sec1_bytes(sec1).map_err(|_| SmimeError::BadKey)?;
        if sec1.first() != Some(&4) {
            return Err(SmimeError::BadKey);
        }
        Ok(P256Public(sec1.to_vec()))
    }
}

impl PublicKeyData for P256Public {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

fn ca_params(address: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Mesh");
    dn.push(
        DnType::CommonName,
        format!("Mesh personal CA for {address}"),
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // Fixed: the CA certificate is a function of the account seed.
    p.not_before = rcgen::date_time_ymd(2026, 1, 1);
    p.not_after = rcgen::date_time_ymd(2046, 1, 1);
    p.serial_number = Some(SerialNumber::from_slice(&[1]));
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

/// An RSA public key (PKCS#1 RSAPublicKey DER) as a certificate subject.
#[derive(Debug, Clone)]
pub struct RsaPublic(Vec<u8>);

impl RsaPublic {
    /// From an `rsa` public key.
    pub fn new(k: &rsa::RsaPublicKey) -> Result<RsaPublic, SmimeError> {
        use rsa::pkcs1::EncodeRsaPublicKey;
        Ok(RsaPublic(
            k.to_pkcs1_der()
                .map_err(|_| SmimeError::BadKey)?
                .as_bytes()
                .to_vec(),
        ))
    }
}

impl RsaPublic {
    /// The key a certificate certifies (PKCS#1 RSAPublicKey, its
    /// subjectPublicKey): a certificate issued again for the same key.
    pub fn of_certificate(cert_der: &[u8]) -> Result<RsaPublic, SmimeError> {
        use rsa::pkcs1::DecodeRsaPublicKey;
        let raw = certificate_key(cert_der)?;
        rsa::RsaPublicKey::from_pkcs1_der(&raw).map_err(|_| SmimeError::BadKey)?;
        Ok(RsaPublic(raw))
    }
}

impl PublicKeyData for RsaPublic {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

/// A fresh RSA-2048 key for the account's shared encryption certificate.
pub fn new_encryption_key() -> Result<rsa::RsaPrivateKey, SmimeError> {
    rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).map_err(|_| SmimeError::BadKey)
}

/// The account's CA certificate (PEM).
pub fn ca_certificate(ca: &P256Signer, address: &str) -> Result<String, SmimeError> {
    Ok(ca_params(address).self_signed(ca)?.pem())
}

/// What a device signing certificate says.
#[derive(Debug, Clone)]
pub struct SigningCert<'a> {
    /// The account address (rfc822Name).
    pub address: &'a str,
    /// The device's name (in the subject).
    pub device_name: &'a str,
    /// Serial number (unique per CA).
    pub serial: u64,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
    /// Where correspondents check it (absent: certificates issued without).
    pub urls: Option<StatusUrls>,
}

/// Where a certificate's status is served (PROTOCOL.md §12): the AIA OCSP
/// responder and the CRL distribution point, at the account's portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUrls {
    /// `<portal>/pki/<ProfileUdf>/ocsp`.
    pub ocsp: String,
    /// `<portal>/pki/<ProfileUdf>/smime.crl`.
    pub crl: String,
}

impl StatusUrls {
    /// The addresses for the account `profile_udf` served by `portal`.
    pub fn at(portal: &str, profile_udf: &str) -> StatusUrls {
        let base = format!("{}/pki/{profile_udf}", portal.trim_end_matches('/'));
        StatusUrls {
            ocsp: format!("{base}/ocsp"),
            crl: format!("{base}/smime.crl"),
        }
    }
}

/// id-pe-authorityInfoAccess (RFC 5280 §4.2.2.1).
const OID_AIA: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];

/// id-ad-ocsp (RFC 5280 §4.2.2.1).
const ID_AD_OCSP: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

/// The AIA extension's value: one id-ad-ocsp access description.
fn aia(ocsp: &str) -> Result<Vec<u8>, SmimeError> {
    use der::Encode;
    use x509_cert::ext::pkix::{name::GeneralName, AccessDescription, AuthorityInfoAccessSyntax};
    let bad = |e: der::Error| SmimeError::Cms(format!("AIA: {e}"));
    let aia = AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: ID_AD_OCSP,
        access_location: GeneralName::UniformResourceIdentifier(
            der::asn1::Ia5String::new(ocsp).map_err(bad)?,
        ),
    }]);
    aia.to_der().map_err(bad)
}

/// A device's S/MIME signing certificate (PEM), issued by the CA.
pub fn signing_certificate(
    ca: &P256Signer,
    device: &P256Public,
    c: &SigningCert<'_>,
) -> Result<String, SmimeError> {
    let p = email_params(
        c,
        format!("{} ({})", c.address, c.device_name),
        KeyUsagePurpose::DigitalSignature,
    )?;
    Ok(p.signed_by(device, &Issuer::new(ca_params(c.address), ca))?
        .pem())
}

/// The account's shared encryption certificate (PEM) of `epoch`: RSA key
/// transport, keyEncipherment, emailProtection, the account address. The
/// epoch is in the subject: NSS gives every certificate of one subject the
/// same nickname, so epochs sharing one would be look-alikes there.
pub fn encryption_certificate(
    ca: &P256Signer,
    key: &RsaPublic,
    c: &SigningCert<'_>,
    epoch: u32,
) -> Result<String, SmimeError> {
    let p = email_params(
        c,
        format!("{} (encryption epoch {epoch})", c.address),
        KeyUsagePurpose::KeyEncipherment,
    )?;
    Ok(p.signed_by(key, &Issuer::new(ca_params(c.address), ca))?
        .pem())
}

/// The friendly name (PKCS#12) and NSS nickname of the device's signing key.
pub fn signing_name(address: &str) -> String {
    format!("{address} (signing)")
}

/// The friendly name (PKCS#12) and NSS nickname of the shared encryption
/// key of `epoch`: the current one, or one kept only to read old mail.
/// "encryption" sorts before "retired" and "signing", so the current key
/// is the first a PKCS#12 file holds (p12-keystore orders bags by name),
/// which is the one `openssl smime -decrypt -inkey` takes from its dump.
/// No comma: NSS tools read one as a list separator (`cmsutil -r`).
pub fn encryption_name(address: &str, epoch: u32, current: bool) -> String {
    if current {
        format!("{address} (encryption epoch {epoch})")
    } else {
        format!("{address} (retired encryption epoch {epoch})")
    }
}

/// What every certificate the CA issues for the address has: the rfc822Name,
/// emailProtection, one key usage, the serial and validity.
fn email_params(
    c: &SigningCert<'_>,
    cn: String,
    usage: KeyUsagePurpose,
) -> Result<CertificateParams, SmimeError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.subject_alt_names = vec![SanType::Rfc822Name(c.address.try_into()?)];
    p.key_usages = vec![usage];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.serial_number = Some(SerialNumber::from_slice(&c.serial.to_be_bytes()));
    p.not_before = time::OffsetDateTime::from_unix_timestamp(c.not_before)
        .map_err(|_| SmimeError::Time(c.not_before))?;
    p.not_after = time::OffsetDateTime::from_unix_timestamp(c.not_after)
        .map_err(|_| SmimeError::Time(c.not_after))?;
    if let Some(u) = &c.urls {
        p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![u.crl.clone()],
        }];
        p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            OID_AIA,
            aia(&u.ocsp)?,
        )];
    }
    Ok(p)
}

/// A revoked certificate for the CRL.
#[derive(Debug, Clone, Copy)]
pub struct Revoked {
    /// Its serial.
    pub serial: u64,
    /// Seconds since the Unix epoch.
    pub when: i64,
    /// Key compromise (a revoked device) or superseded (a rotated key).
    pub compromised: bool,
}

/// The CA's CRL (PEM), valid for `valid_for` seconds from `now`.
pub fn crl(
    ca: &P256Signer,
    address: &str,
    number: u64,
    now: i64,
    valid_for: i64,
    revoked: &[Revoked],
) -> Result<String, SmimeError> {
    use rcgen::{CertificateRevocationListParams, RevocationReason, RevokedCertParams};
    let t = |s: i64| time::OffsetDateTime::from_unix_timestamp(s).map_err(|_| SmimeError::Time(s));
    let params = CertificateRevocationListParams {
        this_update: t(now - 300)?,
        next_update: t(now + valid_for)?,
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|r| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&r.serial.to_be_bytes()),
                    revocation_time: t(r.when)?,
                    reason_code: Some(if r.compromised {
                        RevocationReason::KeyCompromise
                    } else {
                        RevocationReason::Superseded
                    }),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, SmimeError>>()?,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let issuer = Issuer::new(ca_params(address), ca);
    Ok(params.signed_by(&issuer)?.pem()?)
}

/// A certificate signing request (PEM) for a device's signing key, for an
/// organisation's CA to issue instead of the account's.
pub fn csr(key: &P256Signer, address: &str, device_name: &str) -> Result<String, SmimeError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{address} ({device_name})"));
    p.distinguished_name = dn;
    p.subject_alt_names = vec![SanType::Rfc822Name(address.try_into()?)];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
    Ok(p.serialize_request(key)?.pem()?)
}

/// The public key (uncompressed point, or PKCS#1 for RSA) of a certificate.
pub fn certificate_key(cert_der: &[u8]) -> Result<Vec<u8>, SmimeError> {
    use der::Decode;
    let c =
        x509_cert::Certificate::from_der(cert_der).map_err(|e| SmimeError::Cms(e.to_string()))?;
    Ok(c.tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec())
}

/// Every PEM certificate block of a text, as DER.
pub fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, SmimeError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("-----BEGIN CERTIFICATE-----") {
        let block = &rest[i..];
        let end = block
            .find("-----END CERTIFICATE-----")
            .ok_or(SmimeError::BadKey)?
            + "-----END CERTIFICATE-----".len();
        out.push(pem_to_der(&block[..end])?);
        rest = &block[end..];
    }
    Ok(out)
}

/// DER of the first PEM block.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, SmimeError> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    data_encoding::BASE64
        .decode(body.trim().as_bytes())
        .map_err(|_| SmimeError::BadKey)
}

/// PKCS#12 encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P12Profile {
    /// PBES2 (PBKDF2-SHA256, AES-256-CBC), HMAC-SHA256 MAC: NSS, OpenSSL 3, current Windows.
    Modern,
    /// 3DES, HMAC-SHA1 MAC: older Windows and Outlook.
    Legacy,
    /// As `Modern`, with few PBKDF2 iterations: only for a file handed at
    /// once to a local tool under a random 144-bit password, where the
    /// iteration count adds nothing and costs seconds (`smime install`).
    Transient,
}

/// One key with its certificate chain, for a PKCS#12 file.
#[derive(Clone)]
pub struct P12Entry {
    /// The friendly name mail clients show.
    pub name: String,
    /// The private key, PKCS#8 DER.
    pub key_pkcs8: zeroize::Zeroizing<Vec<u8>>,
    /// The certificate, then the CA, DER.
    pub chain: Vec<Vec<u8>>,
}

impl std::fmt::Debug for P12Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P12Entry")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A password-protected PKCS#12 file with every entry.
pub fn pkcs12(
    entries: &[P12Entry],
    password: &str,
    profile: P12Profile,
) -> Result<Vec<u8>, SmimeError> {
    use p12_keystore::{
        EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKeyChain,
    };
    if password.is_empty() {
        return Err(SmimeError::EmptyPassword);
    }
    let mut ks = KeyStore::new();
    for (i, e) in entries.iter().enumerate() {
        let chain = e
            .chain
            .iter()
            .map(|d| p12_keystore::Certificate::from_der(d).map_err(|_| SmimeError::BadKey))
            .collect::<Result<Vec<_>, _>>()?;
        let id = [u8::try_from(i + 1).unwrap_or(u8::MAX)];
        ks.add_entry(
            &e.name,
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(e.key_pkcs8.as_slice(), id, chain)),
        );
    }
    let w = ks.writer(password);
    let w = match profile {
        P12Profile::Modern => w
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256)
            .encryption_iterations(600_000)
            .mac_iterations(600_000),
        P12Profile::Transient => w
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256)
            .encryption_iterations(1000)
            .mac_iterations(1000),
        P12Profile::Legacy => w
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1)
            .encryption_iterations(2048)
            .mac_iterations(2048),
    };
    w.write().map_err(|e| SmimeError::Pkcs12(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_certificate_is_deterministic() {
        let k = || P256Signer::new(p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("key"));
        assert_eq!(
            ca_certificate(&k(), "alice@example.com").expect("ca"),
            ca_certificate(&k(), "alice@example.com").expect("ca")
        );
    }

    /// The MAC iteration count of a PKCS#12 file (RFC 7292 §4: PFX's
    /// `macData`, `iterations INTEGER DEFAULT 1`).
    fn mac_iterations(pfx: &[u8]) -> u32 {
        use der::{Any, Decode, Encode};
        let pfx = Vec::<Any>::from_der(pfx).expect("PFX");
        let mac = Vec::<Any>::from_der(&pfx[2].to_der().expect("der")).expect("MacData");
        mac[2].decode_as::<u32>().expect("iterations")
    }

    #[test]
    fn transient_pkcs12_uses_1000_iterations() {
        use p256::pkcs8::EncodePrivateKey;
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("key");
        let ca =
            pem_to_der(&ca_certificate(&P256Signer::new(key.clone()), "a@b.example").expect("ca"))
                .expect("der");
        let entry = P12Entry {
            name: "a".into(),
            key_pkcs8: zeroize::Zeroizing::new(
                key.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec(),
            ),
            chain: vec![ca],
        };
        let p12 = |p| pkcs12(std::slice::from_ref(&entry), "pw", p).expect("p12");
        assert_eq!(mac_iterations(&p12(P12Profile::Transient)), 1000);
        // (The modern profile's 600 000 take seconds in a debug build; not run here.)
        assert_eq!(mac_iterations(&p12(P12Profile::Legacy)), 2048);
    }
}
