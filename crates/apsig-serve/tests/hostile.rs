//! `apsig serve` against hostile clients, over loopback: sessions end and are limited, memory
//! is bounded, slow and silent clients are cut off, refusals do not wait for bodies, a client
//! that leaves stops its computation, retries are charged once, shutdown has a deadline, and
//! TLS verifies the server. Each test is bounded to a few seconds.

use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::model::{save_network, Arch};
use apsig::nn::{Network, Shape};
use apsig::oracle::{ChangeOracle, Probe};
use apsig::rng::Rng;
use apsig_serve::wire;
use apsig_serve::{register_secret, register_secret_with, spawn_for_tests, ClientConfig, HttpOracle, ServeConfig};
use apsig_serve::{Registration, ServerHandle};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const L: usize = 784;

/// An untrained TargetNet-S with a fixed seed, saved once (no data set needed: secrets here
/// are random images).
fn model_path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let shape = Shape::new(28, 28, 1);
        let net = Network::new(shape, Arch::TargetNetS.layers(shape, 10, 0), 1).unwrap();
        let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("apsig-serve-hostile-seed1.safetensors");
        save_network(&p, Arch::TargetNetS, &net, &BTreeMap::new()).unwrap();
        p
    })
}

fn server(tweak: impl FnOnce(&mut ServeConfig)) -> (SocketAddr, ServerHandle) {
    let mut cfg = ServeConfig { model: model_path().clone(), ..Default::default() };
    tweak(&mut cfg);
    spawn_for_tests(cfg).unwrap()
}

fn image(seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..L).map(|_| r.uniform()).collect()
}

fn dirs(k: usize, seed: u64) -> Directions {
    Directions::generate(&DirectionConfig { strategy: Strategy::Gaussian, k, seed }, Shape::new(28, 28, 1)).unwrap()
}

/// Sends `head` (request line and headers, without the blank line) and `body`, and returns
/// the status and the body of the answer (`None`: the server closed without answering).
fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("{head}\r\nconnection: close\r\n\r\n").as_bytes()).ok()?;
    s.write_all(body).ok()?;
    read_answer(&mut s)
}

fn read_answer(s: &mut TcpStream) -> Option<(u16, String)> {
    let mut text = Vec::new();
    let _ = s.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text).to_string();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text.split("\r\n\r\n").nth(1).unwrap_or("").to_string()))
}

fn post_raw(path: &str, extra: &str, len: usize) -> String {
    format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len}{extra}")
}

fn auth(reg: &Registration) -> String {
    format!("\r\nauthorization: Bearer {}", reg.token)
}

/// Waits until `f` holds (polling), at most `limit`.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Whether the server closes `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    }
}

