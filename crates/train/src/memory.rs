//! Whether a configuration fits in memory, checked before anything is allocated: a typo in
//! `model.sizes` or `train.batch_size` must be an error naming the field, not an abort after
//! a multi-terabyte allocation.

use anyhow::{Result, bail};

/// Float32 values per parameter while training: `m`, `xi`, `pi`, their gradients and two
/// AdamW moments each, the transposed moments of the kernels and temporaries.
const VALUES_PER_PARAMETER: u128 = 20;

/// Float32 values per activation while training (forward values, squares, noise, slopes,
/// gradients).
const VALUES_PER_ACTIVATION: u128 = 12;

/// What training needs: bytes for parameters and optimizer state, and for the activations of
/// `rows` images at once, for a network of `sizes` in floats of `float_bytes` bytes. Computed
/// in 128 bits, saturating: it cannot overflow.
pub fn training_bytes(sizes: &[usize], rows: usize, float_bytes: u128) -> u128 {
    let parameters = sizes.windows(2).fold(0u128, |sum, w| {
        sum.saturating_add((w[0] as u128).saturating_mul(w[1] as u128))
    });
    let units = sizes
        .iter()
        .fold(0u128, |sum, &s| sum.saturating_add(s as u128));
    let activations = (rows as u128).saturating_mul(units);
    float_bytes.saturating_mul(
        VALUES_PER_PARAMETER
            .saturating_mul(parameters)
            .saturating_add(VALUES_PER_ACTIVATION.saturating_mul(activations)),
    )
}

/// [`training_bytes`] of a recurrent network of `sizes = [D, n_rec, classes]` on sequences
/// of `features` values (`T = features / D` steps): its three matrices; for a training
/// batch of `batch` rows, per step the activations of the concatenation `[r, x]` and of
/// the `n_rec` units, which BPTT keeps for every step; for an evaluation chunk of
/// `eval_rows` rows (no gradient: nothing kept from step to step), one step's. The larger
/// of the two passes counts.
pub fn recurrent_training_bytes(
    sizes: &[usize],
    features: usize,
    batch: usize,
    eval_rows: usize,
    float_bytes: u128,
) -> u128 {
    let [d, n_rec, classes] = sizes[..] else {
        return training_bytes(sizes, batch.max(eval_rows), float_bytes);
    };
    let (d, n_rec, classes) = (d as u128, n_rec as u128, classes as u128);
    let steps = features as u128 / d.max(1);
    let parameters = n_rec * (d + n_rec + classes);
    let per_step = 2 * n_rec + d;
    let trained = (features as u128)
        .saturating_add(steps.saturating_mul(per_step))
        .saturating_add(classes)
        .saturating_mul(batch as u128);
    let evaluated = (features as u128 + per_step + classes).saturating_mul(eval_rows as u128);
    float_bytes.saturating_mul(
        VALUES_PER_PARAMETER
            .saturating_mul(parameters)
            .saturating_add(VALUES_PER_ACTIVATION.saturating_mul(trained.max(evaluated))),
    )
}

/// The memory this process may use now: Linux's `MemAvailable`, or what its memory cgroup
/// (a SLURM job's `--mem`, a container's limit) leaves, if that is lower; `None` if neither is
/// known.
pub fn available_bytes() -> Option<u128> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|text| cgroup_available(&text, std::path::Path::new("/sys/fs/cgroup")));
    match (machine, cgroup) {
        (Some(m), Some(c)) => Some(m.min(c)),
        (m, c) => m.or(c),
    }
}

/// What the memory cgroup of a process leaves it: the least of `limit - usage` over its
/// cgroup and every parent up to the root (cgroup v2: `memory.max`, `memory.current`; v1:
/// `memory.limit_in_bytes`, `memory.usage_in_bytes`), from the process's `/proc/self/cgroup`
/// text and the cgroup mount `root`. A cgroup folder that is not visible (a container's
/// namespace) is looked for at the root. `None` where no limit is set.
fn cgroup_available(proc_self_cgroup: &str, root: &std::path::Path) -> Option<u128> {
    let read = |path: &std::path::Path| -> Option<u128> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    };
    let mut best: Option<u128> = None;
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (mount, limit, usage) = if controllers.is_empty() {
            (root.to_path_buf(), "memory.max", "memory.current")
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                root.join("memory"),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        } else {
            continue;
        };
        let own = mount.join(path.trim_start_matches('/'));
        let mut dir = if own.is_dir() { own } else { mount.clone() };
        loop {
            // "max" (v2) and v1's huge sentinel read as no limit.
            if let (Some(l), Some(u)) = (read(&dir.join(limit)), read(&dir.join(usage)))
                && l < 1 << 62
            {
                let left = l.saturating_sub(u);
                best = Some(best.map_or(left, |b| b.min(left)));
            }
            if dir == mount || !dir.pop() || !dir.starts_with(&mount) {
                break;
            }
        }
    }
    best
}

