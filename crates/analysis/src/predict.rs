//! Using a trained network: the probabilities of its members on any images (sampled
//! sub-networks, mean-field passes, or the mean network), the predictions with uncertainty
//! they give, their calibration, and out-of-distribution detection.

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use credit_data::ImageSet;
use credit_model::{Classifier, Noise, Seed, Stream};
use credit_train::EVAL_ROWS;
use serde::{Deserialize, Serialize};

use crate::uncertainty::{Calibration, EnsembleSums, Prediction, aupr, auroc, calibration};

/// Which members make a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `K` sub-networks sampled from the learned distribution (their ensemble).
    Ensemble,
    /// `K` mean-field passes, each with its own noise.
    MeanField,
    /// The mean network `(1 - pi) m`, noise off (one member).
    MeanNetwork,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Ensemble => "ensemble",
            Mode::MeanField => "mean-field",
            Mode::MeanNetwork => "mean-network",
        })
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ensemble" => Ok(Mode::Ensemble),
            "mean-field" => Ok(Mode::MeanField),
            "mean-network" => Ok(Mode::MeanNetwork),
            other => Err(format!(
                "unknown mode `{other}` (ensemble, mean-field, mean-network)"
            )),
        }
    }
}

/// The softmax probabilities of `images` under `logits_of` (given each chunk of
/// [`EVAL_ROWS`] images and its index), row-major `[N, classes]`.
fn probabilities(
    images: &ImageSet,
    device: &Device,
    logits_of: &dyn Fn(Tensor<2>, usize) -> Tensor<2>,
) -> Vec<f32> {
    let mut out = Vec::new();
    for (chunk, start) in (0..images.len()).step_by(EVAL_ROWS).enumerate() {
        let end = (start + EVAL_ROWS).min(images.len());
        let batch = images.batch(start..end, device);
        let p = softmax(logits_of(batch.images, chunk), 1);
        out.extend(
            p.into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("float probabilities"),
        );
    }
    out
}

/// The ensemble of `mode` on `images`: `samples` sub-networks (member `k` drawn from
/// `seed.stream(Subnetworks).child(k)`, as `credit eval` draws them), `samples` mean-field
/// passes (noise from `seed.stream(Prediction).child(k)`), or the mean network; a
/// deterministic network is its own one member. Each member's probabilities (`[N, classes]`
/// row-major) are passed to `on_member` with its index, then summed: memory stays
/// `O(N · classes)` whatever the number of members.
pub fn ensemble(
    model: &Classifier,
    images: &ImageSet,
    mode: Mode,
    samples: usize,
    seed: Seed,
    device: &Device,
    on_member: &mut dyn FnMut(usize, &[f32]),
) -> EnsembleSums {
    let classes = model.sizes().last().copied().unwrap_or(0);
    let mut sums = EnsembleSums::new(images.len(), classes);
    let mut add = |k: usize, p: Vec<f32>| {
        on_member(k, &p);
        sums.add(&p);
    };
    let deterministic = matches!(model, Classifier::Deterministic(_));
    match mode {
        _ if deterministic => add(
            0,
            probabilities(images, device, &|x, _| model.forward(x, Noise::Off)),
        ),
        Mode::Ensemble => {
            for k in 0..samples {
                let sub = model
                    .sample_network(seed.stream(Stream::Subnetworks).child(k as u64))
                    .expect("a spike-and-slab model");
                add(k, probabilities(images, device, &|x, _| sub.forward(x)));
            }
        }
        Mode::MeanField => {
            for k in 0..samples {
                let noise = seed.stream(Stream::Prediction).child(k as u64);
                let p = probabilities(images, device, &|x, chunk| {
                    model.forward(x, Noise::Sampled(noise.child(chunk as u64)))
                });
                add(k, p);
            }
        }
        Mode::MeanNetwork => add(
            0,
            probabilities(images, device, &|x, _| model.forward(x, Noise::Off)),
        ),
    }
    sums
}

/// The calibration of one way of predicting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeCalibration {
    /// `mean-field`, `mean network`, `one sampled network`, `K-ensemble`, or `network` (a
    /// deterministic run).
    pub mode: String,
    /// How well its probabilities match the test labels.
    pub calibration: Calibration,
}

/// The calibration of every way a run predicts on `test` (`bins` confidence bins): for a
/// spike-and-slab run the mean-field network (one noise draw), the mean network, one sampled
/// sub-network and the `samples`-ensemble (at least one member); for a deterministic run its
/// network.
pub fn calibrations(
    model: &Classifier,
    test: &ImageSet,
    samples: usize,
    bins: usize,
    seed: Seed,
    device: &Device,
) -> Vec<ModeCalibration> {
    calibrations_with(model, test, samples, bins, seed, device, None)
}