#[test]
fn sessions_are_limited_per_client_and_overall_end_on_delete_and_expire() {
    let (addr, srv) = server(|c| c.max_sessions_per_client = 4);
    let url = srv.url();
    let regs: Vec<Registration> = (0..4).map(|i| register_secret(&url, &image(i)).unwrap()).collect();
    // the flood: one address past its share is refused, and it stays refused
    for _ in 0..20 {
        let e = register_secret(&url, &image(9)).unwrap_err().to_string();
        assert!(e.contains("HTTP 429") && e.contains("this address holds 4 sessions"), "{e}");
    }
    assert_eq!(srv.sessions(), 4);
    // DELETE needs the token; the holder ends the session and frees its place
    let del = |reg: &Registration, token: &str| {
        raw(
            addr,
            &format!("DELETE /v1/sessions/{} HTTP/1.1\r\nhost: x\r\nauthorization: bearer {token}", reg.session),
            b"",
        )
        .unwrap()
        .0
    };
    assert_eq!(raw(addr, &format!("DELETE /v1/sessions/{} HTTP/1.1\r\nhost: x", regs[0].session), b"").unwrap().0, 401);
    assert_eq!(del(&regs[0], &regs[1].token), 403);
    assert_eq!(del(&regs[0], &regs[0].token), 204);
    assert_eq!(srv.sessions(), 3);
    assert_eq!(del(&regs[0], &regs[1].token), 404, "a live token naming an ended session");
    register_secret(&url, &image(10)).unwrap();
    assert!(register_secret(&url, &image(11)).is_err());

    // idle sessions end: after a second unused, all of them are gone and their tokens dead
    let (_, srv) = server(|c| c.session_idle_secs = 1);
    let url = srv.url();
    let idle = register_secret(&url, &image(1)).unwrap();
    assert_eq!(srv.sessions(), 1);
    assert!(eventually(Duration::from_secs(5), || srv.sessions() == 0), "{} sessions left", srv.sessions());
    let e = HttpOracle::new(&url, &idle.session, &idle.token, L).status().unwrap_err().to_string();
    assert!(e.contains("HTTP 403"), "{e}");

    // the overall limit (several addresses would share it): 503 with Retry-After
    let (addr, srv) = server(|c| {
        c.max_sessions = 2;
        c.session_lifetime_secs = 2;
    });
    let url = srv.url();
    let born = Instant::now();
    let a = register_secret(&url, &image(1)).unwrap();
    register_secret(&url, &image(2)).unwrap();
    let input = serde_json::json!({ "input": image(3) }).to_string();
    let (status, body) = raw(addr, &post_raw("/v1/sessions", "", input.len()), input.as_bytes()).unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("session limit of 2"), "{body}");
    // a session kept busy still ends at its lifetime
    let h = HttpOracle::new(&url, &a.session, &a.token, L);
    let e = loop {
        match h.status() {
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => break e.to_string(),
        }
        assert!(born.elapsed() < Duration::from_secs(10), "the session outlived its lifetime");
    };
    assert!(born.elapsed() >= Duration::from_secs(2), "ended after {:?}", born.elapsed());
    assert!(e.contains("HTTP 403") || e.contains("HTTP 404"), "{e}");
    assert!(eventually(Duration::from_secs(3), || srv.sessions() == 0));
    register_secret(&url, &image(4)).unwrap();
}

