//! `rpc completions SHELL`: the shell's completion script for `rpc`, made
//! by clap_complete from the same definition the arguments are parsed by,
//! so it never lags behind a new flag. Install, e.g. for bash:
//! `rpc completions bash > ~/.local/share/bash-completion/completions/rpc`.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// `rpc completions SHELL`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    shell: Shell,
}

/// Writes the script on stdout.
pub fn run(args: CompletionsArgs) {
    let mut command = crate::Args::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "rpc", &mut script);
    crate::out!("{}", String::from_utf8_lossy(&script));
}
