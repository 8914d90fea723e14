//! The fused spike-and-slab operation (`spike_slab_linear`, with its hand-written backward
//! pass and, on flex, its sparse host kernels) against the same formula written with generic
//! tensor operations and differentiated by autodiff, in float32 on every CPU backend.
//!
//! The float64 check of the same comparison is in `gradients.rs` (its own binary, as it
//! switches the device to float64).

mod common;

use burn::tensor::{Device, Tensor};
use common::{Lcg, tensor, values};
use credit_ops::mean_field::{DeltaFloor, FloorMode, spike_slab_linear};
use credit_train::BackendKind;

/// Layer shapes `(batch, d_input, d_output)`: column tiles with and without a partial vector,
/// two tiles, exactly one vector, an output layer narrower than a vector (composed path), and
/// one whose moments (1.1 MB) leave a core's cache. Each runs on sparse inputs (15% nonzero,
/// flex's kernels), mostly nonzero ones and dense ones (both through flex's dense products,
/// `dense.rs`), with an incoming gradient 60% nonzero (the input gradient through the dense
/// products) and, on the sparse inputs, 6% nonzero (through the kernels).
const SHAPES: [(usize, usize, usize); 6] = [
    (9, 37, 100),
    (5, 100, 200),
    (7, 20, 16),
    (6, 130, 33),
    (8, 50, 10),
    (3, 520, 260),
];

/// A layer fixture with exact zeros in the input and in the incoming gradient, `pi` at both
/// bounds, `xi = 0`, an all-zero input row, an all-zero gradient row and an output unit
/// without variance (all its `pi` in {0, 1}, `xi = 0`), so that the floor of `Delta` is
/// reached.
#[derive(Clone)]
pub struct Fixture {
    pub shape: (usize, usize, usize),
    pub input: Vec<f64>,
    pub m: Vec<f64>,
    pub xi: Vec<f64>,
    pub pi: Vec<f64>,
    pub eps: Vec<f64>,
    /// Weights of the linear functional `sum(h ⊙ r)` whose gradients are compared
    /// (`dL/dh = r`).
    pub r: Vec<f64>,
}

