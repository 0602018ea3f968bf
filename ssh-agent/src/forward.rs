//! The forwarding policy: what the agent does with a request that reached
//! it over a forwarded hop (`ssh -A`, where session-bind says so).
//!
//! A connection whose first `session-bind@openssh.com` was a forwarding (or
//! whose first bind failed: the agent cannot tell where it leads) is a
//! forwarded one. On it, a signature that is not a login (SSHSIG: `git
//! commit -S`, `ssh-keygen -Y sign`, or anything but a userauth request) is
//! refused by default; a login is allowed, confirmed or refused per
//! destination pattern. Local connections (no bind, or a first bind for
//! authentication) never reach this module.
//!
//! What a destination pattern matches: the destination host key's SHA-256
//! fingerprint (`SHA256:…`, as `ssh-keygen -lf` prints it) and, for a host
//! certificate, each of its principals (host names the account's CA signed).
//! The agent never sees the host name the user typed. The destination is
//! the last bind when it is for authentication, else the host key of a
//! `publickey-hostbound` request; with neither it is unknown and only the
//! default applies.

use serde::{Deserialize, Serialize};
use ssh_key::HashAlg;

use crate::dest::{Connection, HostKey, Userauth};

/// What to do with a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Sign.
    #[default]
    Allow,
    /// Ask the user (`SSH_ASKPASS`) first.
    Confirm,
    /// Refuse.
    Refuse,
}

impl Action {
    /// `allow`, `confirm` or `refuse`.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "allow" => Some(Action::Allow),
            "confirm" => Some(Action::Confirm),
            "refuse" => Some(Action::Refuse),
            _ => None,
        }
    }

    /// Its name, as [`Action::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Confirm => "confirm",
            Action::Refuse => "refuse",
        }
    }
}

/// A forwarded login's action for the destinations a pattern-list matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRule {
    /// ssh pattern-list (`*`, `?`, `!`) over the destination's names.
    #[serde(rename = "Destination")]
    pub destination: String,
    /// What to do.
    #[serde(rename = "Action")]
    pub action: Action,
}

/// The forwarding part of the account's SSH policy (and of `mesh ssh-agent
/// -O forward-…`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardPolicy {
    /// Signatures that are not logins, over a forwarded hop.
    #[serde(rename = "Sign", default = "refuse")]
    pub sign: Action,
    /// Forwarded logins no rule matches.
    #[serde(rename = "Login", default)]
    pub login: Action,
    /// Forwarded logins per destination: the first rule that matches wins.
    #[serde(rename = "Destinations", default)]
    pub destinations: Vec<LoginRule>,
}

fn refuse() -> Action {
    Action::Refuse
}

impl Default for ForwardPolicy {
    fn default() -> Self {
        ForwardPolicy {
            sign: Action::Refuse,
            login: Action::Allow,
            destinations: Vec::new(),
        }
    }
}

impl ForwardPolicy {
    /// Set the action for `pattern` (replacing its rule), or the default
    /// when `pattern` is `None`.
    pub fn set_login(&mut self, pattern: Option<&str>, action: Action) {
        match pattern {
            None => self.login = action,
            Some(p) => match self.destinations.iter_mut().find(|r| r.destination == p) {
                Some(r) => r.action = action,
                None => self.destinations.push(LoginRule {
                    destination: p.to_string(),
                    action,
                }),
            },
        }
    }

    /// What to do with a request over `route`: a login (`true`) or another
    /// signature.
    pub fn decide(&self, route: &Route) -> Action {
        if !route.login {
            return self.sign;
        }
        let Some(dest) = &route.destination else {
            return self.login;
        };
        self.destinations
            .iter()
            .find(|r| {
                dest.names
                    .iter()
                    .any(|n| crate::options::pattern_list_match(n, &r.destination))
            })
            .map_or(self.login, |r| r.action)
    }

