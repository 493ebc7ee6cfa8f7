//! `apsig serve` ends on SIGTERM within its grace period even with slow clients attached
//! (a half-sent header and a body that never arrives).

mod common;

use apsig::model::Arch;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_exits_within_the_grace_period_with_slow_clients_attached() {
    let t = tempfile::tempdir().unwrap();
    let model = t.path().join("m.safetensors");
    untrained(&model, Arch::TargetNetS, 1);
    let (mut child, port) = serve(t.path(), &model, &["--shutdown-grace-secs", "1"], Stdio::piped());
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(b"POST /v1/sessions HTTP/1.1\r\nhost: x\r\n").unwrap();
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"POST /v1/sessions HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\n\r\n{\"input\": [").unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let sent = Instant::now();
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(sent.elapsed() < Duration::from_secs(10), "still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = sent.elapsed();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(took <= Duration::from_secs(2), "exited {took:?} after SIGTERM (grace 1 s)\n{log}");
    assert!(log.contains("SIGTERM"), "{log}");
    drop((half, slow));
}
