//! `JournaledOracle`: makes any change oracle resumable.
//!
//! Every answered batch is appended to a journal (one JSON line, fsynced) with a hash of the
//! question. The search is deterministic, so a rerun asks the same questions in the same
//! order: those already in the journal are answered from it without querying the oracle,
//! and the run carries on from where it stopped. A question that differs from the journal's
//! is an error, never a silently wrong answer.

use apsig::directions::Directions;
use apsig::error::{Error, Result};
use apsig::oracle::{ChangeOracle, Probe};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const FORMAT: &str = "apsig-journal-v1";

#[derive(Serialize, Deserialize)]
struct Head {
    format: String,
    context: String,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    /// Hash of the question (kind, directions, perturbations or probes).
    h: String,
    /// Number of answers.
    n: usize,
    /// The answers as hex bytes, least significant bit first.
    bits: String,
}

struct State {
    file: File,
    entries: Vec<(String, Vec<bool>)>,
    cursor: usize,
}

/// An oracle whose answers are journaled in `path` and replayed on a rerun.
pub struct JournaledOracle<O> {
    inner: O,
    path: PathBuf,
    state: Mutex<State>,
    queries: AtomicU64,
    replayed: AtomicU64,
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::io(path, e)
}

fn bits_hex(bits: &[bool]) -> String {
    bits.chunks(8)
        .map(|c| {
            let b = c.iter().enumerate().fold(0u8, |acc, (i, &v)| acc | ((v as u8) << i));
            format!("{b:02x}")
        })
        .collect()
}

fn hex_bits(s: &str, n: usize) -> Option<Vec<bool>> {
    if s.len() != n.div_ceil(8) * 2 {
        return None;
    }
    let bytes: Vec<u8> =
        (0..s.len() / 2).map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect::<Option<_>>()?;
    Some((0..n).map(|i| bytes[i / 8] >> (i % 8) & 1 == 1).collect())
}

struct Fnv(u64);
impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

impl<O: ChangeOracle> JournaledOracle<O> {
    /// Opens (or creates) the journal at `path` for an attack described by `context` (e.g.
    /// the oracle's address, session and search settings). A journal written for another
    /// context is refused. A torn last line (a crash mid-write) is dropped.
    pub fn open(inner: O, path: &Path, context: &str) -> Result<Self> {
        let mut file =
            OpenOptions::new().read(true).append(true).create(true).open(path).map_err(|e| io_err(path, e))?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(|e| io_err(path, e))?;
        let mut entries = Vec::new();
        let mut good = 0usize; // bytes of complete, valid lines
        let mut head_ok = false;
        for line in text.split_inclusive('\n') {
            if !line.ends_with('\n') {
                break;
            }
            if !head_ok {
                let h: Head =
                    serde_json::from_str(line.trim_end()).map_err(|_| Error::bad_file(path, "not an apsig journal"))?;
                if h.format != FORMAT {
                    return Err(Error::bad_file(path, "not an apsig journal"));
                }
                if h.context != context {
                    return Err(Error::bad_file(
                        path,
                        format!(
                            "journal of another attack (`{}`, this one is `{context}`); remove it or use another journal",
                            h.context
                        ),
                    ));
                }
                head_ok = true;
            } else {
                let parsed = serde_json::from_str::<Entry>(line.trim_end())
                    .ok()
                    .and_then(|e| Some((e.h, hex_bits(&e.bits, e.n)?)));
                match parsed {
                    Some(e) => entries.push(e),
                    None => break,
                }
            }
            good += line.len();
        }
        if !head_ok && !text.is_empty() {
            return Err(Error::bad_file(
                path,
                "not an apsig journal (or its first line is damaged); remove it to start over",
            ));
        }
        if good < text.len() {
            tracing::warn!("{}: dropping {} bytes of a torn or damaged tail", path.display(), text.len() - good);
            file.set_len(good as u64).map_err(|e| io_err(path, e))?;
            file.seek(SeekFrom::End(0)).map_err(|e| io_err(path, e))?;
        }
        if !head_ok {
            let mut line = serde_json::to_string(&Head { format: FORMAT.into(), context: context.into() })
                .expect("head serialises");
            line.push('\n');
            file.write_all(line.as_bytes()).and_then(|_| file.sync_data()).map_err(|e| io_err(path, e))?;
        }
        Ok(JournaledOracle {
            inner,
            path: path.to_path_buf(),
            state: Mutex::new(State { file, entries, cursor: 0 }),
            queries: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
        })
    }