/// `bytes` for people: `512 MiB`, `3.2 TiB`.
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Fails if a network of `sizes` trained on `rows` images at once, in floats of
/// `float_bytes` bytes, needs more memory than the machine has available; `what` names the
/// settings in the error.
///
/// # Errors
/// If the estimate exceeds the available memory (where the available memory is known).
pub fn check_training_fits(
    sizes: &[usize],
    rows: usize,
    float_bytes: u128,
    what: &str,
) -> Result<()> {
    check_fits(training_bytes(sizes, rows, float_bytes), what)
}

/// Fails if `needed` bytes are more than the machine has available; `what` names the
/// settings in the error.
///
/// # Errors
/// If `needed` exceeds the available memory (where the available memory is known).
pub fn check_fits(needed: u128, what: &str) -> Result<()> {
    if let Some(available) = available_bytes()
        && needed > available
    {
        bail!(
            "{what} need about {} of memory to train, and this machine has {} available",
            human(needed),
            human(available)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recurrent_run_counts_every_step_of_its_batch_and_one_of_its_evaluation() {
        let rows = |d: usize| recurrent_training_bytes(&[d, 100, 10], 784, 128, 10_000, 4);
        // Pixel by pixel: 784 steps of 201 values for 128 sequences dominate.
        let pixel = rows(1);
        let per_step = 12 * 4 * 128 * 201;
        assert!(
            pixel > 784 * per_step && pixel < 2 * 784 * per_step,
            "{pixel}"
        );
        assert!(pixel < 2 << 30, "under 2 GiB: {pixel}");
        // 28 rows: the evaluation chunk of 10,000 sequences is the larger pass.
        assert_eq!(
            rows(28),
            4 * (20 * 100 * 138 + 12 * (784 + 228 + 10) * 10_000)
        );
    }

    #[test]
    fn the_cgroup_limit_is_that_of_the_process_own_group_and_its_parents() {
        let root = tempfile::tempdir().unwrap();
        let write = |dir: &str, limit: &str, usage: &str, names: (&str, &str)| {
            let dir = root.path().join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(names.0), limit).unwrap();
            std::fs::write(dir.join(names.1), usage).unwrap();
        };
        let v2 = ("memory.max", "memory.current");
        write("", "max", "0", v2);
        write("slurm", "8000", "1000", v2);
        write("slurm/job_7", "5000", "4000", v2);
        // The job's own group leaves 1000, its parent 7000.
        assert_eq!(
            cgroup_available("0::/slurm/job_7\n", root.path()),
            Some(1000)
        );
        // Not visible (another namespace): the mount's root, without a limit.
        assert_eq!(cgroup_available("0::/elsewhere\n", root.path()), None);
        let v1 = ("memory.limit_in_bytes", "memory.usage_in_bytes");
        write("memory", "9223372036854771712", "10", v1);
        write("memory/job", "3000", "500", v1);
        let text = "4:memory:/job\n1:cpu:/\n";
        assert_eq!(cgroup_available(text, root.path()), Some(2500));
    }

    #[test]
    fn the_paper_network_fits_and_absurd_sizes_do_not_overflow() {
        let paper = training_bytes(&[784, 100, 100, 10], 500, 4);
        assert!(paper < 64 << 20, "{}", human(paper));
        assert_eq!(training_bytes(&[784, 100, 100, 10], 500, 8), 2 * paper);
        let huge = training_bytes(&[784, 1_000_000_000, 10], 500, 4);
        assert!(huge > 1 << 40, "{}", human(huge));
        let widest = training_bytes(&[usize::MAX, usize::MAX], usize::MAX, 4);
        assert_eq!(widest, u128::MAX);
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
