//! A host product that skips the zeros of its left operand, for the analysis's carried
//! changes: when a few of a layer's connections change, the change of the layer's `relu`
//! output is zero on most (unit, image) pairs (4-34% nonzero on the 784-1000-1000-10 net's
//! perturbation curves), and the next layer's pre-activations need only its nonzeros.
//!
//! `gemm` has no sparse operand, and the mean-field kernels' gather (`mean_field::flex`)
//! computes two products at once from a row-major left operand; this one computes one, from
//! the left operand held transposed (one row per input, as the analysis holds a layer's
//! pre-activations), collecting each output row's nonzeros itself.

use rayon::prelude::*;

/// Output rows per task: their nonzeros are collected from 4 16-lane loads per input (256
/// contiguous bytes of a row of `s`), and a tile of `p`'s columns, once in a core's L2
/// cache, serves all of them.
const ROW_BLOCK: usize = 64;

/// The left operand `s` of [`sparse_product_into`], `[rows, inner]`, and how it is held.
#[derive(Clone, Copy, Debug)]
pub enum Left<'a> {
    /// Transposed: `[inner][rows]` row-major, one row per input (the analysis's
    /// pre-activations, test images held one row per pixel).
    Transposed(&'a [f32]),
    /// `[rows][inner]` row-major, one row per output row (activations image by image).
    RowMajor(&'a [f32]),
}

/// `dst[r] += scale · Σ_k s[r][k] · p[p_rows[k]]` over the nonzero `s[r][k]` (NaN counts
/// as nonzero), the terms of each element added in increasing `k`: `s` `[rows, inner]`
/// held either way ([`Left`]), `p` `[_, cols]`, `dst` `[rows, cols]`, both row-major;
/// `p_rows` `None` reads row `k` of `p` (then `[inner, cols]`). Blocks of rows are shared
/// among the caller's rayon threads; the result does not depend on their number.
///
/// The work is `nonzeros(s) · cols` multiply-adds, against `rows · inner · cols` for the
/// dense product.
///
/// The AVX-512 loops fuse each multiply-add, the portable ones round the product first, so
/// the two builds may differ in the last bits.
///
/// # Panics
/// If `s` or `dst` is not the length `sizes = [rows, inner, cols]` gives it, or `p_rows` is
/// not `inner` long; for a nonempty `dst`, if `p` is not whole rows of `cols` (`inner` of
/// them without `p_rows`, at most 2³² in any case) or `p_rows` names a row outside it.
pub fn sparse_product_into(
    dst: &mut [f32],
    s: Left,
    p: &[f32],
    p_rows: Option<&[usize]>,
    [rows, inner, cols]: [usize; 3],
    scale: f32,
) {
    let (s, row_major) = match s {
        Left::Transposed(s) => (s, false),
        Left::RowMajor(s) => (s, true),
    };
    assert!(s.len() == inner * rows, "sparse product: left operand size");
    assert!(dst.len() == rows * cols, "sparse product: destination size");
    assert!(
        p_rows.is_none_or(|p_rows| p_rows.len() == inner),
        "sparse product: rows of the right operand"
    );
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        p.len().is_multiple_of(cols) && u32::try_from(p.len() / cols).is_ok(),
        "sparse product: right operand size"
    );
    let index: Vec<u32> = match p_rows {
        None => {
            assert!(
                p.len() == inner * cols,
                "sparse product: right operand size"
            );
            (0..inner as u32).collect()
        }
        Some(p_rows) => {
            assert!(
                p_rows.iter().all(|&k| k < p.len() / cols),
                "sparse product: rows of the right operand"
            );
            p_rows.iter().map(|&k| k as u32).collect()
        }
    };
    if inner == 0 {
        return;
    }
    let block = block_on_this_cpu();
    let operands = Operands {
        s,
        row_major,
        index: &index,
        p,
        rows,
        cols,
        scale,
    };
    dst.par_chunks_mut(ROW_BLOCK * cols)
        .enumerate()
        .for_each(|(b, dst)| {
            LISTS.with_borrow_mut(|lists| {
                lists.make_room(inner);
                block(lists, dst, &operands, b * ROW_BLOCK);
            });
        });
}

