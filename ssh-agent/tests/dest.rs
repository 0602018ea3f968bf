//! Destination constraints through `Agent::handle`, as ssh-add and ssh (and
//! a hostile forwarding peer) speak to the agent: add a constrained key,
//! bind sessions, list, sign.

use ed25519_dalek::Signer as _;
use mesh_ssh::agent::{Agent, Connection};
use ssh_agent_lib::proto::extension::{
    DestinationConstraint, HostTuple, KeySpec, RestrictDestination,
};
use ssh_agent_lib::proto::{
    AddIdentity, AddIdentityConstrained, Extension, KeyConstraint, PrivateCredential,
    PublicCredential, Request, Response, SignRequest,
};
use ssh_encoding::Encode;
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::public::{Ed25519PublicKey, KeyData};

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&u32::try_from(s.len()).expect("len").to_be_bytes());
    out.extend_from_slice(s);
}

fn sk(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

fn public(k: &ed25519_dalek::SigningKey) -> KeyData {
    KeyData::Ed25519(Ed25519PublicKey(k.verifying_key().to_bytes()))
}

fn blob(k: &KeyData) -> Vec<u8> {
    let mut b = Vec::new();
    k.encode(&mut b).expect("blob");
    b
}

fn sig_blob(k: &ed25519_dalek::SigningKey, msg: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put_string(&mut b, b"ssh-ed25519");
    put_string(&mut b, &k.sign(msg).to_bytes());
    b
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// An Ed25519 host certificate for `principal`, valid from `after` to `before`, as `ssh-keygen -s -h` makes.
fn host_cert(
    host: &ed25519_dalek::SigningKey,
    ca: &ed25519_dalek::SigningKey,
    principal: &str,
    after: u64,
    before: u64,
) -> Vec<u8> {
    let mut b = Vec::new();
    put_string(&mut b, b"ssh-ed25519-cert-v01@openssh.com");
    put_string(&mut b, &[9; 32]);
    put_string(&mut b, &host.verifying_key().to_bytes());
    b.extend_from_slice(&0u64.to_be_bytes());
    b.extend_from_slice(&2u32.to_be_bytes());
    put_string(&mut b, principal.as_bytes());
    let mut p = Vec::new();
    put_string(&mut p, principal.as_bytes());
    put_string(&mut b, &p);
    b.extend_from_slice(&after.to_be_bytes());
    b.extend_from_slice(&before.to_be_bytes());
    for _ in 0..3 {
        put_string(&mut b, b"");
    }
    put_string(&mut b, &blob(&public(ca)));
    let sig = sig_blob(ca, &b);
    put_string(&mut b, &sig);
    b
}

struct Host {
    sk: ed25519_dalek::SigningKey,
    blob: Vec<u8>,
}

fn plain(seed: u8) -> Host {
    let sk = sk(seed);
    let blob = blob(&public(&sk));
    Host { sk, blob }
}

const USER: u8 = 100;
const CA: u8 = 50;

fn hop(user: &str, host: &str, keys: &[(KeyData, bool)]) -> HostTuple {
    HostTuple {
        username: user.into(),
        hostname: host.into(),
        keys: keys
            .iter()
            .map(|(k, is_ca)| KeySpec {
                keyblob: k.clone(),
                is_ca: *is_ca,
            })
            .collect(),
    }
}

fn origin() -> HostTuple {
    hop("", "", &[])
}

fn dc(from: HostTuple, to: HostTuple) -> DestinationConstraint {
    DestinationConstraint { from, to }
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

async fn agent_with(dests: Vec<DestinationConstraint>) -> Agent {
    let agent = Agent::new(None);
    let ext = Extension::new_key_constraint(RestrictDestination { constraints: dests })
        .expect("constraint");
    let req = Request::AddIdConstrained(AddIdentityConstrained {
        identity: AddIdentity {
            credential: PrivateCredential::Key {
                privkey: KeypairData::Ed25519(Ed25519Keypair::from_seed(&[USER; 32])),
                comment: "restricted".into(),
            },
        },
        constraints: vec![KeyConstraint::Extension(ext)],
    });
    let mut c = Connection::default();
    assert!(matches!(agent.handle(&mut c, req).await, Response::Success));
    agent
}

async fn bind(agent: &Agent, c: &mut Connection, h: &Host, sid: &[u8], fwd: bool) -> bool {
    let mut m = Vec::new();
    put_string(&mut m, &h.blob);
    put_string(&mut m, sid);
    put_string(&mut m, &sig_blob(&h.sk, sid));
    m.push(u8::from(fwd));
    let e = Extension {
        name: "session-bind@openssh.com".into(),
        details: m.into(),
    };
    matches!(
        agent.handle(c, Request::Extension(e)).await,
        Response::Success
    )
}

fn userauth(sid: &[u8], user: &str, hostkey: Option<&[u8]>) -> Vec<u8> {
    let mut m = Vec::new();
    put_string(&mut m, sid);
    m.push(50);
    put_string(&mut m, user.as_bytes());
    put_string(&mut m, b"ssh-connection");
    let method: &[u8] = match hostkey {
        Some(_) => b"publickey-hostbound-v00@openssh.com",
        None => b"publickey",
    };
    put_string(&mut m, method);
    m.push(1);
    put_string(&mut m, b"ssh-ed25519");
    put_string(&mut m, &blob(&public(&sk(USER))));
    if let Some(h) = hostkey {
        put_string(&mut m, h);
    }
    m
}

async fn signs(agent: &Agent, c: &mut Connection, data: Vec<u8>) -> bool {
    let r = Request::SignRequest(SignRequest {
        credential: PublicCredential::Key(public(&sk(USER))),
        data,
        flags: 0,
    });
    matches!(agent.handle(c, r).await, Response::SignResponse(_))
}

async fn listed(agent: &Agent, c: &mut Connection) -> bool {
    match agent.handle(c, Request::RequestIdentities).await {
        Response::IdentitiesAnswer(ids) => ids
            .iter()
            .any(|i| matches!(&i.credential, PublicCredential::Key(k) if *k == public(&sk(USER)))),
        _ => false,
    }
}

#[test]
fn a_host_certificate_matches_through_its_ca() {
    run(async {
        let d = Host {
            sk: sk(4),
            blob: host_cert(&sk(4), &sk(CA), "host_d", 1, u64::MAX),
        };
        let to_d = |name: &str| vec![dc(origin(), hop("", name, &[(public(&sk(CA)), true)]))];
        let agent = agent_with(to_d("host_d")).await;
        let mut c = Connection::default();
        assert!(
            bind(&agent, &mut c, &d, b"s1", false).await,
            "bind a certificate"
        );
        assert!(signs(&agent, &mut c, userauth(b"s1", "root", Some(&d.blob))).await);
        // The certificate names host_d; a key for host_e may not log in there.
        let agent = agent_with(to_d("host_e")).await;
        let mut c = Connection::default();
        assert!(bind(&agent, &mut c, &d, b"s1", false).await);
        assert!(!signs(&agent, &mut c, userauth(b"s1", "root", Some(&d.blob))).await);
        // Expired.
        let old = Host {
            sk: sk(4),
            blob: host_cert(&sk(4), &sk(CA), "host_d", 1, now() - 60),
        };
        let agent = agent_with(to_d("host_d")).await;
        let mut c = Connection::default();
        assert!(bind(&agent, &mut c, &old, b"s1", false).await);
        assert!(!signs(&agent, &mut c, userauth(b"s1", "root", Some(&old.blob))).await);
    });
}

#[test]
fn the_user_is_checked_with_wildcards() {
    run(async {
        let a = plain(1);
        let ka = public(&a.sk);
        for (pattern, user, want) in [
            ("root", "root", true),
            ("alice", "root", false),
            ("*", "root", true),
            ("--BADUSER", "root", false),
            ("r*", "alice", false),
        ] {
            let agent = agent_with(vec![dc(
                origin(),
                hop(pattern, "host_a", &[(ka.clone(), false)]),
            )])
            .await;
            let mut c = Connection::default();
            assert!(bind(&agent, &mut c, &a, b"s1", false).await);
            let got = signs(&agent, &mut c, userauth(b"s1", user, Some(&a.blob))).await;
            assert_eq!(got, want, "{user} against {pattern}");
        }
    });
}

#[test]
fn only_the_last_bound_session_and_its_host_key_sign() {
    run(async {
        let a = plain(1);
        let b = plain(2);
        let (ka, kb) = (public(&a.sk), public(&b.sk));
        let dests = vec![
            dc(origin(), hop("", "host_a", &[(ka.clone(), false)])),
            dc(
                hop("", "host_a", &[(ka.clone(), false)]),
                hop("", "host_b", &[(kb, false)]),
            ),
        ];
        let agent = agent_with(dests).await;
        let mut c = Connection::default();
        assert!(bind(&agent, &mut c, &a, b"s1", true).await);
        assert!(bind(&agent, &mut c, &b, b"s2", false).await);
        assert!(
            signs(&agent, &mut c, userauth(b"s2", "root", Some(&b.blob))).await,
            "a > b"
        );
        // Replayed: the forwarding's session, not the last bound.
        assert!(!signs(&agent, &mut c, userauth(b"s1", "root", Some(&b.blob))).await);
        // The host key in the request is not the one bound last.
        assert!(!signs(&agent, &mut c, userauth(b"s2", "root", Some(&a.blob))).await);
        // Past the first hop the request must name the host key.
        assert!(!signs(&agent, &mut c, userauth(b"s2", "root", None)).await);
        // Not a userauth request at all.
        assert!(!signs(&agent, &mut c, b"anything else".to_vec()).await);
        // A bind after one for authentication is refused and changes nothing.
        assert!(!bind(&agent, &mut c, &a, b"s3", false).await);
        assert!(signs(&agent, &mut c, userauth(b"s2", "root", Some(&b.blob))).await);
    });
}

#[test]
fn a_forwarding_lists_only_keys_that_may_go_on() {
    run(async {
        let a = plain(1);
        let b = plain(2);
        let (ka, kb) = (public(&a.sk), public(&b.sk));
        let only_a = vec![dc(origin(), hop("", "host_a", &[(ka.clone(), false)]))];
        let agent = agent_with(only_a).await;
        let mut c = Connection::default();
        assert!(listed(&agent, &mut c).await, "local use lists it");
        assert!(bind(&agent, &mut c, &a, b"s1", true).await);
        assert!(
            !listed(&agent, &mut c).await,
            "permitted at host_a but not after"
        );
        let chain = vec![
            dc(origin(), hop("", "host_a", &[(ka.clone(), false)])),
            dc(
                hop("", "host_a", &[(ka, false)]),
                hop("", "host_b", &[(kb, false)]),
            ),
        ];
        let agent = agent_with(chain).await;
        let mut c = Connection::default();
        assert!(bind(&agent, &mut c, &a, b"s1", true).await);
        assert!(
            listed(&agent, &mut c).await,
            "may go on from host_a to host_b"
        );
        assert!(bind(&agent, &mut c, &b, b"s2", true).await);
        assert!(!listed(&agent, &mut c).await, "nowhere to go from host_b");
    });
}
