use super::*;

fn host(names: &[&str]) -> Host {
    Host {
        names: names.iter().map(|n| n.to_string()).collect(),
    }
}

fn route(dest: Option<Host>, login: bool) -> Route {
    Route {
        hops: vec![Some(host(&["SHA256:hopA"]))],
        destination: dest,
        login,
    }
}

fn policy(sign: Action, login: Action, rules: &[(&str, Action)]) -> ForwardPolicy {
    let mut p = ForwardPolicy {
        sign,
        login,
        destinations: Vec::new(),
    };
    for (pat, a) in rules {
        p.set_login(Some(pat), *a);
    }
    p
}

#[test]
fn forwarded_requests_per_policy() {
    use Action::*;
    let web = || Some(host(&["SHA256:webkey", "web1.example.com"]));
    let db = || Some(host(&["SHA256:dbkey"]));
    let rules = [("*.example.com", Confirm), ("SHA256:dbkey", Refuse)];
    // (policy, destination, login?, decision)
    let cases: Vec<(ForwardPolicy, Option<Host>, bool, Action)> = vec![
        // Defaults: SSHSIG refused, logins allowed.
        (ForwardPolicy::default(), web(), false, Refuse),
        (ForwardPolicy::default(), None, false, Refuse),
        (ForwardPolicy::default(), web(), true, Allow),
        (ForwardPolicy::default(), None, true, Allow),
        (policy(Allow, Allow, &[]), None, false, Allow),
        // A certificate's principal matches a host-name pattern.
        (policy(Refuse, Allow, &rules), web(), true, Confirm),
        // The fingerprint matches too.
        (policy(Refuse, Allow, &rules), db(), true, Refuse),
        // No rule matches: the default login action.
        (
            policy(Refuse, Allow, &rules),
            Some(host(&["SHA256:x"])),
            true,
            Allow,
        ),
        (
            policy(Refuse, Confirm, &rules),
            Some(host(&["SHA256:x"])),
            true,
            Confirm,
        ),
        // An unknown destination: only the default applies.
        (policy(Refuse, Allow, &rules), None, true, Allow),
        // Rules never touch signatures that are not logins.
        (policy(Allow, Refuse, &rules), web(), false, Allow),
        // Negation in a pattern-list.
        (
            policy(Refuse, Refuse, &[("*,!SHA256:dbkey", Allow)]),
            db(),
            true,
            Refuse,
        ),
        (
            policy(Refuse, Refuse, &[("*,!SHA256:dbkey", Allow)]),
            web(),
            true,
            Allow,
        ),
        // The first matching rule wins.
        (
            policy(Refuse, Allow, &[("web1.*", Allow), ("*", Refuse)]),
            web(),
            true,
            Allow,
        ),
    ];
    for (i, (p, dest, login, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            p.decide(&route(dest, login)),
            want,
            "case {i}: {}",
            p.describe()
        );
    }
}

#[test]
fn account_and_local_policies_combine_to_the_stricter() {
    use Action::*;
    let r = |login| route(Some(host(&["SHA256:k"])), login);
    let allow_all = policy(Allow, Allow, &[]);
    let confirm = policy(Refuse, Confirm, &[]);
    let cases: Vec<(Option<&ForwardPolicy>, Option<&ForwardPolicy>, bool, Action)> = vec![
        (None, None, false, Refuse),
        (None, None, true, Allow),
        (None, Some(&allow_all), false, Allow),
        (Some(&allow_all), None, false, Allow),
        (Some(&allow_all), Some(&confirm), true, Confirm),
        (Some(&confirm), Some(&allow_all), true, Confirm),
        (Some(&allow_all), Some(&confirm), false, Refuse),
    ];
    for (i, (a, l, login, want)) in cases.into_iter().enumerate() {
        assert_eq!(decide(a, l, &r(login)), want, "case {i}");
    }
}

#[test]
fn set_login_replaces_the_rule_for_a_pattern() {
    let mut p = ForwardPolicy::default();
    p.set_login(Some("a*"), Action::Confirm);
    p.set_login(Some("b*"), Action::Refuse);
    p.set_login(Some("a*"), Action::Allow);
    p.set_login(None, Action::Refuse);
    assert_eq!(p.login, Action::Refuse);
    assert_eq!(
        p.destinations,
        vec![
            LoginRule {
                destination: "a*".into(),
                action: Action::Allow
            },
            LoginRule {
                destination: "b*".into(),
                action: Action::Refuse
            }
        ]
    );
}

#[test]
fn an_older_policy_entry_reads_with_the_defaults() {
    let p: ForwardPolicy = serde_json::from_str("{}").expect("empty");
    assert_eq!(p, ForwardPolicy::default());
    let p: ForwardPolicy = serde_json::from_str(
        r#"{"Sign":"allow","Destinations":[{"Destination":"*","Action":"confirm"}]}"#,
    )
    .expect("policy");
    assert_eq!(p.sign, Action::Allow);
    assert_eq!(p.login, Action::Allow);
    assert_eq!(p.destinations[0].action, Action::Confirm);
}

#[test]
fn local_connections_have_no_route() {
    let c = Connection::default();
    assert!(!is_forwarded(&c));
    assert!(Route::of(&c, None).is_none());
}

#[test]
fn an_ssh_policy_entry_of_an_older_client_has_the_default_forwarding() {
    use crate::entries::SshPolicy;
    let old: SshPolicy =
        serde_json::from_str(r#"{"Principals":["alice"],"Validity":60,"Confirm":true}"#)
            .expect("older entry");
    assert_eq!(old.forwarding, ForwardPolicy::default());
    // And a newer entry read by an older client's struct: the field is ignored.
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Older {
        #[serde(rename = "Principals")]
        principals: Vec<String>,
    }
    let mut new = old.clone();
    new.forwarding.set_login(Some("*.prod"), Action::Confirm);
    let text = serde_json::to_string(&new).expect("json");
    assert!(serde_json::from_str::<Older>(&text).is_ok(), "{text}");
    assert_eq!(
        serde_json::from_str::<SshPolicy>(&text).expect("round trip"),
        new
    );
}
