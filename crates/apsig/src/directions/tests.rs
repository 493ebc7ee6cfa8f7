use super::*;
use crate::model::Arch;
use crate::nn::LayerSpec;

const SMALL: Shape = Shape::new(12, 12, 1);

/// `n` images whose class `i % classes` sets a smooth pattern, plus pixel noise, in [0, 1].
fn synthetic(shape: Shape, n: usize, classes: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let (h, w) = (shape.h, shape.w);
    let mut images = Vec::with_capacity(n * shape.len());
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % classes;
        labels.push(c as u8);
        for y in 0..h {
            for x in 0..w {
                for ch in 0..shape.c {
                    let t = (c + 1) as f32 * (y as f32 / h as f32 + 0.7 * x as f32 / w as f32 + 0.3 * (c + ch) as f32);
                    let v = 0.5 + 0.35 * (3.0 * t).sin() + 0.1 * rng.normal();
                    images.push(v.clamp(0.0, 1.0));
                }
            }
        }
    }
    (images, labels)
}

/// A small classifier on 12x12 images, with batch norm (given non-trivial running statistics).
fn small_net(seed: u64) -> Network {
    let specs = vec![
        LayerSpec::Conv { cout: 4, k: 3, stride: 1, pad: 1 },
        LayerSpec::BatchNorm,
        LayerSpec::Relu,
        LayerSpec::MaxPool2,
        LayerSpec::Linear { out: 16 },
        LayerSpec::Relu,
        LayerSpec::Linear { out: 5 },
    ];
    let mut net = Network::new(SMALL, specs, seed).unwrap();
    net.params[1] = vec![vec![1.3, 0.7, 0.9, 1.1], vec![0.1, -0.2, 0.05, 0.0]];
    net.buffers[1] = vec![vec![0.2, -0.1, 0.3, 0.0], vec![0.5, 2.0, 1.5, 0.8]];
    net
}

fn config(strategy: Strategy, k: usize, seed: u64) -> DirectionConfig {
    DirectionConfig { strategy, k, seed }
}

fn gen(strategy: Strategy, k: usize, seed: u64, shape: Shape, ctx: &DirectionContext<'_>) -> Directions {
    Directions::generate_with(&config(strategy, k, seed), shape, Some(ctx)).unwrap()
}

fn assert_unit_rows(d: &Directions, k: usize) {
    assert_eq!(d.data.len(), k * d.len());
    for i in 0..k {
        let row = d.get(i);
        assert!(row.iter().all(|v| v.is_finite()));
        let norm = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{}: row {i} norm {norm}", d.config.strategy);
    }
}

/// Top-1 margin `z_y - max_{j != y} z_j` of one image for a fixed class `y`.
fn margin(net: &Network, x: &[f32], y: usize) -> f32 {
    let z = net.forward(x, 1);
    let other = z.iter().enumerate().filter(|(j, _)| *j != y).map(|(_, v)| *v).fold(f32::NEG_INFINITY, f32::max);
    z[y] - other
}

#[test]
fn every_strategy_gives_k_finite_unit_rows_deterministically() {
    let (images, labels) = synthetic(SMALL, 90, 4, 1);
    let net = small_net(3);
    let ctx = DirectionContext { images: &images, labels: &labels, model: Some(&net) };
    for s in Strategy::ALL {
        let a = gen(s, 20, 7, SMALL, &ctx);
        assert_unit_rows(&a, 20);
        let b = gen(s, 20, 7, SMALL, &ctx);
        assert_eq!(a.data, b.data, "{s} is not deterministic");
        let c = gen(s, 20, 8, SMALL, &ctx);
        assert_ne!(a.data, c.data, "{s} ignores the seed");
        assert_eq!(a.fingerprint(), b.fingerprint());
        // K = 0 is refused as before
        assert!(Directions::generate_with(&config(s, 0, 7), SMALL, Some(&ctx)).is_err());
    }
}

#[test]
fn prefixes_of_a_k_sweep_are_the_smaller_sets() {
    let (images, labels) = synthetic(SMALL, 90, 4, 2);
    let net = small_net(4);
    let ctx = DirectionContext { images: &images, labels: &labels, model: Some(&net) };
    for s in Strategy::ALL {
        // 150 > 90 images crosses adversarial batches and its jittered second round
        let big_k = if s == Strategy::Principal { SMALL.len() } else { 150 };
        let big = gen(s, big_k, 11, SMALL, &ctx);
        assert_unit_rows(&big, big_k);
        for k in [1, 5, 64, 70, 100] {
            let small = gen(s, k, 11, SMALL, &ctx);
            assert_eq!(small.data[..], big.data[..k * SMALL.len()], "{s}: K = {k} is not a prefix of K = {big_k}");
        }
    }
}

