//! The `etcd-harness` command: parses arguments and hands over to [`etcd_harness::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    etcd_harness::cli::main()
}
