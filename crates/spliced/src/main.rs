//! The `spliced` binary: parses the command line and hands over to the
//! library ([`spliced`]).

use std::process::ExitCode;

use clap::Parser;

use spliced::cli::{Cli, Command};

/// jemalloc, whose background thread returns freed memory to the kernel
/// (BENCHMARKS.md, "Slow-client burst"); settings in .cargo/config.toml.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = cli.log_level.clone();
    let result = match &cli.command {
        Command::Run(args) => {
            // A benchmark knob (bench/compare.sh's `spliced-fresh-t1`):
            // keep no idle pipe, so every burst creates a pipe and closes
            // it after.
            let no_idle_pipes =
                std::env::var_os("SPLICED_BENCH_FRESH_PIPES").is_some_and(|v| v == "1");
            spliced::run::main(args, log, no_idle_pipes)
        }
        Command::Demo(args) => spliced::demo::main(args, log.as_deref()),
        Command::Bench(args) => spliced::bench::main(args, log.as_deref()),
        Command::Ctl(args) => spliced::admin::ctl(args),
    };
    spliced::exit_code(result)
}
