//! The router: Chroma's HTTP API in front of the cluster. It is built in the
//! router issue; until then the binary says so and exits non-zero rather
//! than pretending to serve.

fn main() -> std::process::ExitCode {
    eprintln!("router: the Chroma HTTP API is not built yet (see the router issue); nodes run via scripts/cluster");
    std::process::ExitCode::from(2)
}
