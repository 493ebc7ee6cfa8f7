//! The networked oracle over loopback: exact agreement with the in-process oracle, session
//! isolation under concurrency, refusals of malformed or unauthorised requests, limits,
//! retries and resumption.

use apsig::data::{DataOptions, Split};
use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::model::{load_network, save_network, Arch, Classifier};
use apsig::nn::{Network, Shape};
use apsig::oracle::{ChangeOracle, LiftedDirections, LocalOracle};
use apsig::rng::Rng;
use apsig::signature::{signature_via_oracle, EpsOutcome, SearchConfig};
use apsig_serve::wire::{self, Kind};
use apsig_serve::{
    register_secret, spawn_for_tests, ClientConfig, HttpOracle, JournaledOracle, ServeConfig, ServerHandle,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const L: usize = 784;

struct Fixture {
    model_path: PathBuf,
    model: Arc<dyn Classifier>,
    test: Split,
}

/// An untrained TargetNet-S with a fixed seed, saved once, and the real MNIST test images.
fn fx() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(|| {
        let shape = Shape::new(28, 28, 1);
        let net = Network::new(shape, Arch::TargetNetS.layers(shape, 10, 0), 1).unwrap();
        // one fixed file: the net is deterministic and the write atomic, so runs share it
        let model_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("apsig-serve-targetnet-s-seed1.safetensors");
        save_network(&model_path, Arch::TargetNetS, &net, &BTreeMap::new()).unwrap();
        // the server loads this file; the in-process side loads it too, so both hold the same floats
        let model: Arc<dyn Classifier> = Arc::new(load_network(&model_path, Some(Arch::TargetNetS)).unwrap().net);
        let opts = DataOptions { data_dir: Some(testkit::data_dir()), ..Default::default() };
        let data = apsig::data::load("mnist", &opts).unwrap();
        Fixture { model_path, model, test: data.test }
    })
}

fn server(tweak: impl FnOnce(&mut ServeConfig)) -> (SocketAddr, ServerHandle) {
    let mut cfg = ServeConfig { model: fx().model_path.clone(), ..Default::default() };
    tweak(&mut cfg);
    spawn_for_tests(cfg).unwrap()
}

fn search() -> SearchConfig {
    SearchConfig { start: 0.5, growth: 1.6, eps_max: 256.0, eps_min: 1e-4, rel_tol: 1e-2 }
}

fn dirs(k: usize, seed: u64) -> Directions {
    Directions::generate(&DirectionConfig { strategy: Strategy::Gaussian, k, seed }, Shape::new(28, 28, 1)).unwrap()
}

fn local_signature(secret: &[f32], d: &Directions, starts: &[f32]) -> Vec<EpsOutcome> {
    let model = fx().model.clone();
    let lifted = Arc::new(LiftedDirections::new(model.as_ref(), d));
    let oracle = LocalOracle::new(model, secret, Some(lifted)).unwrap();
    signature_via_oracle(&oracle, d, starts, &search()).unwrap()
}

/// Test images along whose directions an untrained net does flip (most directions flip by
/// eps_max), so signatures carry information; the first `n` of them, from `from` on.
fn flipping_images(d: &Directions, from: usize, n: usize) -> Vec<usize> {
    let model = fx().model.clone();
    let lifted = Arc::new(LiftedDirections::new(model.as_ref(), d));
    let far: Vec<apsig::oracle::Probe> =
        (0..d.k() as u32).map(|dir| apsig::oracle::Probe { dir, eps: search().eps_max }).collect();
    let found: Vec<usize> = (from..fx().test.n)
        .filter(|&i| {
            let o = LocalOracle::new(model.clone(), fx().test.image(i), Some(lifted.clone())).unwrap();
            let flips = o.changed_along(d, &far).unwrap().iter().filter(|&&b| b).count();
            4 * flips >= 3 * d.k()
        })
        .take(n)
        .collect();
    assert_eq!(found.len(), n, "not enough images that flip");
    found
}

fn fast_retries() -> ClientConfig {
    ClientConfig { backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(50), ..Default::default() }
}