#[test]
fn direction_sets_are_bounded_per_set_per_session_and_per_server() {
    let (_, probe_srv) = server(|_| {});
    let one = register_secret(&probe_srv.url(), &image(1)).unwrap();
    HttpOracle::new(&probe_srv.url(), &one.session, &one.token, L).register_directions(&dirs(32, 1)).unwrap();
    let set32 = probe_srv.memory_used();
    assert!(set32 >= 32 * L * 4, "a set of 32 directions is charged {set32} bytes");
    drop(probe_srv);

    // room for 2.5 sets of 32 per session, 4.5 per server; sets of at most 64 directions
    let (_, srv) = server(|c| {
        c.max_direction_values = 64 * L;
        c.max_session_bytes = set32 * 5 / 2;
        c.max_body_bytes = 256 << 10;
        c.max_total_bytes = set32 * 9 / 2;
    });
    let url = srv.url();
    let regs: Vec<Registration> = (0..3).map(|i| register_secret(&url, &image(i)).unwrap()).collect();
    let oracle = |r: &Registration| HttpOracle::new(&url, &r.session, &r.token, L);
    let e = oracle(&regs[0]).register_directions(&dirs(65, 2)).unwrap_err().to_string();
    assert!(e.contains("HTTP 400") && e.contains("max_direction_values"), "{e}");
    oracle(&regs[0]).register_directions(&dirs(32, 3)).unwrap();
    oracle(&regs[0]).register_directions(&dirs(32, 4)).unwrap();
    let e = oracle(&regs[0]).register_directions(&dirs(32, 5)).unwrap_err().to_string();
    assert!(e.contains("HTTP 409") && e.contains("max_session_bytes"), "{e}");
    oracle(&regs[1]).register_directions(&dirs(32, 6)).unwrap();
    oracle(&regs[1]).register_directions(&dirs(32, 7)).unwrap();
    let e = oracle(&regs[2]).register_directions(&dirs(32, 8)).unwrap_err().to_string();
    assert!(e.contains("HTTP 503") && e.contains("memory limit"), "{e}");
    assert_eq!(srv.memory_used(), 4 * set32);
    // a registered set is answered; ending a session gives its memory back
    let d = dirs(32, 3);
    let probes: Vec<Probe> = (0..32).map(|dir| Probe { dir, eps: 1.0 }).collect();
    assert_eq!(oracle(&regs[0]).changed_along(&d, &probes).unwrap().len(), 32);
    let del = agent().delete(&format!("{url}/v1/sessions/{}", regs[0].session));
    assert_eq!(del.header("authorization", &format!("Bearer {}", regs[0].token)).call().unwrap().status(), 204);
    assert!(eventually(Duration::from_secs(2), || srv.memory_used() == 2 * set32));
    oracle(&regs[2]).register_directions(&dirs(32, 8)).unwrap();
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

#[test]
fn huge_finite_values_and_oversized_batches_are_refused() {
    let (_, srv) = server(|c| c.max_batch = 100);
    let url = srv.url();
    let mut x = image(1);
    x[5] = 3e38;
    let e = register_secret(&url, &x).unwrap_err().to_string();
    assert!(e.contains("HTTP 400") && e.contains("value 5"), "{e}");
    let reg = register_secret(&url, &image(2)).unwrap();
    let h = HttpOracle::new(&url, &reg.session, &reg.token, L);
    let d = dirs(4, 1);
    let e = h.changed_along(&d, &[Probe { dir: 1, eps: 3e38 }]).unwrap_err().to_string();
    assert!(e.contains("HTTP 400") && e.contains("eps"), "{e}");
    let mut p = vec![0.0; 2 * L];
    p[L + 3] = -3e38;
    let e = h.changed(&p).unwrap_err().to_string();
    assert!(e.contains("HTTP 400") && e.contains("perturbations"), "{e}");
    let e = h.changed_along(&d, &vec![Probe { dir: 0, eps: 1.0 }; 101]).unwrap_err().to_string();
    assert!(e.contains("HTTP 413") && e.contains("max_batch"), "{e}");
    assert_eq!(srv.queries_used(&reg.session), Some(0));
}

#[test]
fn slow_and_silent_connections_are_cut_off() {
    let (addr, srv) = server(|c| {
        c.header_timeout_secs = 1.0;
        c.body_timeout_secs = 1.0;
        c.max_connections = 40;
    });
    let url = srv.url();
    // slowloris: half a header, then nothing; a silent connection; a body that never ends
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"POST /v1/sessions HTTP/1.1\r\nhost: x\r\ncontent-le").unwrap();
    let mut silent = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    let mut slow_body = TcpStream::connect(addr).unwrap();
    slow_body
        .write_all(post_raw("/v1/sessions", "\r\ncontent-type: application/json\r\n\r\n", 5000).as_bytes())
        .unwrap();
    slow_body.write_all(b"{\"input\": [").unwrap();
    assert!(closed_within(&mut half, Duration::from_secs(3)), "half a header kept open");
    assert!(closed_within(&mut silent, Duration::from_secs(3)), "a silent connection kept open");
    let (status, body) = read_answer(&mut slow_body).expect("an answer to a slow body");
    assert_eq!(status, 408, "{body}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(eventually(Duration::from_secs(5), || register_secret(&url, &image(1)).is_ok()));
}

#[test]
fn connections_past_the_cap_are_closed_until_slow_ones_are_cut_off() {
    // a header timeout long enough that the slow connections surely hold the cap while the
    // test probes it, however loaded the machine is
    let (addr, srv) = server(|c| {
        c.header_timeout_secs = 5.0;
        c.max_connections = 40;
    });
    let url = srv.url();
    let mut slow: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    // once the server has accepted all 40 (it may lag behind the connects), a further
    // connection is closed without an answer; one accepted before that only adds to the count
    let mut extras = Vec::new();
    let capped = eventually(Duration::from_secs(3), || {
        let mut extra = TcpStream::connect(addr).unwrap();
        let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
        let closed = closed_within(&mut extra, Duration::from_millis(300));
        extras.push(extra);
        closed
    });
    assert!(capped, "connections past the cap were served");
    for s in &mut slow {
        assert!(closed_within(s, Duration::from_secs(8)), "a slow connection outlived the header timeout");
    }
    drop(extras);
    assert!(eventually(Duration::from_secs(5), || register_secret(&url, &image(1)).is_ok()));
}

#[test]
fn refusals_do_not_wait_for_a_declared_body() {
    let (addr, srv) = server(|c| c.max_body_bytes = 1 << 20);
    let reg = register_secret(&srv.url(), &image(1)).unwrap();
    let q = format!("/v1/sessions/{}/query", reg.session);
    let t = Instant::now();
    // 17 MB declared, nothing sent: 413 at once; a body within the limit without a token: 401
    let (s, b) = raw(addr, &post_raw(&q, &auth(&reg), 17_000_000), b"").unwrap();
    assert_eq!(s, 413, "{b}");
    let (s, b) = raw(addr, &post_raw(&q, "", 500_000), b"").unwrap();
    assert_eq!(s, 401, "{b}");
    let (s, b) = raw(addr, &post_raw("/v1/sessions", "", 17_000_000), b"").unwrap();
    assert_eq!(s, 413, "{b}");
    assert!(t.elapsed() < Duration::from_secs(2), "refusals waited {:?}", t.elapsed());
    assert_eq!(srv.queries_used(&reg.session), Some(0));
}

#[test]
fn a_client_that_leaves_stops_its_computation_and_pays_only_for_what_was_computed() {
    let n = 400_000;
    let (addr, srv) = server(|c| {
        c.max_batch = n;
        c.max_body_bytes = 8 << 20;
    });
    let reg = register_secret(&srv.url(), &image(1)).unwrap();
    let d = dirs(64, 2);
    HttpOracle::new(&srv.url(), &reg.session, &reg.token, L).register_directions(&d).unwrap();
    let key = wire::directions_key(d.k(), &d.data);
    let probes: Vec<Probe> = (0..n).map(|i| Probe { dir: (i % 64) as u32, eps: 0.01 * (i % 97) as f32 }).collect();
    let body = wire::encode_probes(&probes);
    let mut s = TcpStream::connect(addr).unwrap();
    let head = post_raw(
        &format!("/v1/sessions/{}/query", reg.session),
        &format!(
            "{}\r\ncontent-type: {}\r\n{}: {key}\r\n\r\n",
            auth(&reg),
            wire::CONTENT_TYPE,
            wire::DIRECTIONS_HEADER
        ),
        body.len(),
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    // wait until the computation has started, then leave
    assert!(eventually(Duration::from_secs(10), || srv.queries_used(&reg.session) == Some(n as u64)));
    std::thread::sleep(Duration::from_millis(50));
    drop(s);
    // the charge drops to the chunks computed: a whole number of chunks, short of the batch
    let settled = || srv.queries_used(&reg.session).unwrap();
    assert!(eventually(Duration::from_secs(10), || settled() < n as u64), "charged {} of {n}", settled());
    let charged = settled();
    assert_eq!(charged % 1024, 0, "charged {charged}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(settled(), charged, "the computation went on after the client left");
}

#[test]
fn concurrent_retries_of_one_request_are_charged_once() {
    let (_, srv) = server(|_| {});
    let url = srv.url();
    let reg = register_secret(&url, &image(1)).unwrap();
    let d = dirs(16, 2);
    HttpOracle::new(&url, &reg.session, &reg.token, L).register_directions(&d).unwrap();
    let key = wire::directions_key(d.k(), &d.data);
    let probes: Vec<Probe> = (0..4096).map(|i| Probe { dir: (i % 16) as u32, eps: 0.1 * (i % 50) as f32 }).collect();
    let body = wire::encode_probes(&probes);
    let answers: Vec<Vec<u8>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..10)
            .map(|_| {
                sc.spawn(|| {
                    let mut resp = agent()
                        .post(&format!("{url}/v1/sessions/{}/query", reg.session))
                        .header("authorization", &format!("BEARER {}", reg.token))
                        .header("content-type", wire::CONTENT_TYPE)
                        .header(wire::DIRECTIONS_HEADER, &key)
                        .header(wire::REQUEST_ID_HEADER, "retry-me")
                        .send(&body[..])
                        .unwrap();
                    assert_eq!(resp.status(), 200);
                    resp.body_mut().read_to_vec().unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(srv.queries_used(&reg.session), Some(4096));
    assert!(answers.iter().all(|a| a == &answers[0]));
    assert_eq!(wire::decode_bits(&answers[0]).unwrap().len(), 4096);
}

#[test]
fn shutdown_ends_within_the_grace_period_with_slow_clients_attached() {
    let (addr, srv) = server(|c| {
        c.shutdown_grace_secs = 1.0;
        c.header_timeout_secs = 60.0;
        c.body_timeout_secs = 60.0;
    });
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"POST /v1/sessions HTTP/1.1\r\nhost: x\r\n").unwrap();
    let mut slow_body = TcpStream::connect(addr).unwrap();
    slow_body.write_all(post_raw("/v1/sessions", "\r\n\r\n", 5000).as_bytes()).unwrap();
    slow_body.write_all(b"{\"input\": [").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    srv.shutdown().unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?} (grace 1 s)");
    assert!(closed_within(&mut slow_body, Duration::from_secs(1)));
    assert!(closed_within(&mut half, Duration::from_secs(1)));
}

/// A test CA and a server certificate for 127.0.0.1 and localhost signed by it, as PEM files.
fn test_pki(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, format!("apsig test CA {name}"));
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let p = |f: &str| dir.join(format!("{name}-{f}"));
    std::fs::write(p("ca.pem"), ca.pem()).unwrap();
    std::fs::write(p("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(p("key.pem"), key.serialize_pem()).unwrap();
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

#[test]
fn tls_round_trip_with_a_test_ca_and_a_wrong_ca_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_pki(dir.path(), "good");
    let (other_ca, _, _) = test_pki(dir.path(), "other");
    let (_, srv) = server(|c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
    });
    let url = srv.url();
    assert!(url.starts_with("https://"));
    let client = ClientConfig::default().trust_ca_file(&ca).unwrap();
    let reg = register_secret_with(&url, &image(1), &client).unwrap();
    let h = HttpOracle::with_config(&url, &reg.session, &reg.token, L, client);
    let d = dirs(8, 1);
    let probes: Vec<Probe> = (0..8).map(|dir| Probe { dir, eps: 2.0 }).collect();
    assert_eq!(h.changed_along(&d, &probes).unwrap().len(), 8);
    assert_eq!(srv.queries_used(&reg.session), Some(8));

    let wrong = ClientConfig::default().trust_ca_file(&other_ca).unwrap();
    let e = register_secret_with(&url, &image(2), &wrong).unwrap_err().to_string();
    assert!(!e.contains('\n') && e.contains("invalid peer certificate") && !e.contains("gave up"), "{e}");
    eprintln!("wrong CA: {e}");
    // plain HTTP to the TLS port gets no answer
    assert!(register_secret(&url.replace("https", "http"), &image(3)).is_err());
    assert_eq!(srv.sessions(), 1);
}

#[test]
fn body_reads_are_charged_to_the_memory_pool() {
    let (addr, srv) = server(|c| {
        c.max_body_bytes = 1 << 20;
        c.max_total_bytes = 1 << 20;
        c.body_timeout_secs = 2.0;
    });
    // two half-sent bodies of 600 kB cannot both be held: the second is refused (503)
    let reg = register_secret(&srv.url(), &image(1)).unwrap();
    let q = format!("/v1/sessions/{}/query", reg.session);
    let mut first = TcpStream::connect(addr).unwrap();
    first.write_all(format!("{}\r\n\r\n", post_raw(&q, &auth(&reg), 700_000)).as_bytes()).unwrap();
    first.write_all(&vec![b' '; 600_000]).unwrap();
    assert!(eventually(Duration::from_secs(3), || srv.memory_used() >= 600_000));
    let mut second = TcpStream::connect(addr).unwrap();
    second.write_all(format!("{}\r\n\r\n", post_raw(&q, &auth(&reg), 700_000)).as_bytes()).unwrap();
    for _ in 0..50 {
        if second.write_all(&[b' '; 10_000]).is_err() {
            break;
        }
    }
    // the refusal is sent; a client still sending may see the reset instead
    if let Some((status, body)) = read_answer(&mut second) {
        assert_eq!(status, 503, "{body}");
    }
    assert!(srv.memory_used() <= 1 << 20);
    // a small request still fits next to the first body
    register_secret(&srv.url(), &image(2)).unwrap();
    drop(first);
    assert!(eventually(Duration::from_secs(4), || srv.memory_used() == 0), "{} bytes held", srv.memory_used());
}