/// [`calibrations`], with the sampled networks' probabilities already computed where
/// `members` gives them: `(the first network's, the ensemble's mean)`, each
/// `[images, classes]` row-major, of the same `samples` networks
/// ([`crate::subnetworks::evaluate_subnetworks_with`] draws them alike), so that they are not
/// drawn and run again.
pub fn calibrations_with(
    model: &Classifier,
    test: &ImageSet,
    samples: usize,
    bins: usize,
    seed: Seed,
    device: &Device,
    members: Option<(&[f32], &[f32])>,
) -> Vec<ModeCalibration> {
    let samples = samples.max(1);
    let labels = test.labels();
    let of = |mode: &str, p: &[f32]| ModeCalibration {
        mode: mode.to_string(),
        calibration: calibration(p, labels, bins),
    };
    if matches!(model, Classifier::Deterministic(_)) {
        let p = probabilities(test, device, &|x, _| model.forward(x, Noise::Off));
        return vec![of("network", &p)];
    }
    let evaluation = seed.stream(Stream::Evaluation).child(0);
    let mean_field = probabilities(test, device, &|x, chunk| {
        model.forward(x, Noise::Sampled(evaluation.child(chunk as u64)))
    });
    let mean_network = probabilities(test, device, &|x, _| model.forward(x, Noise::Off));
    let (first, mean) = match members {
        Some((first, mean)) => (first.to_vec(), mean.to_vec()),
        None => {
            let mut first = Vec::new();
            let sums = ensemble(
                model,
                test,
                Mode::Ensemble,
                samples,
                seed,
                device,
                &mut |k, p| {
                    if k == 0 {
                        first = p.to_vec();
                    }
                },
            );
            (first, sums.mean_probabilities())
        }
    };
    vec![
        of("mean-field", &mean_field),
        of("mean network", &mean_network),
        of("one sampled network", &first),
        of(&format!("{samples}-ensemble"), &mean),
    ]
}

/// How well one score tells out-of-distribution images from the test images (higher
/// outside).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodScore {
    /// `predictive entropy`, `mutual information` or `max-softmax` (`1 - max p`).
    pub score: String,
    /// Area under the ROC curve (0.5: no better than chance).
    pub auroc: f64,
    /// Average precision, out-of-distribution images positive.
    pub aupr: f64,
    /// The score of each test image (not saved).
    #[serde(skip)]
    pub inside: Vec<f64>,
    /// The score of each out-of-distribution image (not saved).
    #[serde(skip)]
    pub outside: Vec<f64>,
}

/// Out-of-distribution detection: the scores of the ensemble (`samples` sub-networks of a
/// spike-and-slab run; a deterministic run's network) on `test` and on `outside`.
pub fn ood_scores(
    model: &Classifier,
    test: &ImageSet,
    outside: &ImageSet,
    samples: usize,
    seed: Seed,
    device: &Device,
) -> Vec<OodScore> {
    let predicted = |images: &ImageSet| {
        ensemble(
            model,
            images,
            Mode::Ensemble,
            samples,
            seed,
            device,
            &mut |_, _| {},
        )
        .predictions()
    };
    let (a, b) = (predicted(test), predicted(outside));
    let mut scores: Vec<(&str, UncertaintyScore)> = vec![
        ("predictive entropy", |p| p.predictive_entropy),
        ("max-softmax", |p| {
            1.0 - f64::from(p.probabilities.iter().copied().fold(0.0f32, f32::max))
        }),
    ];
    if !matches!(model, Classifier::Deterministic(_)) {
        scores.insert(1, ("mutual information", |p| p.mutual_information));
    }
    scores
        .into_iter()
        .map(|(name, score)| {
            let inside: Vec<f64> = a.iter().map(score).collect();
            let outside: Vec<f64> = b.iter().map(score).collect();
            OodScore {
                score: name.to_string(),
                auroc: auroc(&inside, &outside),
                aupr: aupr(&inside, &outside),
                inside,
                outside,
            }
        })
        .collect()
}

/// Whether the run's training images are stored as bytes (IDX, CIFAR-10, `uint8` npz) rather
/// than floats.
///
/// # Errors
/// If the run's `.npz` cannot be read.
pub(crate) fn trained_on_bytes(config: &credit_train::RunConfig) -> anyhow::Result<bool> {
    let source = config.data_source();
    Ok(match source.format {
        credit_data::Format::Npz => credit_data::npz_holds_bytes(&source.location, "x_train")?,
        _ => true,
    })
}