#[test]
fn gaussian_and_rademacher_keep_their_v1_bits() {
    let shape = Shape::new(28, 28, 1);
    let g = Directions::generate(&config(Strategy::Gaussian, 3, 1), shape).unwrap();
    let r = Directions::generate(&config(Strategy::Rademacher, 3, 1), shape).unwrap();
    // the v1 algorithm, spelled out
    let mut rng = Rng::derive(1, "directions");
    let mut want = Vec::new();
    for _ in 0..3 {
        let mut d: Vec<f32> = (0..784).map(|_| rng.normal()).collect();
        normalise(&mut d);
        want.extend(d);
    }
    assert_eq!(g.data, want);
    assert!(r.data.iter().all(|v| (v.abs() - 1.0 / 28.0).abs() < 1e-7));
    assert_eq!(g.fingerprint(), GAUSSIAN_V1_FINGERPRINT);
    assert_eq!(r.fingerprint(), RADEMACHER_V1_FINGERPRINT);
}

#[test]
fn low_frequency_keeps_the_bits_of_the_committed_runs() {
    // the directions of docs/results/paper (K = 100, seed 1, 28x28)
    let paper = Directions::generate(&config(Strategy::LowFrequency, 100, 1), Shape::new(28, 28, 1)).unwrap();
    assert_eq!(paper.fingerprint(), "21c594804a5f889d");
}

/// Fingerprints of `{gaussian, rademacher}`, K = 3, seed 1, 28x28, as produced by v1.
const GAUSSIAN_V1_FINGERPRINT: &str = "6f0467504f928029";
const RADEMACHER_V1_FINGERPRINT: &str = "9423fbb77ac55365";

#[test]
fn names_parse_and_match_serde() {
    for s in Strategy::ALL {
        assert_eq!(s.name().parse::<Strategy>().unwrap(), s);
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.name()));
        assert_eq!(s.to_string(), s.name());
    }
    let err = "pca".parse::<Strategy>().unwrap_err().to_string();
    assert!(err.contains("unknown strategy `pca`") && err.contains("low-frequency"), "{err}");
    let data: Vec<&str> = Strategy::ALL.iter().filter(|s| s.needs_data()).map(|s| s.name()).collect();
    assert_eq!(data, ["centroid-differences", "adversarial", "principal"]);
}

#[test]
fn data_strategies_explain_what_they_need() {
    for s in Strategy::ALL {
        let r = Directions::generate(&config(s, 4, 1), SMALL);
        assert_eq!(r.is_err(), s.needs_data(), "{s}");
        if let Err(e) = r {
            let msg = e.to_string();
            assert!(msg.contains(&format!("strategy `{s}` needs the adversary's training data")), "{msg}");
        }
    }
    let (images, labels) = synthetic(SMALL, 10, 2, 3);
    let no_model = DirectionContext { images: &images, labels: &labels, model: None };
    let e = Directions::generate_with(&config(Strategy::Adversarial, 4, 1), SMALL, Some(&no_model)).unwrap_err();
    assert!(e.to_string().contains("copy of the model"), "{e}");
    let short = DirectionContext { images: &images[1..], labels: &labels, model: None };
    assert!(Directions::generate_with(&config(Strategy::Principal, 4, 1), SMALL, Some(&short)).is_err());
    let e = Directions::generate_with(&config(Strategy::Principal, 145, 1), SMALL, Some(&no_model)).unwrap_err();
    assert!(e.to_string().contains("K must be <= 144"), "{e}");
    let one_class = vec![0u8; 10];
    let ctx = DirectionContext { images: &images, labels: &one_class, model: None };
    assert!(Directions::generate_with(&config(Strategy::CentroidDifferences, 4, 1), SMALL, Some(&ctx)).is_err());
    // the model must take the directions' shape
    let other = Network::new(Shape::new(28, 28, 1), Arch::TargetNetS.layers(Shape::new(28, 28, 1), 10, 0), 1).unwrap();
    let wrong = DirectionContext { images: &images, labels: &labels, model: Some(&other) };
    assert!(Directions::generate_with(&config(Strategy::Adversarial, 4, 1), SMALL, Some(&wrong)).is_err());
}

