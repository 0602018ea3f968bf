//! Every decision on a held key reaches the audit sink with what the log
//! needs (kind, user, host key, namespace, hops, decision), driven through
//! the agent as ssh drives it; a key the agent does not hold reports
//! nothing.

use std::sync::{Arc, Mutex};

use mesh_core::audit::Decision;
use zeroize::Zeroizing;

use super::super::test_support::*;
use super::super::{Agent, Connection};
use crate::audit::{AuditSink, Kind, SignEvent};
use crate::wire::{self, put_string, KeyReply};

#[derive(Default)]
struct Sink(Mutex<Vec<SignEvent>>);

impl AuditSink for Sink {
    fn record(&self, event: SignEvent) {
        self.0.lock().expect("sink").push(event);
    }
}

fn audited(askpass: Option<&str>) -> (Agent, Arc<Sink>) {
    let sink = Arc::new(Sink::default());
    let agent = Agent::new(askpass.map(Into::into)).with_audit(sink.clone());
    (agent, sink)
}

/// The blob `ssh-keygen -Y sign -n NS` asks an agent to sign (PROTOCOL.sshsig).
fn sshsig(namespace: &[u8]) -> Vec<u8> {
    let mut m = b"SSHSIG".to_vec();
    put_string(&mut m, namespace);
    put_string(&mut m, b"");
    put_string(&mut m, b"sha512");
    put_string(&mut m, &[7; 64]);
    m
}

fn host_fp(seed: u8) -> String {
    let blob = pub_blob(seed);
    let key =
        <ssh_key::public::KeyData as ssh_encoding::Decode>::decode(&mut &blob[..]).expect("key");
    key.fingerprint(ssh_key::HashAlg::Sha256).to_string()
}

/// Add key `seed` with `ssh-add -c`.
async fn add_confirmed(agent: &Agent, seed: u8) {
    let k = sk(seed);
    let mut m = vec![wire::ADD_ID_CONSTRAINED];
    put_string(&mut m, b"ssh-ed25519");
    put_string(&mut m, &k.verifying_key().to_bytes());
    let mut private = k.to_bytes().to_vec();
    private.extend_from_slice(&k.verifying_key().to_bytes());
    put_string(&mut m, &private);
    put_string(&mut m, b"confirmed");
    m.push(2); // SSH_AGENT_CONSTRAIN_CONFIRM
    let req = wire::decode(&m).expect("ours").expect("parses");
    let r = agent.handle_key(&mut Connection::default(), req).await;
    assert!(matches!(r, KeyReply::Status(true)), "{r:?}");
}

const KEY: u8 = 20;
const HOST: u8 = 1;
const HOP: u8 = 3;

#[test]
fn each_request_on_a_held_key_is_reported_with_its_decision() {
    rt().block_on(async {
        let (agent, sink) = audited(None);
        add(&agent, KEY, None, "k").await;
        let key = pub_blob(KEY);
        let login = userauth(b"s1", &key);
        // (what, connection, data, signed?, kind, user, host key, namespace, hops, decision)
        type Case<'a> = (
            &'a str,
            Connection,
            Vec<u8>,
            bool,
            Kind,
            Option<&'a str>,
            Option<String>,
            Option<&'a str>,
            Vec<String>,
            Decision,
        );
        let cases: Vec<Case> = vec![
            (
                "a bound login",
                bound(&[(HOST, b"s1", false)]),
                login.clone(),
                true,
                Kind::Login,
                Some("root"),
                Some(host_fp(HOST)),
                None,
                vec![],
                Decision::Allowed,
            ),
            (
                "an unbound login (an older client)",
                Connection::default(),
                login.clone(),
                true,
                Kind::Login,
                Some("root"),
                None,
                None,
                vec![],
                Decision::Allowed,
            ),
            (
                "a local git signature",
                Connection::default(),
                sshsig(b"git"),
                true,
                Kind::Sshsig,
                None,
                None,
                Some("git"),
                vec![],
                Decision::Allowed,
            ),
            (
                "a git signature over a forwarded hop (refused by default)",
                bound(&[(HOP, b"f1", true)]),
                sshsig(b"git"),
                false,
                Kind::Sshsig,
                None,
                None,
                Some("git"),
                vec![host_fp(HOP)],
                Decision::Refused,
            ),
            (
                "something else",
                Connection::default(),
                b"not a login".to_vec(),
                true,
                Kind::Other,
                None,
                None,
                None,
                vec![],
                Decision::Allowed,
            ),
        ];
        for (what, mut conn, data, signs, kind, user, host, ns, hops, decision) in cases {
            assert_eq!(sign(&agent, &mut conn, &key, &data).await, signs, "{what}");
            let got = sink.0.lock().expect("sink").pop().expect(what);
            assert_eq!(got.key, host_fp(KEY), "{what}");
            let d = &got.detail;
            assert_eq!(
                (
                    d.kind,
                    d.user.as_deref(),
                    d.host_key.clone(),
                    d.namespace.as_deref()
                ),
                (kind, user, host, ns),
                "{what}"
            );
            assert_eq!((d.hops.clone(), got.decision), (hops, decision), "{what}");
        }
        // A key the agent does not hold: nothing to report.
        assert!(!sign(&agent, &mut Connection::default(), &pub_blob(99), &login).await);
        assert!(sink.0.lock().expect("sink").is_empty());
    });
}

#[test]
fn a_confirmation_a_refusal_and_a_locked_agent_are_reported() {
    rt().block_on(async {
        for (askpass, signs, decision) in [
            ("/bin/true", true, Decision::Confirmed),
            ("/bin/false", false, Decision::Refused),
        ] {
            let (agent, sink) = audited(Some(askpass));
            add_confirmed(&agent, KEY).await;
            let mut c = Connection::default();
            assert_eq!(sign(&agent, &mut c, &pub_blob(KEY), b"x").await, signs);
            let got = sink.0.lock().expect("sink").pop().expect("reported");
            assert_eq!(got.decision, decision, "{askpass}");
        }
        let (agent, sink) = audited(None);
        add(&agent, KEY, None, "k").await;
        assert!(
            agent.lock(Zeroizing::new("pw".into())).await
                == ssh_agent_lib::proto::Response::Success
        );
        assert!(!sign(&agent, &mut Connection::default(), &pub_blob(KEY), b"x").await);
        let got = sink.0.lock().expect("sink").pop().expect("reported");
        assert_eq!(got.decision, Decision::Refused);
    });
}
