//! The `burstwatch` command: parse the arguments, run, print an error as one line.

use std::process::ExitCode;

fn main() -> ExitCode {
    burstwatch::cli::main()
}
