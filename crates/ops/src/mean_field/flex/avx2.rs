//! The blocked gather and scatter (`blocks.rs`) with AVX2 and FMA, for CPUs without AVX-512
//! (an AMD EPYC, Zen 3, here). On that CPU the portable loops, compiled for AVX2, stored
//! and reloaded their outputs once per four nonzeros and read the dense operand's rows from
//! L3; the paper's net spent 30% of its training profile in them.

use std::arch::x86_64::*;

use super::blocks::{BlockKernels, Found};
use super::layout::Nonzeros;
use super::portable;

/// Lanes of an AVX2 vector of `f32`.
const LANES: usize = 8;

/// Output vectors kept in registers per pass: 7 for each of the pair, 14 of the 16
/// registers, the others for the two coefficients (the rows are read as the multiply-adds'
/// memory operands). Against 6, measured by the share of training profiles (perf, this
/// AMD EPYC): the paper's net's gather took 1.63 times the time of its dense products
/// instead of 1.94 (its 100 outputs are 13 vectors: 7 + 6 instead of 6 + 6 + 1), the wide
/// net's 1.45 instead of 1.49.
const TILE: usize = 7;

/// How many nonzeros ahead [`gather_tile`] prefetches rows.
const PREFETCH_DISTANCE: usize = 4;

/// Whether the CPU has AVX2 and FMA.
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// The AVX2 loops of the blocked gather and scatter.
pub(super) struct Avx2;

impl BlockKernels for Avx2 {
    const LANES: usize = LANES;
    const TILE: usize = TILE;

    unsafe fn collect(
        row: &[f32],
        second: Option<&[f32]>,
        found: &mut Nonzeros<f32>,
        at: usize,
    ) -> usize {
        // SAFETY: as this function's.
        unsafe { collect_nonzeros(row, second, found, at) }
    }

    unsafe fn tile<const V: usize>(
        sp: &mut [f32],
        sq: &mut [f32],
        p: &[f32],
        q: &[f32],
        found: Found,
        accumulate: bool,
        first: usize,
    ) {
        // SAFETY: as this function's.
        unsafe { gather_tile::<V>(sp, sq, p, q, found, accumulate, first) }
    }
}

/// For each 8-bit mask, the lanes whose bit is set, in order, then zeros: the permutation
/// that packs a vector's selected lanes to its front (AVX2 has no compress instruction).
const COMPRESS: [[i32; LANES]; 256] = {
    let mut table = [[0; LANES]; 256];
    let mut mask = 0;
    while mask < 256 {
        let (mut lane, mut to) = (0, 0);
        while lane < LANES {
            if mask & (1 << lane) != 0 {
                table[mask][to] = lane as i32;
                to += 1;
            }
            lane += 1;
        }
        mask += 1;
    }
    table
};

/// See [`BlockKernels::collect`]: 8 entries at a time, the nonzero lanes packed to the
/// front by a permutation from [`COMPRESS`] and stored whole (the next store overwrites
/// the lanes past them), the rest of the row as the portable loop does it. Nonzero means
/// what the portable loop's `!=` means: NaN counts.
///
/// # Safety
/// As [`BlockKernels::collect`], with AVX2.
#[target_feature(enable = "avx2,fma")]
unsafe fn collect_nonzeros(
    row: &[f32],
    second: Option<&[f32]>,
    found: &mut Nonzeros<f32>,
    at: usize,
) -> usize {
    debug_assert!(found.indices.len() >= at + row.len() + LANES);
    assert!(second.is_none_or(|t| t.len() == row.len()));
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let zero = _mm256_setzero_ps();
    let whole = row.len() / LANES * LANES;
    let mut count = 0;
    for start in (0..whole).step_by(LANES) {
        // SAFETY: the loads read 8 entries from `start`, inside `row` and `second` (as long
        // as `row`); the stores write 8 entries at `at + count <= at + start`, inside the
        // `at + row.len() + 16` of each buffer.
        count += unsafe {
            let x = _mm256_loadu_ps(row.as_ptr().add(start));
            let y = match second {
                Some(t) => _mm256_loadu_ps(t.as_ptr().add(start)),
                None => _mm256_mul_ps(x, x),
            };
            let nonzero = _mm256_or_ps(
                _mm256_cmp_ps::<_CMP_NEQ_UQ>(x, zero),
                _mm256_cmp_ps::<_CMP_NEQ_UQ>(y, zero),
            );
            let mask = _mm256_movemask_ps(nonzero) as usize;
            let pack = _mm256_loadu_si256(COMPRESS[mask].as_ptr().cast());
            let positions = _mm256_add_epi32(lanes, _mm256_set1_epi32(start as i32));
            let to = at + count;
            _mm256_storeu_ps(
                found.first.as_mut_ptr().add(to),
                _mm256_permutevar8x32_ps(x, pack),
            );
            _mm256_storeu_ps(
                found.second.as_mut_ptr().add(to),
                _mm256_permutevar8x32_ps(y, pack),
            );
            _mm256_storeu_si256(
                found.indices.as_mut_ptr().add(to).cast(),
                _mm256_permutevar8x32_epi32(positions, pack),
            );
            mask.count_ones() as usize
        };
    }
    let rest = portable::collect_nonzeros_at(
        &row[whole..],
        second.map(|t| &t[whole..]),
        found,
        at + count,
    );
    for index in &mut found.indices[at + count..at + count + rest] {
        *index += whole as u32;
    }
    count + rest
}