/// A raw request: status, headers, body (never an error for HTTP statuses).
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("status {}: body is not JSON ({e}): {:?}", self.status, String::from_utf8_lossy(&self.body))
        })
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// A refusal: the expected status and a JSON `{"error": "..."}` with a message.
    fn refused(&self, status: u16, what: &str) -> String {
        assert_eq!(self.status, status, "{what}: {:?}", String::from_utf8_lossy(&self.body));
        let v = self.json();
        let msg = v["error"].as_str().unwrap_or_else(|| panic!("{what}: no error message in {v}"));
        assert!(!msg.is_empty(), "{what}");
        assert!(v.get("changed").is_none(), "{what}: bits in a refusal");
        msg.to_string()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Raw {
    try_post(url, headers, body).unwrap()
}

/// A POST whose connection may be closed by the server before the body is sent: only a broken
/// pipe or a reset is tolerated, as `Err`; any other failure panics.
fn try_post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Raw, std::io::Error> {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = match req.send(body) {
        Ok(resp) => resp,
        Err(ureq::Error::Io(e))
            if matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset) =>
        {
            return Err(e)
        }
        Err(e) => panic!("POST {url}: {e}"),
    };
    Ok(Raw {
        status: resp.status().as_u16(),
        headers: resp.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect(),
        body: resp.body_mut().read_to_vec().unwrap(),
    })
}

fn get(url: &str) -> Raw {
    let mut resp = agent().get(url).call().unwrap();
    Raw { status: resp.status().as_u16(), headers: vec![], body: resp.body_mut().read_to_vec().unwrap() }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn perturbations(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n * L).map(|_| scale * r.normal()).collect()
}

#[test]
fn signature_over_http_equals_the_in_process_one() {
    let (_, srv) = server(|_| {});
    let d = dirs(16, 3);
    let starts = vec![search().start; 16];
    let mut total_censored = 0;
    let mut images = flipping_images(&d, 0, 3);
    images.insert(0, 0); // image 0 never flips: all censored, which must agree too
    for i in images {
        let secret = fx().test.image(i);
        let reg = register_secret(&srv.url(), secret).unwrap();
        assert_eq!(reg.input_len, L);
        assert_eq!(reg.token.len(), 32);
        let oracle = HttpOracle::new(&srv.url(), &reg.session, &reg.token, L);
        let t = Instant::now();
        let remote = signature_via_oracle(&oracle, &d, &starts, &search()).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let local = local_signature(secret, &d, &starts);
        assert_eq!(remote, local, "image {i}: HTTP and in-process signatures differ");
        let spent: u64 = remote.iter().map(|o| o.queries as u64).sum();
        assert_eq!(oracle.queries(), spent);
        assert_eq!(srv.queries_used(&reg.session), Some(spent));
        assert_eq!(oracle.server_counters(), Some((spent, reg.budget - spent)));
        let censored = remote.iter().filter(|o| o.censored).count();
        total_censored += censored;
        eprintln!(
            "image {i}: {spent} queries in {} requests, {censored}/16 censored, {secs:.3} s; eps {:?}",
            oracle.requests(),
            remote.iter().map(|o| o.eps).collect::<Vec<_>>()
        );
    }
    // the comparison means something only if most directions do flip
    assert!(total_censored < 16 + 12, "{total_censored} of 64 directions censored");
}

#[test]
fn an_onnx_model_is_served_like_an_apsig_one() {
    // a PyTorch export apsig did not train: the same signature over HTTP as in process
    let onnx = testkit::onnx::fixture("grey-target.onnx");
    let (_, srv) = spawn_for_tests(ServeConfig { model: onnx.clone(), ..Default::default() }).unwrap();
    let model: Arc<dyn Classifier> = Arc::new(apsig_onnx::OnnxClassifier::load(&onnx).unwrap());
    let d = dirs(8, 4);
    let starts = vec![search().start; 8];
    for i in [0, 1] {
        let secret = fx().test.image(i);
        let reg = register_secret(&srv.url(), secret).unwrap();
        let remote =
            signature_via_oracle(&HttpOracle::new(&srv.url(), &reg.session, &reg.token, L), &d, &starts, &search())
                .unwrap();
        let lifted = Arc::new(LiftedDirections::new(model.as_ref(), &d));
        let local = LocalOracle::new(model.clone(), secret, Some(lifted)).unwrap();
        assert_eq!(remote, signature_via_oracle(&local, &d, &starts, &search()).unwrap(), "image {i}");
        assert!(remote.iter().any(|o| !o.censored), "image {i}: a trained model flips");
    }
    // a file that is no model is refused at start, naming it
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"not a model").unwrap();
    let e = spawn_for_tests(ServeConfig { model: junk, ..Default::default() }).err().unwrap().to_string();
    assert!(e.contains("junk.onnx") && e.contains("not a readable ONNX model"), "{e}");
}

