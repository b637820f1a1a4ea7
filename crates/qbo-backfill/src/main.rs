//! The `qbo-backfill` binary: parses the command line, runs it, and exits with the contract's
//! status.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    qbo_backfill::pipeline::report::init_logging();
    let cli = qbo_backfill::cli::Cli::parse();
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