impl Fixture {
    pub fn new((batch, d_in, d_out): (usize, usize, usize), seed: u64) -> Self {
        let mut rng = Lcg(seed);
        let mut pick = |n: usize, f: &mut dyn FnMut(f64, f64) -> f64| {
            (0..n)
                .map(|_| f(rng.next(), rng.next()))
                .collect::<Vec<f64>>()
        };
        // 15% nonzero, as MNIST's pixels: flex's kernels that skip zeros take it.
        let mut input = pick(batch * d_in, &mut |u, v| if u < 0.85 { 0.0 } else { v });
        input[..d_in].fill(0.0);
        let m = pick(d_out * d_in, &mut |u, _| 0.6 * u - 0.3);
        let mut xi = pick(d_out * d_in, &mut |u, v| {
            if u < 0.1 { 0.0 } else { 0.1 * v }
        });
        let mut pi = pick(d_out * d_in, &mut |u, v| match u {
            u if u < 0.1 => 0.0,
            u if u < 0.2 => 1.0,
            _ => v,
        });
        let silent = d_out / 2;
        for k in 0..d_in {
            xi[silent * d_in + k] = 0.0;
            pi[silent * d_in + k] = (k % 2) as f64;
        }
        let eps = pick(batch * d_out, &mut |u, v| {
            (-2.0 * u.max(1e-12).ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        });
        // Zeros in dL/dh, as a ReLU after the layer gives (the input gradient skips them),
        // and one sample without any gradient.
        let mut r = pick(batch * d_out, &mut |u, v| {
            if u < 0.4 { 0.0 } else { 2.0 * v - 1.0 }
        });
        r[(batch - 1) * d_out..].fill(0.0);
        Self {
            shape: (batch, d_in, d_out),
            input,
            m,
            xi,
            pi,
            eps,
            r,
        }
    }

    /// The same layer with about three quarters of its inputs nonzero, as hidden ReLU
    /// outputs: flex computes it with the dense products too (from 35% and 33% nonzero), the
    /// first sample still all zero.
    pub fn mostly_nonzero(mut self) -> Self {
        let d_in = self.shape.1;
        for (i, x) in self.input.iter_mut().enumerate().skip(d_in) {
            if *x == 0.0 && i * 37 % 101 < 70 {
                *x = 0.1 + 0.8 * ((i * 53 % 97) as f64 / 97.0);
            }
        }
        self
    }

    /// The same layer with an incoming gradient about 6% nonzero (one in ten of its
    /// nonzeros kept), as under a ReLU that is mostly off: flex computes the input gradient
    /// with the kernels that skip zeros.
    pub fn sparse_gradient(mut self) -> Self {
        for (i, r) in self.r.iter_mut().enumerate() {
            if i % 10 != 3 {
                *r = 0.0;
            }
        }
        self
    }

    /// The same layer with a dense input (its zeros replaced), which flex computes with dense
    /// matrix products instead of the kernels that skip zeros.
    pub fn dense(mut self) -> Self {
        for (i, x) in self.input.iter_mut().enumerate() {
            if *x == 0.0 {
                *x = 0.1 + 0.8 * ((i * 37 % 101) as f64 / 101.0);
            }
        }
        self
    }

    /// `h` and the gradients of `sum(h ⊙ r)` with respect to input, `m`, `xi`, `pi`, from
    /// the fused operation or from the composed formula, `Delta` floored as `floor` says.
    pub fn evaluate(&self, device: &Device, fused: bool, floor: DeltaFloor) -> [Vec<f64>; 5] {
        let (batch, d_in, d_out) = self.shape;
        let device = device.clone().autodiff();
        let param = |v: &Vec<f64>| tensor(v.clone(), [d_out, d_in], &device).require_grad();
        let input = tensor(self.input.clone(), [batch, d_in], &device).require_grad();
        let (m, xi, pi) = (param(&self.m), param(&self.xi), param(&self.pi));
        let eps = tensor(self.eps.clone(), [batch, d_out], &device);
        let h = if fused {
            spike_slab_linear(input.clone(), m.clone(), xi.clone(), pi.clone(), eps, floor)
        } else {
            composed(input.clone(), m.clone(), xi.clone(), pi.clone(), eps, floor)
        };
        let r = tensor(self.r.clone(), [batch, d_out], &device);
        let grads = (h.clone() * r).sum().backward();
        let grad = |t: &Tensor<2>| values(t.grad(&grads).expect("a gradient"));
        [
            values(h.inner()),
            grad(&input),
            grad(&m),
            grad(&xi),
            grad(&pi),
        ]
    }
}

/// The model crate's burn-tensor reference of the layer, differentiated by autodiff. A
/// clamping floor of 0 is taken as 1e-30, so that autodiff's gradient of `clamp_min` is zero
/// where `Delta = 0` (and `sqrt`'s infinite slope at 0 is never reached).
fn composed(
    input: Tensor<2>,
    m: Tensor<2>,
    xi: Tensor<2>,
    pi: Tensor<2>,
    eps: Tensor<2>,
    floor: DeltaFloor,
) -> Tensor<2> {
    let floor = match floor.mode {
        FloorMode::Clamp => DeltaFloor {
            value: floor.value.max(1e-30),
            mode: FloorMode::Clamp,
        },
        FloorMode::Add => floor,
    };
    credit_model::reference_preactivation(input, m, xi, pi, eps, floor)
}

/// The floors the two protocols use, and credit's earlier one.
const FLOORS: [DeltaFloor; 3] = [
    DeltaFloor::EXACT,
    DeltaFloor {
        value: 1e-12,
        mode: FloorMode::Clamp,
    },
    DeltaFloor {
        value: 1e-20,
        mode: FloorMode::Add,
    },
];

/// Asserts `|a - b| <= tolerance (1 + |b|)` elementwise.
pub fn assert_close(a: &[f64], b: &[f64], tolerance: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tolerance * (1.0 + y.abs()),
            "{what}[{i}]: fused {x} vs composed {y}"
        );
    }
}