#[test]
fn low_frequency_rows_are_smooth() {
    let shape = Shape::new(28, 28, 1);
    let roughness = |d: &Directions| {
        let (mut sum, mut count) = (0.0f64, 0usize);
        for i in 0..d.k() {
            let row = d.get(i);
            for y in 0..28 {
                for x in 0..28 {
                    let v = row[y * 28 + x] as f64;
                    if x + 1 < 28 {
                        sum += (row[y * 28 + x + 1] as f64 - v).powi(2);
                        count += 1;
                    }
                    if y + 1 < 28 {
                        sum += (row[(y + 1) * 28 + x] as f64 - v).powi(2);
                        count += 1;
                    }
                }
            }
        }
        sum / count as f64
    };
    let low = Directions::generate(&config(Strategy::LowFrequency, 50, 1), shape).unwrap();
    let gauss = Directions::generate(&config(Strategy::Gaussian, 50, 1), shape).unwrap();
    assert_unit_rows(&low, 50);
    let (rl, rg) = (roughness(&low), roughness(&gauss));
    assert!(rl < 0.1 * rg, "low-frequency {rl} vs gaussian {rg}");
    // the band has 36 coefficients, so 50 rows span exactly 36 dimensions
    let gram: Vec<f64> = (0..50 * 50)
        .map(|ij| low.get(ij / 50).iter().zip(low.get(ij % 50)).map(|(a, b)| *a as f64 * *b as f64).sum())
        .collect();
    let (values, _) = pca::symmetric_eigen(gram, 50).unwrap();
    assert_eq!(values.iter().filter(|v| **v > 1e-6).count(), 36);
    // any shape works, even smaller than the band
    let tiny = Directions::generate(&config(Strategy::LowFrequency, 5, 1), Shape::new(3, 5, 1)).unwrap();
    assert_unit_rows(&tiny, 5);
}

#[test]
fn every_strategy_draws_colour_directions() {
    let rgb = Shape::new(10, 9, 3);
    let (images, labels) = synthetic(rgb, 40, 4, 7);
    let specs = vec![
        LayerSpec::Conv { cout: 4, k: 3, stride: 1, pad: 1 },
        LayerSpec::Relu,
        LayerSpec::MaxPool2,
        LayerSpec::Linear { out: 4 },
    ];
    let net = Network::new(rgb, specs, 3).unwrap();
    let ctx = DirectionContext { images: &images, labels: &labels, model: Some(&net) };
    for s in Strategy::ALL {
        let d = Directions::generate_with(&config(s, 6, 2), rgb, Some(&ctx)).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_unit_rows(&d, 6);
        assert_eq!(d.len(), 270, "{s}");
    }
    // low-frequency: each channel is smooth noise of its own, so 120 rows span 3 x 36 dimensions
    let low = Directions::generate(&config(Strategy::LowFrequency, 120, 1), rgb).unwrap();
    let gram: Vec<f64> = (0..120 * 120)
        .map(|ij| low.get(ij / 120).iter().zip(low.get(ij % 120)).map(|(a, b)| *a as f64 * *b as f64).sum())
        .collect();
    let (values, _) = pca::symmetric_eigen(gram, 120).unwrap();
    assert_eq!(values.iter().filter(|v| **v > 1e-6).count(), 108);
    // and a grey image draws what the first channel of the band always drew
    let grey = Directions::generate(&config(Strategy::LowFrequency, 3, 1), Shape::new(10, 9, 1)).unwrap();
    let first = low.get(0).iter().step_by(3).map(|v| *v as f64).collect::<Vec<_>>();
    let cos: f64 = grey.get(0).iter().zip(&first).map(|(a, b)| *a as f64 * b).sum::<f64>()
        / first.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((cos - 1.0).abs() < 1e-5, "{cos}");
}