/// `inputs` (read from `path`) as the network of `config` saw its training images: the
/// run's `data.pixel_scale` applies to them, and their layout must be the training data's.
///
/// # Errors
/// If a fixed `data.pixel_scale` was set for bytes and the inputs are floats (or the other
/// way round: the factor's units would be wrong), or a CIFAR-10 run is given channels-last
/// images (`[32, 32, 3]`: the run takes the three colour planes first, `[3, 32, 32]`).
pub(crate) fn fit_inputs(
    inputs: credit_data::Inputs,
    path: &std::path::Path,
    config: &credit_train::RunConfig,
    on_bytes: bool,
) -> anyhow::Result<ImageSet> {
    let shape = &inputs.image_shape;
    if config.data.format == credit_data::Format::Cifar10
        && shape.len() == 3
        && shape[2] == 3
        && shape[0] != 3
    {
        anyhow::bail!(
            "{}: images of shape {shape:?} are channels-last; a CIFAR-10 run takes the colour planes first, [3, {}, {}] (numpy: x.transpose(0, 3, 1, 2))",
            path.display(),
            shape[0],
            shape[1]
        );
    }
    let is_bytes = matches!(inputs.images.stored(), credit_data::Pixels::Bytes(_));
    let scale = config.data.pixel_scale;
    let kind = |bytes: bool| if bytes { "bytes (uint8)" } else { "floats" };
    if let credit_data::PixelScale::Factor(f) = scale {
        anyhow::ensure!(
            is_bytes == on_bytes,
            "{}: its pixels are {}, but the run was trained on {} scaled by data.pixel_scale = {f}; give the images as {}",
            path.display(),
            kind(is_bytes),
            kind(on_bytes),
            kind(on_bytes)
        );
    } else if !is_bytes && on_bytes {
        let (lo, hi) = (0..inputs.images.len())
            .flat_map(|i| inputs.images.pixels(i))
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        if lo < 0.0 || hi > 1.0 {
            eprintln!(
                "warning: {}: float pixels range over [{lo}, {hi}], but the network was trained on bytes / 255, in [0, 1]: give bytes (uint8) or floats in [0, 1]",
                path.display()
            );
        }
    }
    Ok(inputs.images.with_scale(scale))
}

/// One number per prediction, higher for inputs less like the training data.
type UncertaintyScore = fn(&Prediction) -> f64;

/// What `credit predict` is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictOptions {
    /// Which members predict.
    pub mode: Mode,
    /// Members of an ensemble or of mean-field passes.
    pub samples: usize,
    /// Seed of the members (default: the run's seed).
    pub seed: Option<u64>,
    /// Invert picture brightness.
    pub invert: bool,
    /// The checkpoint of this epoch instead of the final model.
    pub epoch: Option<usize>,
}

/// One image's prediction, with its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedPrediction {
    /// The file (and index in it) the image came from.
    pub input: String,
    /// The predicted class as a data-set label: the network's class plus the run's
    /// `data.label_offset` (equal to the class when the offset is 0).
    pub predicted_label: i64,
    /// The image's true label as the input stores it, where it carries labels (an IDX
    /// folder or labels file, a `.npz`'s `y_test`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<i64>,
    /// What the members say.
    #[serde(flatten)]
    pub prediction: Prediction,
}

/// What `credit predict` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictReport {
    /// The run.
    pub run: String,
    /// The members' kind.
    pub mode: Mode,
    /// How many members.
    pub members: usize,
    /// How pictures were made inputs (if any were pictures).
    pub conversion: String,
    /// One per image, in input order.
    pub predictions: Vec<NamedPrediction>,
}