    /// Batches held by the journal when it was opened.
    pub fn journaled_batches(&self) -> usize {
        self.state.lock().expect("journal lock").entries.len()
    }

    /// Answers given from the journal (no query to the oracle).
    pub fn replayed(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }

    /// Answers that had to be asked of the oracle.
    pub fn fresh(&self) -> u64 {
        self.queries() - self.replayed()
    }

    /// The journaled oracle.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    fn answer(&self, h: String, n: usize, ask: impl FnOnce() -> Result<Vec<bool>>) -> Result<Vec<bool>> {
        let mut st = self.state.lock().expect("journal lock");
        if st.cursor < st.entries.len() {
            let (eh, bits) = &st.entries[st.cursor];
            if *eh != h || bits.len() != n {
                return Err(Error::Oracle(format!(
                    "{}: batch {} differs from the journal's (the attack changed?); remove the journal to start over",
                    self.path.display(),
                    st.cursor
                )));
            }
            let bits = bits.clone();
            st.cursor += 1;
            self.queries.fetch_add(n as u64, Ordering::Relaxed);
            self.replayed.fetch_add(n as u64, Ordering::Relaxed);
            return Ok(bits);
        }
        let bits = ask()?;
        if bits.len() != n {
            return Err(Error::Oracle(format!("{} answers for {n} questions", bits.len())));
        }
        let mut line =
            serde_json::to_string(&Entry { h: h.clone(), n, bits: bits_hex(&bits) }).expect("entry serialises");
        line.push('\n');
        st.file.write_all(line.as_bytes()).and_then(|_| st.file.sync_data()).map_err(|e| io_err(&self.path, e))?;
        st.entries.push((h, bits.clone()));
        st.cursor += 1;
        self.queries.fetch_add(n as u64, Ordering::Relaxed);
        Ok(bits)
    }
}

impl<O: ChangeOracle> ChangeOracle for JournaledOracle<O> {
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }

    fn changed(&self, perturbations: &[f32]) -> Result<Vec<bool>> {
        let len = self.inner.input_len();
        if perturbations.len() % len != 0 {
            return Err(Error::Oracle(format!(
                "perturbation batch of {} values is not a multiple of the input size {len}",
                perturbations.len()
            )));
        }
        let mut h = Fnv::new();
        h.eat(b"P");
        for v in perturbations {
            h.eat(&v.to_le_bytes());
        }
        self.answer(h.hex(), perturbations.len() / len, || self.inner.changed(perturbations))
    }

    fn changed_along(&self, dirs: &Directions, probes: &[Probe]) -> Result<Vec<bool>> {
        let mut h = Fnv::new();
        h.eat(b"D");
        h.eat(dirs.fingerprint().as_bytes());
        for p in probes {
            h.eat(&p.dir.to_le_bytes());
            h.eat(&p.eps.to_le_bytes());
        }
        self.answer(h.hex(), probes.len(), || self.inner.changed_along(dirs, probes))
    }

    fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip() {
        let b: Vec<bool> = (0..19).map(|i| i % 5 < 2).collect();
        assert_eq!(hex_bits(&bits_hex(&b), 19).unwrap(), b);
        assert!(hex_bits("zz", 3).is_none());
        assert!(hex_bits("00", 9).is_none());
    }
}
