//! Using a trained network: the probabilities of its members on any images (sampled
//! sub-networks, mean-field passes, or the mean network), the predictions with uncertainty
//! they give, their calibration, and out-of-distribution detection.

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use credit_data::ImageSet;
use credit_model::{Classifier, Noise, Seed, Stream};
use credit_train::EVAL_ROWS;
use serde::{Deserialize, Serialize};

use crate::uncertainty::{Calibration, Prediction, aupr, auroc, calibration, predict};

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

/// The members' probabilities on `images`, each row-major `[N, classes]`: `samples`
/// sub-networks (member `k` drawn from `seed.stream(Subnetworks).child(k)`, as `credit eval`
/// draws them), `samples` mean-field passes (noise from `seed.stream(Prediction).child(k)`),
/// or the mean network. A deterministic network is its own one member.
pub fn member_probabilities(
    model: &Classifier,
    images: &ImageSet,
    mode: Mode,
    samples: usize,
    seed: Seed,
    device: &Device,
) -> Vec<Vec<f32>> {
    let Some(net) = model.spike_slab() else {
        return vec![probabilities(images, device, &|x, _| {
            model.forward(x, Noise::Off)
        })];
    };
    match mode {
        Mode::Ensemble => (0..samples)
            .map(|k| {
                let sub = net.sample_network(seed.stream(Stream::Subnetworks).child(k as u64));
                probabilities(images, device, &|x, _| sub.forward(x))
            })
            .collect(),
        Mode::MeanField => (0..samples)
            .map(|k| {
                let noise = seed.stream(Stream::Prediction).child(k as u64);
                probabilities(images, device, &|x, chunk| {
                    net.forward(x, Noise::Sampled(noise.child(chunk as u64)))
                })
            })
            .collect(),
        Mode::MeanNetwork => vec![probabilities(images, device, &|x, _| {
            net.forward(x, Noise::Off)
        })],
    }
}

/// The ensemble prediction of every image from its members' probabilities.
///
/// # Panics
/// If `members` is empty or they differ in length.
pub fn predictions(members: &[Vec<f32>], images: usize) -> Vec<Prediction> {
    let classes = members[0].len() / images.max(1);
    (0..images)
        .map(|i| {
            let rows: Vec<&[f32]> = members
                .iter()
                .map(|m| &m[i * classes..(i + 1) * classes])
                .collect();
            predict(&rows)
        })
        .collect()
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
/// sub-network and the `samples`-ensemble; for a deterministic run its network.
pub fn calibrations(
    model: &Classifier,
    test: &ImageSet,
    samples: usize,
    bins: usize,
    seed: Seed,
    device: &Device,
) -> Vec<ModeCalibration> {
    let labels = test.labels();
    let of = |mode: &str, p: &[f32]| ModeCalibration {
        mode: mode.to_string(),
        calibration: calibration(p, labels, bins),
    };
    let Some(net) = model.spike_slab() else {
        let p = probabilities(test, device, &|x, _| model.forward(x, Noise::Off));
        return vec![of("network", &p)];
    };
    let evaluation = seed.stream(Stream::Evaluation).child(0);
    let mean_field = probabilities(test, device, &|x, chunk| {
        net.forward(x, Noise::Sampled(evaluation.child(chunk as u64)))
    });
    let mean_network = probabilities(test, device, &|x, _| net.forward(x, Noise::Off));
    let members = member_probabilities(model, test, Mode::Ensemble, samples, seed, device);
    let mut ensemble = vec![0f32; members[0].len()];
    for m in &members {
        for (e, &p) in ensemble.iter_mut().zip(m) {
            *e += p / members.len() as f32;
        }
    }
    vec![
        of("mean-field", &mean_field),
        of("mean network", &mean_network),
        of("one sampled network", &members[0]),
        of(&format!("{samples}-ensemble"), &ensemble),
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
        let members = member_probabilities(model, images, Mode::Ensemble, samples, seed, device);
        predictions(&members, images.len())
    };
    let (a, b) = (predicted(test), predicted(outside));
    let mut scores: Vec<(&str, UncertaintyScore)> = vec![
        ("predictive entropy", |p| p.predictive_entropy),
        ("max-softmax", |p| {
            1.0 - f64::from(p.probabilities.iter().copied().fold(0.0f32, f32::max))
        }),
    ];
    if model.spike_slab().is_some() {
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

/// One number per prediction, higher for inputs less like the training data.
type UncertaintyScore = fn(&Prediction) -> f64;

/// What `credit predict` is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictOptions {
    /// Which members predict.
    pub mode: Mode,
    /// Members of an ensemble or of mean-field passes.
    pub samples: usize,
    /// Seed of the members.
    pub seed: u64,
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
        options.samples >= 1 || options.mode == Mode::MeanNetwork,
        "--samples must be at least 1"
    );
    credit_train::compute(|| {
        let config = run.config()?;
        let device = backend.device()?;
        let model = run.load_model(&config, &device, options.epoch)?;
        let features = config.model.sizes[0];
        let inputs = credit_data::load_inputs(input, features, options.invert)?;
        let images = inputs.images.with_scale(config.data.pixel_scale);
        let seed = Seed::new(options.seed);
        let members = member_probabilities(
            &model,
            &images,
            options.mode,
            options.samples,
            seed,
            &device,
        );
        let predictions = predictions(&members, images.len())
            .into_iter()
            .zip(inputs.names)
            .map(|(prediction, input)| NamedPrediction { input, prediction })
            .collect();
        Ok(PredictReport {
            run: run.path().display().to_string(),
            mode: options.mode,
            members: members.len(),
            conversion: credit_data::RESIZE_METHOD.to_string(),
            predictions,
        })
    })
}

/// Writes predictions as CSV (`.csv`: one row per image, the probabilities as columns
/// `p0`, `p1`, ...) or JSON (`.json`), atomically.
///
/// # Errors
/// If the extension is neither, or the file cannot be written.
pub fn write_predictions(report: &PredictReport, path: &std::path::Path) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => credit_train::write_json(path, report),
        Some("csv") => {
            let classes = report
                .predictions
                .first()
                .map_or(0, |p| p.prediction.probabilities.len());
            let mut csv = String::from(
                "input,predicted,predictive_entropy,expected_entropy,mutual_information,agreement",
            );
            for c in 0..classes {
                let _ = write!(csv, ",p{c}");
            }
            csv.push('\n');
            for p in &report.predictions {
                let q = &p.prediction;
                let name = p.input.replace('"', "\"\"");
                // `{:?}`: shortest round-trip form, with an exponent for tiny values.
                let _ = write!(
                    csv,
                    "\"{name}\",{},{:?},{:?},{:?},{:?}",
                    q.predicted,
                    q.predictive_entropy,
                    q.expected_entropy,
                    q.mutual_information,
                    q.agreement
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