    /// One line for `mesh ssh policy forwarding` and the policy log.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "forwarded signatures {}, forwarded logins {}",
            self.sign.name(),
            self.login.name()
        );
        for r in &self.destinations {
            s.push_str(&format!(
                "; logins to {} {}",
                r.destination,
                r.action.name()
            ));
        }
        s
    }
}

/// The account's policy and the local one (`-O forward-…`): the stricter
/// action of the two wins; either alone applies as it is; neither, the default.
pub fn decide(
    account: Option<&ForwardPolicy>,
    local: Option<&ForwardPolicy>,
    route: &Route,
) -> Action {
    match (account, local) {
        (Some(a), Some(l)) => a.decide(route).max(l.decide(route)),
        (Some(p), None) | (None, Some(p)) => p.decide(route),
        (None, None) => ForwardPolicy::default().decide(route),
    }
}

/// A host as the agent knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// What patterns match: the key's fingerprint, then a certificate's principals.
    pub names: Vec<String>,
}

impl Host {
    /// The names of `key`.
    pub fn of(key: &HostKey) -> Host {
        let mut names = vec![key.public().fingerprint(HashAlg::Sha256).to_string()];
        names.extend(key.principals());
        Host { names }
    }

    /// How a prompt names it: `principal (SHA256:…)` or the fingerprint.
    pub fn label(&self) -> String {
        match self.names.split_first() {
            Some((fp, [])) => fp.clone(),
            Some((fp, rest)) => format!("{} ({fp})", rest.join(",")),
            None => "an unknown host".into(),
        }
    }

    /// The fingerprint (what a batch of confirmations is keyed by).
    pub fn fingerprint(&self) -> &str {
        self.names.first().map_or("", String::as_str)
    }
}

/// Whether requests on `conn` come over a forwarded hop: its first bind
/// was a forwarding, or failed (nothing says where it leads).
pub fn is_forwarded(conn: &Connection) -> bool {
    conn.is_unknown() || conn.binds().first().is_some_and(|b| b.forwarded())
}

/// The host a connection authenticates to, when its last bind says.
pub fn bound_destination(conn: &Connection) -> Option<Host> {
    conn.binds()
        .last()
        .filter(|b| !b.forwarded())
        .map(|b| Host::of(b.key()))
}

/// The way a forwarded request came: the forwarded hops, in order, and
/// the destination when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The hosts the agent was forwarded to (`None`: a bind that failed).
    pub hops: Vec<Option<Host>>,
    /// The host being logged in to.
    pub destination: Option<Host>,
    /// A login (a userauth request), or another signature.
    pub login: bool,
}

impl Route {
    /// The route of a request on `conn`, `None` when it is local. `login`:
    /// the request read as a userauth request, if it is one.
    pub fn of(conn: &Connection, login: Option<&Userauth<'_>>) -> Option<Route> {
        if !is_forwarded(conn) {
            return None;
        }
        let binds = conn.binds();
        let mut hops: Vec<Option<Host>> = Vec::new();
        if conn.is_unknown() {
            hops.push(None);
        }
        let mut destination = None;
        for b in binds {
            if b.forwarded() {
                hops.push(Some(Host::of(b.key())));
            } else {
                destination = Some(Host::of(b.key()));
            }
        }
        let hostbound = login.and_then(|l| l.hostkey.as_ref());
        Some(Route {
            hops,
            destination: destination.or_else(|| hostbound.map(Host::of)),
            login: login.is_some(),
        })
    }

    /// What is asked for, for a prompt or the log.
    pub fn what(&self) -> String {
        if !self.login {
            return "a signature that is not a login".into();
        }
        let to = self
            .destination
            .as_ref()
            .map_or("an unknown host".into(), Host::label);
        format!("a login to {to}")
    }

    /// `this host > hop > hop`, for a prompt.
    pub fn chain(&self) -> String {
        let mut s = String::from("this host");
        for h in &self.hops {
            s.push_str(" > ");
            s.push_str(&h.as_ref().map_or("an unverified host".into(), Host::label));
        }
        s
    }
}

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;
