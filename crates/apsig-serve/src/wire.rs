//! The compact binary encoding (`Content-Type: application/octet-stream`).
//!
//! Request body, all little-endian:
//!
//! ```text
//! u32 magic = 0x41505347 ("APSG")
//! u32 kind  = 0 perturbations | 1 probes | 2 directions | 3 input
//! u32 count
//! kind 0: count * L f32          (count perturbations of L values)
//! kind 1: count * (u32 dir, f32 eps)   (fingerprint in header `x-apsig-directions`)
//! kind 2: count * L f32          (count = K directions)
//! kind 3: count f32              (the secret input, count = L)
//! ```
//!
//! Answer to a binary query: `u32 count` then `ceil(count / 8)` bytes of change bits,
//! least significant bit first. Binary bodies carry floats exactly; JSON is for people.

use apsig::oracle::Probe;
use sha2::{Digest, Sha256};

/// The first four bytes of every binary body ("APSG" read as a little-endian u32).
pub const MAGIC: u32 = 0x4150_5347;
/// The content type of binary bodies and answers.
pub const CONTENT_TYPE: &str = "application/octet-stream";
/// Header naming the direction set of a binary probe batch.
pub const DIRECTIONS_HEADER: &str = "x-apsig-directions";
/// Optional header: the same id on a retried query returns the first answer, uncharged.
pub const REQUEST_ID_HEADER: &str = "x-apsig-request-id";
/// Answer header: queries charged to the session so far.
pub const QUERIES_USED_HEADER: &str = "x-apsig-queries-used";
/// Answer header: queries the session may still ask.
pub const BUDGET_LEFT_HEADER: &str = "x-apsig-budget-left";

/// The key of a direction set (`k` directions, `data` row by row): SHA-256 over K and the
/// values' bytes, in hex. The server keys sessions' sets and its shared lifted cache by it and
/// the client checks it, so distinct sets cannot collide by design.
pub fn directions_key(k: usize, data: &[f32]) -> String {
    let mut h = Sha256::new();
    h.update(b"apsig-directions-v1");
    h.update((k as u64).to_le_bytes());
    for v in data {
        h.update(v.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a binary body holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// Explicit perturbations of the secret.
    Perturbations = 0,
    /// Probes along a registered direction set.
    Probes = 1,
    /// A direction set.
    Directions = 2,
    /// A secret input.
    Input = 3,
}

impl Kind {
    fn from_u32(v: u32) -> Option<Kind> {
        match v {
            0 => Some(Kind::Perturbations),
            1 => Some(Kind::Probes),
            2 => Some(Kind::Directions),
            3 => Some(Kind::Input),
            _ => None,
        }
    }
}

/// A decoded request body.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// `count` perturbations, `count * L` values.
    Perturbations {
        /// Perturbations in the batch.
        count: usize,
        /// Their values, row by row.
        data: Vec<f32>,
    },
    /// Probes along the set named by the `x-apsig-directions` header.
    Probes(Vec<Probe>),
    /// `k` directions, `k * L` values.
    Directions {
        /// Directions in the set (K).
        k: usize,
        /// Their values, row by row.
        data: Vec<f32>,
    },
    /// A secret input of L values.
    Input(Vec<f32>),
}

fn header(kind: Kind, count: usize, payload: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(12 + payload);
    b.extend(MAGIC.to_le_bytes());
    b.extend((kind as u32).to_le_bytes());
    b.extend((count as u32).to_le_bytes());
    b
}

/// Encodes `count` rows of f32 (perturbations, directions or the input).
pub fn encode_f32(kind: Kind, count: usize, data: &[f32]) -> Vec<u8> {
    let mut b = header(kind, count, data.len() * 4);
    for v in data {
        b.extend(v.to_le_bytes());
    }
    b
}

/// Encodes a batch of probes (kind 1).
pub fn encode_probes(probes: &[Probe]) -> Vec<u8> {
    let mut b = header(Kind::Probes, probes.len(), probes.len() * 8);
    for p in probes {
        b.extend(p.dir.to_le_bytes());
        b.extend(p.eps.to_le_bytes());
    }
    b
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"))
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
}

/// Decodes a request body for an input of `len` values. Checks the magic, the kind and the
/// exact length; values are not checked for finiteness here.
pub fn decode(b: &[u8], len: usize) -> Result<Body, String> {
    if b.len() < 12 {
        return Err(format!("binary body of {} bytes is shorter than its 12-byte header", b.len()));
    }
    let magic = u32_at(b, 0);
    if magic != MAGIC {
        return Err(format!("bad magic 0x{magic:08x} (expected 0x{MAGIC:08x}, \"APSG\" as a little-endian u32)"));
    }
    let kind = Kind::from_u32(u32_at(b, 4)).ok_or_else(|| format!("unknown kind {} (0..=3)", u32_at(b, 4)))?;
    let count = u32_at(b, 8) as usize;
    let row = match kind {
        Kind::Perturbations | Kind::Directions => len * 4,
        Kind::Probes => 8,
        Kind::Input => 4,
    };
    let want = (count as u64) * (row as u64);
    let have = (b.len() - 12) as u64;
    if have != want {
        return Err(format!(
            "{} payload: count {count} needs {want} bytes after the header, the body has {have}{}",
            match kind {
                Kind::Perturbations => "perturbation",
                Kind::Probes => "probe",
                Kind::Directions => "directions",
                Kind::Input => "input",
            },
            if have < want { " (truncated)" } else { "" }
        ));
    }
    let p = &b[12..];
    Ok(match kind {
        Kind::Perturbations => Body::Perturbations { count, data: f32s(p) },
        Kind::Directions => Body::Directions { k: count, data: f32s(p) },
        Kind::Input => Body::Input(f32s(p)),
        Kind::Probes => Body::Probes(
            p.chunks_exact(8)
                .map(|c| Probe { dir: u32_at(c, 0), eps: f32::from_le_bytes(c[4..8].try_into().expect("4 bytes")) })
                .collect(),
        ),
    })
}

/// `u32 count` then the bits, least significant first.
pub fn encode_bits(bits: &[bool]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + bits.len().div_ceil(8));
    b.extend((bits.len() as u32).to_le_bytes());
    for chunk in bits.chunks(8) {
        b.push(chunk.iter().enumerate().fold(0u8, |acc, (i, &v)| acc | ((v as u8) << i)));
    }
    b
}