#[test]
fn concurrent_sessions_get_only_their_own_answers() {
    let (_, srv) = server(|_| {});
    let url = srv.url();
    let d = dirs(16, 5);
    let starts = vec![search().start; 16];
    let n = 32;
    let images = flipping_images(&d, 100, n);
    let barrier = std::sync::Barrier::new(n);
    let sigs: Vec<Vec<EpsOutcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|t| {
                let (url, d, starts, barrier) = (&url, &d, &starts, &barrier);
                let image = images[t];
                s.spawn(move || {
                    let secret = fx().test.image(image);
                    let reg = register_secret(url, secret).unwrap();
                    let oracle = HttpOracle::new(url, &reg.session, &reg.token, L);
                    let local_plain = LocalOracle::new(fx().model.clone(), secret, None).unwrap();
                    barrier.wait();
                    // interleave explicit perturbation batches with the search
                    let p = perturbations(40, t as u64, 2.0);
                    let first = oracle.changed(&p[..20 * L]).unwrap();
                    let sig = signature_via_oracle(&oracle, d, starts, &search()).unwrap();
                    let second = oracle.changed(&p[20 * L..]).unwrap();
                    let mut bits = first;
                    bits.extend(second);
                    assert_eq!(bits, local_plain.changed(&p).unwrap(), "session {t}: bits");
                    assert_eq!(sig, local_signature(secret, d, starts), "session {t}: signature");
                    let spent: u64 = sig.iter().map(|o| o.queries as u64).sum::<u64>() + 40;
                    assert_eq!(oracle.queries(), spent);
                    assert_eq!(oracle.retries(), 0);
                    (reg.session, spent, sig)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let (session, spent, sig) = h.join().unwrap();
                assert_eq!(srv.queries_used(&session), Some(spent));
                sig
            })
            .collect()
    });
    assert_eq!(srv.sessions(), n);
    let distinct: std::collections::HashSet<String> = sigs.iter().map(|s| format!("{s:?}")).collect();
    assert!(distinct.len() > n / 2, "only {} distinct signatures", distinct.len());
}

