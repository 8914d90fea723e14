//! Exporting a run's parameters for numpy and PyTorch: safetensors or npz.
//!
//! Tensor names: `layer{L}.m`, `layer{L}.xi`, `layer{L}.pi` (spike-and-slab), or
//! `layer{L}.weight` (deterministic and pruned networks); every tensor is float32
//! `[d_output, d_input]`, layers numbered from 1 at the input. A layer computes
//! `h = a @ weight.T / sqrt(d_input)`, ReLU between layers.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use credit_train::{BackendKind, Classifier, RunDir, load_data, set_accuracy_pct, write_atomic};
use serde::{Deserialize, Serialize};

use crate::params::{LayerParams, deterministic_weights, to_network};

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// `safetensors` (PyTorch: `safetensors.torch.load_file`).
    Safetensors,
    /// numpy's `.npz` (`numpy.load`), uncompressed.
    Npz,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "safetensors" => Ok(Self::Safetensors),
            "npz" => Ok(Self::Npz),
            other => Err(format!("unknown format `{other}` (safetensors, npz)")),
        }
    }
}

/// A named float32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

/// Tensors by name, in name order.
pub type TensorSet = BTreeMap<String, NamedTensor>;

/// `m`, `xi`, `pi` of every layer.
pub fn spike_slab_tensors(params: &[LayerParams]) -> TensorSet {
    let mut set = TensorSet::new();
    for (l, p) in params.iter().enumerate() {
        for (name, values) in [("m", &p.m), ("xi", &p.xi), ("pi", &p.pi)] {
            set.insert(
                format!("layer{}.{name}", l + 1),
                NamedTensor {
                    shape: vec![p.d_output, p.d_input],
                    values: values.clone(),
                },
            );
        }
    }
    set
}

/// The pruned deterministic network: expected weights `(1 - pi) m`, which are zero wherever
/// `pi = 1` (unimportant connections dropped).
pub fn pruned_tensors(params: &[LayerParams]) -> TensorSet {
    params
        .iter()
        .enumerate()
        .map(|(l, p)| {
            let values = p.mean_weights();
            (
                format!("layer{}.weight", l + 1),
                NamedTensor {
                    shape: vec![p.d_output, p.d_input],
                    values,
                },
            )
        })
        .collect()
}