/// Decodes a bit answer; padding bits past the count must be zero.
pub fn decode_bits(b: &[u8]) -> Result<Vec<bool>, String> {
    if b.len() < 4 {
        return Err("bit answer shorter than its 4-byte count".into());
    }
    let n = u32_at(b, 0) as usize;
    if b.len() - 4 != n.div_ceil(8) {
        return Err(format!("bit answer for {n} bits has {} bytes of bits, expected {}", b.len() - 4, n.div_ceil(8)));
    }
    if n % 8 != 0 && b[b.len() - 1] >> (n % 8) != 0 {
        return Err(format!("bit answer for {n} bits has set padding bits"));
    }
    Ok((0..n).map(|i| b[4 + i / 8] >> (i % 8) & 1 == 1).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let bits: Vec<bool> = (0..21).map(|i| i % 3 == 0).collect();
        assert_eq!(decode_bits(&encode_bits(&bits)).unwrap(), bits);
        let probes = vec![Probe { dir: 3, eps: 0.25 }, Probe { dir: 0, eps: 1.0e-7 }];
        assert_eq!(decode(&encode_probes(&probes), 5).unwrap(), Body::Probes(probes));
        let p = [1.0f32, -2.0, 3.5, 0.1, 0.2, 0.3];
        assert_eq!(
            decode(&encode_f32(Kind::Perturbations, 2, &p), 3).unwrap(),
            Body::Perturbations { count: 2, data: p.to_vec() }
        );
    }

    #[test]
    fn refuses_bad_bodies() {
        let good = encode_f32(Kind::Perturbations, 2, &[0.0; 6]);
        assert!(decode(&good[..good.len() - 1], 3).unwrap_err().contains("truncated"));
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert!(decode(&bad, 3).unwrap_err().contains("magic"));
        assert!(decode(&good[..8], 3).is_err());
        let mut kind = good;
        kind[4] = 9;
        assert!(decode(&kind, 3).unwrap_err().contains("kind"));
    }
}
