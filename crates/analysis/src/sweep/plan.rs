//! The plan of a sweep: every run, with its exact configuration, in `plan.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use credit_train::files::{read_json, write_json};
use credit_train::{ModelKind, RunConfig, RunDir, split_override};
use serde::{Deserialize, Serialize};

use crate::analyze::AnalysisConfig;

/// The version of the plan layout this build writes and reads.
const FORMAT: u32 = 1;

/// The plan file inside a sweep folder.
pub const PLAN_FILE: &str = credit_train::files::SWEEP_PLAN_FILE;

/// What a sweep folder holds: a sweep of one config, or the experiments of
/// `credit reproduce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanKind {
    /// `credit sweep`.
    Sweep,
    /// `credit reproduce`.
    Reproduce,
}

/// Every run of a sweep, in index order: the single source of truth for running it (locally
/// or as a job array), reporting on it and resuming it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPlan {
    /// The plan layout's version.
    pub format: u32,
    /// What the sweep is.
    pub kind: PlanKind,
    /// The swept key the figures are against (the first one swept), or `setting`.
    pub x_label: String,
    /// The analysis settings of every spike-and-slab run.
    pub analysis: AnalysisConfig,
    /// The runs.
    pub runs: Vec<SweepRun>,
}

impl SweepPlan {
    /// The plan of `credit sweep --config CONFIG --set ... --seeds S`: see [`plan`]; each
    /// run's configuration is `CONFIG` with its overrides, and a relative `data.dir` is made
    /// absolute (from the working directory), so that the plan runs from anywhere.
    ///
    /// # Errors
    /// As [`plan`], or if a run's configuration is not valid (naming the run).
    pub fn sweep(
        config: &Path,
        sets: &[String],
        seeds: usize,
        baseline: bool,
        analysis: AnalysisConfig,
    ) -> Result<Self> {
        let mut runs = plan(sets, seeds, baseline)?;
        for run in &mut runs {
            run.config = resolved(config, &run.overrides)
                .with_context(|| format!("sweep run {}", run.name))?;
        }
        let x_label = swept_keys(sets)?
            .first()
            .cloned()
            .unwrap_or_else(|| "setting".to_string());
        let plan = Self {
            format: FORMAT,
            kind: PlanKind::Sweep,
            x_label,
            analysis: resolved_analysis(analysis),
            runs,
        };
        plan.validate()?;
        plan.check_resources()?;
        Ok(plan)
    }

    /// Checks the plan: runs numbered by position, folders relative, without `.` or `..`,
    /// distinct and none inside another, every configuration valid.
    ///
    /// # Errors
    /// The first run that is not, by index and folder.
    pub fn validate(&self) -> Result<()> {
        let mut names: Vec<(&str, usize)> = Vec::new();
        for (position, run) in self.runs.iter().enumerate() {
            let what = format!("run {position} ({:?})", run.name);
            if run.index != position {
                bail!("{what}: its index is {}, not its position", run.index);
            }
            let path = Path::new(&run.name);
            let plain = !run.name.is_empty()
                && path.is_relative()
                && path
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !plain {
                bail!("{what}: a run folder must be a relative path without . or ..");
            }
            run.config
                .validate()
                .with_context(|| format!("{what}: its configuration"))?;
            // The entry's own fields say what its configuration trains.
            if run.kind != run.config.model.kind || run.seed != run.config.seed {
                bail!(
                    "{what}: its kind ({}) and seed ({}) differ from its configuration's model.kind ({}) and seed ({})",
                    run.kind.name(),
                    run.seed,
                    run.config.model.kind.name(),
                    run.config.seed
                );
            }
            names.push((&run.name, position));
        }
        // The same configuration twice: a value listed twice (`500,500`, `0.01,0.010`).
        for (j, later) in self.runs.iter().enumerate() {
            if let Some(earlier) = self.runs[..j].iter().find(|r| r.config == later.config) {
                bail!(
                    "runs {} ({}) and {j} ({}) would train the same configuration: settings {:?} and {:?} are equal values; list each value once",
                    earlier.index,
                    earlier.name,
                    later.name,
                    earlier.setting,
                    later.setting
                );
            }
        }
        // Sorted by path components, a folder comes right before the folders inside it.
        names.sort_by(|(a, _), (b, _)| Path::new(a).cmp(Path::new(b)));
        for pair in names.windows(2) {
            let ((a, i), (b, j)) = (pair[0], pair[1]);
            if a == b || Path::new(b).starts_with(a) {
                bail!(
                    "runs {i} and {j} would share the folder {a:?}: settings that differ only in characters a folder name cannot hold"
                );
            }
        }
        Ok(())
    }