const NAMES: [&str; 5] = ["h", "dL/dinput", "dL/dm", "dL/dxi", "dL/dpi"];

fn check_backend(backend: BackendKind) {
    let device = backend.device().expect("the backend has a device");
    for floor in FLOORS {
        for (i, shape) in SHAPES.into_iter().enumerate() {
            let sparse = Fixture::new(shape, 7 + i as u64);
            let inputs = [
                ("sparse", sparse.clone()),
                ("sparse gradient", sparse.clone().sparse_gradient()),
                ("mostly nonzero", sparse.clone().mostly_nonzero()),
                ("dense", sparse.dense()),
            ];
            for (input, fixture) in inputs {
                let fused = fixture.evaluate(&device, true, floor);
                let reference = fixture.evaluate(&device, false, floor);
                for ((fused, reference), name) in fused.iter().zip(&reference).zip(NAMES) {
                    let what = format!("{} {input} {shape:?} {floor:?} {name}", backend.name());
                    assert_close(fused, reference, 2e-5, &what);
                }
            }
        }
    }
}

#[test]
fn fused_operation_matches_the_composed_formula_on_flex() {
    check_backend(BackendKind::Flex);
}

#[cfg(feature = "ndarray")]
#[test]
fn fused_operation_matches_the_composed_formula_on_ndarray() {
    check_backend(BackendKind::Ndarray);
}

#[test]
fn a_unit_without_variance_gets_a_variance_gradient_only_from_an_added_floor() {
    let fixture = Fixture::new(SHAPES[0], 3);
    let (_, d_in, d_out) = fixture.shape;
    let silent = d_out / 2;
    for floor in FLOORS {
        let [h, _, _, grad_xi, _] = fixture.evaluate(&common::device(), true, floor);
        assert!(h.iter().all(|v| v.is_finite()), "{floor:?}");
        assert!(grad_xi.iter().all(|v| v.is_finite()), "{floor:?}");
        // The silent unit has Delta = 0 for every sample: a clamping floor (the 2020 script,
        // `turn_2_zero`) gives xi no gradient there; an added one (the 2022 script) does.
        let silent_grads = &grad_xi[silent * d_in..(silent + 1) * d_in];
        match floor.mode {
            FloorMode::Clamp => assert!(silent_grads.iter().all(|&g| g == 0.0), "{floor:?}"),
            FloorMode::Add => assert!(silent_grads.iter().any(|&g| g != 0.0), "{floor:?}"),
        }
        // Elsewhere xi does get gradients.
        assert!(grad_xi.iter().any(|&g| g != 0.0));
    }
}

#[test]
fn negligible_incoming_gradients_are_dropped_on_flex() {
    let device = common::device();
    let mut fixture = Fixture::new(SHAPES[0], 5);
    let (_, d_in, d_out) = fixture.shape;
    // Sample 0's gradient below 2^-100 (normal numbers in float32, but far below anything
    // that moves an AdamW step); the others as they are.
    for r in &mut fixture.r[..d_out] {
        *r *= 1e-32;
    }
    let floor = DeltaFloor::EXACT;
    let with_tiny = fixture.evaluate(&device, true, floor);
    let composed = fixture.evaluate(&device, false, floor);
    fixture.r[..d_out].fill(0.0);
    let without = fixture.evaluate(&device, true, floor);
    for ((with_tiny, without), name) in with_tiny.iter().zip(&without).zip(NAMES).skip(1) {
        assert_eq!(with_tiny, without, "{name}");
    }
    let [_, input_grad, ..] = &composed;
    assert!(
        input_grad[..d_in].iter().any(|&g| g != 0.0),
        "the composed formula keeps them"
    );
}
