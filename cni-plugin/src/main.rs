//! `tandem`: the CNI binary kubelet and container runtimes execute.

use std::io::Read;
use std::process::ExitCode;

use tandem_cni::cmd::Reply;
use tandem_cni::output;

fn main() -> ExitCode {
    let vars = std::env::vars().collect();
    let mut stdin = Vec::new();
    // VERSION may come with an empty stdin; a read error is treated the same way.
    let _ = std::io::stdin().read_to_end(&mut stdin);
    match tandem_cni::run(&vars, &stdin) {
        Ok(Reply::Json(v)) => {
            output::print_json(&v);
            ExitCode::SUCCESS
        }
        Ok(Reply::Nothing) => ExitCode::SUCCESS,
        Err(e) => {
            output::print_json(&e);
            ExitCode::FAILURE
        }
    }
}