/// Weights of a deterministic network, each `[d_output, d_input]`.
pub fn weight_tensors(weights: &[(Vec<usize>, Vec<f32>)]) -> TensorSet {
    weights
        .iter()
        .enumerate()
        .map(|(l, (shape, values))| {
            (
                format!("layer{}.weight", l + 1),
                NamedTensor {
                    shape: shape.clone(),
                    values: values.clone(),
                },
            )
        })
        .collect()
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Encodes tensors in a format, with string metadata (safetensors only; npz has none).
///
/// # Errors
/// If a tensor's shape does not match its values (safetensors) or an archive member cannot
/// be written.
pub fn encode(
    set: &TensorSet,
    format: ExportFormat,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    match format {
        ExportFormat::Safetensors => {
            let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = set
                .iter()
                .map(|(name, t)| (name.clone(), t.shape.clone(), le_bytes(&t.values)))
                .collect();
            let views = bytes
                .iter()
                .map(|(name, shape, data)| {
                    safetensors::tensor::TensorView::new(
                        safetensors::Dtype::F32,
                        shape.clone(),
                        data,
                    )
                    .map(|view| (name.clone(), view))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(safetensors::serialize(views, Some(metadata))?)
        }
        ExportFormat::Npz => {
            let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            for (name, t) in set {
                zip.start_file(format!("{name}.npy"), options)?;
                zip.write_all(&npy(t)?)?;
            }
            Ok(zip.finish()?.into_inner())
        }
    }
}

/// One array in numpy's `.npy` format (little-endian float32, C order), written by `npyz`.
fn npy(t: &NamedTensor) -> Result<Vec<u8>> {
    use npyz::WriterBuilder as _;
    let mut bytes = Vec::new();
    let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut bytes)
        .begin_nd()?;
    writer.extend(t.values.iter().copied())?;
    writer.finish()?;
    Ok(bytes)
}

/// Reads back a file written by [`encode`] (either format).
///
/// # Errors
/// If the file cannot be read, is neither a valid npz archive of float32 arrays nor a
/// safetensors file of F32 tensors, naming the file and the member.
pub fn decode(path: &Path) -> Result<TensorSet> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let from_le = |data: &[u8]| -> Vec<f32> {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    if bytes.starts_with(b"PK") {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .with_context(|| format!("{}: not a valid npz archive", path.display()))?;
        let mut set = TensorSet::new();
        for i in 0..archive.len() {
            let mut file = archive.by_index(i)?;
            let name = file.name()?.trim_end_matches(".npy").to_string();
            let mut data = Vec::new();
            file.read_to_end(&mut data)?;
            let array = npyz::NpyFile::new(&data[..])
                .with_context(|| format!("{}: member {name}: not an npy array", path.display()))?;
            let shape = array.shape().iter().map(|&d| d as usize).collect();
            let values = array.into_vec::<f32>().with_context(|| {
                format!("{}: member {name}: not float32 values", path.display())
            })?;
            set.insert(name, NamedTensor { shape, values });
        }
        Ok(set)
    } else {
        let tensors = safetensors::SafeTensors::deserialize(&bytes)
            .with_context(|| format!("{}: not a valid safetensors file", path.display()))?;
        let mut set = TensorSet::new();
        for (name, view) in tensors.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                bail!(
                    "{}: tensor {name} is {:?}, not F32",
                    path.display(),
                    view.dtype()
                );
            }
            set.insert(
                name,
                NamedTensor {
                    shape: view.shape().to_vec(),
                    values: from_le(view.data()),
                },
            );
        }
        Ok(set)
    }
}

/// What [`export_run`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportReport {
    /// The file written.
    pub path: PathBuf,
    /// The tensors' names, in name order.
    pub tensors: Vec<String>,
    /// For `--pruned`: the pruned network's test accuracy (percent), its non-zero weights and
    /// all its weights.
    pub pruned: Option<(f64, usize, usize)>,
}

/// Writes the parameters of the run in `run` as `format`: `m`, `xi`, `pi` of a spike-and-slab
/// run, the weights of a deterministic one, or with `pruned` the network of expected weights
/// `(1 - pi) m` (whose test accuracy it measures on `backend`). `out` defaults to
/// `RUN/export.EXT` or `RUN/pruned.EXT`.
///
/// # Errors
/// If the run is in use or cannot be loaded, `pruned` is asked of a deterministic run, or the
/// file cannot be written.
pub fn export_run(
    run: &RunDir,
    format: ExportFormat,
    pruned: bool,
    out: Option<PathBuf>,
    backend: BackendKind,
) -> Result<ExportReport> {
    let _lock = run.lock_existing("credit export")?;
    credit_train::compute(|| export_here(run, format, pruned, out, backend))
}

