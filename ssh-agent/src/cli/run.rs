//! Running `mesh ssh …`: what each subcommand prints or writes.

use mesh_plugins::cli::{emit, print_line, with_view, write_atomic};
use mesh_plugins::command::Lookup;
use mesh_plugins::{CommandContext, CommandError, PluginError};
use serde_json::json;

use super::*;

/// Run `mesh ssh …`.
pub fn run(ctx: &dyn CommandContext, cmd: SshCmd) -> Result<(), CommandError> {
    use crate::channel as ssh;
    let j = ctx.json();
    match cmd {
        SshCmd::PublicKey => {
            let l = with_view(ctx, |dh, view| ssh::public_key_line(dh, view).map_err(err))?;
            emit(j, json!({"public_key": l}), &l);
        }
        SshCmd::Cert => {
            let l = with_view(ctx, |dh, view| ssh::cert_line(dh, view).map_err(err))?;
            emit(j, json!({"certificate": l}), &l);
        }
        SshCmd::Ca {
            account: Some(account),
            portal: Some(portal),
            output: Some(output),
            cache,
        } => {
            let l = server(&account, &portal, cache.as_deref());
            let f = ctx.servers()?.fetch_ca(&l, &output)?;
            let path = output.display();
            if f.replaced {
                eprintln!("mesh: wrote {path} (administrator epoch {})", f.number);
            } else {
                eprintln!("mesh: {path} is current (administrator epoch {})", f.number);
            }
            emit(j, f.json, "");
        }
        SshCmd::Ca { .. } => {
            let l = with_view(ctx, |_, view| ssh::ca_line(view).map_err(err))?;
            emit(j, json!({"ca": l}), &l);
        }
        SshCmd::Krl {
            output,
            account: Some(account),
            portal: Some(portal),
            cache,
        } => server_krl(ctx, &server(&account, &portal, cache.as_deref()), &output)?,
        SshCmd::Krl { output, .. } => {
            // The KRL reflects the latest revocations the portal has.
            ctx.sync()?;
            let k = with_view(ctx, |_, view| ssh::krl(view).map_err(err))?;
            write_atomic(&output, &k)?;
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
                    let a = ctx.account()?;
                    (a.profile_udf, a.portal)
                }
            };
            let w = ctx
                .servers()?
                .allowed_signers(&server(&udf, &portal, cache.as_deref()), krl.as_deref())?;
            allowed_signers_out(&w, output.as_deref(), krl.as_deref(), j)?;
        }
        SshCmd::AuthorizedKeys { lookup, user } => {
            let lines = ctx
                .servers()?
                .authorized_keys(&lookup.lookup(), user.as_deref())?;
            print_lines(j, "keys", &lines);
        }
        SshCmd::AuthorizedPrincipals { lookup, user, cert } => {
            let lines = ctx
                .servers()?
                .authorized_principals(&lookup.lookup(), &user, &cert)?;
            print_lines(j, "principals", &lines);
        }
        SshCmd::Confirm { state } => confirm(ctx, state == Toggle::On)?,
        SshCmd::Hosts { action } => hosts(ctx.home(), action, j)?,
        SshCmd::Principals { names, validity } => principals(ctx, &names, validity)?,
        SshCmd::Policy(SshPolicyCmd::Forwarding {
            sign,
            login,
            destination,
            reset,
        }) => forwarding(
            ctx,
            sign.map(Into::into),
            login.map(Into::into),
            destination,
            reset,
        )?,
        SshCmd::Policy(SshPolicyCmd::CertLifetime { lifetime, ahead }) => {
            cert_lifetime(ctx, lifetime.map(|l| l.0), ahead)?
        }
    }
    Ok(())
}

/// `mesh ssh policy cert-lifetime`: show it, or publish a change
/// (`lifetime` `Some(None)`: off).
fn cert_lifetime(
    ctx: &dyn CommandContext,
    lifetime: Option<Option<u64>>,
    ahead: Option<u64>,
) -> Result<(), CommandError> {
    use crate::channel as ssh;
    if let Some(l) = lifetime {
        // A lifetime the entry refuses keeps its message, with a hint.
        let bad = std::cell::RefCell::new(None);
        ctx.publish(&|view| {
            ssh::cert_lifetime_entry(view, l, ahead).inspect_err(|e| {
                if let PluginError::BadInput(m) = e {
                    *bad.borrow_mut() = Some(m.clone());
                }
            })
        })
        .map_err(|e| match bad.take() {
            Some(m) => CommandError::new(
                m,
                Some("give a window of 10m or more: `mesh ssh policy cert-lifetime 24h`".into()),
            ),
            None => e,
        })?;
        // A running agent here takes the policy at once; others at their next sync.
        ctx.nudge_agent();
    }
    let p = with_view(ctx, |_, view| ssh::policy(view).map_err(err))?;
    let text = match p.cert_lifetime {
        Some(l) => format!(
            "certificates for windows of {l} s, issued {} s ahead and released by the portal at each window",
            p.cert_ahead.unwrap_or(crate::windows::DEFAULT_AHEAD)
        ),
        None => format!("certificates valid {} s (no short-lived windows)", p.validity),
    };
    emit(
        ctx.json(),
        json!({ "cert_lifetime": p.cert_lifetime, "cert_ahead": p.cert_ahead, "validity": p.validity }),
        &text,
    );
    Ok(())
}

