//! The `soundsentry` binary: parse the command line, set up logging, run, exit code.

use std::io::IsTerminal;

use clap::Parser;
use soundsentry::cli::{Cli, Command};
use soundsentry::commands;

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log_level));
    // The audio decoder's own log lines ("probe reached EOF…") would come before, and say
    // less than, the one-line error that names the file; they are shown only when asked for
    // by name (RUST_LOG=symphonia=debug).
    let filter = if filter.to_string().contains("symphonia") {
        filter
    } else {
        filter.add_directive("symphonia=off".parse().expect("a valid directive"))
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let result = match &cli.command {
        Command::Run(args) => commands::run(args),
        Command::Classify(args) => commands::classify(args),
        Command::Fbank(args) => commands::fbank(args),
        Command::Embed(args) => commands::embed(args),
        Command::TrainHead(args) => commands::train_head(args),
        Command::Eval(args) => commands::eval(args),
        Command::Levels(args) => commands::levels(args),
        Command::Report(args) => commands::report(args),
        Command::Calibrate(args) => commands::calibrate(args),
        Command::CheckConfig(args) => match args.config.as_ref().or(args.config_flag.as_ref()) {
            Some(path) => commands::check_config(path),
            None => Err(anyhow::anyhow!("check-config needs a configuration file")),
        },
        Command::Devices => commands::devices(),
    };
    // What a command held at most: the figure `--log-level debug` gives for offline work.
    if let Some(kib) = soundsentry::memory::peak_rss_kib() {
        tracing::debug!(peak_rss_kib = kib, "command finished");
    }
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
