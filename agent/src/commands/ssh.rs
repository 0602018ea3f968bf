//! `mesh ssh`: this device's key and certificate, and what servers use.

use anyhow::Result;
use serde_json::json;

use super::*;
use crate::cli::*;

pub(crate) fn run(home: &std::path::Path, cmd: SshCmd, j: bool) -> Result<()> {
    use mesh_ssh::channel as ssh;
    match cmd {
        SshCmd::PublicKey => {
            let l = with_view(home, |dh, view| Ok(ssh::public_key_line(dh, view)?))?;
            emit(j, json!({"public_key": l}), &l);
        }
        SshCmd::Cert => {
            let l = with_view(home, |dh, view| Ok(ssh::cert_line(dh, view)?))?;
            emit(j, json!({"certificate": l}), &l);
        }
        SshCmd::Ca {
            account: Some(account),
            portal: Some(portal),
            output: Some(output),
            cache,
        } => {
            let f = mesh_agent::servers::fetch_ca(&account, &portal, &output, cache.as_deref())?;
            let path = output.display();
            if f.replaced {
                eprintln!("mesh: wrote {path} (administrator epoch {})", f.epoch);
            } else {
                eprintln!("mesh: {path} is current (administrator epoch {})", f.epoch);
            }
            emit(j, serde_json::to_value(&f)?, "");
        }
        SshCmd::Ca { .. } => {
            let l = with_view(home, |_, view| Ok(ssh::ca_line(view)?))?;
            emit(j, json!({"ca": l}), &l);
        }
        SshCmd::Krl {
            output,
            account: Some(account),
            portal: Some(portal),
            cache,
        } => server_krl(&account, &portal, &output, cache.as_deref(), j)?,
        SshCmd::Krl { output, .. } => {
            {
                // The KRL reflects the latest revocations the portal has.
                let mut store = Store::open(home, false)?;
                mesh_account::sync::sync(&mut store, &mesh_agent::host())?;
            }
            let k = with_view(home, |_, view| Ok(ssh::krl(view)?))?;
            store::write_atomic(&output, &k)?;
            eprintln!("mesh: wrote {} ({} bytes)", output.display(), k.len());
            emit(j, json!({"output": output, "bytes": k.len()}), "");
        }
        SshCmd::AllowedSigners {
            output,
            krl,
            account,
            portal,
            cache,
        } => {
            let (udf, portal) = match (account, portal) {
                (Some(a), Some(p)) => (a, p),
                _ => {
                    let a = mesh_account::account(&Store::open(home, false)?)?;
                    (a.profile_udf, a.portal)
                }
            };
            let w =
                mesh_agent::git_signers::write(&udf, &portal, cache.as_deref(), krl.as_deref())?;
            allowed_signers_out(&w, output.as_deref(), krl.as_deref(), j)?;
        }
        SshCmd::AuthorizedKeys { lookup, user } => {
            let lines = mesh_agent::servers::authorized_keys(&lookup.lookup(), user.as_deref())?;
            print_lines(j, "keys", &lines);
        }
        SshCmd::AuthorizedPrincipals { lookup, user, cert } => {
            let lines = mesh_agent::servers::authorized_principals(&lookup.lookup(), &user, &cert)?;
            print_lines(j, "principals", &lines);
        }
        SshCmd::Confirm { state } => {
            let mut store = Store::open(home, false)?;
            let on = state == Toggle::On;
            mesh_account::admin::publish(&mut store, &mesh_agent::host(), |view| {
                ssh::confirm_entry(view, on)
            })?;
            drop(store);
            // A running agent here takes the policy at once; others at their next sync.
            let _ = mesh_agent::daemon::query(home, "sync");
            eprintln!(
                "mesh: Mesh keys {} before each use",
                if on {
                    "now ask (SSH_ASKPASS)"
                } else {
                    "no longer ask"
                }
            );
            emit(j, json!({ "confirm": on }), "");
        }
        SshCmd::Hosts { action } => hosts(home, action, j)?,
        SshCmd::Principals { names, validity } => {
            let mut store = Store::open(home, false)?;
            mesh_account::admin::publish(&mut store, &mesh_agent::host(), |view| {
                ssh::principals_entry(view, &names, validity)
            })
            .map_err(|e| match e {
                mesh_account::AccountError::Plugin(mesh_plugins::PluginError::BadInput(m)) => {
                    hinted(
                        m,
                        "give each login name as its own argument: `mesh ssh principals root deploy`",
                    )
                }
                e => e.into(),
            })?;
            let p = with_view_of(&store, |_, view| Ok(ssh::policy(view)?))?;
            eprintln!(
                "mesh: certificates are now for {} and valid {} s",
                p.principals.join(","),
                p.validity
            );
            emit(j, serde_json::to_value(&p)?, "");
        }
        SshCmd::Policy(SshPolicyCmd::Forwarding {
            sign,
            login,
            destination,
            reset,
        }) => forwarding(
            home,
            sign.map(Into::into),
            login.map(Into::into),
            destination,
            reset,
            j,
        )?,
        SshCmd::Policy(SshPolicyCmd::CertLifetime { lifetime, ahead }) => {
            cert_lifetime(home, lifetime.map(|l| l.0), ahead, j)?
        }
    }
    Ok(())
}

