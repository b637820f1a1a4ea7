//! The `qbo-backfill` binary: parses the command line, runs it, and exits with the contract's
//! status.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    qbo_backfill::pipeline::report::init_logging();
    let cli = match qbo_backfill::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version (and help shown for a bare `qbo-backfill`) print as clap prints them.
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!("{}", qbo_backfill::cli::one_line_usage_error(&e));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(qbo_backfill::cli::dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            qbo_backfill::cli::report_error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}