    /// Checks what a new plan needs from this machine before its first run trains: every
    /// run's network and batch fit in the memory available now (with the rows training
    /// uses: a batch, or a chunk of test images if that is larger), and the analysis's
    /// out-of-distribution data exists. Not checked when a plan is read back (a task, a
    /// status or a report on another node or later): each run checks its own at its start.
    ///
    /// # Errors
    /// The first run that cannot fit, by index and folder, or the missing data.
    pub fn check_resources(&self) -> Result<()> {
        for (position, run) in self.runs.iter().enumerate() {
            let (train, data) = (&run.config.train, &run.config.data);
            let batch = match data.train_size {
                0 => train.batch_size,
                images => train.batch_size.min(images),
            };
            let eval = match data.test_size {
                0 => credit_train::EVAL_ROWS,
                images => credit_train::EVAL_ROWS.min(images),
            };
            credit_train::memory::check_training_fits(
                &run.config.model.sizes,
                batch.max(eval),
                train.precision.bytes(),
                &format!(
                    "run {position} ({:?}): model.sizes = {:?} with train.batch_size = {}",
                    run.name, run.config.model.sizes, train.batch_size
                ),
            )?;
        }
        // Every run's data holds the images it asks for (each source read once).
        let mut counts: Vec<(credit_data::Source, usize, usize)> = Vec::new();
        for (position, run) in self.runs.iter().enumerate() {
            let source = run.config.data_source();
            let (train, test) = match counts.iter().find(|(s, _, _)| *s == source) {
                Some(&(_, train, test)) => (train, test),
                None => {
                    let splits = credit_data::load(&source).with_context(|| {
                        format!(
                            "run {position} ({:?}): cannot load the data in {}",
                            run.name,
                            source.location.display()
                        )
                    })?;
                    let (train, test) = (splits.train.len(), splits.test.len());
                    counts.push((source, train, test));
                    (train, test)
                }
            };
            credit_train::check_data_sizes(&run.config, train, test)
                .with_context(|| format!("run {position} ({:?})", run.name))?;
        }
        if let Some(ood) = &self.analysis.ood {
            ensure!(
                ood.exists(),
                "the analysis's out-of-distribution data {} does not exist",
                ood.display()
            );
        }
        Ok(())
    }

    /// Writes the plan into `dir`, or checks that the plan already there is this one.
    ///
    /// # Errors
    /// If `dir` holds another plan (naming it), or cannot be written.
    pub fn write_or_check(&self, dir: &Path) -> Result<()> {
        let path = dir.join(PLAN_FILE);
        if path.is_file() {
            let existing = Self::load(dir)?;
            if existing != *self {
                bail!(
                    "{} holds the plan of another sweep ({}): continue that one with --dir {}, or choose another --out",
                    dir.display(),
                    path.display(),
                    dir.display()
                );
            }
            return Ok(());
        }
        write_json(&path, self)
    }

