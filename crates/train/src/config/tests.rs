//! Tests of the run configuration: parsing, overrides, validation, differences.

use super::*;
use proptest::prelude::*;

/// Every leaf key of a run configuration.
const KEYS: [&str; 40] = [
    "seed",
    "data.path",
    "data.label_offset",
    "data.pixel_scale",
    "train.precision",
    "model.delta_floor",
    "model.delta_floor_mode",
    "train.drop_last",
    "optimizer.decay",
    "model.kind",
    "model.sizes",
    "model.m_init_std",
    "model.xi_init_max",
    "model.pi_init",
    "data.format",
    "data.dir",
    "data.train_size",
    "data.test_size",
    "train.epochs",
    "train.batch_size",
    "train.shuffle",
    "train.keep_checkpoints",
    "train.checkpoint_every",
    "optimizer.lr",
    "optimizer.beta1",
    "optimizer.beta2",
    "optimizer.epsilon",
    "optimizer.weight_decay",
    "optimizer.lr_step_epochs",
    "optimizer.lr_step_factor",
    "optimizer.restart_each_epoch",
    "model.tau",
    "model.h0",
    "model.scaling",
    "model.recurrent_init",
    "model.input_weights",
    "train.batches_per_epoch",
    "optimizer.lr_step_offset",
    "optimizer.clip_grad_norm",
    "optimizer.clip_grad_kind",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        (0u64..100).prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:e}")),
        (-2.0f64..2.0).prop_map(|v| v.to_string()),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        Just("true".to_string()),
        "[a-z-]{0,12}",
        proptest::collection::vec(0u64..3000, 0..5).prop_map(|v| format!("{v:?}")),
        Just("{ a = 1 }".to_string()),
        Just("\"idx\"".to_string()),
        Just("[\"m\", \"pi\"]".to_string()),
        Just("[\"xi\", \"xi\"]".to_string()),
        Just("\"add\"".to_string()),
    ]
}

proptest! {
    /// Any overrides of any keys give a configuration that validates and reads back
    /// identically, or an error; never a panic.
    #[test]
    fn any_overrides_validate_or_fail_cleanly(
        sets in proptest::collection::vec((0..KEYS.len(), value()), 0..6),
    ) {
        let overrides: Vec<String> = sets.iter().map(|(k, v)| format!("{}={v}", KEYS[*k])).collect();
        match RunConfig::parse("", &overrides) {
            Ok(config) => {
                prop_assert!(config.validate().is_ok());
                prop_assert_eq!(RunConfig::parse(&config.to_toml(), &[]).unwrap(), config);
            }
            Err(error) => {
                let message = format!("{error:#}");
                prop_assert!(!message.is_empty());
            }
        }
    }

    /// Any text as a config file parses or fails cleanly.
    #[test]
    fn any_text_parses_or_fails_cleanly(text in "[a-z_.=\\[\\]{}\"0-9 \n-]{0,80}") {
        let _ = RunConfig::parse(&text, &[]);
    }
}

fn error_of(text: &str, overrides: &[&str]) -> String {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    format!("{:#}", RunConfig::parse(text, &overrides).unwrap_err())
}

#[test]
fn an_empty_file_gives_the_reference_setup() {
    let config = RunConfig::parse("", &[]).unwrap();
    assert_eq!(config.model.sizes, vec![784, 100, 100, 10]);
    assert!((config.model.m_init_std - 0.050_507_627).abs() < 1e-8);
    assert_eq!(config.data.train_size, 10_000);
    assert_eq!(config.train.batch_size, 500);
    assert_eq!(config.train.epochs, 100);
    assert_eq!(config.optimizer.lr, 0.1);
    assert_eq!(config.optimizer.epsilon, 1e-8);
    assert_eq!(config.optimizer.weight_decay, 1e-4);
    assert_eq!(config.optimizer.lr_step_epochs, 20);
    assert_eq!(config.optimizer.lr_step_factor, 0.5);
    assert!(config.optimizer.restart_each_epoch);
}

#[test]
fn overrides_take_toml_values_and_create_tables() {
    let config = RunConfig::parse(
        "[train]\nepochs = 3\n",
        &[
            "train.epochs=5".into(),
            "optimizer.lr = 0.01".into(),
            "model.sizes=[784, 10]".into(),
            "data.dir=/tmp/x".into(),
            "model.kind=deterministic".into(),
        ],
    )
    .unwrap();
    assert_eq!(config.train.epochs, 5);
    assert_eq!(config.optimizer.lr, 0.01);
    assert_eq!(config.model.sizes, vec![784, 10]);
    assert_eq!(config.data.dir, PathBuf::from("/tmp/x"));
    assert_eq!(config.model.kind, credit_model::ModelKind::Deterministic);
}

