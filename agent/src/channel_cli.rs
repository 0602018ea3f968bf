//! Channels' own subcommands in the `mesh` command line: every channel of
//! the host that has one ([`mesh_plugins::Plugin::command`]) is mounted
//! next to the built-in commands, so that `mesh --help`, the completions
//! and the manual pages list it, and a command line that names it is
//! handed to the channel. A new channel needs no line here or in the CLI.

use mesh_account::Host;
use mesh_plugins::ChannelCommand;

/// `base` with every channel's subcommand added.
///
/// A channel whose subcommand has a built-in's name is a bug of this
/// build (the registration in [`crate::host`]): clap's debug assertions
/// and the test below catch it.
pub fn mount(base: clap::Command, host: &Host) -> clap::Command {
    host.plugins()
        .iter()
        .filter_map(|p| p.command())
        .fold(base, |cmd, c| cmd.subcommand(c.command()))
}

/// The channel whose subcommand `matches` (the whole command line's)
/// names, with that subcommand's matches; `None`: a built-in command.
pub fn find<'a>(
    host: &'a Host,
    matches: &'a clap::ArgMatches,
) -> Option<(&'a dyn ChannelCommand, &'a clap::ArgMatches)> {
    let (name, sub) = matches.subcommand()?;
    host.plugins()
        .iter()
        .filter_map(|p| p.command())
        .find(|c| c.command().get_name() == name)
        .map(|c| (c, sub))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    use mesh_core::objects::{AccountKeys, Role};
    use mesh_plugins::{
        AccountView, AppEntry, CommandContext, CommandError, Event, Plugin, PluginError,
    };

    use super::*;

    /// A channel with a subcommand: `mesh dummy greet NAME`.
    #[derive(Debug)]
    struct Dummy;

    impl Plugin for Dummy {
        fn name(&self) -> &'static str {
            "dummy"
        }
        fn role(&self) -> Option<Role> {
            None
        }
        fn entries(
            &self,
            _: &Event,
            _: &AccountView,
            _: &AccountKeys,
        ) -> Result<Vec<AppEntry>, PluginError> {
            Ok(Vec::new())
        }
        fn command(&self) -> Option<&dyn ChannelCommand> {
            Some(self)
        }
    }

    impl ChannelCommand for Dummy {
        fn command(&self) -> clap::Command {
            clap::Command::new("dummy")
                .about("A dummy channel")
                .subcommand(clap::Command::new("greet").arg(clap::Arg::new("name").required(true)))
        }
        fn run(&self, m: &clap::ArgMatches, ctx: &dyn CommandContext) -> Result<(), CommandError> {
            let Some(("greet", g)) = m.subcommand() else {
                return Err(CommandError::new(
                    "no such command",
                    Some("see --help".into()),
                ));
            };
            let name: &String = g.get_one("name").expect("required");
            Err(CommandError::new(
                format!(
                    "greet {name} json={} home={}",
                    ctx.json(),
                    ctx.home().display()
                ),
                None,
            ))
        }
    }

    struct Ctx(PathBuf, bool, RefCell<usize>);

    impl CommandContext for Ctx {
        fn home(&self) -> &Path {
            &self.0
        }
        fn json(&self) -> bool {
            self.1
        }
        fn with_view(&self, _: mesh_plugins::command::ViewFn<'_>) -> Result<(), CommandError> {
            *self.2.borrow_mut() += 1;
            Ok(())
        }
    }

    fn base() -> clap::Command {
        clap::Command::new("mesh")
            .arg(
                clap::Arg::new("json")
                    .long("json")
                    .global(true)
                    .action(clap::ArgAction::SetTrue),
            )
            .subcommand(clap::Command::new("sync").about("Sync"))
    }

    #[test]
    fn a_channels_subcommand_is_mounted_and_dispatched_to_it() {
        let host = Host::new(vec![Box::new(Dummy)]);
        let mut cmd = mount(base(), &host);
        cmd.build();
        let help = cmd.render_help().to_string();
        assert!(
            help.contains("dummy") && help.contains("A dummy channel"),
            "{help}"
        );
        // The global --json reaches the channel's subcommand.
        let m = cmd
            .clone()
            .try_get_matches_from(["mesh", "dummy", "greet", "bob", "--json"])
            .expect("parses");
        let (c, sub) = find(&host, &m).expect("the dummy channel's");
        let ctx = Ctx(PathBuf::from("/h"), m.get_flag("json"), RefCell::new(0));
        let err = c
            .run(sub, &ctx)
            .expect_err("the dummy reports through an error");
        assert_eq!(err.to_string(), "greet bob json=true home=/h");
        // A built-in is not a channel's.
        let m = cmd.try_get_matches_from(["mesh", "sync"]).expect("parses");
        assert!(find(&host, &m).is_none());
    }

    #[test]
    fn every_channel_of_this_build_mounts_without_a_clash() {
        let host = crate::host();
        let cmd = mount(base(), &host);
        // clap's own checks: no two subcommands with one name.
        cmd.clone().debug_assert();
        for p in host.plugins() {
            if let Some(c) = p.command() {
                let name = c.command().get_name().to_string();
                assert!(cmd.find_subcommand(&name).is_some(), "{name}");
            }
        }
        // Every channel of this build declares its own: none is built in.
        for name in ["ssh", "pgp", "smime", "files"] {
            assert!(cmd.find_subcommand(name).is_some(), "{name}");
        }
    }
}