#[test]
fn malformed_and_unauthorised_requests_get_json_refusals_and_the_server_keeps_serving() {
    let (addr, srv) = server(|c| c.max_body_bytes = 128 << 10);
    let url = srv.url();
    let a = register_secret(&url, fx().test.image(7)).unwrap();
    let b = register_secret(&url, fx().test.image(8)).unwrap();
    let q = format!("{url}/v1/sessions/{}/query", a.session);
    let ta = bearer(&a.token);
    let auth = [("authorization", ta.as_str()), ("content-type", "application/json")];
    let bin = [("authorization", ta.as_str()), ("content-type", wire::CONTENT_TYPE)];
    let zeros = |n: usize| format!("[{}]", vec!["0"; n].join(","));

    let d = dirs(4, 9);
    let fp = wire::directions_key(d.k(), &d.data);
    let reg = post(
        &format!("{url}/v1/sessions/{}/directions", a.session),
        &auth,
        serde_json::to_string(&serde_json::json!({"directions": d.data, "k": 4})).unwrap().as_bytes(),
    );
    assert_eq!(reg.status, 200, "{:?}", String::from_utf8_lossy(&reg.body));
    assert_eq!(reg.json()["directions"], fp.as_str(), "fingerprint of JSON directions");

    let cases: Vec<(&str, u16, Raw)> = vec![
        ("bad JSON", 400, post(&q, &auth, b"{\"perturbations\": [1, 2")),
        ("not an object", 400, post(&q, &auth, b"[1, 2, 3]")),
        ("wrong shape", 400, post(&q, &auth, format!("{{\"perturbations\": {}}}", zeros(L - 1)).as_bytes())),
        ("NaN in JSON", 400, post(&q, &auth, format!("{{\"perturbations\": [NaN,{}}}", &zeros(L - 1)[1..]).as_bytes())),
        (
            "infinite in JSON (overflows f32)",
            400,
            post(&q, &auth, format!("{{\"perturbations\": [1e39,{}}}", &zeros(L - 1)[1..]).as_bytes()),
        ),
        ("NaN in binary", 400, {
            let mut p = vec![0.0f32; L];
            p[5] = f32::NAN;
            post(&q, &bin, &wire::encode_f32(Kind::Perturbations, 1, &p))
        }),
        ("infinite in binary", 400, {
            let mut p = vec![0.0f32; L];
            p[9] = f32::NEG_INFINITY;
            post(&q, &bin, &wire::encode_f32(Kind::Perturbations, 1, &p))
        }),
        (
            "both query forms",
            400,
            post(&q, &auth, format!("{{\"perturbations\": [], \"directions\": \"{fp}\", \"probes\": []}}").as_bytes()),
        ),
        ("missing token", 401, post(&q, &[("content-type", "application/json")], b"{\"perturbations\": []}")),
        ("not a bearer token", 401, post(&q, &[("authorization", "Basic abc")], b"{\"perturbations\": []}")),
        ("wrong token", 403, post(&q, &[("authorization", &bearer(&"0".repeat(32)))], b"{\"perturbations\": []}")),
        ("another session's token", 403, post(&q, &[("authorization", &bearer(&b.token))], b"{\"perturbations\": []}")),
        (
            "unknown session, live token",
            404,
            post(&format!("{url}/v1/sessions/{}/query", "f".repeat(24)), &auth, b"{\"perturbations\": []}"),
        ),
        (
            "unknown session, unknown token",
            403,
            post(
                &format!("{url}/v1/sessions/{}/query", "f".repeat(24)),
                &[("authorization", &bearer(&"1".repeat(32)))],
                b"{\"perturbations\": []}",
            ),
        ),
        ("bad magic", 400, {
            let mut body = wire::encode_f32(Kind::Perturbations, 1, &[0.0; L]);
            body[0] = b'X';
            post(&q, &bin, &body)
        }),
        ("truncated binary", 400, {
            let body = wire::encode_f32(Kind::Perturbations, 2, &[0.0; 2 * L]);
            post(&q, &bin, &body[..body.len() - 10])
        }),
        ("binary header only", 400, post(&q, &bin, &[0x47, 0x53])),
        (
            "unknown directions (JSON)",
            400,
            post(&q, &auth, b"{\"directions\": \"0123456789abcdef\", \"probes\": [[0, 1.0]]}"),
        ),
        ("unknown directions (binary)", 400, {
            let h = [bin[0], bin[1], (wire::DIRECTIONS_HEADER, "0123456789abcdef")];
            post(&q, &h, &wire::encode_probes(&[apsig::oracle::Probe { dir: 0, eps: 1.0 }]))
        }),
        ("binary probes without a fingerprint", 400, {
            post(&q, &bin, &wire::encode_probes(&[apsig::oracle::Probe { dir: 0, eps: 1.0 }]))
        }),
        (
            "direction index >= K",
            400,
            post(&q, &auth, format!("{{\"directions\": \"{fp}\", \"probes\": [[1, 1.0], [4, 1.0]]}}").as_bytes()),
        ),
        (
            "negative direction index",
            400,
            post(&q, &auth, format!("{{\"directions\": \"{fp}\", \"probes\": [[-1, 1.0]]}}").as_bytes()),
        ),
        ("infinite eps (binary)", 400, {
            let h = [bin[0], bin[1], (wire::DIRECTIONS_HEADER, fp.as_str())];
            post(&q, &h, &wire::encode_probes(&[apsig::oracle::Probe { dir: 0, eps: f32::INFINITY }]))
        }),
        (
            "directions: wrong length for K",
            400,
            post(
                &format!("{url}/v1/sessions/{}/directions", a.session),
                &auth,
                format!("{{\"directions\": {}, \"k\": 2}}", zeros(L)).as_bytes(),
            ),
        ),
        (
            "registration: wrong input length",
            400,
            post(
                &format!("{url}/v1/sessions"),
                &[("content-type", "application/json")],
                format!("{{\"input\": {}}}", zeros(10)).as_bytes(),
            ),
        ),
        (
            "registration: unknown field",
            400,
            post(&format!("{url}/v1/sessions"), &[], format!("{{\"input\": {}, \"label\": 3}}", zeros(L)).as_bytes()),
        ),
        ("wrong method", 405, get(&q)),
        ("no such endpoint", 404, get(&format!("{url}/v1/class"))),
    ];
    for (what, status, raw) in &cases {
        let msg = raw.refused(*status, what);
        eprintln!("{what:<40} {status} {msg}");
    }
    // refused on the headers, bodies over 64 KiB are never read: the client sees the refusal,
    // or, when the server closed before the client finished writing, a broken connection
    let wrong_token =
        [("authorization", "Bearer 00000000000000000000000000000000"), ("content-type", wire::CONTENT_TYPE)];
    for (what, status, headers, body) in [
        (
            "wrong token, large body",
            403,
            &wrong_token[..],
            wire::encode_f32(Kind::Perturbations, 40, &vec![0.0; 40 * L]),
        ),
        ("oversized body", 413, &bin[..], wire::encode_f32(Kind::Perturbations, 60, &vec![0.0; 60 * L])),
    ] {
        match try_post(&q, headers, &body) {
            Ok(raw) => eprintln!("{what:<40} {status} {}", raw.refused(status, what)),
            Err(e) => eprintln!("{what:<40} {status} connection closed while sending: {e}"),
        }
    }
    // an oversized body announced by its length is refused before it is read
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v1/sessions/{}/query HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000000\r\n\r\n",
        a.session, a.token
    )
    .unwrap();
    let mut head = String::new();
    BufReader::new(&s).read_line(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // nothing was charged, and the server still serves
    assert_eq!(srv.queries_used(&a.session), Some(0));
    assert_eq!(get(&format!("{url}/healthz")).body, b"ok");
    let ok = post(&q, &auth, format!("{{\"perturbations\": {}}}", zeros(2 * L)).as_bytes());
    assert_eq!(ok.status, 200);
    let v = ok.json();
    assert_eq!(v["changed"], serde_json::json!([false, false]));
    assert_eq!(v["queries_used"], 2);
    let along =
        post(&q, &auth, format!("{{\"directions\": \"{fp}\", \"probes\": [[0, 0.5], [3, 1000.0]]}}").as_bytes());
    assert_eq!(along.status, 200);
    assert_eq!(along.json()["changed"].as_array().unwrap().len(), 2);
    assert_eq!(srv.queries_used(&a.session), Some(4));
    assert_eq!(srv.queries_used(&b.session), Some(0));
}

