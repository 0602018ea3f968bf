//! The signature audit log on a device (issue 25, PROTOCOL.md §16): with
//! real `ssh`, `sshd` and `ssh-keygen` through the running agent, every
//! login and signature it makes or refuses is a record of the device's
//! chain, with the user, host key, namespace, hops and calling program;
//! the chain goes on across a restart of the agent.

use std::path::Path;
use std::process::Command;

use mesh_tests::{
    can_run_sshd, eventually, Backend, Device, PortalProc, RunningAgent, Scratch, Val,
};
use serde_json::Value;

use crate::ssh_forward::{fingerprint, MeshNet};

fn records(net: &MeshNet) -> Vec<Value> {
    match net.dev.json(&["audit", "--local"]) {
        Value::Array(a) => a,
        v => panic!("{v}"),
    }
}

/// `ssh-keygen -Y sign -n git` of `file` with the device's key through `agent`.
fn git_sign(net: &MeshNet, agent: &RunningAgent, file: &str) -> bool {
    sign_with(&net.mesh_pub, &net.dir.path(file), agent)
}

fn sign_with(key: &Path, file: &Path, agent: &RunningAgent) -> bool {
    std::fs::write(file, "tree 1\n").expect("file");
    Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "git", "-f"])
        .arg(key)
        .arg(file)
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

    let text = net.dev.ok(&["audit", "--local"]);
    assert!(
        text.contains("refused") && text.contains("sshsig git"),
        "{text}"
    );
    let v = net.dev.json(&["audit", "verify", "--local"]);
    assert_eq!(v["records"], all.len());

    // The agent stops and starts again: the chain goes on.
    drop(agent);
    let agent = RunningAgent::start(&net.dev);
    assert!(git_sign(&net, &agent, "again"));
    let n = all.len() as u64;
    assert!(eventually(10, || records(&net).len() as u64 == n + 1));
    let after = net.dev.json(&["audit", "verify", "--local"]);
    assert_eq!(after["records"], n + 1);
    assert_ne!(after["head"], v["head"]);
}

/// What `mesh audit verify` says of each device at the portal: its name
/// and its record count, or the fault.
fn portal_verify(dev: &Device) -> (bool, String) {
    let o = dev.run(&["--json", "audit", "verify"]);
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    (o.status.success(), text)
}

fn portal_records(dev: &Device) -> u64 {
    let o = dev.run(&["--json", "audit", "verify"]);
    serde_json::from_slice::<Value>(&o.stdout)
        .ok()
        .and_then(|v| v[0]["records"].as_u64())
        .unwrap_or(0)
}

fn a_portal_that_drops_or_changes_a_batch_is_named_by_audit_verify(backend: Backend) {
    let dir = Scratch::new("audit-portal");
    let portal = PortalProc::on_with(backend, &dir.path("portal"), &[]);
    let dev = Device::create_account(&dir.0, "alice@example.com", &portal.url);
    let key = dir.path("mesh.pub");
    std::fs::write(&key, dev.ok(&["ssh", "public-key"])).expect("pub");
    let agent = RunningAgent::start(&dev);
    // Three bursts, each sent as a batch of its own once it settled.
    for n in 1..=3u64 {
        assert!(sign_with(&key, &dir.path(&format!("f{n}")), &agent));
        assert!(
            eventually(20, || portal_records(&dev) == n),
            "batch {n} did not reach the portal: {}",
            portal_verify(&dev).1
        );
    }
    let (ok, text) = portal_verify(&dev);
    assert!(ok, "{text}");
    let shown = dev.json(&["audit", "--device", &dev_name(&dev)]);
    assert_eq!(
        shown[0]["records"].as_array().map(Vec::len),
        Some(3),
        "{shown}"
    );
    assert_eq!(shown[0]["records"][2]["Namespace"], "git");

    // The portal's database, edited under it: one byte of the second batch.
    let rows = portal.db.query(
        "SELECT store, data FROM entries WHERE store LIKE 'Audit:%' AND idx = 2",
        &[],
    );
    let (Val::Text(store), Val::Text(data)) = (&rows[0][0], &rows[0][1]) else {
        panic!("{rows:?}")
    };
    let at = data.find("\"Ciphertext\":\"").expect("the sealed batch") + 20;
    let mut changed = data.clone().into_bytes();
    changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).expect("utf8");
    let set = "UPDATE entries SET data = $1 WHERE store = $2 AND idx = 2";
    assert_eq!(
        portal
            .db
            .execute(set, &[Val::from(&changed), Val::from(store)]),
        1
    );
    let (ok, text) = portal_verify(&dev);
    assert!(!ok, "a changed batch verified: {text}");
    assert!(
        text.contains("records from 1") && text.contains("changed"),
        "{text}"
    );
    // Put back, it verifies again; then the second batch is gone.
    portal.db.execute(set, &[Val::from(data), Val::from(store)]);
    assert!(portal_verify(&dev).0, "{}", portal_verify(&dev).1);
    let del = "DELETE FROM entries WHERE store = $1 AND idx = 2";
    assert_eq!(portal.db.execute(del, &[Val::from(store)]), 1);
    let (ok, text) = portal_verify(&dev);
    assert!(!ok, "a dropped batch verified: {text}");
    assert!(
        text.contains("records 1..2 are missing (dropped)"),
        "{text}"
    );
}