#[test]
fn tinted_low_frequency_paints_one_smooth_pattern_per_direction() {
    let rgb = Shape::new(10, 9, 3);
    let tinted = Directions::generate(&config(Strategy::LowFrequencyTinted, 120, 1), rgb).unwrap();
    assert_unit_rows(&tinted, 120);
    // every channel of a row is the same spatial pattern up to a factor: rank one per pixel grid
    for i in 0..tinted.k() {
        let row = tinted.get(i);
        let channel = |c: usize| row.iter().skip(c).step_by(3).map(|v| *v as f64).collect::<Vec<_>>();
        let (r, g, b) = (channel(0), channel(1), channel(2));
        for other in [&g, &b] {
            let dot: f64 = r.iter().zip(other).map(|(a, b)| a * b).sum();
            let (nr, no) = (norm64(&r), norm64(other));
            assert!((dot.abs() - nr * no).abs() <= 1e-4 * (nr * no).max(1e-12), "row {i}: channels not parallel");
        }
    }
    // 120 rows span 3 x 36 dimensions, as the independent channels of `low-frequency` do
    let gram: Vec<f64> = (0..120 * 120)
        .map(|ij| tinted.get(ij / 120).iter().zip(tinted.get(ij % 120)).map(|(a, b)| *a as f64 * *b as f64).sum())
        .collect();
    let (values, _) = pca::symmetric_eigen(gram, 120).unwrap();
    assert_eq!(values.iter().filter(|v| **v > 1e-6).count(), 108);
    // a prefix is the smaller set, the seed matters, and grey images get `low-frequency`
    let five = Directions::generate(&config(Strategy::LowFrequencyTinted, 5, 1), rgb).unwrap();
    assert_eq!(five.data, tinted.prefix(5).data);
    assert_ne!(Directions::generate(&config(Strategy::LowFrequencyTinted, 5, 2), rgb).unwrap().data, five.data);
    let grey = Shape::new(10, 9, 1);
    assert_eq!(
        Directions::generate(&config(Strategy::LowFrequencyTinted, 7, 3), grey).unwrap().data,
        Directions::generate(&config(Strategy::LowFrequency, 7, 3), grey).unwrap().data
    );
}

#[test]
fn eigensolver_diagonalises_a_symmetric_matrix() {
    let n = 40;
    let mut rng = Rng::new(5);
    let b: Vec<f64> = (0..n * n).map(|_| rng.normal() as f64).collect();
    let a: Vec<f64> = (0..n * n).map(|ij| (b[ij] + b[(ij % n) * n + ij / n]) / 2.0).collect();
    let (values, vectors) = pca::symmetric_eigen(a.clone(), n).unwrap();
    for j in 0..n {
        let v = &vectors[j * n..(j + 1) * n];
        for i in 0..n {
            let av: f64 = (0..n).map(|k| a[i * n + k] * v[k]).sum();
            assert!((av - values[j] * v[i]).abs() < 1e-9, "A v != lambda v for {j}");
        }
        for l in 0..n {
            let dot: f64 = v.iter().zip(&vectors[l * n..(l + 1) * n]).map(|(x, y)| x * y).sum();
            assert!((dot - if l == j { 1.0 } else { 0.0 }).abs() < 1e-9);
        }
    }
}

#[test]
fn principal_recovers_a_dominant_direction() {
    let len = SMALL.len();
    let mut rng = Rng::new(9);
    let mut u: Vec<f32> = (0..len).map(|i| ((i as f32) * 0.37).sin() + 0.2).collect();
    normalise(&mut u);
    let n = 400;
    let mut images = Vec::with_capacity(n * len);
    for _ in 0..n {
        let a = 2.0 * rng.normal();
        images.extend(u.iter().map(|ui| 0.5 + a * ui * 0.5 + 0.01 * rng.normal()));
    }
    let labels = vec![0u8; n];
    let ctx = DirectionContext { images: &images, labels: &labels, model: None };
    let d = gen(Strategy::Principal, 3, 1, SMALL, &ctx);
    let cos: f32 = d.get(0).iter().zip(&u).map(|(a, b)| a * b).sum();
    assert!(cos.abs() > 0.99, "|cos| = {}", cos.abs());
    // the later components are orthogonal to it
    for i in 1..3 {
        let dot: f32 = d.get(0).iter().zip(d.get(i)).map(|(a, b)| a * b).sum();
        assert!(dot.abs() < 1e-4);
    }
    // seeded signs: some seed flips the first component
    let flipped = (2..40).any(|s| {
        let e = gen(Strategy::Principal, 1, s, SMALL, &ctx);
        e.get(0).iter().zip(d.get(0)).map(|(a, b)| a * b).sum::<f32>() < -0.99
    });
    assert!(flipped);
}

