//! Table-driven tests of destination constraints: binds, listings and
//! signatures built by hand, as ssh and hostile peers would send them.

use super::*;
use ed25519_dalek::Signer as _;
use ssh_agent_lib::proto::extension::KeySpec;
use ssh_key::public::Ed25519PublicKey;

const NOW: u64 = 1_700_000_000;

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

/// What a host certificate says (an Ed25519 host key signed by an Ed25519 CA).
struct CertSpec {
    cert_type: u32,
    principals: &'static [&'static str],
    after: u64,
    before: u64,
    critical: bool,
}

const GOOD: CertSpec = CertSpec {
    cert_type: CERT_HOST,
    principals: &["host_d"],
    after: NOW - 10,
    before: NOW + 10,
    critical: false,
};

fn cert(host: &ed25519_dalek::SigningKey, ca: &ed25519_dalek::SigningKey, s: &CertSpec) -> Vec<u8> {
    let mut b = Vec::new();
    put_string(&mut b, b"ssh-ed25519-cert-v01@openssh.com");
    put_string(&mut b, &[9; 32]);
    put_string(&mut b, &host.verifying_key().to_bytes());
    b.extend_from_slice(&7u64.to_be_bytes());
    b.extend_from_slice(&s.cert_type.to_be_bytes());
    put_string(&mut b, b"host");
    let mut p = Vec::new();
    for n in s.principals {
        put_string(&mut p, n.as_bytes());
    }
    put_string(&mut b, &p);
    b.extend_from_slice(&s.after.to_be_bytes());
    b.extend_from_slice(&s.before.to_be_bytes());
    let mut crit = Vec::new();
    if s.critical {
        put_string(&mut crit, b"force-command");
        put_string(&mut crit, b"\0\0\0\x02ls");
    }
    put_string(&mut b, &crit);
    put_string(&mut b, b"");
    put_string(&mut b, b"");
    put_string(&mut b, &blob(&public(ca)));
    let sig = sig_blob(ca, &b);
    put_string(&mut b, &sig);
    b
}

/// A host as a client sees it: the key that signs, the blob it presents.
struct Host {
    sk: ed25519_dalek::SigningKey,
    blob: Vec<u8>,
}

fn plain_host(seed: u8) -> Host {
    let sk = sk(seed);
    let blob = blob(&public(&sk));
    Host { sk, blob }
}

fn cert_host(seed: u8, ca: u8, s: &CertSpec) -> Host {
    let sk = sk(seed);
    let blob = cert(&sk, &self::sk(ca), s);
    Host { sk, blob }
}

fn bind_msg(h: &Host, sid: &[u8], fwd: bool) -> Vec<u8> {
    let mut m = Vec::new();
    put_string(&mut m, &h.blob);
    put_string(&mut m, sid);
    put_string(&mut m, &sig_blob(&h.sk, sid));
    m.push(u8::from(fwd));
    m
}

fn hop(user: &str, host: &str, keys: &[(KeyData, bool)]) -> HostTuple {
    HostTuple {
        username: user.into(),
        hostname: host.into(),
        keys: keys
            .iter()
            .map(|(k, ca)| KeySpec {
                keyblob: k.clone(),
                is_ca: *ca,
            })
            .collect(),
    }
}

fn dc(from: HostTuple, to: HostTuple) -> DestinationConstraint {
    DestinationConstraint { from, to }
}

fn origin() -> HostTuple {
    hop("", "", &[])
}

const USER_KEY: u8 = 100;
const CA: u8 = 50;

fn user_blob() -> Vec<u8> {
    blob(&public(&sk(USER_KEY)))
}

fn userauth(sid: &[u8], user: &str, hostkey: Option<&[u8]>, alg: &str) -> Vec<u8> {
    let mut m = Vec::new();
    put_string(&mut m, sid);
    m.push(USERAUTH_REQUEST);
    put_string(&mut m, user.as_bytes());
    put_string(&mut m, b"ssh-connection");
    put_string(
        &mut m,
        if hostkey.is_some() {
            b"publickey-hostbound-v00@openssh.com"
        } else {
            b"publickey"
        },
    );
    m.push(1);
    put_string(&mut m, alg.as_bytes());
    put_string(&mut m, &user_blob());
    if let Some(h) = hostkey {
        put_string(&mut m, h);
    }
    m
}

fn connect(binds: &[(&Host, &[u8], bool)]) -> Connection {
    let mut c = Connection::default();
    for (h, sid, fwd) in binds {
        assert!(c.bind(&bind_msg(h, sid, *fwd)), "bind");
    }
    c
}

