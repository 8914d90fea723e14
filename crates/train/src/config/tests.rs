//! Tests of the run configuration: parsing, overrides, validation, differences.

use super::*;
use proptest::prelude::*;

/// Every leaf key of a run configuration.
const KEYS: [&str; 31] = [
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