#[test]
fn exhausted_budget_is_refused_whole_and_the_rate_limit_answers_429() {
    let (_, srv) = server(|c| c.budget = 100);
    let url = srv.url();
    let a = register_secret(&url, fx().test.image(3)).unwrap();
    assert_eq!(a.budget, 100);
    let q = format!("{url}/v1/sessions/{}/query", a.session);
    let ta = bearer(&a.token);
    let bin = [("authorization", ta.as_str()), ("content-type", wire::CONTENT_TYPE)];
    let ask = |n: usize| post(&q, &bin, &wire::encode_f32(Kind::Perturbations, n, &perturbations(n, 1, 1.0)));

    let r = ask(60);
    assert_eq!(r.status, 200);
    assert_eq!(wire::decode_bits(&r.body).unwrap().len(), 60);
    assert_eq!(r.header(wire::QUERIES_USED_HEADER), Some("60"));
    assert_eq!(r.header(wire::BUDGET_LEFT_HEADER), Some("40"));

    let over = ask(50);
    assert_eq!(over.refused(429, "over budget"), "query budget exhausted");
    assert_eq!(over.json()["budget_left"], 40);
    assert!(over.header("retry-after").is_none());
    assert_eq!(srv.queries_used(&a.session), Some(60), "a refused batch advanced the counter");

    // the client does not retry a budget refusal
    let oracle = HttpOracle::with_config(&url, &a.session, &a.token, L, fast_retries());
    let e = oracle.changed(&perturbations(41, 2, 1.0)).unwrap_err().to_string();
    assert!(e.contains("budget"), "{e}");
    assert_eq!(oracle.requests(), 1);
    assert_eq!(oracle.queries(), 0);
    assert_eq!(oracle.status().unwrap(), (60, 40));

    assert_eq!(oracle.changed(&perturbations(40, 3, 1.0)).unwrap().len(), 40);
    assert_eq!(oracle.status().unwrap(), (100, 0));
    ask(1).refused(429, "budget spent");
    assert_eq!(srv.queries_used(&a.session), Some(100));

    // a retried request (same id) gets its first answer and is not charged twice
    let b = register_secret(&url, fx().test.image(4)).unwrap();
    let qb = format!("{url}/v1/sessions/{}/query", b.session);
    let tb = bearer(&b.token);
    let h =
        [("authorization", tb.as_str()), ("content-type", wire::CONTENT_TYPE), (wire::REQUEST_ID_HEADER, "retry-me")];
    let body = wire::encode_f32(Kind::Perturbations, 10, &perturbations(10, 4, 3.0));
    let first = post(&qb, &h, &body);
    let again = post(&qb, &h, &body);
    assert_eq!((first.status, again.status), (200, 200));
    assert_eq!(first.body, again.body);
    assert_eq!(srv.queries_used(&b.session), Some(10));
    post(&qb, &h, &wire::encode_f32(Kind::Perturbations, 1, &[0.0; L])).refused(400, "id reused");

    // rate limit: 20 queries per second, burst 20
    let (_, srv) = server(|c| c.rate = 20.0);
    let url = srv.url();
    let c = register_secret(&url, fx().test.image(5)).unwrap();
    let qc = format!("{url}/v1/sessions/{}/query", c.session);
    let tc = bearer(&c.token);
    let hc = [("authorization", tc.as_str()), ("content-type", wire::CONTENT_TYPE)];
    let r = post(&qc, &hc, &wire::encode_f32(Kind::Perturbations, 20, &perturbations(20, 5, 1.0)));
    assert_eq!(r.status, 200);
    let limited = post(&qc, &hc, &wire::encode_f32(Kind::Perturbations, 5, &perturbations(5, 6, 1.0)));
    assert_eq!(limited.refused(429, "rate"), "rate limit exceeded");
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(wait >= 1);
    assert_eq!(srv.queries_used(&c.session), Some(20));
    // the client waits out a rate limit (429 with Retry-After) and then gets its answer
    let oracle = HttpOracle::with_config(&url, &c.session, &c.token, L, fast_retries());
    let t = Instant::now();
    assert_eq!(oracle.changed(&perturbations(5, 6, 1.0)).unwrap().len(), 5);
    eprintln!("rate-limited batch answered after {:?} ({} requests)", t.elapsed(), oracle.requests());
    assert_eq!(srv.queries_used(&c.session), Some(25));
}