const S1: &[u8] = b"s1";
const S2: &[u8] = b"s2";
const ED: &str = "ssh-ed25519";

/// Plain hosts a and b, host d with a certificate from the CA.
struct World {
    a: Host,
    b: Host,
    d: Host,
    ka: KeyData,
    kb: KeyData,
    kca: KeyData,
}

fn world() -> World {
    let (a, b) = (plain_host(1), plain_host(2));
    let (ka, kb) = (public(&a.sk), public(&b.sk));
    World {
        a,
        b,
        d: cert_host(4, CA, &GOOD),
        ka,
        kb,
        kca: public(&sk(CA)),
    }
}

/// `-h user@host` (from the origin).
fn to(user: &str, host: &str, k: &KeyData, ca: bool) -> DestinationConstraint {
    dc(origin(), hop(user, host, &[(k.clone(), ca)]))
}

/// `-h "from>user@to"`.
fn via(
    from: (&str, &KeyData, bool),
    user: &str,
    to: (&str, &KeyData, bool),
) -> DestinationConstraint {
    dc(
        hop("", from.0, &[(from.1.clone(), from.2)]),
        hop(user, to.0, &[(to.1.clone(), to.2)]),
    )
}

fn ua(sid: &[u8], user: &str, host: Option<&Host>) -> Vec<u8> {
    userauth(sid, user, host.map(|h| h.blob.as_slice()), ED)
}

