//! Security keys (`sk-ssh-ed25519@openssh.com`,
//! `sk-ecdsa-sha2-nistp256@openssh.com`; OpenSSH PROTOCOL.u2f): the agent
//! holds the key handle, and signs by running OpenSSH's `ssh-sk-helper`,
//! which loads the FIDO middleware (the provider `ssh-add` named in the
//! `sk-provider@openssh.com` constraint) and asks the authenticator.
//!
//! The helper's protocol (OpenSSH `ssh-sk-client.c`, `msg.c`): one framed
//! message each way on its standard input and output, `uint32 length`
//! then the body. Request body: `byte version (5)`, `uint32 type
//! (1 = sign)`, `byte log-on-stderr`, `uint32 log-level`, then `string
//! private key (sshkey_private_serialize)`, `string provider`, `string
//! data`, `string algorithm ("")`, `uint32 compat (0)`, `string PIN
//! ("")`. Answer body: `byte version`, `uint32 type` and `string
//! signature` for a signature, or `uint32 0` and `uint32 error`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::wire::{put_string, put_u32, Reader};

const HELPER_VERSION: u8 = 5;
const HELPER_SIGN: u32 = 1;
/// `SYSLOG_LEVEL_ERROR`.
const LOG_ERROR: u32 = 2;
/// A touch can take a while; a helper that hangs longer is killed.
const HELPER_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest answer read from the helper.
const MAX_ANSWER: usize = 64 * 1024;

/// Why a security-key signature or add failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SkError {
    /// The provider path does not exist.
    #[error("security key provider {0} not found")]
    NoProvider(String),
    /// The provider is outside the allow-list.
    #[error("security key provider {0} is not allowed")]
    NotAllowed(String),
    /// The helper could not be run or broke the protocol.
    #[error("ssh-sk-helper ({0}) failed: {1}")]
    Helper(String, String),
}

impl SkError {
    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            SkError::NoProvider(_) => "check SSH_SK_PROVIDER (or ssh-add -S)",
            SkError::NotAllowed(_) => "allow it with `mesh ssh-agent -P PATTERN`",
            SkError::Helper(..) => {
                "install OpenSSH's ssh-sk-helper (or set SSH_SK_HELPER) and check the security key"
            }
        }
    }
}

/// The provider as the agent keeps it: `internal`, or its real path,
/// which must match the allow-list (OpenSSH `process_add_identity`;
/// ssh-agent's `-P` covers FIDO and PKCS#11 middleware alike).
pub fn canonical_provider(provider: &str, allowed: &str) -> Result<String, SkError> {
    if provider.eq_ignore_ascii_case("internal") {
        return Ok("internal".into());
    }
    let real = std::fs::canonicalize(provider)
        .map_err(|_| SkError::NoProvider(provider.to_owned()))?
        .to_string_lossy()
        .into_owned();
    if !crate::options::pattern_list_match(&real, allowed) {
        return Err(SkError::NotAllowed(real));
    }
    Ok(real)
}

/// The helper to run: `SSH_SK_HELPER`, else OpenSSH's installed one.
pub fn helper_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SSH_SK_HELPER").filter(|p| !p.is_empty()) {
        return p.into();
    }
    [
        "/usr/lib/openssh/ssh-sk-helper",
        "/usr/libexec/ssh-sk-helper",
        "/usr/libexec/openssh/ssh-sk-helper",
        "/usr/lib/ssh/ssh-sk-helper",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .unwrap_or_else(|| PathBuf::from("/usr/lib/openssh/ssh-sk-helper"))
}

/// The request frame for a signature.
fn request(key: &[u8], provider: &str, data: &[u8]) -> Vec<u8> {
    let mut body = vec![HELPER_VERSION];
    body.extend_from_slice(&HELPER_SIGN.to_be_bytes());
    body.push(0);
    body.extend_from_slice(&LOG_ERROR.to_be_bytes());
    put_string(&mut body, key);
    put_string(&mut body, provider.as_bytes());
    put_string(&mut body, data);
    put_string(&mut body, b"");
    body.extend_from_slice(&0u32.to_be_bytes());
    put_string(&mut body, b"");
    let mut frame = Vec::with_capacity(body.len() + 4);
    put_u32(&mut frame, body.len());
    frame.extend_from_slice(&body);
    frame
}

/// The signature from the helper's answer frame.
fn answer(frame: &[u8]) -> Result<Vec<u8>, String> {
    let mut r = Reader(frame);
    let body = r.string().map_err(|_| "short answer")?;
    if !r.0.is_empty() {
        return Err("answer length mismatch".into());
    }
    let mut r = Reader(body);
    let version = r.u8().map_err(|_| "no version")?;
    if version != HELPER_VERSION {
        return Err(format!(
            "helper protocol version {version}, expected {HELPER_VERSION}"
        ));
    }
    match r.u32().map_err(|_| "no type")? {
        HELPER_SIGN => {
            let sig = r.string().map_err(|_| "no signature")?.to_vec();
            if !r.0.is_empty() {
                return Err("trailing data".into());
            }
            Ok(sig)
        }
        0 => Err(format!("error -{}", r.u32().unwrap_or(0))),
        t => Err(format!("unexpected answer type {t}")),
    }
}

/// Sign `data` with a security key through `helper` and `provider`.
pub async fn sign(
    helper: &Path,
    key: &[u8],
    provider: &str,
    data: &[u8],
) -> Result<Vec<u8>, SkError> {
    let fail = |m: String| SkError::Helper(helper.display().to_string(), m);
    let mut child = tokio::process::Command::new(helper)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let talk = async {
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin
            .write_all(&request(key, provider, data))
            .await
            .map_err(|e| e.to_string())?;
        drop(stdin);
        let mut out = Vec::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        stdout
            .take(MAX_ANSWER as u64)
            .read_to_end(&mut out)
            .await
            .map_err(|e| e.to_string())?;
        let status = child.wait().await.map_err(|e| e.to_string())?;
        let sig = answer(&out)?;
        if !status.success() {
            return Err(format!("exited with {status}"));
        }
        Ok::<_, String>(sig)
    };
    match tokio::time::timeout(HELPER_TIMEOUT, talk).await {
        Ok(r) => r.map_err(fail),
        Err(_) => Err(fail("timed out".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_answers_parse() {
        let mut ok = vec![HELPER_VERSION];
        ok.extend_from_slice(&HELPER_SIGN.to_be_bytes());
        put_string(&mut ok, b"sig");
        let mut frame = Vec::new();
        put_u32(&mut frame, ok.len());
        frame.extend_from_slice(&ok);
        assert_eq!(answer(&frame).expect("signature"), b"sig");
        frame.push(0);
        assert!(answer(&frame).is_err(), "a frame longer than its length");
        let mut err = vec![HELPER_VERSION, 0, 0, 0, 0, 0, 0, 0, 43];
        let mut frame = Vec::new();
        put_u32(&mut frame, err.len());
        frame.append(&mut err);
        assert_eq!(answer(&frame).expect_err("an error answer"), "error -43");
    }
}
