//! The `hoist` binary: parse, set up logging and the runtime, run, map the result to an exit
//! code (see `hoist::error`).

use hoist::ExitCode;
use hoist::cli::Rejected;

fn main() -> std::process::ExitCode {
    let cli = match hoist::cli::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(Rejected::UnknownSyncOptions(unknown)) => {
            hoist::print_unknown_options(&unknown);
            return ExitCode::AwsCliUsage.into();
        }
        Err(Rejected::Clap(error)) => error.exit(),
    };
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            hoist::print_error(
                &error,
                Some("hoist needs threads and an event loop from the OS"),
            );
            return ExitCode::Failure.into();
        }
    };
    match runtime.block_on(hoist::run(cli.command)) {
        Ok(code) => code.into(),
        Err(error) => {
            hoist::print_error(&error, error.hint().as_deref());
            error.exit_code().into()
        }
    }
}

/// `-v`: hoist's own events; `-vv`: the AWS SDK's too. `RUST_LOG` overrides both. Colour only
/// when stderr is a terminal.
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
        .with_ansi(console::Term::stderr().features().colors_supported())
        .with_target(verbose > 1)
        .init();
}
