//! The PyTorch peer of `apsig bench`: one long-lived Python process (`bench/peers/torch_peer.py`)
//! that measures one workload per request, so that the bench can alternate short rounds of
//! apsig and PyTorch. On a noisy machine both sides' rates drift by a quarter within minutes;
//! a ratio of two measurements taken seconds apart drifts far less than one of two taken
//! minutes apart.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

pub struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    log: PathBuf,
    /// What the peer said when it was ready: its torch version and thread count.
    pub info: Value,
}

impl Peer {
    /// Starts `python torch_peer.py MODEL INPUTS` on `threads` threads and waits until it has
    /// loaded them. Its stderr goes to `log` (torch.compile can be talkative).
    pub fn start(python: &str, model: &Path, inputs: &Path, threads: usize, log: PathBuf) -> Result<Peer> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/peers/torch_peer.py");
        let err = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(python)
            .arg(&script)
            .arg(model)
            .arg(inputs)
            .env("OMP_NUM_THREADS", threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting the PyTorch peer with {python}"))?;
        let stdin = child.stdin.take().context("the peer's stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("the peer's stdout")?);
        let mut peer = Peer { child, stdin, stdout, log, info: Value::Null };
        peer.info = peer.reply("start")?;
        if peer.info["ready"] != true {
            bail!("PyTorch peer: unexpected first line {}", peer.info);
        }
        Ok(peer)
    }

    /// Sends one request and returns the peer's reply.
    pub fn ask(&mut self, request: Value) -> Result<Value> {
        let what = request["run"].as_str().unwrap_or("?").to_string();
        if writeln!(self.stdin, "{request}").and_then(|_| self.stdin.flush()).is_err() {
            bail!("PyTorch peer stopped before `{what}`: {}", self.last_error());
        }
        self.reply(&what)
    }

    fn reply(&mut self, what: &str) -> Result<Value> {
        let mut line = String::new();
        let read = self.stdout.read_line(&mut line).with_context(|| format!("reading the peer's reply to `{what}`"))?;
        if read == 0 {
            bail!("PyTorch peer stopped during `{what}`: {}", self.last_error());
        }
        serde_json::from_str(&line)
            .with_context(|| format!("the peer's reply to `{what}` is not JSON: {}", line.trim()))
    }

    /// The last line the peer wrote to stderr (a Python traceback ends with the error).
    fn last_error(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim().to_string()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // closing stdin ends the peer's request loop; kill in case it is mid-measurement
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