    /// The plan in `dir`.
    ///
    /// # Errors
    /// If there is none, or it is not a plan of this version.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(PLAN_FILE);
        if !path.is_file() {
            bail!(
                "{} holds no sweep plan ({PLAN_FILE}); make one with `credit sweep --config ... --out {}`",
                dir.display(),
                dir.display()
            );
        }
        let plan: Self = read_json(&path)?;
        if plan.format != FORMAT {
            bail!(
                "{}: plan layout {}, this build reads {FORMAT}",
                path.display(),
                plan.format
            );
        }
        plan.validate()
            .with_context(|| format!("{}", path.display()))?;
        plan.check_against_runs(dir)
            .with_context(|| format!("{}", path.display()))?;
        Ok(plan)
    }

    /// Checks every entry of the plan against the `config.toml` of its run folder, where the
    /// run has started: a plan edited after its runs trained (another kind, seed, number of
    /// epochs, ...) would otherwise report runs as what they are not. Only `data.dir` and
    /// `data.path` may differ (data moved with the sweep).
    ///
    /// # Errors
    /// The first run that differs, by index and folder, with the keys and both values.
    pub fn check_against_runs(&self, dir: &Path) -> Result<()> {
        for (index, planned) in self.runs.iter().enumerate() {
            let run = self.run_dir(dir, index);
            if !run.exists() {
                continue;
            }
            let trained = run.config()?;
            let differences: Vec<String> = planned
                .config
                .differences(&trained)
                .into_iter()
                .filter(|(key, _, _)| key != "data.dir" && key != "data.path")
                .map(|(key, run, plan)| format!("{key} (plan {plan}, run {run})"))
                .collect();
            if !differences.is_empty() {
                bail!(
                    "run {index} ({:?}) differs from the configuration its folder was trained with, {}: {}. The plan was edited after the run started: restore plan.json, or move the run folder away to train it anew",
                    planned.name,
                    run.file("config.toml").display(),
                    differences.join(", ")
                );
            }
        }
        Ok(())
    }

    /// The run directory of run `index`.
    ///
    /// # Panics
    /// If there is no such run.
    pub fn run_dir(&self, dir: &Path, index: usize) -> RunDir {
        RunDir::new(dir.join(&self.runs[index].name))
    }
}

/// `config` with `overrides`, `data.dir` and `data.path` made absolute.
pub(crate) fn resolved(config_path: &Path, overrides: &[String]) -> Result<RunConfig> {
    let mut config = RunConfig::load(config_path, overrides)?;
    anyhow::ensure!(
        config.model.kind != credit_train::ModelKind::SpikeSlabRnn,
        "{}: sweeps and reproductions train feed-forward networks and their baseline; train recurrent runs (model.kind = \"spike-slab-rnn\") one by one with credit train",
        config_path.display()
    );
    config.data.dir = absolute(&config.data.dir);
    config.data.path = config.data.path.as_deref().map(absolute);
    Ok(config)
}

/// `analysis` with its out-of-distribution path made absolute, so that tasks run from any
/// folder (a job array's working directory) find it.
pub(crate) fn resolved_analysis(mut analysis: AnalysisConfig) -> AnalysisConfig {
    analysis.ood = analysis.ood.as_deref().map(absolute);
    analysis
}

/// `path` from the working directory, if it is relative.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// One training run of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRun {
    /// Its index in the plan (a job array's task id).
    pub index: usize,
    /// Path of the run below the sweep folder, e.g. `data.train_size=20000/seed1/spike-slab`.
    pub name: String,
    /// The experiment it belongs to (`credit reproduce`: a protocol, or a protocol's
    /// training-size sweep); empty in a plain sweep.
    pub group: String,
    /// The setting, e.g. `data.train_size=20000` (`base` when nothing is swept).
    pub setting: String,
    /// Abscissa of the setting in figures: the first swept value if numeric, else its index.
    pub x: f64,
    /// Seed.
    pub seed: u64,
    /// Network trained.
    pub kind: ModelKind,
    /// `--set` overrides of this run, seed and kind included.
    pub overrides: Vec<String>,
    /// The exact configuration it trains (`data.dir` absolute).
    pub config: RunConfig,
}

