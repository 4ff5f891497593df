use std::process::ExitCode;

fn main() -> ExitCode {
    rally::cli::main()
}