/// `mesh ssh policy cert-lifetime`: show it, or publish a change
/// (`lifetime` `Some(None)`: off).
fn cert_lifetime(
    home: &std::path::Path,
    lifetime: Option<Option<u64>>,
    ahead: Option<u64>,
    j: bool,
) -> Result<()> {
    use mesh_ssh::channel as ssh;
    if let Some(l) = lifetime {
        let mut store = Store::open(home, false)?;
        mesh_account::admin::publish(&mut store, &mesh_agent::host(), |view| {
            ssh::cert_lifetime_entry(view, l, ahead)
        })
        .map_err(|e| match e {
            mesh_account::AccountError::Plugin(mesh_plugins::PluginError::BadInput(m)) => hinted(
                m,
                "give a window of 10m or more: `mesh ssh policy cert-lifetime 24h`",
            ),
            e => e.into(),
        })?;
        drop(store);
        let _ = mesh_agent::daemon::query(home, "sync");
    }
    let p = with_view(home, |_, view| Ok(ssh::policy(view)?))?;
    let text = match p.cert_lifetime {
        Some(l) => format!(
            "certificates for windows of {l} s, issued {} s ahead and released by the portal at each window",
            p.cert_ahead.unwrap_or(mesh_ssh::windows::DEFAULT_AHEAD)
        ),
        None => format!("certificates valid {} s (no short-lived windows)", p.validity),
    };
    emit(
        j,
        json!({ "cert_lifetime": p.cert_lifetime, "cert_ahead": p.cert_ahead, "validity": p.validity }),
        &text,
    );
    Ok(())
}

/// `mesh ssh policy forwarding`: show the policy, or publish a change.
fn forwarding(
    home: &std::path::Path,
    sign: Option<mesh_ssh::forward::Action>,
    login: Option<mesh_ssh::forward::Action>,
    destination: Option<String>,
    reset: bool,
    j: bool,
) -> Result<()> {
    use mesh_ssh::channel as ssh;
    if sign.is_some() || login.is_some() || reset {
        let mut store = Store::open(home, false)?;
        mesh_account::admin::publish(&mut store, &mesh_agent::host(), |view| {
            ssh::forwarding_entry(view, |p| {
                if reset {
                    p.destinations.clear();
                }
                if let Some(a) = sign {
                    p.sign = a;
                }
                if let Some(a) = login {
                    p.set_login(destination.as_deref(), a);
                }
            })
        })?;
        drop(store);
        // A running agent here takes the policy at once; others at their next sync.
        let _ = mesh_agent::daemon::query(home, "sync");
    }
    let p = with_view(home, |_, view| Ok(ssh::policy(view)?.forwarding))?;
    emit(j, serde_json::to_value(&p)?, &p.describe());
    Ok(())
}

/// One item a line, or a JSON list under `field`.
fn print_lines(j: bool, field: &str, lines: &[String]) {
    if j {
        out!("{}", json!({ field: lines }));
    } else {
        for l in lines {
            out!("{l}");
        }
    }
}

