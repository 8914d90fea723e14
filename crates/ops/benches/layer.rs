//! Times of the spike-and-slab layer's host operations on `flex`, per layer shape and input
//! density: the forward pass, the parameter gradients and the input gradient, each through
//! the dense products and through the kernels that skip zeros (`CREDIT_FLEX_ROUTE`), the
//! fastest of 15 calls in each of 3 runs of each route, alternating, in child processes.
//! The crossovers at `FORWARD_DENSE_FROM` in `src/mean_field/flex/mod.rs` come from its
//! table. Run with
//! `cargo bench -p credit-ops --features flex --bench layer [-- FILTER]`.

use std::time::Instant;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::TensorData;
use credit_ops::host_product::{Operand, product_pair};
use credit_ops::mean_field::{DeltaFloor, MeanFieldBackend};

/// A `[rows, cols]` matrix of values in `[-1, 1)` (`[0, 1)` if `positive`) from a fixed
/// sequence, `density` of them nonzero (ReLU-like: the zeros where a second draw falls above
/// `density`).
fn matrix(rows: usize, cols: usize, density: f64, seed: u64, positive: bool) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(
        values(rows * cols, density, seed, positive),
        [rows, cols],
    ))
}

/// The values of [`matrix`].
fn values(len: usize, density: f64, seed: u64, positive: bool) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..len)
        .map(|_| {
            let x = next();
            let keep = next() < density;
            let v = if positive { x } else { 2.0 * x - 1.0 };
            if keep { v as f32 } else { 0.0 }
        })
        .collect()
}

/// The first `rows` images of MNIST's committed training set, pixels scaled to `[0, 1]`
/// (19% nonzero; in the order of the file, which is not sorted by class).
fn mnist(rows: usize) -> FlexTensor {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/mnist/train-images-idx3-ubyte.gz"
    );
    let file = std::fs::File::open(path).expect("data/mnist/train-images-idx3-ubyte.gz");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(file), &mut bytes)
        .expect("a gzip file");
    let pixels = &bytes[16..16 + rows * 784];
    let values: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    FlexTensor::from_data(TensorData::new(values, [rows, 784]))
}

fn fastest_ms(mut run: impl FnMut(), calls: usize) -> f64 {
    run();
    let times: Vec<f64> = (0..calls)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.into_iter().fold(f64::INFINITY, f64::min)
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if std::env::var_os(ROUTE).is_some() {
        measure(filter.as_deref());
        return;
    }
    // Each route in its own process (the route is read once per process), alternating.
    let mut fastest: Vec<(String, [[f64; 3]; 2])> = Vec::new();
    for round in 0..3 {
        for (r, route) in ["dense", "sparse"].into_iter().enumerate() {
            let mut child = std::process::Command::new(std::env::current_exe().expect("the bench"));
            child.env(ROUTE, route);
            child.args(filter.as_deref());
            let out = child.output().expect("the bench runs itself");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let Some((case, times)) = line.split_once('|') else {
                    // The products alone, from the first run.
                    if round == 0 && r == 0 {
                        println!("{line}");
                    }
                    continue;
                };
                let times: Vec<f64> = times
                    .split_whitespace()
                    .map(|t| t.parse().unwrap())
                    .collect();
                let at = match fastest.iter().position(|(c, _)| c == case) {
                    Some(at) => at,
                    None => {
                        fastest.push((case.to_string(), [[f64::INFINITY; 3]; 2]));
                        fastest.len() - 1
                    }
                };
                for (best, t) in fastest[at].1[r].iter_mut().zip(times) {
                    *best = best.min(t);
                }
            }
        }
    }
    println!("ms, dense / sparse       batch density      forward   param_grads    input_grad");
    for (case, [dense, sparse]) in fastest {
        let cells: Vec<String> = (0..3)
            .map(|i| format!("{:6.2} /{:6.2}", dense[i], sparse[i]))
            .collect();
        println!("{case} {}", cells.join(" "));
    }
}

/// The name of the environment variable that forces a route (`mean_field::flex`).
const ROUTE: &str = "CREDIT_FLEX_ROUTE";