#[test]
fn bad_fields_are_named() {
    assert!(error_of("[train]\nepoch = 3\n", &[]).contains("unknown field `epoch`"));
    assert!(error_of("", &["optimizer.lr=-0.1"]).contains("optimizer.lr must be positive"));
    assert!(error_of("", &["model.sizes=[784]"]).contains("model.sizes"));
    assert!(error_of("", &["model.pi_init=1.5"]).contains("model.pi_init"));
    for factor in ["0", "1.5"] {
        let error = error_of("", &[&format!("optimizer.lr_step_factor={factor}")]);
        assert!(
            error.contains("optimizer.lr_step_factor must be in (0, 1]"),
            "{error}"
        );
    }
    assert!(error_of("", &["train.batch_size=0"]).contains("train.batch_size"));
    assert!(error_of("seed = 3\n", &["seed.x=1"]).contains("`seed` is not a table"));
    assert!(error_of("", &["train.epochs"]).contains("key=value"));
    assert!(error_of("[model]\nkind = \"bayes\"\n", &[]).contains("unknown variant `bayes`"));
    // The optimizer's scalars are checked as float32 rounds them too.
    for (set, expected) in [
        (
            "optimizer.beta1=0.99999999",
            "optimizer.beta1 must be in [0, 1) and below 1 in float32",
        ),
        ("optimizer.beta2=1.0", "optimizer.beta2 must be in [0, 1)"),
        (
            "optimizer.epsilon=1e-46",
            "optimizer.epsilon must be positive and finite in float32",
        ),
        (
            "optimizer.epsilon=1e39",
            "optimizer.epsilon must be positive and finite in float32",
        ),
        (
            "optimizer.weight_decay=1e39",
            "optimizer.weight_decay must be a number >= 0",
        ),
    ] {
        let error = error_of("", &[set]);
        assert!(error.contains(expected), "{set}: {error}");
    }
    // Values float32 keeps are accepted.
    assert!(RunConfig::parse("", &["optimizer.beta2=0.9999999".to_string()]).is_ok());
}

#[test]
fn differences_name_each_changed_key() {
    let saved = RunConfig::parse("", &[]).unwrap();
    let changed = RunConfig::parse(
        "",
        &["train.epochs=7".into(), "model.sizes=[784, 64, 10]".into()],
    )
    .unwrap();
    let keys: Vec<String> = changed
        .differences(&saved)
        .into_iter()
        .map(|(k, a, b)| format!("{k}: {a} -> {b}"))
        .collect();
    assert_eq!(
        keys,
        [
            "model.sizes: [784, 100, 100, 10] -> [784, 64, 10]",
            "train.epochs: 100 -> 7"
        ]
    );
    assert!(saved.differences(&saved).is_empty());
}

#[test]
fn the_saved_form_reads_back_identically() {
    let config = RunConfig::parse("seed = 7\n", &["train.epochs=2".into()]).unwrap();
    assert_eq!(RunConfig::parse(&config.to_toml(), &[]).unwrap(), config);
}

#[test]
fn data_errors_name_the_file_really_read() {
    let set = |features: usize| {
        credit_data::ImageSet::from_bytes(features, vec![0; features], vec![0], 10)
    };
    let splits = Splits {
        train: set(27 * 28),
        test: set(27 * 28),
    };
    let npz = RunConfig::parse(
        "[data]\nformat = \"npz\"\npath = \"/data/digits.npz\"\n",
        &[],
    )
    .unwrap();
    let error = npz.check_against_data(&splits).unwrap_err().to_string();
    assert!(
        error.contains("/data/digits.npz (data.path) have 756 pixels"),
        "{error}"
    );
    assert!(!error.contains("data/mnist"), "{error}");
    let idx = RunConfig::parse("[data]\ndir = \"some/idx\"\n", &[]).unwrap();
    let error = idx.check_against_data(&splits).unwrap_err().to_string();
    assert!(
        error.contains("some/idx (data.dir) have 756 pixels"),
        "{error}"
    );
    // Sizes beyond the data: refused by name, with the count held.
    let big = RunConfig::parse("[data]\ntrain_size = 100000\n", &[]).unwrap();
    let error = crate::check_data_sizes(&big, 60_000, 10_000)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("data.train_size = 100000, but data/mnist holds 60000 training images"),
        "{error}"
    );
    crate::check_data_sizes(&big, 100_000, 10_000).unwrap();
}