fn journal_context(reg: &apsig_serve::Registration, d: &Directions) -> String {
    format!("{} {} {:?}", reg.session, d.fingerprint(), search())
}

#[test]
fn a_journaled_attack_resumes_without_asking_again() {
    let (_, srv) = server(|_| {});
    let url = srv.url();
    let d = dirs(16, 11);
    let starts = vec![search().start; 16];
    let reg = register_secret(&url, fx().test.image(21)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attack.journal");
    let ctx = journal_context(&reg, &d);

    let first = {
        let o = JournaledOracle::open(HttpOracle::new(&url, &reg.session, &reg.token, L), &path, &ctx).unwrap();
        let sig = signature_via_oracle(&o, &d, &starts, &search()).unwrap();
        assert_eq!(o.replayed(), 0);
        sig
    };
    let spent: u64 = first.iter().map(|o| o.queries as u64).sum();
    assert_eq!(srv.queries_used(&reg.session), Some(spent));
    assert_eq!(first, local_signature(fx().test.image(21), &d, &starts));

    // a complete rerun: all answers from the journal, no request at all
    let o = JournaledOracle::open(HttpOracle::new(&url, &reg.session, &reg.token, L), &path, &ctx).unwrap();
    let batches = o.journaled_batches();
    assert!(batches > 3);
    assert_eq!(signature_via_oracle(&o, &d, &starts, &search()).unwrap(), first);
    assert_eq!((o.replayed(), o.fresh(), o.inner().requests()), (spent, 0, 0));
    assert_eq!(srv.queries_used(&reg.session), Some(spent));
    drop(o);

    // a run killed mid-way (half the batches and a torn line): only the rest is asked
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let keep = 1 + batches / 2;
    let mut cut = lines[..keep].join("\n");
    cut.push('\n');
    cut.push_str(&lines[keep][..lines[keep].len() / 2]);
    std::fs::write(&path, cut).unwrap();
    let o = JournaledOracle::open(HttpOracle::new(&url, &reg.session, &reg.token, L), &path, &ctx).unwrap();
    assert_eq!(o.journaled_batches(), batches / 2);
    assert_eq!(signature_via_oracle(&o, &d, &starts, &search()).unwrap(), first);
    assert!(o.replayed() > 0 && o.fresh() > 0);
    assert_eq!(o.replayed() + o.fresh(), spent);
    assert_eq!(srv.queries_used(&reg.session), Some(spent + o.fresh()));
    drop(o);
    // and the repaired journal is complete again
    let o = JournaledOracle::open(HttpOracle::new(&url, &reg.session, &reg.token, L), &path, &ctx).unwrap();
    assert_eq!(signature_via_oracle(&o, &d, &starts, &search()).unwrap(), first);
    assert_eq!(o.fresh(), 0);

    // a journal of another attack is refused, not replayed
    let other = JournaledOracle::open(HttpOracle::new(&url, &reg.session, &reg.token, L), &path, "another attack");
    assert!(other.is_err());
}

/// A proxy that fails the first connections in chosen ways, then relays HTTP/1.1 exchanges.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Answer 503 without asking the server.
    Unavailable,
    /// Close the connection without answering.
    Hangup,
    /// Relay the request, drop the server's answer and hang up (the server did the work).
    LoseAnswer,
}