/// Splits `a,b,[c,d]` at the commas outside brackets and quotes.
fn split_values(raw: &str) -> Vec<String> {
    let mut values = Vec::new();
    let (mut depth, mut quoted, mut current) = (0i32, false, String::new());
    for c in raw.chars() {
        match c {
            '"' | '\'' => quoted = !quoted,
            '[' | '{' if !quoted => depth += 1,
            ']' | '}' if !quoted => depth -= 1,
            ',' if depth == 0 && !quoted => {
                values.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    values.push(current.trim().to_string());
    values
}

/// The keys of `sets` that are swept (`key=v1,v2,...`), in order: the first is the abscissa
/// of the sweep's figures.
///
/// # Errors
/// As [`plan`].
pub fn swept_keys(sets: &[String]) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    for set in sets {
        let (key, raw) = split_override(set)?;
        if split_values(raw).len() > 1 {
            keys.push(key.to_string());
        }
    }
    Ok(keys)
}

/// Every run of a sweep: the product of the swept values (`key=v1,v2,...`; a single value is
/// a plain override), `seeds` seeds (0, 1, ...) and the spike-and-slab model plus, with
/// `baseline`, the deterministic one; their `config` is left at its default (see
/// [`SweepPlan::sweep`]).
///
/// # Errors
/// If a `--set` is not `key=value` or has an empty value, or `seeds` is 0.
pub fn plan(sets: &[String], seeds: usize, baseline: bool) -> Result<Vec<SweepRun>> {
    if seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let mut fixed = Vec::new();
    let mut axes: Vec<(String, Vec<String>)> = Vec::new();
    for set in sets {
        let (key, raw) = split_override(set)?;
        match key {
            "seed" => bail!("--set {set:?}: a sweep's seeds are 0, 1, ...: use --seeds N"),
            "model.kind" => bail!(
                "--set {set:?}: a sweep trains the spike-and-slab model and its deterministic baseline; --no-baseline leaves the baseline out"
            ),
            _ => {}
        }
        let values = split_values(raw);
        if values.iter().any(String::is_empty) {
            bail!("--set {set:?} has an empty value");
        }
        if values.len() == 1 {
            fixed.push(set.clone());
        } else {
            axes.push((key.trim().to_string(), values));
        }
    }
    let mut settings: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (key, values) in &axes {
        settings = settings
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut s = prefix.clone();
                    s.push((key.clone(), v.clone()));
                    s
                })
            })
            .collect();
    }
    let kinds: &[ModelKind] = if baseline {
        &[ModelKind::SpikeSlab, ModelKind::Deterministic]
    } else {
        &[ModelKind::SpikeSlab]
    };
    let mut runs = Vec::new();
    for (index, setting) in settings.iter().enumerate() {
        let label = if setting.is_empty() {
            "base".to_string()
        } else {
            setting
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let x = setting
            .first()
            .and_then(|(_, v)| v.parse::<f64>().ok())
            .unwrap_or(index as f64);
        let folder: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "=._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        for seed in 0..seeds as u64 {
            for &kind in kinds {
                let kind_name = kind.name();
                let mut overrides = fixed.clone();
                overrides.extend(setting.iter().map(|(k, v)| format!("{k}={v}")));
                overrides.push(format!("seed={seed}"));
                overrides.push(format!("model.kind={kind_name}"));
                runs.push(SweepRun {
                    index: runs.len(),
                    group: String::new(),
                    config: RunConfig::default(),
                    name: format!("{folder}/seed{seed}/{kind_name}"),
                    setting: label.clone(),
                    x,
                    seed,
                    kind,
                    overrides,
                });
            }
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_is_the_product_of_settings_seeds_and_models() {
        let runs = plan(
            &[
                "data.train_size=10000,20000".into(),
                "train.epochs=5".into(),
                "model.sizes=[784,10],[784,30,10]".into(),
            ],
            3,
            true,
        )
        .unwrap();
        assert_eq!(runs.len(), 2 * 2 * 3 * 2);
        let first = &runs[0];
        assert_eq!(first.setting, "data.train_size=10000 model.sizes=[784,10]");
        assert_eq!(first.x, 10000.0);
        assert_eq!(
            first.overrides,
            [
                "train.epochs=5",
                "data.train_size=10000",
                "model.sizes=[784,10]",
                "seed=0",
                "model.kind=spike-slab"
            ]
        );
        assert_eq!(
            first.name,
            "data.train_size=10000_model.sizes=_784_10_/seed0/spike-slab"
        );
        assert_eq!(runs[1].kind, ModelKind::Deterministic);
        assert!(plan(&["a=1,".into()], 1, false).is_err());
        assert!(plan(&[], 0, false).is_err());
        assert_eq!(
            plan(&[], 2, false).unwrap()[1].name,
            "base/seed1/spike-slab"
        );
    }
}
