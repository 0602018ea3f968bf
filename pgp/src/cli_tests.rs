//! `mesh pgp` on a fake host: the subcommand parses as the user types it,
//! and runs against a test account's view (no gpg, no portal).

use mesh_core::objects::Role;
use mesh_plugins::testing::{FakeContext, TestAccount};
use mesh_plugins::{DeviceHost, Event, Plugin};

use super::*;
use crate::channel::ROLE;
use crate::PgpPlugin;

fn parse(args: &[&str]) -> clap::ArgMatches {
    PgpCommand
        .command()
        .try_get_matches_from(args)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn the_subcommand_is_the_channels_and_parses() {
    let c = PgpPlugin.command().expect("pgp has a subcommand").command();
    assert_eq!(c.get_name(), "pgp");
    c.clone().debug_assert();
    for sub in ["cert", "export-secret", "install", "wkd"] {
        assert!(c.find_subcommand(sub).is_some(), "{sub}");
    }
    // --account needs --from and --portal, as before the move.
    let e = PgpCommand
        .command()
        .try_get_matches_from(["pgp", "install", "--account", "MXXX"])
        .expect_err("--account alone");
    assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
}

#[test]
fn wkd_writes_both_layouts_from_the_hosts_view() {
    let mut account = TestAccount::new(&[&PgpPlugin]);
    let laptop = account.join("laptop", &[Role::ADMIN, ROLE]);
    account.sync(&PgpPlugin, &Event::Created).expect("create");
    let view = account.view();
    let (name, cert) = crate::gnupg::wkd(&view).expect("wkd");
    let ctx = FakeContext::new(&laptop, view, true);
    let root = laptop.home().join("web");
    let m = parse(&["pgp", "wkd", "--output", root.to_str().expect("utf-8")]);
    PgpCommand.run(&m, &ctx).expect("wkd runs");
    let direct = root.join(".well-known/openpgpkey/hu").join(&name);
    let advanced = root
        .join(".well-known/openpgpkey/example.com/hu")
        .join(&name);
    for p in [&direct, &advanced] {
        assert_eq!(std::fs::read(p).expect("written"), cert, "{}", p.display());
    }
    assert!(root.join(".well-known/openpgpkey/policy").is_file());
}

#[test]
fn install_from_an_export_without_a_home_names_the_account_to_ask() {
    let mut account = TestAccount::new(&[&PgpPlugin]);
    let laptop = account.join("laptop", &[Role::ADMIN, ROLE]);
    let ctx = FakeContext::new(&laptop, account.view(), false);
    let m = parse(&["pgp", "install", "--from", "/nonexistent"]);
    let e = PgpCommand.run(&m, &ctx).expect_err("no state.json here");
    assert!(e.to_string().starts_with("there is no Mesh home at"), "{e}");
    assert!(e
        .hint()
        .is_some_and(|h| h.contains("--account PROFILE_UDF")));
}