/// What every block of [`sparse_product_into`] reads: `s` (`[index.len(), rows]`, or
/// `[rows, index.len()]` if `row_major`), `p`'s rows `index[k]` (`cols` long), and the scale.
struct Operands<'a> {
    s: &'a [f32],
    row_major: bool,
    index: &'a [u32],
    p: &'a [f32],
    rows: usize,
    cols: usize,
    scale: f32,
}

thread_local! {
    /// Each thread's lists, kept from call to call: 512 kB for 1000 inputs, which a new
    /// allocation per task would map and fault in again.
    static LISTS: std::cell::RefCell<Lists> = std::cell::RefCell::new(Lists::new(0));
}

/// One block of output rows, `dst` (`[count, cols]`, from row `first`), of
/// [`sparse_product_into`]: its nonzeros collected into `lists`, then accumulated.
type Block = fn(&mut Lists, &mut [f32], &Operands, usize);

/// The AVX-512 loops where the CPU has them, else the portable ones.
fn block_on_this_cpu() -> Block {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return |lists, dst, operands, first| {
            // SAFETY: AVX-512F is available; `sparse_product_into` checked the lengths,
            // `lists` holds `inner` entries per row, rows `first..first + count` lie within
            // the `rows` of `s`, and every index collected names a row of `p`.
            unsafe {
                avx512::collect(lists, operands, first, dst.len() / operands.cols);
                avx512::accumulate(dst, lists, operands.p, operands.cols);
            }
        };
    }
    portable::block
}

/// The nonzeros of up to [`ROW_BLOCK`] output rows: for row `r`, `counts[r]` inputs `k`
/// and their coefficients (times the scale), from `r · inner` in `indices` and `values`.
struct Lists {
    inner: usize,
    counts: [usize; ROW_BLOCK],
    indices: Vec<u32>,
    values: Vec<f32>,
}

/// One row's nonzeros, in increasing input order.
#[derive(Clone, Copy)]
struct Row<'a> {
    indices: &'a [u32],
    values: &'a [f32],
}

impl Lists {
    fn new(inner: usize) -> Self {
        Self {
            inner,
            counts: [0; ROW_BLOCK],
            indices: vec![0; ROW_BLOCK * inner],
            values: vec![0.0; ROW_BLOCK * inner],
        }
    }

    /// Makes the lists hold `inner` inputs per row.
    fn make_room(&mut self, inner: usize) {
        self.inner = inner;
        self.indices.resize(ROW_BLOCK * inner, 0);
        self.values.resize(ROW_BLOCK * inner, 0.0);
    }

    /// Appends input row `p_row` with coefficient `value` to row `r`'s list.
    #[inline(always)]
    fn push(&mut self, r: usize, p_row: u32, value: f32) {
        let at = r * self.inner + self.counts[r];
        self.indices[at] = p_row;
        self.values[at] = value;
        self.counts[r] += 1;
    }

    fn row(&self, r: usize) -> Row<'_> {
        let start = r * self.inner;
        let end = start + self.counts[r];
        Row {
            indices: &self.indices[start..end],
            values: &self.values[start..end],
        }
    }
}

/// `y += a · x_j` for each `(j, a)` of `terms`, one term at a time in their order, where
/// `x_j = x[j · stride..][..y.len()]`: the analysis's changes of one unit's pre-activations
/// (`h += Δw · input_j`), each element rounded as `y + a · x` written out (not fused), so
/// that the sums are those of one change at a time.
pub type AddRows = fn(&mut [f32], &[f32], usize, &[(usize, f32)]);

/// [`AddRows`] with AVX-512 where this CPU has it (a tile of `y` held in registers across
/// the terms, so that each term reads one row of `x` and no `y`), else portable; both give
/// the same values.
///
/// # Panics
/// The function returned panics if a term's row reaches past the end of `x`.
pub fn add_rows() -> AddRows {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return |y, x, stride, terms| {
            check_rows(y, x, stride, terms);
            // SAFETY: AVX-512F is available, and `check_rows` checked that every row read
            // lies within `x`.
            unsafe { avx512::add_rows(y, x, stride, terms) }
        };
    }
    |y, x, stride, terms| {
        check_rows(y, x, stride, terms);
        portable::add_rows(y, x, stride, terms)
    }
}

