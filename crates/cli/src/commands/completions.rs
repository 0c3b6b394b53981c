//! `pmdaemon completions <shell>` and `pmdaemon man`: generated from the
//! clap definitions, so they cannot drift from the command line.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;

/// Prints the completion script of `shell`.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "pmdaemon", &mut out);
    std::io::stdout()
        .write_all(&out)
        .context("cannot write the completions")
}

/// Prints the man page: the main page, then one section per verb.
pub fn man() -> Result<()> {
    let mut out = Vec::new();
    write_man(&mut out)?;
    std::io::stdout()
        .write_all(&out)
        .context("cannot write the man page")
}

/// The man page in roff: clap's page, then a `COMMANDS IN DETAIL` section
/// with each verb's synopsis and options.
pub fn write_man(out: &mut Vec<u8>) -> Result<()> {
    let mut command = Cli::command();
    command.build();
    clap_mangen::Man::new(command.clone())
        .render(out)
        .context("cannot render the man page")?;
    writeln!(out, ".SH \"COMMANDS IN DETAIL\"")?;
    for verb in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let page = clap_mangen::Man::new(verb.clone());
        let mut section = Vec::new();
        page.render_synopsis_section(&mut section)?;
        page.render_options_section(&mut section)?;
        writeln!(out, ".SS \"pmdaemon {}\"", verb.get_name())?;
        if let Some(about) = verb.get_about() {
            writeln!(out, "{}", roff_text(&about.to_string()))?;
        }
        // Each verb's sections become paragraphs of this one.
        let text = String::from_utf8_lossy(&section);
        for line in text.lines() {
            match line.strip_prefix(".SH ") {
                Some(title) => writeln!(out, ".PP\n\\fB{}\\fR\n.br", title.trim_matches('"'))?,
                None => writeln!(out, "{line}")?,
            }
        }
    }
    Ok(())
}

/// Text that roff prints as written.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e");
    match escaped.starts_with(['.', '\'']) {
        true => format!("\\&{escaped}"),
        false => escaped,
    }
}