/// The mask of the first `n` (at most 8) lanes, for `_mm256_maskload_ps`.
#[target_feature(enable = "avx2")]
fn first_lanes(n: usize) -> __m256i {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes)
}

/// See [`BlockKernels::tile`]: columns `8 · first` onwards (`V` vectors) of one row. The
/// tile's last vector is masked where the row ends inside it; the others are whole.
///
/// # Safety
/// As [`BlockKernels::tile`], with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn gather_tile<const V: usize>(
    sp: &mut [f32],
    sq: &mut [f32],
    p: &[f32],
    q: &[f32],
    found: Found,
    accumulate: bool,
    first: usize,
) {
    let width = sp.len();
    let offset = first * LANES;
    // Lanes of the tile's last vector inside the row (1 to 8).
    let last_lanes = width - offset - (V - 1) * LANES;
    let partial = last_lanes < LANES;
    let mask = first_lanes(last_lanes);
    // SAFETY (both closures): vector `v` of the tile starts at column `offset + 8v`, below
    // `width`; whole vectors end at or before `width`, and the last one, if partial, reads
    // and writes only its lanes inside the row.
    let load = |row: *const f32, v: usize| unsafe {
        if partial && v == V - 1 {
            _mm256_maskload_ps(row.add(v * LANES), mask)
        } else {
            _mm256_loadu_ps(row.add(v * LANES))
        }
    };
    let store = |row: *mut f32, v: usize, value: __m256| unsafe {
        if partial && v == V - 1 {
            _mm256_maskstore_ps(row.add(v * LANES), mask, value)
        } else {
            _mm256_storeu_ps(row.add(v * LANES), value)
        }
    };
    // SAFETY: column `offset` lies inside `sp` and `sq`.
    let (out_p, out_q) = unsafe { (sp.as_mut_ptr().add(offset), sq.as_mut_ptr().add(offset)) };
    let mut acc_p = [_mm256_setzero_ps(); V];
    let mut acc_q = [_mm256_setzero_ps(); V];
    if accumulate {
        for v in 0..V {
            acc_p[v] = load(out_p, v);
            acc_q[v] = load(out_q, v);
        }
    }
    let values = found.first.iter().zip(found.second);
    for (j, (&k, (&x, &y))) in found.indices.iter().zip(values).enumerate() {
        if let Some(&ahead) = found.indices.get(j + PREFETCH_DISTANCE) {
            let start = ahead as usize * width + offset;
            // One prefetch per 64-byte line, two vectors.
            for v in (0..V).step_by(2) {
                // Prefetches never fault; the addresses stay inside the row anyway.
                let at = start + v * LANES;
                _mm_prefetch::<_MM_HINT_T0>(p.as_ptr().wrapping_add(at).cast());
                _mm_prefetch::<_MM_HINT_T0>(q.as_ptr().wrapping_add(at).cast());
            }
        }
        let (x, y) = (_mm256_set1_ps(x), _mm256_set1_ps(y));
        let start = k as usize * width + offset;
        // SAFETY: row `k` of `p` and `q` lies inside them, `width` long.
        let (row_p, row_q) = unsafe { (p.as_ptr().add(start), q.as_ptr().add(start)) };
        for v in 0..V {
            acc_p[v] = _mm256_fmadd_ps(load(row_p, v), x, acc_p[v]);
            acc_q[v] = _mm256_fmadd_ps(load(row_q, v), y, acc_q[v]);
        }
    }
    for v in 0..V {
        store(out_p, v, acc_p[v]);
        store(out_q, v, acc_q[v]);
    }
}