/// `mesh ssh confirm on|off` (administrators).
fn confirm(ctx: &dyn CommandContext, on: bool) -> Result<(), CommandError> {
    use crate::channel as ssh;
    let j = ctx.json();
    ctx.publish(&|view| ssh::confirm_entry(view, on))?;
    // A running agent here takes the policy at once; others at their next sync.
    ctx.nudge_agent();
    eprintln!(
        "mesh: Mesh keys {} before each use",
        if on {
            "now ask (SSH_ASKPASS)"
        } else {
            "no longer ask"
        }
    );
    emit(j, json!({ "confirm": on }), "");
    Ok(())
}

/// `mesh ssh principals NAME…` (administrators).
fn principals(
    ctx: &dyn CommandContext,
    names: &[String],
    validity: Option<u64>,
) -> Result<(), CommandError> {
    use crate::channel as ssh;
    let j = ctx.json();
    // A login name the entry refuses keeps its message, with a hint.
    let bad = std::cell::RefCell::new(None);
    ctx.publish(&|view| {
        ssh::principals_entry(view, names, validity).inspect_err(|e| {
            if let PluginError::BadInput(m) = e {
                *bad.borrow_mut() = Some(m.clone());
            }
        })
    })
    .map_err(|e| match bad.take() {
        Some(m) => CommandError::new(
            m,
            Some(
                "give each login name as its own argument: `mesh ssh principals root deploy`"
                    .into(),
            ),
        ),
        None => e,
    })?;
    let p = with_view(ctx, |_, view| ssh::policy(view).map_err(err))?;
    eprintln!(
        "mesh: certificates are now for {} and valid {} s",
        p.principals.join(","),
        p.validity
    );
    emit(j, to_json(&p)?, "");
    Ok(())
}

/// `mesh ssh policy forwarding`: show the policy, or publish a change.
fn forwarding(
    ctx: &dyn CommandContext,
    sign: Option<crate::forward::Action>,
    login: Option<crate::forward::Action>,
    destination: Option<String>,
    reset: bool,
) -> Result<(), CommandError> {
    use crate::channel as ssh;
    if sign.is_some() || login.is_some() || reset {
        ctx.publish(&|view| {
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
        // A running agent here takes the policy at once; others at their next sync.
        ctx.nudge_agent();
    }
    let p = with_view(ctx, |_, view| {
        Ok(ssh::policy(view).map_err(err)?.forwarding)
    })?;
    emit(ctx.json(), to_json(&p)?, &p.describe());
    Ok(())
}

/// One item a line, or a JSON list under `field`.
fn print_lines(j: bool, field: &str, lines: &[String]) {
    if j {
        print_line(&json!({ field: lines }).to_string());
    } else {
        for l in lines {
            print_line(l);
        }
    }
}

/// `mesh ssh krl --account --portal`: what a server fetches.
fn server_krl(
    ctx: &dyn CommandContext,
    l: &Lookup<'_>,
    output: &std::path::Path,
) -> Result<(), CommandError> {
    let f = ctx.servers()?.fetch_krl(l, output)?;
    let (path, v) = (output.display(), f.number);
    if f.replaced {
        eprintln!("mesh: wrote {path} (KRL version {v})");
    } else {
        eprintln!("mesh: {path} is current (KRL version {v})");
    }
    emit(ctx.json(), f.json, "");
    Ok(())
}

/// `mesh ssh hosts [pin|forget]`: the home's learned-hosts file.
fn hosts(home: &std::path::Path, action: Option<HostsCmd>, j: bool) -> Result<(), CommandError> {
    use crate::hosts::{is_fingerprint, Op};
    use crate::hosts_file as ssh_hosts;
    let fp = |s: &str| -> Result<(), CommandError> {
        if is_fingerprint(s) {
            return Ok(());
        }
        Err(CommandError::new(format!(
            "{s:.80} is not a SHA-256 fingerprint (hint: as `ssh-add -l` and `ssh-keygen -lf` print them, SHA256:…)"
        ), None))
    };
    let with_hint =
        |e: ssh_hosts::HostsFileError| CommandError::new(format!("{e} (hint: {})", e.hint()), None);
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
        if !map.hosts.get(host).is_some_and(|l| l.pinned) {
            return Err(CommandError::new(format!(
                "not pinned: {} hosts are pinned already (hint: forget some with `mesh ssh hosts forget`)",
                map.hosts.len()
            ), None));
        }
    }
    eprintln!("mesh: {said}");
    emit(j, json!({"hosts": map.hosts.len()}), "");
    Ok(())
}

/// Where `mesh ssh allowed-signers` puts the file, and what it says.
fn allowed_signers_out(
    w: &mesh_plugins::command::Signers,
    output: Option<&std::path::Path>,
    krl: Option<&std::path::Path>,
    j: bool,
) -> Result<(), CommandError> {
    let Some(out) = output else {
        if j {
            print_line(
                &json!({"allowed_signers": w.text, "keys": w.keys, "cas": w.cas, "revoked": w.revoked})
                    .to_string(),
            );
        } else {
            print!("{}", w.text);
        }
        return Ok(());
    };
    write_atomic(out, w.text.as_bytes())?;
    mesh_plugins::platform::set_mode(out, 0o644).map_err(|e| CommandError::of(&e, None))?;
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

/// A channel's failure as the host prints it (message, causes, hint).
fn err(e: PluginError) -> CommandError {
    CommandError::of(&e, None)
}

fn to_json(v: &impl serde::Serialize) -> Result<serde_json::Value, CommandError> {
    serde_json::to_value(v).map_err(|e| CommandError::new(e.to_string(), None))
}

/// A server's lookup of `account` at `portal` (no stale answer served).
fn server<'a>(account: &'a str, portal: &'a str, cache: Option<&'a std::path::Path>) -> Lookup<'a> {
    Lookup {
        profile_udf: account,
        portal,
        cache,
        max_stale: 0,
    }
}