/// Times every case on the route the environment forces: `case | forward param input`.
fn measure(filter: Option<&str>) {
    // As the `credit` binary does: freed buffers are reused, not mapped and faulted in again.
    credit_ops::allocator::keep_freed_blocks();
    let cases: &[(&str, usize, usize, usize, f64)] = &[
        ("784-1000 mnist", 500, 784, 1000, 0.19),
        ("1000-1000 relu", 500, 1000, 1000, 0.05),
        ("1000-1000 relu", 500, 1000, 1000, 0.1),
        ("1000-1000 relu", 500, 1000, 1000, 0.15),
        ("1000-1000 relu", 500, 1000, 1000, 0.2),
        ("1000-1000 relu", 500, 1000, 1000, 0.3),
        ("1000-1000 relu", 500, 1000, 1000, 0.4),
        ("1000-1000 relu", 500, 1000, 1000, 0.5),
        ("1000-1000 relu", 500, 1000, 1000, 0.7),
        ("784-100 mnist", 500, 784, 100, 0.19),
        ("100-100 relu", 500, 100, 100, 0.1),
        ("100-100 relu", 500, 100, 100, 0.2),
        ("100-100 relu", 500, 100, 100, 0.3),
        ("100-100 relu", 500, 100, 100, 0.5),
        ("3072-200 dense", 200, 3072, 200, 1.0),
        ("200-200 relu", 200, 200, 200, 0.2),
        ("200-200 relu", 200, 200, 200, 0.5),
        ("500-500 relu", 500, 500, 500, 0.1),
        ("500-500 relu", 500, 500, 500, 0.2),
        ("500-500 relu", 500, 500, 500, 0.3),
        ("500-500 relu", 500, 500, 500, 0.5),
    ];
    for &[rows, inner, cols] in &[[500, 1000, 1000], [500, 784, 1000], [200, 3072, 200]] {
        let a = vec![0.5f32; rows * inner];
        let b = vec![0.25f32; inner * cols];
        let (mut c, mut d) = (vec![0f32; rows * cols], vec![0f32; rows * cols]);
        let ms = fastest_ms(
            || {
                product_pair(
                    [&mut c, &mut d],
                    [Operand::plain(&a, inner), Operand::plain(&a, inner)],
                    [Operand::plain(&b, cols), Operand::plain(&b, cols)],
                    [rows, inner, cols],
                )
            },
            15,
        );
        let gflops = 4.0 * (rows * inner * cols) as f64 / ms / 1e6;
        println!("product_pair {rows}x{inner}x{cols}: {ms:.2} ms, {gflops:.0} GFLOP/s");
    }
    for &(name, batch, n_in, n_out, density) in cases {
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let input = if name.contains("mnist") {
            mnist(batch)
        } else {
            matrix(batch, n_in, density, 1, true)
        };
        let m = matrix(n_out, n_in, 1.0, 2, false);
        let xi = matrix(n_out, n_in, 1.0, 3, true);
        let pi = matrix(n_out, n_in, 1.0, 4, true);
        let eps = matrix(batch, n_out, 1.0, 5, false);
        // dL/dG zero where the ReLU above is off (`density` of them nonzero), and dL/dDelta
        // (dL/dh times the slope) zero where dL/dG is, as in training.
        let g = values(batch * n_out, density, 6, false);
        let slope = values(batch * n_out, 1.0, 7, true);
        let delta: Vec<f32> = g.iter().zip(&slope).map(|(g, s)| g * s).collect();
        let grad_g = FlexTensor::from_data(TensorData::new(g, [batch, n_out]));
        let grad_delta = FlexTensor::from_data(TensorData::new(delta, [batch, n_out]));
        let calls = 15;
        let forward = fastest_ms(
            || {
                let _ = Flex::spike_slab_forward(
                    input.clone(),
                    m.clone(),
                    xi.clone(),
                    pi.clone(),
                    eps.clone(),
                    DeltaFloor::EXACT,
                );
            },
            calls,
        );
        let param = fastest_ms(
            || {
                let _ = Flex::spike_slab_param_grads(
                    input.clone(),
                    m.clone(),
                    xi.clone(),
                    pi.clone(),
                    grad_g.clone(),
                    grad_delta.clone(),
                );
            },
            calls,
        );
        let input_grad = fastest_ms(
            || {
                let _ = Flex::spike_slab_input_grad(
                    input.clone(),
                    m.clone(),
                    xi.clone(),
                    pi.clone(),
                    grad_g.clone(),
                    grad_delta.clone(),
                );
            },
            calls,
        );
        println!("{name:<20} {batch:>6} {density:>7.2}|{forward} {param} {input_grad}");
    }
}