#[test]
fn recurrent_settings_are_checked_and_name_their_key() {
    let rnn = ["model.kind=\"spike-slab-rnn\"", "model.sizes=[28, 100, 10]"];
    let with = |extra: &[&str]| {
        let mut all = rnn.to_vec();
        all.extend_from_slice(extra);
        error_of("", &all)
    };
    assert!(
        error_of("", &["model.tau=5"]).contains("model.tau applies to recurrent networks only")
    );
    assert!(error_of("", &["model.recurrent_init=\"gaussian\""]).contains("model.recurrent_init"));
    assert!(
        with(&["model.sizes=[28, 100, 100, 10]"])
            .contains("[inputs per step, recurrent units, classes]")
    );
    assert!(with(&["model.tau=0.5"]).contains("model.tau must be a number >= 1"));
    assert!(with(&["model.h0=nan"]).contains("model.h0 must be a finite number"));
    assert!(
        with(&["train.batches_per_epoch=0"]).contains("train.batches_per_epoch must be at least 1")
    );
    assert!(with(&["train.batches_per_epoch=5", "train.devices=2"]).contains("train.devices = 1"));
    assert!(
        with(&["optimizer.clip_grad_norm=0"]).contains("optimizer.clip_grad_norm must be positive")
    );
    assert!(
        with(&["optimizer.clip_grad_kind=\"frobenius\""])
            .contains("needs optimizer.clip_grad_norm")
    );
    assert!(
        with(&["optimizer.lr_step_offset=1", "optimizer.lr_step_epochs=0"])
            .contains("lr_step_offset needs")
    );
    // The preset validates, and an unset key is not written back.
    let preset = RunConfig::load(Path::new("../../configs/smnist-rnn.toml"), &[]).unwrap();
    assert_eq!(preset.model.dynamics().tau, 10.0);
    assert!(!RunConfig::parse("", &[]).unwrap().to_toml().contains("tau"));
}

#[test]
fn the_learning_rate_offset_steps_one_epoch_early_as_the_recurrent_scripts() {
    let mut o = OptimizerConfig {
        lr: 1e-3,
        lr_step_epochs: 40,
        ..OptimizerConfig::default()
    };
    let lr = |o: &OptimizerConfig, epoch| crate::optimizer::learning_rate(o, epoch);
    assert_eq!(lr(&o, 40), 1e-3);
    assert_eq!(lr(&o, 41), 0.5e-3);
    o.lr_step_offset = Some(1);
    // decay(epoch + 1, 1e-8, lr, 40) for the epoch index from 0: 0.5^((i + 1) // 40).
    for epoch in 1..=200usize {
        let want = 1e-3 * 0.5f64.powi((epoch / 40) as i32);
        assert_eq!(lr(&o, epoch), want, "epoch {epoch}");
    }
}

#[test]
fn the_spectral_norm_is_the_largest_singular_value() {
    use crate::optimizer::spectral_norm;
    // [[3, 0], [0, 1], [0, 0]]: singular values 3 and 1.
    assert!((spectral_norm(&[3.0, 0.0, 0.0, 1.0, 0.0, 0.0], 3, 2) - 3.0).abs() < 1e-12);
    // A rank-one matrix u vᵀ: |u| |v|.
    let (u, v) = ([1.0, 2.0, 2.0], [3.0, 4.0]);
    let a: Vec<f64> = u
        .iter()
        .flat_map(|x| v.iter().map(move |y| x * y))
        .collect();
    assert!((spectral_norm(&a, 3, 2) - 15.0).abs() < 1e-9);
    let at: Vec<f64> = (0..6).map(|k| a[(k % 3) * 2 + k / 3]).collect();
    assert!((spectral_norm(&at, 2, 3) - 15.0).abs() < 1e-9);
    // [[1, 1], [0, 1]]: the golden ratio.
    let golden = (1.0 + 5f64.sqrt()) / 2.0;
    assert!((spectral_norm(&[1.0, 1.0, 0.0, 1.0], 2, 2) - golden).abs() < 1e-9);
    assert_eq!(spectral_norm(&[0.0; 4], 2, 2), 0.0);
    // Rows that sum to zero, as a softmax error's: the ones vector is in the null space of
    // a aᵀ, and the norm is still found.
    assert!((spectral_norm(&[1.0, 0.0, -1.0, 0.0], 2, 2) - 2f64.sqrt()).abs() < 1e-12);
    assert!((spectral_norm(&[1.0, -1.0], 1, 2) - 2f64.sqrt()).abs() < 1e-12);
}

#[test]
fn clipping_scales_a_gradient_above_the_bound_to_it_and_leaves_the_rest() {
    use crate::optimizer::clip_to_norm;
    let device = crate::BackendKind::default_available()
        .unwrap()
        .device()
        .unwrap();
    let grad = |v: Vec<f32>| {
        burn::tensor::Tensor::<2>::from_data(burn::tensor::TensorData::new(v, [2, 2]), &device)
    };
    let values = |t: burn::tensor::Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
    // diag(3, 1): spectral norm 3, Frobenius sqrt(10).
    let g = vec![3.0, 0.0, 0.0, 1.0];
    let spectral = values(clip_to_norm(grad(g.clone()), 1.5, ClipNorm::Spectral));
    assert_eq!(spectral, vec![1.5, 0.0, 0.0, 0.5]);
    let frobenius = values(clip_to_norm(grad(g.clone()), 1.0, ClipNorm::Frobenius));
    let scale = 1.0 / 10f32.sqrt();
    for (got, want) in frobenius.iter().zip(&g) {
        assert!(
            (got - want * scale).abs() < 1e-6,
            "{got} vs {}",
            want * scale
        );
    }
    assert_eq!(
        values(clip_to_norm(grad(g.clone()), 3.5, ClipNorm::Spectral)),
        g
    );
}
