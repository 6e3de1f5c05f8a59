//! The `hoist` binary: parse, set up output, logging and the runtime, run, map the result to an
//! exit code (see `hoist::error`).

use std::process::ExitCode;

use clap::Parser;
use hoist::cli::{Cli, Command};
use hoist::interrupt::Interrupt;
use hoist::report::Printer;
use hoist::settings::DeploySettings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let interrupt = Interrupt::new();
        interrupt.install();
        match cli.command {
            Command::Deploy(args) => {
                let settings = DeploySettings::resolve(&args)?;
                let printer = Printer::new(settings.output, settings.quiet);
                hoist::deploy::run(settings, &printer, &interrupt).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            print_error(&error);
            ExitCode::from(error.exit_code() as u8)
        }
    }
}

fn print_error(error: &hoist::Error) {
    let red = console::style("error:").red().bold();
    eprintln!("{red} {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
    if let Some(hint) = error.hint() {
        eprintln!("\n{} {hint}", console::style("hint:").cyan().bold());
    }
}

/// `-v`: hoist's own events; `-vv`: the AWS SDK's too. `RUST_LOG` overrides both.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "warn,hoist=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(verbose > 1)
        .init();
}