fn export_here(
    run: &RunDir,
    format: ExportFormat,
    pruned: bool,
    out: Option<PathBuf>,
    backend: BackendKind,
) -> Result<ExportReport> {
    let extension = match format {
        ExportFormat::Safetensors => "safetensors",
        ExportFormat::Npz => "npz",
    };
    let stem = if pruned { "pruned" } else { "export" };
    let path = out.unwrap_or_else(|| run.file(&format!("{stem}.{extension}")));
    credit_train::files::check_output_file(&path, "--out", &[extension], &[])?;
    let config = run.config()?;
    let device = backend.device()?;
    let model = run.load_model(&config, &device, None)?;
    let mut metadata = HashMap::from([
        ("run".to_string(), run.path().display().to_string()),
        ("sizes".to_string(), format!("{:?}", config.model.sizes)),
        (
            "layer".to_string(),
            "h = a @ weight.T / sqrt(d_input), ReLU between layers, no biases".to_string(),
        ),
    ]);
    let mut pruned_report = None;
    let tensors = match (&model, pruned) {
        (Classifier::SpikeSlab(net), false) => {
            metadata.insert(
                "model".into(),
                "spike-slab: w = 0 w.p. pi, else N(m, xi)".into(),
            );
            spike_slab_tensors(&LayerParams::of(net))
        }
        (Classifier::SpikeSlab(net), true) => {
            let params = LayerParams::of(net);
            let tensors = pruned_tensors(&params);
            let total: usize = params.iter().map(LayerParams::len).sum();
            let nonzero: usize = params.iter().map(LayerParams::nonzero_mean_weights).sum();
            let data = load_data(&config)?;
            let network = to_network(&params, &device).mean_network();
            let accuracy = set_accuracy_pct(&data.test, &device, |x, _| network.forward(x));
            metadata.insert(
                "model".into(),
                "pruned: weight = (1-pi) m, 0 where pi = 1".into(),
            );
            metadata.insert("test_accuracy_pct".into(), format!("{accuracy:.4}"));
            metadata.insert("nonzero_weights".into(), nonzero.to_string());
            pruned_report = Some((accuracy, nonzero, total));
            tensors
        }
        (Classifier::Deterministic(net), false) => {
            metadata.insert("model".into(), "deterministic".into());
            weight_tensors(&deterministic_weights(net))
        }
        (Classifier::SpikeSlabRnn(net), pruned) => {
            let params = LayerParams::of_layers(&net.matrices());
            let d = net.dynamics;
            metadata.insert(
                "layer".into(),
                format!(
                    "u_t = (recurrent.w @ r_(t-1) + input.w @ x_t){}, h_t = h_(t-1) + (u_t - h_(t-1)) / {}, r_t = relu(h_t), h_0 = {}; logits = readout.w @ r_T{}",
                    match d.scaling {
                        credit_model::RnnScaling::None => "",
                        credit_model::RnnScaling::SqrtN => " / sqrt(n_rec + D)",
                    },
                    d.tau,
                    d.h0,
                    match d.scaling {
                        credit_model::RnnScaling::None => "",
                        credit_model::RnnScaling::SqrtN => " / sqrt(n_rec)",
                    },
                ),
            );
            let tensors = if pruned {
                let data = load_data(&config)?;
                let accuracy = set_accuracy_pct(&data.test, &device, |x, _| {
                    model.forward(x, credit_model::Noise::Off)
                });
                let total: usize = params.iter().map(LayerParams::len).sum();
                let nonzero: usize = params.iter().map(LayerParams::nonzero_mean_weights).sum();
                metadata.insert(
                    "model".into(),
                    "pruned recurrent: weight = (1-pi) m, 0 where pi = 1".into(),
                );
                metadata.insert("test_accuracy_pct".into(), format!("{accuracy:.4}"));
                metadata.insert("nonzero_weights".into(), nonzero.to_string());
                pruned_report = Some((accuracy, nonzero, total));
                pruned_tensors(&params)
            } else {
                metadata.insert(
                    "model".into(),
                    "spike-slab recurrent: w = 0 w.p. pi, else N(m, xi)".into(),
                );
                spike_slab_tensors(&params)
            };
            // Named by matrix: input.m, recurrent.xi, readout.weight, ...
            tensors
                .into_iter()
                .map(|(name, tensor)| {
                    let (layer, field) = name.split_once('.').expect("layerL.field");
                    let l: usize = layer["layer".len()..].parse().expect("a layer number");
                    (
                        format!("{}.{field}", crate::recurrent::MATRICES[l - 1]),
                        tensor,
                    )
                })
                .collect()
        }
        (Classifier::Deterministic(_), true) => bail!(
            "--pruned needs a spike-and-slab run; {} is deterministic",
            run.path().display()
        ),
    };
    write_atomic(&path, &encode(&tensors, format, metadata)?)?;
    Ok(ExportReport {
        path,
        tensors: tensors.keys().cloned().collect(),
        pruned: pruned_report,
    })
}