/// Predicts every image of `input` (see [`credit_data::load_inputs`]) with the run in `run`.
///
/// # Errors
/// If the run or the images cannot be loaded, or `samples` is 0 for an ensemble.
pub fn predict_run(
    run: &credit_train::RunDir,
    input: &std::path::Path,
    options: &PredictOptions,
    backend: credit_train::BackendKind,
) -> anyhow::Result<PredictReport> {
    anyhow::ensure!(
        (1..=crate::limits::MAX_SAMPLES).contains(&options.samples)
            || options.mode == Mode::MeanNetwork,
        "--samples must be between 1 and {}",
        crate::limits::MAX_SAMPLES
    );
    credit_train::compute(|| {
        let config = run.config()?;
        let device = backend.device()?;
        let model = run.load_model(&config, &device, options.epoch)?;
        // A recurrent network reads whole sequences of the width it was trained on (`T D`,
        // not in its config): its test split says.
        let features = if config.model.kind == credit_train::ModelKind::SpikeSlabRnn {
            anyhow::Context::context(
                credit_train::load_data(&config),
                "credit predict reads a recurrent run's sequence length from its data",
            )?
            .test
            .features()
        } else {
            config.model.sizes[0]
        };
        let inputs = credit_data::load_inputs(input, features, options.invert)?;
        let pictures = inputs.image_shape.len() == 2 && is_pictures(input);
        if options.invert && !pictures {
            eprintln!(
                "warning: --invert applies to PNG/JPEG pictures only; {} is used as stored",
                input.display()
            );
        }
        let names = inputs.names.clone();
        let labels = inputs.labels.clone();
        // An npz run's training file may have moved since (a run folder copied elsewhere):
        // then the inputs' own kind is trusted, with a warning.
        let on_bytes = trained_on_bytes(&config).unwrap_or_else(|e| {
            eprintln!(
                "warning: cannot read the run's training data to compare the kind of its pixels with the inputs' ({e:#}); the inputs are scaled as they are"
            );
            matches!(inputs.images.stored(), credit_data::Pixels::Bytes(_))
        });
        let images = fit_inputs(inputs, input, &config, on_bytes)?;
        let seed = Seed::new(options.seed.unwrap_or(config.seed));
        let sums = ensemble(
            &model,
            &images,
            options.mode,
            options.samples,
            seed,
            &device,
            &mut |_, _| {},
        );
        let predictions = sums
            .predictions()
            .into_iter()
            .zip(names)
            .enumerate()
            .map(|(i, (prediction, input))| NamedPrediction {
                input,
                predicted_label: i64::try_from(prediction.predicted)
                    .unwrap_or(i64::MAX)
                    .saturating_add(config.data.label_offset),
                label: labels.as_ref().map(|l| l[i]),
                prediction,
            })
            .collect();
        Ok(PredictReport {
            run: run.path().display().to_string(),
            mode: options.mode,
            members: sums.members(),
            conversion: if pictures {
                let invert = if options.invert { ", inverted" } else { "" };
                format!("{}{invert}", credit_data::RESIZE_METHOD)
            } else {
                "none: the stored pixels".to_string()
            },
            predictions,
        })
    })
}

/// Whether `input` names PNG/JPEG pictures (a picture file, or a folder of them).
fn is_pictures(input: &std::path::Path) -> bool {
    let picture = |p: &std::path::Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
    };
    if input.is_dir() {
        std::fs::read_dir(input)
            .is_ok_and(|entries| entries.filter_map(|e| e.ok()).any(|e| picture(&e.path())))
    } else {
        picture(input)
    }
}

/// Writes predictions as CSV (`.csv`: one row per image: `predicted`, the predicted class as
/// a data-set label; `label`, the true label, only where the inputs carry labels; the
/// uncertainty scores; the probabilities of the network's classes as columns `p0`, `p1`,
/// ...) or JSON (`.json`), atomically.
///
/// # Errors
/// If the extension is neither, or the file cannot be written.
pub fn write_predictions(report: &PredictReport, path: &std::path::Path) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("json") => credit_train::write_json(path, report),
        Some("csv") => {
            let classes = report
                .predictions
                .first()
                .map_or(0, |p| p.prediction.probabilities.len());
            // A `label` column only where the inputs carry their true labels.
            let labelled = report.predictions.iter().all(|p| p.label.is_some())
                && !report.predictions.is_empty();
            let mut csv = String::from("input,predicted");
            if labelled {
                csv.push_str(",label");
            }
            csv.push_str(",predictive_entropy,expected_entropy,mutual_information,agreement");
            for c in 0..classes {
                let _ = write!(csv, ",p{c}");
            }
            csv.push('\n');
            for p in &report.predictions {
                let q = &p.prediction;
                let name = p.input.replace('"', "\"\"");
                // `{:?}`: shortest round-trip form, with an exponent for tiny values.
                let _ = write!(csv, "\"{name}\",{}", p.predicted_label);
                if let (true, Some(label)) = (labelled, p.label) {
                    let _ = write!(csv, ",{label}");
                }
                let _ = write!(
                    csv,
                    ",{:?},{:?},{:?},{:?}",
                    q.predictive_entropy, q.expected_entropy, q.mutual_information, q.agreement
                );
                for v in &q.probabilities {
                    let _ = write!(csv, ",{v:?}");
                }
                csv.push('\n');
            }
            credit_train::write_atomic(path, csv.as_bytes())
        }
        _ => anyhow::bail!("{}: --out must end in .csv or .json", path.display()),
    }
}

#[cfg(test)]
mod tests;
