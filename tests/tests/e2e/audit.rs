//! The signature audit log on a device (issue 25, PROTOCOL.md §16): with
//! real `ssh`, `sshd` and `ssh-keygen` through the running agent, every
//! login and signature it makes or refuses is a record of the device's
//! chain, with the user, host key, namespace, hops and calling program;
//! the chain goes on across a restart of the agent.

use std::process::Command;

use mesh_tests::{can_run_sshd, eventually, RunningAgent};
use serde_json::Value;

use crate::ssh_forward::{fingerprint, MeshNet};

fn records(net: &MeshNet) -> Vec<Value> {
    match net.dev.json(&["audit"]) {
        Value::Array(a) => a,
        v => panic!("{v}"),
    }
}

/// `ssh-keygen -Y sign -n git` of `file` with the device's key through `agent`.
fn git_sign(net: &MeshNet, agent: &RunningAgent, file: &str) -> bool {
    let f = net.dir.path(file);
    std::fs::write(&f, "tree 1\n").expect("file");
    Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "git", "-f"])
        .arg(&net.mesh_pub)
        .arg(&f)
        .env("SSH_AUTH_SOCK", &agent.sock)
        .output()
        .expect("ssh-keygen")
        .status
        .success()
}

fn find<'a>(records: &'a [Value], kind: &str, decision: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["Kind"] == kind && r["Decision"] == decision)
        .unwrap_or_else(|| panic!("no {kind} {decision} in {records:?}"))
}

#[test]
fn every_signature_the_agent_makes_or_refuses_is_in_the_devices_chain() {
    if !can_run_sshd() {
        return;
    }
    let net = MeshNet::new("audit");
    let host = fingerprint(&net.a.host_key, &net.dir.0);
    let agent = RunningAgent::start(&net.dev);
    assert!(net
        .ssh(&agent, &["host_a", "true"])
        .status()
        .expect("ssh")
        .success());
    assert!(git_sign(&net, &agent, "local"), "a local git signature");
    // Over the forwarded hop ssh -A makes: refused by the account's default.
    let inner = format!(
        "ssh-keygen -Y sign -n git -f {} {}",
        net.mesh_pub.display(),
        net.dir.path("local").display()
    );
    let forwarded = net
        .ssh(&agent, &["-A", "host_a", &inner])
        .status()
        .expect("ssh");
    assert!(
        !forwarded.success(),
        "a forwarded git signature went through"
    );
    // Two logins (ssh, ssh -A), the local signature and the refused one.
    assert!(
        eventually(10, || records(&net).len() >= 4),
        "{:?}",
        records(&net)
    );
    let all = records(&net);
    let seqs: Vec<u64> = all
        .iter()
        .map(|r| r["Seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (0..all.len() as u64).collect::<Vec<_>>());
    let key = fingerprint(
        &std::fs::read_to_string(&net.mesh_pub).expect("pub"),
        &net.dir.0,
    );
    let login = find(&all, "Login", "Allowed");
    assert_eq!(
        (&login["User"], &login["HostKey"], &login["Key"]),
        (
            &Value::from("root"),
            &Value::from(host.clone()),
            &Value::from(key.clone())
        )
    );
    assert!(
        login["Process"].as_str().expect("process").contains("ssh"),
        "{login}"
    );
    let local = find(&all, "Sshsig", "Allowed");
    assert_eq!(local["Namespace"], "git");
    assert!(local.get("Hops").is_none(), "{local}");
    assert!(
        local["Process"]
            .as_str()
            .expect("process")
            .ends_with("/ssh-keygen"),
        "{local}"
    );
    let refused = find(&all, "Sshsig", "Refused");
    assert_eq!(refused["Hops"], Value::from(vec![host]), "{refused}");

    let text = net.dev.ok(&["audit"]);
    assert!(
        text.contains("refused") && text.contains("sshsig git"),
        "{text}"
    );
    let v = net.dev.json(&["audit", "verify"]);
    assert_eq!(v["records"], all.len());

    // The agent stops and starts again: the chain goes on.
    drop(agent);
    let agent = RunningAgent::start(&net.dev);
    assert!(git_sign(&net, &agent, "again"));
    let n = all.len() as u64;
    assert!(eventually(10, || records(&net).len() as u64 == n + 1));
    let after = net.dev.json(&["audit", "verify"]);
    assert_eq!(after["records"], n + 1);
    assert_ne!(after["head"], v["head"]);
}