/// `mesh ssh krl --account --portal`: what a server fetches.
fn server_krl(
    account: &str,
    portal: &str,
    output: &std::path::Path,
    cache: Option<&std::path::Path>,
    j: bool,
) -> Result<()> {
    let f = mesh_agent::servers::fetch_krl(account, portal, output, cache)?;
    let (path, v) = (output.display(), f.version);
    if f.replaced {
        eprintln!("mesh: wrote {path} (KRL version {v})");
    } else {
        eprintln!("mesh: {path} is current (KRL version {v})");
    }
    emit(j, serde_json::to_value(&f)?, "");
    Ok(())
}

/// `mesh ssh hosts [pin|forget]`: the home's learned-hosts file.
fn hosts(home: &std::path::Path, action: Option<HostsCmd>, j: bool) -> Result<()> {
    use mesh_agent::ssh_hosts;
    use mesh_ssh::hosts::{is_fingerprint, Op};
    let fp = |s: &str| -> Result<()> {
        anyhow::ensure!(
            is_fingerprint(s),
            "{s:.80} is not a SHA-256 fingerprint (hint: as `ssh-add -l` and `ssh-keygen -lf` print them, SHA256:…)"
        );
        Ok(())
    };
    let with_hint = |e: ssh_hosts::HostsFileError| anyhow::anyhow!("{e} (hint: {})", e.hint());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (op, said) = match action {
        None => {
            let map = ssh_hosts::load(home).map_err(with_hint)?;
            let rows: Vec<_> = map
                .hosts
                .iter()
                .map(|(h, l)| json!({"host": h, "identity": l.identity, "when": l.when, "pinned": l.pinned}))
                .collect();
            let text: Vec<String> = map
                .hosts
                .iter()
                .map(|(h, l)| {
                    let how = if l.pinned { "pinned" } else { "learned" };
                    format!("{h} {} {how} {}", l.identity, l.when)
                })
                .collect();
            emit(j, json!({"hosts": rows}), &text.join("\n"));
            return Ok(());
        }
        Some(HostsCmd::Pin { host, key }) => {
            fp(&host)?;
            fp(&key)?;
            let said = format!("{key} is offered first to {host}");
            (
                Op::Pin {
                    host,
                    identity: key,
                    when: now,
                },
                said,
            )
        }
        Some(HostsCmd::Forget { host }) => {
            fp(&host)?;
            let said = format!("forgot {host}");
            (Op::Forget { host }, said)
        }
    };
    let (map, _) = ssh_hosts::update(home, std::slice::from_ref(&op), false).map_err(with_hint)?;
    if let Op::Pin { host, .. } = &op {
        anyhow::ensure!(
            map.hosts.get(host).is_some_and(|l| l.pinned),
            "not pinned: {} hosts are pinned already (hint: forget some with `mesh ssh hosts forget`)",
            map.hosts.len()
        );
    }
    eprintln!("mesh: {said}");
    emit(j, json!({"hosts": map.hosts.len()}), "");
    Ok(())
}

/// Where `mesh ssh allowed-signers` puts the file, and what it says.
fn allowed_signers_out(
    w: &mesh_agent::git_signers::Written,
    output: Option<&std::path::Path>,
    krl: Option<&std::path::Path>,
    j: bool,
) -> Result<()> {
    let Some(out) = output else {
        if j {
            out!(
                "{}",
                json!({"allowed_signers": w.text, "keys": w.keys, "cas": w.cas, "revoked": w.revoked})
            );
        } else {
            print!("{}", w.text);
        }
        return Ok(());
    };
    store::write_atomic(out, w.text.as_bytes())?;
    std::fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    eprintln!(
        "mesh: wrote {} ({} device keys, {} CA keys)",
        out.display(),
        w.keys,
        w.cas
    );
    if let Some(k) = krl {
        eprintln!("mesh: wrote {} ({} revoked keys)", k.display(), w.revoked);
    }
    emit(
        j,
        json!({"output": out, "krl": krl, "keys": w.keys, "cas": w.cas, "revoked": w.revoked}),
        "",
    );
    Ok(())
}
