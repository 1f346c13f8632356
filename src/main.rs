//! The `burstwatch` command: parse the arguments, run, print an error as one line. All
//! the work is the library's; [`cli`] only parses and prints.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
