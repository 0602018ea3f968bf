//! The learning rules, driven through the agent as ssh drives it: keys
//! added with SSH_AGENTC_ADD_IDENTITY, connections bound with real
//! session-bind messages, userauth requests signed.

use super::super::test_support::*;
use super::super::{unix_now, Agent, Connection};
use crate::hosts::Op;
const HOST: u8 = 1;
const OTHER: u8 = 2;

#[test]
fn a_host_that_accepted_a_key_is_offered_it_first_and_only_that_host() {
    rt().block_on(async {
        let agent = Agent::new(None);
        for (seed, name) in [(10, "k10"), (11, "k11"), (12, "k12")] {
            add(&agent, seed, None, name).await;
        }
        let all = ["k10", "k11", "k12"];
        let mut c = bound(&[(HOST, b"s1", false)]);
        assert_eq!(names(&agent, &mut c).await, all);
        assert!(
            sign(
                &agent,
                &mut c,
                &pub_blob(12),
                &userauth(b"s1", &pub_blob(12))
            )
            .await
        );
        // A later connection bound to that host: k12 first.
        let mut again = bound(&[(HOST, b"s2", false)]);
        assert_eq!(names(&agent, &mut again).await, ["k12", "k10", "k11"]);
        // Unbound (old clients, ssh-add -l), another host, or a listing on a
        // forwarding to that host: every key, as added.
        assert_eq!(names(&agent, &mut Connection::default()).await, all);
        assert_eq!(
            names(&agent, &mut bound(&[(OTHER, b"s3", false)])).await,
            all
        );
        assert_eq!(names(&agent, &mut bound(&[(HOST, b"s4", true)])).await, all);
        // Through a forwarding to another host, then to this one: learned.
        let mut hop = bound(&[(OTHER, b"s5", true), (HOST, b"s6", false)]);
        assert_eq!(names(&agent, &mut hop).await[0], "k12");
        // The last login wins.
        assert!(
            sign(
                &agent,
                &mut again,
                &pub_blob(10),
                &userauth(b"s2", &pub_blob(10))
            )
            .await
        );
        let mut third = bound(&[(HOST, b"s7", false)]);
        assert_eq!(names(&agent, &mut third).await, all);
    });
}

#[test]
fn only_a_login_to_the_bound_session_teaches() {
    rt().block_on(async {
        let agent = Agent::new(None);
        let mut rx = agent.persist_hosts().expect("first");
        assert!(agent.persist_hosts().is_none());
        add(&agent, 10, None, "k10").await;
        let k = pub_blob(10);
        // Unbound: no host to learn for.
        assert!(sign(&agent, &mut Connection::default(), &k, &userauth(b"s1", &k)).await);
        // Bound, but another session's request, or no userauth at all (SSHSIG).
        let mut c = bound(&[(HOST, b"s1", false)]);
        assert!(sign(&agent, &mut c, &k, &userauth(b"zz", &k)).await);
        assert!(sign(&agent, &mut c, &k, b"SSHSIG and something").await);
        // A login on a forwarding is not one to that host.
        let mut f = bound(&[(HOST, b"s2", true)]);
        assert!(sign(&agent, &mut f, &k, &userauth(b"s2", &k)).await);
        assert!(agent.hosts().hosts.is_empty(), "{:?}", agent.hosts());
        assert!(rx.try_recv().is_err());
        // The login: learned once, handed to the writer once.
        assert!(sign(&agent, &mut c, &k, &userauth(b"s1", &k)).await);
        assert!(sign(&agent, &mut c, &k, &userauth(b"s1", &k)).await);
        let host = agent.hosts().hosts.keys().next().cloned().expect("learned");
        assert!(matches!(rx.try_recv(), Ok(Op::Learn { host: h, .. }) if h == host));
        assert!(rx.try_recv().is_err(), "the same login was written twice");
        // A pin wins over learning; forget forgets.
        let pin = Op::Pin {
            host: host.clone(),
            identity: format!("SHA256:{:0>43}", 1),
            when: unix_now(),
        };
        assert!(agent.apply_host_op(&pin));
        assert!(sign(&agent, &mut c, &k, &userauth(b"s1", &k)).await);
        assert_eq!(
            agent.hosts().hosts[&host].identity,
            format!("SHA256:{:0>43}", 1)
        );
        assert!(agent.apply_host_op(&Op::Forget { host }));
        assert!(agent.hosts().hosts.is_empty());
    });
}

#[test]
fn an_expired_certificate_is_neither_listed_nor_used_and_is_dropped() {
    rt().block_on(async {
        let agent = Agent::new(None);
        let now = unix_now();
        add(&agent, 20, Some(cert_blob(20, now - 1)), "expired").await;
        add(&agent, 21, Some(cert_blob(21, now + 3600)), "valid").await;
        add(&agent, 22, Some(cert_blob(22, u64::MAX)), "forever").await;
        let mut c = Connection::default();
        assert_eq!(names(&agent, &mut c).await, ["valid", "forever"]);
        assert!(!sign(&agent, &mut c, &cert_blob(20, now - 1), b"data").await);
        assert!(sign(&agent, &mut c, &cert_blob(21, now + 3600), b"data").await);
        agent.expire().await;
        assert_eq!(agent.count().await, (0, 2));
    });
}

#[test]
fn a_login_listed_before_a_forget_does_not_learn_the_host_again() {
    rt().block_on(async {
        let agent = Agent::new(None);
        let mut rx = agent.persist_hosts().expect("first");
        for (seed, name) in [(10, "k10"), (11, "k11")] {
            add(&agent, seed, None, name).await;
        }
        let k = pub_blob(11);
        let mut c = bound(&[(HOST, b"s1", false)]);
        assert_eq!(names(&agent, &mut c).await, ["k10", "k11"]);
        assert!(sign(&agent, &mut c, &k, &userauth(b"s1", &k)).await);
        let host = agent.hosts().hosts.keys().next().cloned().expect("learned");
        assert!(rx.try_recv().is_ok());
        // The next login lists with k11 first; then the file loses the
        // host (`mesh ssh hosts forget`) and the agent reloads it before
        // that login's signature.
        let mut late = bound(&[(HOST, b"s2", false)]);
        assert_eq!(names(&agent, &mut late).await, ["k11", "k10"]);
        let mut forgotten = agent.hosts();
        forgotten.hosts.remove(&host);
        agent.set_hosts(forgotten);
        assert!(sign(&agent, &mut late, &k, &userauth(b"s2", &k)).await);
        assert!(agent.hosts().hosts.is_empty(), "{:?}", agent.hosts());
        assert!(rx.try_recv().is_err(), "the forget was undone in the file");
        // A login listed after it learns again.
        let mut next = bound(&[(HOST, b"s3", false)]);
        assert_eq!(names(&agent, &mut next).await, ["k10", "k11"]);
        assert!(sign(&agent, &mut next, &k, &userauth(b"s3", &k)).await);
        assert_eq!(agent.hosts().hosts.len(), 1);
        // Reloading the same map (a tick that found the file as written)
        // does not make listings stale.
        let mut again = bound(&[(HOST, b"s4", false)]);
        assert_eq!(names(&agent, &mut again).await, ["k11", "k10"]);
        agent.set_hosts(agent.hosts());
        assert!(agent.apply_host_op(&Op::Forget { host: host.clone() }));
        let mut after = bound(&[(HOST, b"s5", false)]);
        assert_eq!(names(&agent, &mut after).await, ["k10", "k11"]);
        assert!(sign(&agent, &mut after, &k, &userauth(b"s5", &k)).await);
        assert!(agent.hosts().hosts.contains_key(&host));
    });
}