fn read_http_message(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut msg = Vec::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
        msg.extend(line.as_bytes());
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    msg.extend(body);
    Some(msg)
}

fn flaky_proxy(upstream: SocketAddr, faults: Vec<Fault>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for (i, conn) in l.incoming().enumerate() {
            let Ok(client) = conn else { return };
            let fault = faults.get(i).copied();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut client = client;
                let Ok(server) = TcpStream::connect(upstream) else { return };
                let mut server_reader = BufReader::new(server.try_clone().unwrap());
                let mut server = server;
                while let Some(req) = read_http_message(&mut reader) {
                    match fault {
                        Some(Fault::Unavailable) => {
                            let _ = client.write_all(
                                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                            );
                            return;
                        }
                        Some(Fault::Hangup) => return,
                        _ => {}
                    }
                    server.write_all(&req).unwrap();
                    let Some(resp) = read_http_message(&mut server_reader) else { return };
                    if let Some(Fault::LoseAnswer) = fault {
                        return;
                    }
                    if client.write_all(&resp).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn transient_failures_are_retried_and_charged_once() {
    let (addr, srv) = server(|_| {});
    let reg = register_secret(&srv.url(), fx().test.image(30)).unwrap();
    let proxy = flaky_proxy(addr, vec![Fault::Unavailable, Fault::Hangup, Fault::LoseAnswer]);
    let oracle = HttpOracle::with_config(&format!("http://{proxy}"), &reg.session, &reg.token, L, fast_retries());
    let p = perturbations(8, 30, 3.0);
    let bits = oracle.changed(&p).unwrap();
    let local = LocalOracle::new(fx().model.clone(), fx().test.image(30), None).unwrap();
    assert_eq!(bits, local.changed(&p).unwrap());
    assert_eq!(oracle.retries(), 3);
    assert_eq!(oracle.requests(), 4);
    // the lost answer was computed and charged once; the retry was served from the cache
    assert_eq!(srv.queries_used(&reg.session), Some(8));

    // a server that stays down: the client gives up after its retries, with the reason
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let oracle = HttpOracle::with_config(
        &format!("http://{dead}"),
        &reg.session,
        &reg.token,
        L,
        ClientConfig { max_retries: 2, ..fast_retries() },
    );
    let e = oracle.changed(&p).unwrap_err().to_string();
    assert!(e.contains("gave up after 3 attempts"), "{e}");
}

#[test]
fn shutdown_is_graceful() {
    let (_, srv) = server(|_| {});
    let url = srv.url();
    assert_eq!(get(&format!("{url}/healthz")).status, 200);
    srv.shutdown().unwrap();
    assert!(agent().get(&format!("{url}/healthz")).call().is_err());
}