#[test]
fn one_hop_signatures_need_the_bound_session_and_host() {
    let w = world();
    let to_a = vec![to("", "host_a", &w.ka, false)];
    let at_a = || connect(&[(&w.a, S1, false)]);
    let (a, b) = (Some(&w.a), Some(&w.b));
    let cases = [
        ("hostbound", at_a(), ua(S1, "root", a), true),
        ("plain publickey", at_a(), ua(S1, "root", None), true),
        (
            "other host",
            connect(&[(&w.b, S1, false)]),
            ua(S1, "root", b),
            false,
        ),
        (
            "unbound",
            Connection::default(),
            ua(S1, "root", None),
            false,
        ),
        ("session never bound", at_a(), ua(b"s9", "root", a), false),
        ("wrong host key", at_a(), ua(S1, "root", b), false),
        (
            "on a forwarding",
            connect(&[(&w.a, S1, true)]),
            ua(S1, "root", a),
            false,
        ),
        ("not userauth", at_a(), b"SSHSIG anything".to_vec(), false),
        (
            "other key type",
            at_a(),
            userauth(S1, "root", None, "rsa-sha2-256"),
            false,
        ),
    ];
    for (name, conn, data, want) in cases {
        let got = sign_permitted(&to_a, &conn, &user_blob(), &data, NOW);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn chained_signatures_follow_every_hop() {
    let w = world();
    let to_a = vec![to("", "host_a", &w.ka, false)];
    let chain = vec![
        to("", "host_a", &w.ka, false),
        via(("host_a", &w.ka, false), "root", ("host_b", &w.kb, false)),
    ];
    let b = Some(&w.b);
    let cases = [
        ("two hops", &chain, ua(S2, "root", b), true),
        (
            "replayed: not the last session",
            &chain,
            ua(S1, "root", b),
            false,
        ),
        (
            "no host key past the first hop",
            &chain,
            ua(S2, "root", None),
            false,
        ),
        ("wrong user at the end", &chain, ua(S2, "alice", b), false),
        ("second hop not allowed", &to_a, ua(S2, "root", b), false),
    ];
    for (name, dests, data, want) in cases {
        let conn = connect(&[(&w.a, S1, true), (&w.b, S2, false)]);
        let got = sign_permitted(dests, &conn, &user_blob(), &data, NOW);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn users_match_with_wildcards() {
    let w = world();
    let cases = [
        ("root", "root", true),
        ("alice", "root", false),
        ("*", "root", true),
        ("r?o*", "root", true),
        ("a*", "root", false),
        ("--BADUSER", "root", false),
    ];
    for (pattern, user, want) in cases {
        let dests = vec![to(pattern, "host_a", &w.ka, false)];
        let conn = connect(&[(&w.a, S1, false)]);
        let data = ua(S1, user, Some(&w.a));
        assert_eq!(
            sign_permitted(&dests, &conn, &user_blob(), &data, NOW),
            want,
            "{user} ~ {pattern}"
        );
    }
}

#[test]
fn host_certificates_are_checked_as_openssh_does() {
    let w = world();
    let cert = |s: &CertSpec| cert_host(4, CA, s);
    let cases = [
        ("valid", cert(&GOOD), "host_d", true),
        (
            "valid forever (2^64-1)",
            cert(&CertSpec {
                after: 0,
                before: u64::MAX,
                ..GOOD
            }),
            "host_d",
            true,
        ),
        (
            "expired",
            cert(&CertSpec {
                before: NOW,
                ..GOOD
            }),
            "host_d",
            false,
        ),
        (
            "not yet valid",
            cert(&CertSpec {
                after: NOW + 1,
                ..GOOD
            }),
            "host_d",
            false,
        ),
        ("wrong principal", cert(&GOOD), "host_e", false),
        (
            "principal host_* is no pattern",
            cert(&CertSpec {
                principals: &["host_*"],
                ..GOOD
            }),
            "host_d",
            false,
        ),
        ("the hostname is the pattern", cert(&GOOD), "host_?", true),
        (
            "no principals: any host",
            cert(&CertSpec {
                principals: &[],
                ..GOOD
            }),
            "host_d",
            true,
        ),
        (
            "user certificate",
            cert(&CertSpec {
                cert_type: CERT_USER,
                ..GOOD
            }),
            "host_d",
            false,
        ),
        (
            "critical option",
            cert(&CertSpec {
                critical: true,
                ..GOOD
            }),
            "host_d",
            false,
        ),
        ("another CA", cert_host(4, CA + 1, &GOOD), "host_d", false),
    ];
    for (name, h, hostname, want) in cases {
        let dests = vec![to("", hostname, &w.kca, true)];
        let conn = connect(&[(&h, S1, false)]);
        let data = ua(S1, "root", Some(&h));
        assert_eq!(
            sign_permitted(&dests, &conn, &user_blob(), &data, NOW),
            want,
            "{name}"
        );
    }
    // A certificate never matches as a plain key: not its CA unmarked, not its own key.
    let conn = connect(&[(&w.d, S1, false)]);
    let data = ua(S1, "root", Some(&w.d));
    for k in [&w.kca, &public(&w.d.sk)] {
        let dests = vec![to("", "host_d", k, false)];
        assert!(!sign_permitted(&dests, &conn, &user_blob(), &data, NOW));
    }
}

#[test]
fn listings_hide_keys_that_may_not_go_on() {
    let w = world();
    let a = ("host_a", &w.ka, false);
    let d = ("host_d", &w.kca, true);
    let to_a = to("", "host_a", &w.ka, false);
    let only_a = vec![to_a.clone()];
    let a_b = vec![to_a.clone(), via(a, "", ("host_b", &w.kb, false))];
    let a_d_a = vec![to_a.clone(), via(a, "", d), via(d, "", a)];
    let a_d = vec![to_a.clone(), via(a, "", d)];
    let mut unknown = Connection::default();
    assert!(!unknown.bind(b"garbage"));
    let fwd_a = || connect(&[(&w.a, S1, true)]);
    let cases = [
        ("unconstrained", &vec![], fwd_a(), true),
        ("local use", &only_a, Connection::default(), true),
        ("first bind refused", &only_a, unknown, false),
        ("at a, allowed there but not after", &only_a, fwd_a(), false),
        ("at a, may go on to b", &a_b, fwd_a(), true),
        (
            "at b, nowhere further",
            &a_b,
            connect(&[(&w.a, S1, true), (&w.b, S2, true)]),
            false,
        ),
        (
            "authenticating to b",
            &a_b,
            connect(&[(&w.a, S1, true), (&w.b, S2, false)]),
            true,
        ),
        (
            "at b, not allowed there",
            &only_a,
            connect(&[(&w.a, S1, true), (&w.b, S2, false)]),
            false,
        ),
        (
            "a > d(cert), may go back to a",
            &a_d_a,
            connect(&[(&w.a, S1, true), (&w.d, S2, true)]),
            true,
        ),
        (
            "a > d(cert), nowhere further",
            &a_d,
            connect(&[(&w.a, S1, true), (&w.d, S2, true)]),
            false,
        ),
    ];
    for (name, dests, conn, want) in cases {
        assert_eq!(identity_permitted(dests, &conn, None, NOW), want, "{name}");
    }
}

#[test]
fn hostile_binds_are_refused_and_change_nothing() {
    let a = plain_host(1);
    let b = plain_host(2);
    let mut forged = bind_msg(&a, b"s2", true);
    // The signature of b over the session ID, presented with a's key.
    let sig = sig_blob(&b.sk, b"s2");
    let end = forged.len() - 1;
    forged[end - sig.len()..end].copy_from_slice(&sig);
    let mut bad_ca = cert(&sk(4), &sk(CA), &GOOD);
    let n = bad_ca.len();
    bad_ca[n - 1] ^= 1;
    let bad_cert = Host {
        sk: sk(4),
        blob: bad_ca,
    };
    let mut trailing = bind_msg(&b, b"s2", true);
    trailing.push(0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("forged signature", forged),
        ("same session, other key", bind_msg(&b, b"s1", true)),
        (
            "session ID too long",
            bind_msg(&b, &[7; MAX_SID_LEN + 1], true),
        ),
        ("empty session ID", bind_msg(&b, b"", true)),
        ("trailing bytes", trailing),
        ("truncated", bind_msg(&b, b"s2", true)[..20].to_vec()),
        (
            "certificate with a bad CA signature",
            bind_msg(&bad_cert, b"s2", true),
        ),
    ];
    for (name, msg) in cases {
        let mut c = connect(&[(&a, b"s1", true)]);
        assert!(!c.bind(&msg), "{name}");
        assert_eq!(c.binds.len(), 1, "{name}");
        assert!(!c.unknown, "{name}");
    }
    // The same bind again is accepted once.
    let mut c = connect(&[(&a, b"s1", true)]);
    assert!(c.bind(&bind_msg(&a, b"s1", true)));
    assert_eq!(c.binds.len(), 1);
    // Nothing follows a bind for authentication.
    let mut c = connect(&[(&a, b"s1", false)]);
    assert!(!c.bind(&bind_msg(&b, b"s2", true)));
    assert_eq!(c.binds.len(), 1);
    // At most MAX_BINDS.
    let mut c = Connection::default();
    for i in 0..MAX_BINDS {
        assert!(c.bind(&bind_msg(&a, &[u8::try_from(i).expect("i") + 1], true)));
    }
    assert!(!c.bind(&bind_msg(&a, b"one more", true)));
    assert_eq!(c.binds.len(), MAX_BINDS);
}

#[test]
fn userauth_requests_are_parsed_strictly() {
    let a = plain_host(1);
    let good = userauth(b"s1", "root", Some(&a.blob), "ssh-ed25519");
    assert!(parse_userauth(&good, &user_blob()).is_some());
    let mut trailing = good.clone();
    trailing.push(0);
    let other_key = blob(&public(&sk(USER_KEY + 1)));
    let edit = |from: &[u8], to: &[u8]| {
        let mut m = userauth(b"s1", "root", None, "ssh-ed25519");
        let i = m
            .windows(from.len())
            .position(|w| w == from)
            .expect("field");
        m.splice(i..i + from.len(), to.iter().copied());
        m
    };
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("trailing bytes", trailing, user_blob()),
        ("another key", good.clone(), other_key),
        (
            "empty session ID",
            userauth(b"", "root", None, "ssh-ed25519"),
            user_blob(),
        ),
        (
            "other service",
            edit(b"\0\0\0\x0essh-connection", b"\0\0\0\x0essh-userauthX"),
            user_blob(),
        ),
        (
            "other method",
            edit(b"\0\0\0\x09publickey", b"\0\0\0\x09password!"),
            user_blob(),
        ),
        (
            "NUL in user",
            edit(b"\0\0\0\x04root", b"\0\0\0\x04ro\0t"),
            user_blob(),
        ),
        (
            "unknown algorithm",
            userauth(b"s1", "root", None, "ssh-foo"),
            user_blob(),
        ),
        ("truncated", good[..good.len() - 3].to_vec(), user_blob()),
    ];
    for (name, data, key) in cases {
        assert!(parse_userauth(&data, &key).is_none(), "{name}");
    }
    let mut m = userauth(b"s1", "root", None, "ssh-ed25519");
    let i = m.iter().position(|&c| c == USERAUTH_REQUEST).expect("type");
    m[i] = 51;
    assert!(parse_userauth(&m, &user_blob()).is_none(), "message type");
}

#[test]
fn constraints_are_checked_when_added() {
    let k = public(&sk(1));
    let ext = |dests: Vec<DestinationConstraint>| {
        Extension::new_key_constraint(RestrictDestination { constraints: dests }).expect("ext")
    };
    let good = dc(origin(), hop("", "host_a", &[(k.clone(), false)]));
    assert!(parse_constraint(&ext(vec![good.clone()])).is_some());
    let bad: Vec<(&str, DestinationConstraint)> = vec![
        (
            "user in from",
            dc(
                hop("root", "", &[]),
                hop("", "host_a", &[(k.clone(), false)]),
            ),
        ),
        (
            "from hostname without keys",
            dc(
                hop("", "host_a", &[]),
                hop("", "host_b", &[(k.clone(), false)]),
            ),
        ),
        (
            "from keys without hostname",
            dc(
                hop("", "", &[(k.clone(), false)]),
                hop("", "host_b", &[(k.clone(), false)]),
            ),
        ),
        (
            "to without hostname",
            dc(origin(), hop("", "", &[(k.clone(), false)])),
        ),
        ("to without keys", dc(origin(), hop("", "host_a", &[]))),
    ];
    for (name, d) in bad {
        assert!(
            parse_constraint(&ext(vec![good.clone(), d])).is_none(),
            "{name}"
        );
    }
    assert!(parse_constraint(&ext(vec![])).is_none(), "empty");
    assert!(
        parse_constraint(&ext(vec![good.clone(); MAX_DEST_CONSTRAINTS + 1])).is_none(),
        "too many"
    );
    // A reserved field that is not empty (the last string of a constraint).
    let mut e = ext(vec![good]);
    let mut raw = e.details.as_ref().to_vec();
    let n = raw.len();
    raw[n - 1] = 1;
    raw.push(b'x');
    raw[3] += 1; // the constraint's own length
    e.details = raw.into();
    assert!(parse_constraint(&e).is_none(), "reserved field");
}

#[test]
fn glob_matches_as_match_pattern() {
    let cases: &[(&str, &str, bool)] = &[
        ("root", "root", true),
        ("root", "roo", false),
        ("root", "*", true),
        ("", "*", true),
        ("", "?", false),
        ("root", "r*t", true),
        ("root", "r**t", true),
        ("rot", "r?ot", false),
        ("--BADUSER", "root", false),
        (
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
            "*a*a*a*a*a*a*a*a*a*a*c",
            false,
        ),
        ("host_d", "host_*", true),
        ("Root", "root", false),
    ];
    for (s, p, want) in cases {
        assert_eq!(glob(s.as_bytes(), p.as_bytes()), *want, "{s} ~ {p}");
    }
}

#[test]
fn forwarded_routes_name_each_hop_and_the_destination() {
    use crate::forward::{is_forwarded, Route};
    let w = world();
    let fp = |k: &KeyData| k.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    let names = |r: &Route| {
        (
            r.hops
                .iter()
                .map(|h| h.as_ref().map(|h| h.names.clone()))
                .collect::<Vec<_>>(),
            r.destination.as_ref().map(|d| d.names.clone()),
        )
    };
    // A local login: no route.
    let local = connect(&[(&w.a, S1, false)]);
    assert!(!is_forwarded(&local));
    assert!(Route::of(&local, None).is_none());
    // ssh-keygen -Y sign on host a over the forwarded agent: one hop, no destination.
    let on_a = connect(&[(&w.a, S1, true)]);
    let r = Route::of(&on_a, None).expect("forwarded");
    assert_eq!(names(&r), (vec![Some(vec![fp(&w.ka)])], None));
    assert_eq!(r.chain(), format!("this host > {}", fp(&w.ka)));
    // A login from a to the certificate host d: its principal is a name.
    let a_to_d = connect(&[(&w.a, S1, true), (&w.d, S2, false)]);
    let r = Route::of(&a_to_d, None).expect("forwarded");
    let kd = HostKey::from_blob(&w.d.blob).expect("cert");
    assert_eq!(
        names(&r),
        (
            vec![Some(vec![fp(&w.ka)])],
            Some(vec![fp(kd.public()), "host_d".into()])
        )
    );
    // No bind for the login (an old ssh on a): the hostbound request's key.
    let req = ua(S1, "root", Some(&w.b));
    let login = parse_userauth(&req, &user_blob()).expect("userauth");
    let r = Route::of(&on_a, Some(&login)).expect("forwarded");
    assert!(r.login);
    assert_eq!(r.destination.map(|d| d.names), Some(vec![fp(&w.kb)]));
    // A first bind that failed: forwarded, over an unverified host.
    let mut bad = Connection::default();
    assert!(!bad.bind(b"junk"));
    let r = Route::of(&bad, None).expect("unknown counts as forwarded");
    assert_eq!(r.hops, vec![None]);
}
