//! `mesh smime` on a fake host: the subcommand parses as the user types
//! it, and runs against a test account's view (no NSS, no portal).

use mesh_core::objects::Role;
use mesh_plugins::testing::{FakeContext, FakeDevice, TestAccount};
use mesh_plugins::{DeviceHost, Event, Plugin};

use super::*;
use crate::SmimePlugin;

fn parse(args: &[&str]) -> clap::ArgMatches {
    SmimeCommand
        .command()
        .try_get_matches_from(args)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn created() -> (TestAccount, FakeDevice) {
    let mut account = TestAccount::new(&[&SmimePlugin]);
    let laptop = account.join("laptop", &[Role::ADMIN, Role::named("smime")]);
    account.sync(&SmimePlugin, &Event::Created).expect("create");
    (account, laptop)
}

#[test]
fn the_subcommand_is_the_channels_and_parses() {
    let c = SmimePlugin
        .command()
        .expect("smime has a subcommand")
        .command();
    assert_eq!(c.get_name(), "smime");
    c.clone().debug_assert();
    let m = parse(&[
        "smime",
        "export",
        "--output",
        "o.p12",
        "--password-file",
        "p",
    ]);
    let Ok(SmimeCmd::Export { profile, .. }) = SmimeCmd::from_arg_matches(&m) else {
        panic!("export");
    };
    assert_eq!(profile, P12Arg::Modern, "the default profile");
    // --opaque and --der exclude each other, as before the move.
    let e = SmimeCommand
        .command()
        .try_get_matches_from(["smime", "sign", "--opaque", "--der"])
        .expect_err("both");
    assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
}

#[test]
fn crl_writes_the_cas_crl_from_the_hosts_view() {
    let (account, laptop) = created();
    let view = account.view();
    let want = crate::device::crl_pem(&view).expect("a CRL");
    let ctx = FakeContext::new(&laptop, view, true);
    let out = laptop.home().join("ca.crl");
    let m = parse(&["smime", "crl", "--output", out.to_str().expect("utf-8")]);
    SmimeCommand.run(&m, &ctx).expect("crl runs");
    assert_eq!(std::fs::read_to_string(&out).expect("written"), want);
}

#[test]
fn an_empty_password_file_is_refused_with_a_hint() {
    let (account, laptop) = created();
    let ctx = FakeContext::new(&laptop, account.view(), false);
    let pw = laptop.home().join("pw");
    std::fs::write(&pw, "\n").expect("write");
    let out = laptop.home().join("x.p12");
    let m = parse(&[
        "smime",
        "export",
        "--output",
        out.to_str().expect("utf-8"),
        "--password-file",
        pw.to_str().expect("utf-8"),
    ]);
    let e = SmimeCommand.run(&m, &ctx).expect_err("empty");
    assert!(e.to_string().ends_with("holds an empty password"), "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("first line")));
    assert!(!out.exists(), "nothing written");
}

#[test]
fn install_takes_an_nss_database_the_windows_store_or_both_and_needs_one() {
    let e = SmimeCommand
        .command()
        .try_get_matches_from(["smime", "install"])
        .expect_err("no target");
    assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    let m = parse(&["smime", "install", "--windows-store", "--nssdb", "d"]);
    let Ok(SmimeCmd::Install {
        nssdb,
        windows_store,
    }) = SmimeCmd::from_arg_matches(&m)
    else {
        panic!("install");
    };
    assert_eq!((nssdb, windows_store), (Some(PathBuf::from("d")), true));
}

#[cfg(not(windows))]
#[test]
fn install_windows_store_on_another_system_fails_with_a_hint_and_installs_nothing() {
    let (account, laptop) = created();
    let ctx = FakeContext::new(&laptop, account.view(), true);
    let m = parse(&["smime", "install", "--windows-store"]);
    let e = SmimeCommand.run(&m, &ctx).expect_err("not Windows");
    assert!(e.to_string().contains("not built for Windows"), "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("mesh.exe")));
    assert!(!laptop.records().contains_key("smime-winstore"));
}

#[test]
fn policy_ocsp_validity_publishes_the_policy_and_refuses_out_of_bounds() {
    let (account, laptop) = created();
    let ctx = FakeContext::new(&laptop, account.view(), true);
    let m = parse(&["smime", "policy", "ocsp-validity", "2d"]);
    SmimeCommand.run(&m, &ctx).expect("2d");
    let published = ctx.published();
    assert_eq!(published.len(), 1, "one policy entry");
    assert_eq!(published[0].uid, crate::status::APP_POLICY);
    assert_eq!(published[0].data["OcspValidity"], 2 * 86400);
    let m = parse(&["smime", "policy", "ocsp-validity", "10m"]);
    let e = SmimeCommand.run(&m, &ctx).expect_err("too short");
    assert!(e.to_string().contains("out of bounds"), "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("ocsp-validity 24h")));
}

#[test]
fn reissue_publishes_the_request_in_the_policy() {
    let (account, laptop) = created();
    let ctx = FakeContext::new(&laptop, account.view(), true);
    SmimeCommand
        .run(&parse(&["smime", "reissue"]), &ctx)
        .expect("reissue");
    let published = ctx.published();
    assert_eq!(published.len(), 1);
    assert!(published[0].data["Reissue"].as_u64().is_some());
}