/// Panics unless every term's row of `x` lies within it.
fn check_rows(y: &[f32], x: &[f32], stride: usize, terms: &[(usize, f32)]) {
    let last = terms.iter().map(|&(j, _)| j).max();
    if let Some(j) = last {
        let end = j
            .checked_mul(stride)
            .and_then(|start| start.checked_add(y.len()));
        assert!(
            end.is_some_and(|end| end <= x.len()),
            "add_rows: row {j} reaches past the end of x"
        );
    }
}

/// The loops for any CPU.
mod portable {
    use super::{Lists, Operands, Row};

    /// See [`super::Block`].
    pub(super) fn block(lists: &mut Lists, dst: &mut [f32], operands: &Operands, first: usize) {
        let cols = operands.cols;
        collect(lists, operands, first, dst.len() / cols);
        for (r, dst) in dst.chunks_exact_mut(cols).enumerate() {
            accumulate(dst, lists.row(r), operands.p);
        }
    }

    /// Fills `lists` with the nonzeros of rows `first..first + count` of the `[rows]`-wide
    /// rows of `s`, each with its row of `p`.
    pub(super) fn collect(lists: &mut Lists, operands: &Operands, first: usize, count: usize) {
        let &Operands {
            s,
            index,
            rows,
            scale,
            ..
        } = operands;
        let inner = lists.inner;
        lists.counts = [0; super::ROW_BLOCK];
        if operands.row_major {
            for r in 0..count {
                let row = &s[(first + r) * inner..(first + r + 1) * inner];
                for (k, &x) in row.iter().enumerate() {
                    if x != 0.0 {
                        lists.push(r, index[k], x * scale);
                    }
                }
            }
            return;
        }
        for (k, column) in s.chunks_exact(rows).enumerate() {
            for (r, &x) in column[first..first + count].iter().enumerate() {
                // NaN compares unequal too, and is kept.
                if x != 0.0 {
                    lists.push(r, index[k], x * scale);
                }
            }
        }
    }

    /// See [`super::AddRows`]; the rows lie within `x`.
    pub(super) fn add_rows(y: &mut [f32], x: &[f32], stride: usize, terms: &[(usize, f32)]) {
        let len = y.len();
        for &(j, a) in terms {
            let x = &x[j * stride..j * stride + len];
            y.iter_mut().zip(x).for_each(|(y, &x)| *y += a * x);
        }
    }

    /// `dst += Σ values[j] · p[indices[j]]`, in order.
    pub(super) fn accumulate(dst: &mut [f32], row: Row, p: &[f32]) {
        let cols = dst.len();
        for (&k, &x) in row.indices.iter().zip(row.values) {
            let p = &p[k as usize * cols..(k as usize + 1) * cols];
            dst.iter_mut().zip(p).for_each(|(d, &p)| *d += x * p);
        }
    }
}

