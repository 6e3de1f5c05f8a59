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
                hoist::deploy::run(settings, &printer, &interrupt)
                    .await
                    .map(|()| 0)
            }
            // sync prints its own failures and warnings, aws-cli style; its outcome is the code.
            Command::Sync(args) => hoist::sync::run(&args, &interrupt)
                .await
                .map(|outcome| outcome.exit_code()),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
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
        // The SDK's own warnings (an instance-metadata probe that fails outside EC2, say)
        // are noise at the default level; hoist reports the errors that matter itself.
        0 => "hoist=warn",
        1 => "hoist=debug",
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
