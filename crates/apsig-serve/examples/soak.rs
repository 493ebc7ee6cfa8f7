//! Soak: honest sessions served while hostile clients attack the same server.
//!
//! `cargo run --release -p apsig-serve --example soak [-- SECONDS [RSS_CAP_MIB]]`
//!
//! An untrained TargetNet-S is served in this process (loopback, default limits). Four honest
//! clients query their sessions (binary probe batches of 256 along K = 64) for the first
//! quarter of the time alone (idle), then for the rest while hostile clients hold 200 slow
//! connections (half-sent headers, reopened when cut off), register sessions until refused,
//! and submit maximal direction sets over and over. Prints honest p50/p99 latency idle and under attack,
//! the honest requests refused (503 or otherwise), the hostile outcomes, and the process's
//! peak RSS against the cap (default 2048 MiB), then PASS/FAIL for each bar.

use apsig::directions::{DirectionConfig, Directions, Strategy};
use apsig::model::{save_network, Arch};
use apsig::nn::{Network, Shape};
use apsig::oracle::{ChangeOracle, Probe};
use apsig::rng::Rng;
use apsig_serve::wire::{self, Kind};
use apsig_serve::{register_secret, spawn_for_tests, HttpOracle, ServeConfig};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb =
        status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

/// "HTTP 503" in a client error, as "503".
fn status_of(e: &str) -> String {
    e.split("HTTP ").nth(1).map(|s| s.chars().take(3).collect()).unwrap_or_else(|| e.to_string())
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: f64 = args.first().map(|s| s.parse()).transpose()?.unwrap_or(180.0);
    let cap_mib: f64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(2048.0);
    let tmp = tempfile::tempdir()?;
    let shape = Shape::new(28, 28, 1);
    let net = Network::new(shape, Arch::TargetNetS.layers(shape, 10, 0), 1).map_err(anyhow::Error::msg)?;
    let model = tmp.path().join("target.safetensors");
    save_network(&model, Arch::TargetNetS, &net, &BTreeMap::new())?;
    let cfg = ServeConfig { model, ..Default::default() };
    let (max_values, len) = (cfg.max_direction_values, shape.len());
    let (addr, srv) = spawn_for_tests(cfg.clone())?;
    let url = srv.url();
    println!("soak: {secs:.0} s, server limits: {}", toml::to_string(&cfg)?.replace('\n', "; "));

    let idle_until = Duration::from_secs_f64(secs / 4.0);
    let end = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let stop = AtomicBool::new(false);
    let attack = AtomicBool::new(false);
    let peak_rss = Mutex::new(0.0f64);
    let (idle_lat, attack_lat) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()));
    let honest_refused = Mutex::new(Vec::<String>::new());
    let (slow_opened, sessions_ok, sessions_refused, sets_ok, sets_refused) =
        (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let refusals = Mutex::new(BTreeMap::<String, u64>::new());

    std::thread::scope(|sc| -> anyhow::Result<()> {
        // honest clients
        for c in 0..4u64 {
            let (url, stop, attack, idle_lat, attack_lat, honest_refused) =
                (&url, &stop, &attack, &idle_lat, &attack_lat, &honest_refused);
            let mut rng = Rng::new(c);
            let secret: Vec<f32> = (0..len).map(|_| rng.uniform()).collect();
            let reg = register_secret(url, &secret)?;
            sc.spawn(move || {
                let h = HttpOracle::new(url, &reg.session, &reg.token, len);
                let d = Directions::generate(&DirectionConfig { strategy: Strategy::Gaussian, k: 64, seed: 1 }, shape)
                    .expect("directions");
                let mut rng = Rng::new(100 + c);
                while !stop.load(Ordering::Relaxed) {
                    let probes: Vec<Probe> =
                        (0..256).map(|i| Probe { dir: i % 64, eps: (rng.uniform() * 8.0 - 4.0).exp2() }).collect();
                    let t = Instant::now();
                    let r = h.changed_along(&d, &probes);
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    match r {
                        Ok(_) if attack.load(Ordering::Relaxed) => attack_lat.lock().unwrap().push(ms),
                        Ok(_) => idle_lat.lock().unwrap().push(ms),
                        Err(e) => honest_refused.lock().unwrap().push(e.to_string()),
                    }
                }
            });
        }
        // RSS sampler
        sc.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let r = rss_mib();
                let mut p = peak_rss.lock().unwrap();
                *p = p.max(r);
                drop(p);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        while start.elapsed() < idle_until {
            std::thread::sleep(Duration::from_millis(50));
        }
        attack.store(true, Ordering::Relaxed);
        println!("{:>6.1} s: attack starts (RSS {:.0} MiB)", start.elapsed().as_secs_f64(), rss_mib());
        // 200 slow connections, reopened when the server cuts them off
        for _ in 0..4 {
            sc.spawn(|| {
                let mut conns: Vec<TcpStream> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    conns.retain_mut(|s| s.write_all(b"x").is_ok());
                    while conns.len() < 50 {
                        let Ok(mut s) = TcpStream::connect(addr) else { break };
                        let _ = s.write_all(b"POST /v1/sessions HTTP/1.1\r\nhost: x\r\nx-slow: ");
                        slow_opened.fetch_add(1, Ordering::Relaxed);
                        conns.push(s);
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            });
        }
        // sessions until refused (then again every 200 ms)
        {
            let (url, stop, sessions_ok, sessions_refused, refusals) =
                (&url, &stop, &sessions_ok, &sessions_refused, &refusals);
            sc.spawn(move || {
                let mut seed = 10_000;
                while !stop.load(Ordering::Relaxed) {
                    seed += 1;
                    let mut rng = Rng::new(seed);
                    let secret: Vec<f32> = (0..len).map(|_| rng.uniform()).collect();
                    match register_secret(url, &secret) {
                        Ok(_) => sessions_ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            *refusals.lock().unwrap().entry(status_of(&e.to_string())).or_default() += 1;
                            std::thread::sleep(Duration::from_millis(200));
                            sessions_refused.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            });
        }
        // maximal direction sets, over and over, into two sessions per thread
        for t in 0..2u64 {
            let (url, stop, refusals, sets_ok, sets_refused) = (&url, &stop, &refusals, &sets_ok, &sets_refused);
            let holders: Vec<HttpOracle> = (0..2)
                .map(|i| {
                    let mut rng = Rng::new(500 + 2 * t + i);
                    let secret: Vec<f32> = (0..len).map(|_| rng.uniform()).collect();
                    register_secret(url, &secret).map(|r| HttpOracle::new(url, &r.session, &r.token, len))
                })
                .collect::<Result<_, _>>()?;
            sc.spawn(move || {
                let k = max_values / len;
                let mut seed = 1000 * (t + 1);
                while !stop.load(Ordering::Relaxed) {
                    seed += 1;
                    let d = Directions::generate(&DirectionConfig { strategy: Strategy::Gaussian, k, seed }, shape)
                        .expect("directions");
                    debug_assert_eq!(wire::encode_f32(Kind::Directions, k, &d.data).len(), 12 + k * len * 4);
                    match holders[seed as usize % 2].register_directions(&d) {
                        Ok(()) => sets_ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            *refusals.lock().unwrap().entry(status_of(&e.to_string())).or_default() += 1;
                            sets_refused.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            });
        }
        let mut next_report = idle_until + Duration::from_secs(15);
        while start.elapsed() < end {
            std::thread::sleep(Duration::from_millis(100));
            if start.elapsed() >= next_report {
                println!(
                    "{:>6.1} s: RSS {:.0} MiB, server charges {:.0} MiB, {} sessions, {} slow connections opened",
                    start.elapsed().as_secs_f64(),
                    rss_mib(),
                    srv.memory_used() as f64 / (1 << 20) as f64,
                    srv.sessions(),
                    slow_opened.load(Ordering::Relaxed)
                );
                next_report += Duration::from_secs(15);
            }
        }
        stop.store(true, Ordering::Relaxed);
        Ok(())
    })?;

    let mut idle = idle_lat.into_inner().unwrap();
    let mut under = attack_lat.into_inner().unwrap();
    let (i50, i99) = (percentile(&mut idle, 0.5), percentile(&mut idle, 0.99));
    let (a50, a99) = (percentile(&mut under, 0.5), percentile(&mut under, 0.99));
    let refused = honest_refused.into_inner().unwrap();
    let peak = peak_rss.into_inner().unwrap();
    println!("honest, idle:         {:>6} requests, p50 {i50:.2} ms, p99 {i99:.2} ms", idle.len());
    println!("honest, under attack: {:>6} requests, p50 {a50:.2} ms, p99 {a99:.2} ms", under.len());
    println!("honest refused: {} {:?}", refused.len(), refused.iter().take(3).collect::<Vec<_>>());
    println!(
        "hostile: {} slow connections opened; sessions {} registered, {} refused; maximal direction sets (K = {}) {} registered, {} refused; refusals by status {:?}",
        slow_opened.load(Ordering::Relaxed),
        sessions_ok.load(Ordering::Relaxed),
        sessions_refused.load(Ordering::Relaxed),
        max_values / len,
        sets_ok.load(Ordering::Relaxed),
        sets_refused.load(Ordering::Relaxed),
        refusals.into_inner().unwrap()
    );
    println!("process peak RSS {peak:.0} MiB (cap {cap_mib:.0} MiB)");
    let bar = |ok: bool, what: String| println!("{} {what}", if ok { "PASS" } else { "FAIL" });
    bar(a99 <= 3.0 * i99, format!("honest p99 under attack {a99:.2} ms <= 3 x idle p99 {i99:.2} ms"));
    bar(refused.is_empty(), format!("no honest request refused ({})", refused.len()));
    bar(peak <= cap_mib, format!("peak RSS {peak:.0} MiB <= {cap_mib:.0} MiB"));
    Ok(())
}