/// The same loops with AVX-512 (`accumulate`'s multiply-adds fused).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Lists, Operands, ROW_BLOCK, Row};

    /// Lanes of one vector.
    const LANES: usize = 16;

    /// Output vectors kept in registers per pass over a row's nonzeros.
    const TILE: usize = 8;

    /// How many nonzeros ahead [`tile`] prefetches rows of `p`.
    const PREFETCH_DISTANCE: usize = 4;

    /// Mask of the first `n` (at most 16) lanes.
    fn first_lanes(n: usize) -> __mmask16 {
        if n >= LANES { 0xffff } else { (1u16 << n) - 1 }
    }

    /// `visit(lane, value)` for each lane of `x` set in `lanes`, in order.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn for_each_lane(x: __m512, mut lanes: __mmask16, mut visit: impl FnMut(usize, f32)) {
        if lanes == 0 {
            return;
        }
        let mut values = [0.0f32; LANES];
        // SAFETY: `values` holds 16 floats.
        unsafe { _mm512_storeu_ps(values.as_mut_ptr(), x) };
        while lanes != 0 {
            let lane = lanes.trailing_zeros() as usize;
            lanes &= lanes - 1;
            visit(lane, values[lane]);
        }
    }

    /// `portable::collect`, 16-lane loads.
    ///
    /// # Safety
    /// AVX-512F must be available; `s` holds `[inner, rows]` with `first + count <= rows`,
    /// `count <= ROW_BLOCK`, `index` `inner` entries, and `lists` was made for `inner`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn collect(
        lists: &mut Lists,
        operands: &Operands,
        first: usize,
        count: usize,
    ) {
        let &Operands {
            s,
            index,
            rows,
            scale,
            ..
        } = operands;
        debug_assert!(count <= ROW_BLOCK && first + count <= rows);
        let inner = lists.inner;
        let zero = _mm512_setzero_ps();
        if operands.row_major {
            lists.counts = [0; ROW_BLOCK];
            for r in 0..count {
                let row = &s[(first + r) * inner..(first + r + 1) * inner];
                for start in (0..inner).step_by(LANES) {
                    let load = first_lanes(inner - start);
                    // SAFETY: the masked load reads only elements of `row`.
                    let x = unsafe { _mm512_maskz_loadu_ps(load, row.as_ptr().add(start)) };
                    let nonzero = _mm512_mask_cmp_ps_mask::<_CMP_NEQ_UQ>(load, x, zero);
                    for_each_lane(x, nonzero, |lane, x| {
                        lists.push(r, index[start + lane], x * scale);
                    });
                }
            }
            return;
        }
        let groups = count.div_ceil(LANES);
        let loads: [__mmask16; ROW_BLOCK / LANES] =
            std::array::from_fn(|g| first_lanes(count.saturating_sub(g * LANES)));
        lists.counts = [0; ROW_BLOCK];
        for (k, &p_row) in index.iter().enumerate().take(inner) {
            for (g, &load) in loads[..groups].iter().enumerate() {
                let at = k * rows + first + g * LANES;
                // SAFETY: the masked load reads lanes of rows `first..first + count` only, in
                // row `k` of `s`.
                let x = unsafe { _mm512_maskz_loadu_ps(load, s.as_ptr().add(at)) };
                let nonzero = _mm512_mask_cmp_ps_mask::<_CMP_NEQ_UQ>(load, x, zero);
                for_each_lane(x, nonzero, |lane, x| {
                    lists.push(g * LANES + lane, p_row, x * scale);
                });
            }
        }
    }

    /// `portable::add_rows`, a tile of up to [`TILE`] vectors of `y` at a time held in
    /// registers across all the terms.
    ///
    /// # Safety
    /// AVX-512F must be available, and every term's row (`x[j · stride..][..y.len()]`) lie
    /// within `x`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add_rows(y: &mut [f32], x: &[f32], stride: usize, terms: &[(usize, f32)]) {
        let vectors = y.len().div_ceil(LANES);
        let mut first = 0;
        while first < vectors {
            let width = (vectors - first).min(TILE);
            // SAFETY: as this function's, for the vectors `first..first + width`.
            unsafe {
                match width {
                    1 => rows_tile::<1>(y, x, stride, terms, first),
                    2 => rows_tile::<2>(y, x, stride, terms, first),
                    3 => rows_tile::<3>(y, x, stride, terms, first),
                    4 => rows_tile::<4>(y, x, stride, terms, first),
                    5 => rows_tile::<5>(y, x, stride, terms, first),
                    6 => rows_tile::<6>(y, x, stride, terms, first),
                    7 => rows_tile::<7>(y, x, stride, terms, first),
                    _ => rows_tile::<TILE>(y, x, stride, terms, first),
                }
            }
            first += width;
        }
    }

    /// Elements `16 · first` onwards (`V` vectors) of [`add_rows`].
    ///
    /// # Safety
    /// As [`add_rows`], with `16 · first` below `y.len()`.
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_tile<const V: usize>(
        y: &mut [f32],
        x: &[f32],
        stride: usize,
        terms: &[(usize, f32)],
        first: usize,
    ) {
        let len = y.len();
        let offset = first * LANES;
        let masks: [__mmask16; V] =
            std::array::from_fn(|v| first_lanes(len.saturating_sub(offset + v * LANES)));
        let mut acc = [_mm512_setzero_ps(); V];
        for v in 0..V {
            // SAFETY: the masked loads read only elements below `len`.
            acc[v] = unsafe { _mm512_maskz_loadu_ps(masks[v], y.as_ptr().add(offset + v * LANES)) };
        }
        for &(j, a) in terms {
            let a = _mm512_set1_ps(a);
            let row = j * stride + offset;
            for v in 0..V {
                // SAFETY: the row lies within `x`; the masked loads read only its elements
                // below `len`.
                let x = unsafe { _mm512_maskz_loadu_ps(masks[v], x.as_ptr().add(row + v * LANES)) };
                // Rounded as `y + a · x` written out, like the portable loop.
                acc[v] = _mm512_add_ps(acc[v], _mm512_mul_ps(a, x));
            }
        }
        for v in 0..V {
            // SAFETY: the masked stores write only elements below `len`.
            unsafe {
                _mm512_mask_storeu_ps(y.as_mut_ptr().add(offset + v * LANES), masks[v], acc[v])
            };
        }
    }

    /// `portable::accumulate` for each row of `dst` (`[rows, cols]`) from its list in
    /// `lists`, in tiles of [`TILE`] vectors held in registers. The tiles are the outer
    /// loop, so that a tile's columns of `p` (512 kB for 1000 inputs) can stay in a core's
    /// L2 cache for every row of the block; on the analysis's shapes this measured the same
    /// as a row at a time, as did tiles of 12 and 16 vectors.
    ///
    /// # Safety
    /// AVX-512F must be available; every index in `lists` names a row of `p`, whose rows are
    /// `cols` long, and `lists` holds at least `dst.len() / cols` rows.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn accumulate(dst: &mut [f32], lists: &Lists, p: &[f32], cols: usize) {
        let vectors = cols.div_ceil(LANES);
        let mut first = 0;
        while first < vectors {
            let width = (vectors - first).min(TILE);
            for (r, dst) in dst.chunks_exact_mut(cols).enumerate() {
                let row = lists.row(r);
                // SAFETY: as this function's, for the vectors `first..first + width`.
                unsafe {
                    match width {
                        1 => tile::<1>(dst, row, p, first),
                        2 => tile::<2>(dst, row, p, first),
                        3 => tile::<3>(dst, row, p, first),
                        4 => tile::<4>(dst, row, p, first),
                        5 => tile::<5>(dst, row, p, first),
                        6 => tile::<6>(dst, row, p, first),
                        7 => tile::<7>(dst, row, p, first),
                        _ => tile::<TILE>(dst, row, p, first),
                    }
                }
            }
            first += width;
        }
    }

    /// Columns `16 · first` onwards (`V` vectors) of one row of [`accumulate`].
    ///
    /// # Safety
    /// As [`accumulate`], with `16 · first` below `dst.len()`.
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const V: usize>(dst: &mut [f32], row: Row, p: &[f32], first: usize) {
        let cols = dst.len();
        let offset = first * LANES;
        let masks: [__mmask16; V] =
            std::array::from_fn(|v| first_lanes(cols.saturating_sub(offset + v * LANES)));
        let mut acc = [_mm512_setzero_ps(); V];
        for v in 0..V {
            // SAFETY: the masked loads read only columns below `cols`.
            acc[v] =
                unsafe { _mm512_maskz_loadu_ps(masks[v], dst.as_ptr().add(offset + v * LANES)) };
        }
        for (j, (&k, &x)) in row.indices.iter().zip(row.values).enumerate() {
            if let Some(&ahead) = row.indices.get(j + PREFETCH_DISTANCE) {
                let start = ahead as usize * cols + offset;
                for v in 0..V {
                    // Prefetches never fault; the addresses stay inside the row anyway.
                    let at = start + v * LANES;
                    _mm_prefetch::<_MM_HINT_T0>(p.as_ptr().wrapping_add(at).cast());
                }
            }
            let x = _mm512_set1_ps(x);
            let start = k as usize * cols + offset;
            for v in 0..V {
                // SAFETY: row `k` of `p` lies inside it; the masked loads read only its
                // columns from `offset` to `cols`.
                let p =
                    unsafe { _mm512_maskz_loadu_ps(masks[v], p.as_ptr().add(start + v * LANES)) };
                acc[v] = _mm512_fmadd_ps(x, p, acc[v]);
            }
        }
        for v in 0..V {
            // SAFETY: the masked stores write only columns below `cols`.
            unsafe {
                _mm512_mask_storeu_ps(dst.as_mut_ptr().add(offset + v * LANES), masks[v], acc[v])
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[rows, cols]` values with `density` of them nonzero, a NaN-free hash of the position.
    fn sparse(rows: usize, cols: usize, density: f64, salt: u64) -> Vec<f32> {
        (0..rows * cols)
            .map(|i| {
                let h = (i as u64 + 1)
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .wrapping_add(salt.wrapping_mul(0xbf58_476d_1ce4_e5b9));
                let h = h ^ (h >> 31);
                if (h % 1000) as f64 >= density * 1000.0 {
                    0.0
                } else {
                    ((h >> 20) % 201) as f32 / 100.0 - 1.0
                }
            })
            .collect()
    }

    /// The row-major transpose of the row-major `[rows, cols]` matrix `a`.
    fn transposed(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols)
            .map(|at| a[(at % rows) * cols + at / rows])
            .collect()
    }

    /// `dst + scale · sᵀ · p` by the triple loop, in f64.
    fn naive(
        dst: &[f32],
        s: &[f32],
        p: &[f32],
        [rows, inner, cols]: [usize; 3],
        scale: f32,
    ) -> Vec<f64> {
        (0..rows * cols)
            .map(|at| {
                let (r, c) = (at / cols, at % cols);
                let sum: f64 = (0..inner)
                    .map(|k| f64::from(s[k * rows + r]) * f64::from(p[k * cols + c]))
                    .sum();
                f64::from(dst[at]) + f64::from(scale) * sum
            })
            .collect()
    }

    /// Shapes with partial row blocks and partial column tiles (and a row width of one
    /// vector, a full tile, more than a tile), densities from none to all, accumulated into
    /// a nonzero destination: both the AVX-512 loops (where the CPU has them) and the
    /// portable ones agree with the triple loop.
    #[test]
    fn sparse_products_match_the_triple_loop() {
        for sizes @ [rows, inner, cols] in [
            [37, 50, 10],
            [16, 1, 16],
            [150, 30, 20],
            [64, 5, 17],
            [50, 40, 128],
            [33, 64, 300],
            [1, 7, 129],
        ] {
            for (d, density) in [0.0, 0.05, 0.3, 1.0].into_iter().enumerate() {
                let s = sparse(inner, rows, density, d as u64);
                let p = sparse(inner, cols, 1.0, 7);
                let start = sparse(rows, cols, 1.0, 9);
                let expected = naive(&start, &s, &p, sizes, 0.5);
                let mut got = start.clone();
                sparse_product_into(&mut got, Left::Transposed(&s), &p, None, sizes, 0.5);
                // The same left operand held row-major.
                let s_rows = transposed(&s, inner, rows);
                let mut row_major = start.clone();
                sparse_product_into(
                    &mut row_major,
                    Left::RowMajor(&s_rows),
                    &p,
                    None,
                    sizes,
                    0.5,
                );
                // The same rows of `p` in reverse order after three others, named by `p_rows`.
                let mut shuffled = sparse(3, cols, 1.0, 8);
                shuffled.extend(p.chunks(cols).rev().flatten());
                let p_rows: Vec<usize> = (0..inner).map(|k| 3 + inner - 1 - k).collect();
                let mut mapped = start.clone();
                let left = Left::Transposed(&s);
                sparse_product_into(&mut mapped, left, &shuffled, Some(&p_rows), sizes, 0.5);
                let mut lists = Lists::new(inner);
                let index: Vec<u32> = (0..inner as u32).collect();
                let mut portable = [start.clone(), start.clone()];
                for (row_major, portable) in [false, true].into_iter().zip(&mut portable) {
                    let operands = Operands {
                        s: if row_major { &s_rows } else { &s },
                        row_major,
                        index: &index,
                        p: &p,
                        rows,
                        cols,
                        scale: 0.5,
                    };
                    for (b, dst) in portable.chunks_mut(ROW_BLOCK * cols).enumerate() {
                        portable::block(&mut lists, dst, &operands, b * ROW_BLOCK);
                    }
                }
                let cases = [
                    ("sparse_product_into", &got),
                    ("row-major", &row_major),
                    ("rows named", &mapped),
                    ("portable", &portable[0]),
                    ("portable row-major", &portable[1]),
                ];
                for (case, got) in cases {
                    for (at, (&x, &y)) in got.iter().zip(&expected).enumerate() {
                        assert!(
                            (f64::from(x) - y).abs() <= 1e-5 * (1.0 + y.abs()),
                            "{case} {sizes:?} density {density}, element {at}: {x} against {y}"
                        );
                    }
                }
            }
        }
    }

    /// A NaN in the left operand reaches its row as a dense product's would.
    #[test]
    fn nan_coefficients_are_not_skipped() {
        let (rows, inner, cols) = (3, 2, 17);
        let mut s = vec![0.0; inner * rows];
        s[rows + 1] = f32::NAN;
        let p = vec![1.0; inner * cols];
        let mut dst = vec![0.0; rows * cols];
        sparse_product_into(
            &mut dst,
            Left::Transposed(&s),
            &p,
            None,
            [rows, inner, cols],
            1.0,
        );
        assert!(dst[..cols].iter().all(|x| *x == 0.0));
        assert!(dst[cols..2 * cols].iter().all(|x| x.is_nan()));
        assert!(dst[2 * cols..].iter().all(|x| *x == 0.0));
    }

    /// `add_rows` on this CPU (AVX-512 where it has it) gives the values of adding one term
    /// at a time with `y += a · x`, on lengths with and without a partial vector and more
    /// than a tile, with repeated rows and the last row of `x`.
    #[test]
    fn added_rows_are_one_term_at_a_time() {
        let stride = 1100;
        let x = sparse(12, stride, 1.0, 3);
        let terms = [(3, 0.37), (11, -1.5), (3, 2.0), (0, 0.0), (7, 1e-3)];
        for len in [0, 1, 15, 16, 17, 256, 300, 1000] {
            let start = sparse(1, len, 1.0, 4);
            let mut expected = start.clone();
            for &(j, a) in &terms {
                for (c, y) in expected.iter_mut().enumerate() {
                    *y += a * x[j * stride + c];
                }
            }
            let (mut fast, mut plain) = (start.clone(), start);
            add_rows()(&mut fast, &x, stride, &terms);
            portable::add_rows(&mut plain, &x, stride, &terms);
            assert_eq!(fast, expected, "length {len}");
            assert_eq!(plain, expected, "length {len}");
        }
    }

    #[test]
    #[should_panic(expected = "reaches past the end of x")]
    fn a_row_past_the_end_panics() {
        add_rows()(&mut [0.0; 4], &[0.0; 10], 4, &[(1, 1.0), (2, 1.0)]);
    }

    #[test]
    #[should_panic(expected = "left operand size")]
    fn a_wrong_size_panics() {
        sparse_product_into(
            &mut [0.0; 4],
            Left::Transposed(&[0.0; 3]),
            &[0.0; 2],
            None,
            [2, 1, 2],
            1.0,
        );
    }

    /// Empty sizes leave the destination as it is.
    #[test]
    fn empty_sizes_change_nothing() {
        sparse_product_into(&mut [], Left::Transposed(&[]), &[], None, [0, 3, 0], 1.0);
        let mut dst = [1.0; 6];
        sparse_product_into(&mut dst, Left::RowMajor(&[]), &[], None, [2, 0, 3], 1.0);
        assert_eq!(dst, [1.0; 6]);
        sparse_product_into(
            &mut [],
            Left::Transposed(&[]),
            &[0.0; 3],
            None,
            [0, 3, 1],
            1.0,
        );
        sparse_product_into(
            &mut [],
            Left::Transposed(&[0.0; 3]),
            &[],
            Some(&[5]),
            [3, 1, 0],
            1.0,
        );
    }

    #[test]
    #[should_panic(expected = "rows of the right operand")]
    fn a_row_outside_the_right_operand_panics() {
        let rows = [0, 2];
        sparse_product_into(
            &mut [0.0; 4],
            Left::Transposed(&[0.0; 4]),
            &[0.0; 4],
            Some(&rows),
            [2, 2, 2],
            1.0,
        );
    }
}
