use std::process::ExitCode;

fn main() -> ExitCode {
    klaxon::cli::main()
}