fn dev_name(dev: &Device) -> String {
    let v = dev.json(&["audit", "verify"]);
    v[0]["name"].as_str().expect("name").to_string()
}

mesh_tests::on_both_backends!(a_portal_that_drops_or_changes_a_batch_is_named_by_audit_verify);

/// How many `mesh ssh-agent` serving children of `home` run.
fn serving(home: &Path) -> usize {
    let home = home.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("--serve-child") && c.contains(&home))
        .count()
}

#[test]
fn mesh_ssh_agent_on_a_mesh_home_logs_too_and_one_agent_writes_the_log() {
    let dir = Scratch::new("audit-ssh-agent");
    let portal = PortalProc::start(&dir.path("portal"));
    let dev = Device::create_account(&dir.0, "alice@example.com", &portal.url);
    let key = dir.path("mesh.pub");
    std::fs::write(&key, dev.ok(&["ssh", "public-key"])).expect("pub");
    let file = dir.path("f");
    std::fs::write(&file, "x\n").expect("file");
    let sign = format!(
        "ssh-keygen -Y sign -n file -f {} {}",
        key.display(),
        file.display()
    );
    // COMMAND mode: the agent exits after the command (the kernel tells
    // it), writing its record as it goes.
    let o = dev
        .command(&["ssh-agent", "sh", "-c", &sign])
        .output()
        .expect("run");
    assert!(o.status.success(), "{o:?}");
    let local = || dev.json(&["audit", "--local"]);
    assert!(
        eventually(5, || local().as_array().map(Vec::len) == Some(1)),
        "{}",
        local()
    );
    let all = local();
    let all = all.as_array().expect("records");
    // --since takes a time or a duration ago.
    let count = |since: &str| {
        dev.json(&["audit", "--local", "--since", since])
            .as_array()
            .map(Vec::len)
    };
    assert_eq!(count("2000-01-01T00:00:00Z"), Some(1));
    assert_eq!(count("1h"), Some(1));
    assert_eq!(count("2100-01-01T00:00:00Z"), Some(0));
    let bad = dev.fails(&["audit", "--since", "yesterday"]);
    assert!(bad.contains("neither an RFC 3339 time"), "{bad}");
    assert_eq!(
        (&all[0]["Kind"], &all[0]["Namespace"]),
        (&Value::from("Sshsig"), &Value::from("file"))
    );
    // With `mesh agent` running, a second agent of the home signs but
    // does not write the log (two writers would number records twice).
    let _agent = RunningAgent::start(&dev);
    let o = dev
        .command(&["ssh-agent", "sh", "-c", &sign])
        .output()
        .expect("run");
    assert!(o.status.success(), "{o:?}");
    // Once that agent has exited (and would have written), the log still
    // holds one record.
    assert!(
        eventually(5, || serving(&dev.home) == 0),
        "the COMMAND's agent did not exit"
    );
    assert_eq!(local().as_array().map(Vec::len), Some(1));
}

/// What `mesh audit verify --local` says on a device: success, and its
/// output (the JSON on success, the error on failure).
fn own_verify(dev: &Device) -> (bool, Value, String) {
    let o = dev.run(&["--json", "audit", "verify", "--local"]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (
        o.status.success(),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_device_finds_its_newest_batch_dropped_which_administrators_cannot_tell() {
    let dir = Scratch::new("audit-own");
    let portal = PortalProc::start(&dir.path("portal"));
    let admin = Device::create_account(&dir.0, "alice@example.com", &portal.url);
    let phone = Device::new(&dir.0, "phone");
    phone.join(&admin, "alice@example.com", &portal.url, "phone");
    let key = dir.path("phone.pub");
    std::fs::write(&key, phone.ok(&["ssh", "public-key"])).expect("pub");
    let agent = RunningAgent::start(&phone);
    for n in 1..=2u64 {
        assert!(sign_with(&key, &dir.path(&format!("f{n}")), &agent));
        assert!(
            eventually(20, || own_verify(&phone).1["held"] == n),
            "batch {n}: {:?}",
            own_verify(&phone)
        );
    }
    let (ok, v, err) = own_verify(&phone);
    assert!(ok, "{v} {err}");
    assert_eq!(
        (v["sent"].as_u64(), v["records"].as_u64()),
        (Some(2), Some(2))
    );
    drop(agent);
    // The portal's database loses the phone's newest batch.
    let store = format!(
        "Audit:{}",
        phone.json(&["account", "show"])["device"]
            .as_str()
            .expect("udf")
    );
    let del = "DELETE FROM entries WHERE store = $1 AND idx = 2";
    assert_eq!(portal.db.execute(del, &[Val::from(&store)]), 1);
    // An administrator sees a whole chain of one record: nothing to tell.
    assert!(portal_verify(&admin).0, "{}", portal_verify(&admin).1);
    // The phone knows it sent two.
    let (ok, _, err) = own_verify(&phone);
    assert!(!ok, "a dropped newest batch went unseen");
    assert!(
        err.contains("holds 1 of the 2 batches") && err.contains("dropped"),
        "{err}"
    );
}
