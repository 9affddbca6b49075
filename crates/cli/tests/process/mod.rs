//! `upshot` as a process, for the CLI's tests: the binary on a data dir, and a server
//! started on a free port with the address it prints.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub fn upshot(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_upshot"));
    command.arg("--data").arg(data);
    command
}

/// Spawns a command that serves (`upshot serve ...`, or a shell that execs it) and
/// returns it once it printed where it listens. Its standard output goes on being read,
/// as a terminal would, so its last words find an open pipe; its log is dropped.
pub fn listening(command: &mut Command) -> (Child, SocketAddr) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("the server starts");
    let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut printed = String::new();
    let address = loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).expect("reading its output") > 0, "the server stopped: {printed}");
        printed.push_str(&line);
        let found = line.split("http://").nth(1).and_then(|rest| rest.split('/').next());
        if let Some(address) = found.and_then(|address| address.parse().ok()) {
            break address;
        }
    };
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    (child, address)
}
