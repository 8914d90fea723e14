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

/// The memory this process may use now: Linux's `MemAvailable`, or the limit of its cgroup
/// (a SLURM job's `--mem`, a container's limit) if that is lower; `None` if neither is known.
pub fn available_bytes() -> Option<u128> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    // cgroup v2 (`max` means no limit), then v1.
    let limit = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| {
        std::fs::read_to_string(path)
            .ok()?
            .trim()
            .parse::<u128>()
            .ok()
    });
    match (machine, limit) {
        (Some(m), Some(l)) => Some(m.min(l)),
        (m, l) => m.or(l),
    }
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
    let needed = training_bytes(sizes, rows, float_bytes);
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