#[test]
fn centroid_differences_lie_in_the_span_with_zero_sum_weights() {
    let classes = 4;
    let (images, labels) = synthetic(SMALL, 80, classes, 4);
    let len = SMALL.len();
    let ctx = DirectionContext { images: &images, labels: &labels, model: None };
    let d = gen(Strategy::CentroidDifferences, 10, 3, SMALL, &ctx);
    let mu = strategies_centroids(len, &images, &labels);
    // least squares d ~ M a with M = [mu_0 .. mu_3]: solve the 4x4 normal equations
    for i in 0..d.k() {
        let row: Vec<f64> = d.get(i).iter().map(|v| *v as f64).collect();
        let mut g = vec![vec![0.0f64; classes + 1]; classes];
        for r in 0..classes {
            for c in 0..classes {
                g[r][c] = mu[r].iter().zip(&mu[c]).map(|(a, b)| a * b).sum();
            }
            g[r][classes] = mu[r].iter().zip(&row).map(|(a, b)| a * b).sum();
        }
        let a = solve(g);
        let fit: Vec<f64> = (0..len).map(|p| (0..classes).map(|c| a[c] * mu[c][p]).sum()).collect();
        let residual = fit.iter().zip(&row).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
        assert!(residual < 1e-4, "direction {i} leaves the centroid span by {residual}");
        let (sum, scale) = (a.iter().sum::<f64>(), a.iter().map(|v| v.abs()).sum::<f64>());
        assert!(sum.abs() < 1e-3 * scale, "weights of direction {i} sum to {sum} (scale {scale})");
    }
}

fn strategies_centroids(len: usize, images: &[f32], labels: &[u8]) -> Vec<Vec<f64>> {
    let classes = *labels.iter().max().unwrap() as usize + 1;
    let mut mu = vec![vec![0.0f64; len]; classes];
    let mut count = vec![0usize; classes];
    for (img, &y) in images.chunks(len).zip(labels) {
        count[y as usize] += 1;
        mu[y as usize].iter_mut().zip(img).for_each(|(a, v)| *a += *v as f64);
    }
    for (m, c) in mu.iter_mut().zip(count) {
        m.iter_mut().for_each(|a| *a /= c as f64);
    }
    mu
}

/// Gaussian elimination with partial pivoting on an augmented `n x (n + 1)` system.
fn solve(mut g: Vec<Vec<f64>>) -> Vec<f64> {
    let n = g.len();
    for col in 0..n {
        let p = (col..n).max_by(|&a, &b| g[a][col].abs().total_cmp(&g[b][col].abs())).unwrap();
        g.swap(col, p);
        let pivot = g[col].clone();
        for (r, row) in g.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot[col];
                row.iter_mut().zip(&pivot).skip(col).for_each(|(a, p)| *a -= f * p);
            }
        }
    }
    (0..n).map(|r| g[r][n] / g[r][r]).collect()
}

#[test]
fn adversarial_directions_decrease_the_margin() {
    let shape = Shape::new(28, 28, 1);
    let net = Network::new(shape, Arch::TargetNetS.layers(shape, 10, 0), 5).unwrap();
    let (images, _) = synthetic(shape, 70, 10, 6);
    let len = shape.len();
    let (dirs, sources) = strategies::adversarial(20, 3, shape, &images, &net).unwrap();
    assert_eq!(sources.len(), 20);
    let mut distinct = sources.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 20, "source images repeat although there are enough");
    for (d, &i) in dirs.chunks(len).zip(&sources) {
        let x = &images[i * len..(i + 1) * len];
        let y = crate::argmax(&net.forward(x, 1));
        let moved: Vec<f32> = x.iter().zip(d).map(|(a, b)| a + 0.01 * b).collect();
        let (m0, m1) = (margin(&net, x, y), margin(&net, &moved, y));
        assert!(m1 < m0, "image {i}: margin {m0} -> {m1}");
    }
}

#[test]
fn adversarial_direction_is_the_inference_gradient_through_batch_norm() {
    // finite differences of the inference-mode margin agree with the direction
    let net = small_net(7);
    let (images, _) = synthetic(SMALL, 8, 4, 8);
    let len = SMALL.len();
    let (dirs, sources) = strategies::adversarial(4, 1, SMALL, &images, &net).unwrap();
    for (d, &i) in dirs.chunks(len).zip(&sources) {
        let x = &images[i * len..(i + 1) * len];
        let y = crate::argmax(&net.forward(x, 1));
        let h = 1e-2f32;
        let mut numeric = vec![0.0f64; len];
        for p in 0..len {
            let (mut up, mut down) = (x.to_vec(), x.to_vec());
            up[p] += h;
            down[p] -= h;
            numeric[p] = -((margin(&net, &up, y) - margin(&net, &down, y)) / (2.0 * h)) as f64;
        }
        let norm = numeric.iter().map(|v| v * v).sum::<f64>().sqrt();
        let cos: f64 = numeric.iter().zip(d).map(|(a, b)| a * *b as f64).sum::<f64>() / norm;
        assert!(cos > 0.99, "image {i}: cos(direction, -numeric gradient) = {cos}");
    }
}
