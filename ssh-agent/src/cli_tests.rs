//! `mesh ssh` on a fake host: the subcommand parses as the user types it,
//! and runs against a test account's view (no sshd, no portal): policy
//! changes go through the host's publish, the KRL after a sync.

use mesh_core::objects::Role;
use mesh_plugins::testing::{FakeContext, FakeDevice, TestAccount};
use mesh_plugins::{DeviceHost, Event, Plugin};

use super::*;
use crate::entries::ROLE;
use crate::SshPlugin;

fn parse(args: &[&str]) -> clap::ArgMatches {
    SshCommand
        .command()
        .try_get_matches_from(args)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn created() -> (TestAccount, FakeDevice) {
    let mut account = TestAccount::new(&[&SshPlugin]);
    let laptop = account.join("laptop", &[Role::ADMIN, ROLE]);
    account.sync(&SshPlugin, &Event::Created).expect("create");
    (account, laptop)
}

#[test]
fn the_subcommand_is_the_channels_and_parses() {
    let c = SshPlugin.command().expect("ssh has a subcommand").command();
    assert_eq!(c.get_name(), "ssh");
    c.clone().debug_assert();
    let m = parse(&[
        "ssh",
        "authorized-keys",
        "--account",
        "MAAA",
        "--portal",
        "https://p",
    ]);
    let Ok(SshCmd::AuthorizedKeys { lookup, user }) = SshCmd::from_arg_matches(&m) else {
        panic!("authorized-keys");
    };
    assert_eq!((lookup.max_stale, user), (3600, None), "--max-stale 1h");
    // A server's `ca` needs the portal and the output, as before the move.
    let e = SshCommand
        .command()
        .try_get_matches_from(["ssh", "ca", "--account", "MAAA"])
        .expect_err("--account alone");
    assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
}

#[test]
fn confirm_publishes_the_policy_through_the_host_and_nudges_the_agent() {
    let (account, laptop) = created();
    let ctx = FakeContext::new(&laptop, account.view(), true);
    SshCommand
        .run(&parse(&["ssh", "confirm", "on"]), &ctx)
        .expect("confirm runs");
    let published = ctx.published();
    assert_eq!(published.len(), 1, "one policy entry");
    assert_eq!(
        published[0].data["Confirm"], true,
        "{:?}",
        published[0].data
    );
    assert_eq!(ctx.nudges(), 1, "a running agent takes it at once");
}

#[test]
fn a_login_name_with_a_comma_is_refused_with_the_channels_hint() {
    let (account, laptop) = created();
    let ctx = FakeContext::new(&laptop, account.view(), false);
    let e = SshCommand
        .run(&parse(&["ssh", "principals", "root,deploy"]), &ctx)
        .expect_err("a comma");
    assert_eq!(
        e.to_string(),
        "principals are login names without spaces or commas"
    );
    assert!(e.hint().is_some_and(|h| h.contains("as its own argument")));
    assert!(ctx.published().is_empty());
}

#[test]
fn krl_syncs_first_and_writes_the_views_krl() {
    let (account, laptop) = created();
    let view = account.view();
    let want = crate::channel::krl(&view).expect("a KRL");
    let ctx = FakeContext::new(&laptop, view, true);
    let out = laptop.home().join("revoked.krl");
    let m = parse(&["ssh", "krl", "--output", out.to_str().expect("utf-8")]);
    SshCommand.run(&m, &ctx).expect("krl runs");
    assert_eq!(ctx.syncs(), 1, "the newest revocations first");
    assert_eq!(std::fs::read(&out).expect("written"), want);
}

#[test]
fn hosts_refuses_what_is_not_a_fingerprint() {
    let (account, laptop) = created();
    let ctx = FakeContext::new(&laptop, account.view(), false);
    let e = SshCommand
        .run(&parse(&["ssh", "hosts", "forget", "example.com"]), &ctx)
        .expect_err("a host name");
    assert!(
        e.to_string().contains("is not a SHA-256 fingerprint"),
        "{e}"
    );
    assert!(!crate::hosts_file::path(laptop.home()).exists());
}
