//! The `soundsentry` binary: parse the command line, set up logging, run, exit code.

use std::io::IsTerminal;

use clap::Parser;
use soundsentry::cli::{Cli, Command};
use soundsentry::commands;

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let result = match &cli.command {
        Command::Run {
            config,
            realtime,
            mqtt,
        } => commands::run(config, *realtime, mqtt.as_deref()),
        Command::Classify {
            files,
            model,
            aggregate,
            top_k,
            json,
            threads,
        } => commands::classify(files, model, *aggregate, *top_k, *json, *threads as usize),
        Command::Fbank {
            file,
            model,
            out,
            raw,
        } => commands::fbank(file, model, out, *raw),
        Command::Levels {
            file,
            interval,
            offset,
            sensor,
        } => commands::levels(file, *interval, *offset, sensor.as_deref()),
        Command::Calibrate {
            file,
            config,
            seconds,
            reference_db,
        } => commands::calibrate(file.as_deref(), config.as_deref(), *seconds, *reference_db),
        Command::CheckConfig { config } => commands::check_config(config),
        Command::Devices => commands::devices(),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
