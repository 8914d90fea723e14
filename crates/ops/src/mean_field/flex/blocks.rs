//! The blocked gather and scatter of `f32` layers, shared by the vector kernels
//! (`avx512.rs`, `avx2.rs`): each block's nonzeros collected first, then one tile of output
//! columns at a time accumulated in registers over all of them, so that a tile's columns of
//! the dense operand, once in a core's L2 cache, serve the whole block. A kernel set supplies
//! the two vector loops ([`BlockKernels`]); the lists, their sorting and the blocking are
//! here.

use super::layout::{Coefficients, Columns, Nonzeros, Shape};

/// The nonzeros found in one row: positions and the two coefficients.
#[derive(Clone, Copy)]
pub(super) struct Found<'a> {
    pub(super) indices: &'a [u32],
    pub(super) first: &'a [f32],
    pub(super) second: &'a [f32],
}

/// The nonzeros of a block of rows, one after the other in `found`: row `r`'s end at
/// `ends[r]`, its start at the previous row's end.
#[derive(Clone, Copy)]
pub(super) struct Lists<'a> {
    pub(super) found: &'a Nonzeros<f32>,
    pub(super) ends: &'a [usize],
}

impl<'a> Lists<'a> {
    /// Row `r`'s nonzeros.
    pub(super) fn row(&self, r: usize) -> Found<'a> {
        let start = if r == 0 { 0 } else { self.ends[r - 1] };
        let range = start..self.ends[r];
        Found {
            indices: &self.found.indices[range.clone()],
            first: &self.found.first[range.clone()],
            second: &self.found.second[range],
        }
    }
}

/// The two vector loops of a kernel set, with its vectors' lanes and its widest tile.
pub(super) trait BlockKernels {
    /// `f32` lanes of a vector.
    const LANES: usize;
    /// Output vectors kept in registers per pass, for each of the pair (at most 7).
    const TILE: usize;

    /// The positions `k` where `row[k]` or `second[k]` (default `row[k]²`) is nonzero (or
    /// NaN), with both values, written to `found` from entry `at` on; returns how many.
    ///
    /// # Safety
    /// The kernel set's CPU features must be available; `second` must be as long as `row`,
    /// and `found` hold `at + row.len() + 16` entries or more.
    unsafe fn collect(
        row: &[f32],
        second: Option<&[f32]>,
        found: &mut Nonzeros<f32>,
        at: usize,
    ) -> usize;

    /// Columns `LANES · first` onwards (`V` vectors, the last of them possibly past the
    /// row's end) of one row of `sp`, `sq`, set to, or if `accumulate` increased by,
    /// `Σ_j first_j · p[k_j]` and `Σ_j second_j · q[k_j]` over `found`, in its order, each
    /// term one fused multiply-add.
    ///
    /// # Safety
    /// The kernel set's CPU features must be available; the indices in `found` are rows
    /// of `p` and `q`, which are `width = sp.len() = sq.len()` long; `LANES · first` is
    /// below `width` and `LANES · (first + V - 1)` too.
    unsafe fn tile<const V: usize>(
        sp: &mut [f32],
        sq: &mut [f32],
        p: &[f32],
        q: &[f32],
        found: Found,
        accumulate: bool,
        first: usize,
    );
}

/// Row `r` of `sp`, `sq` (`[rows, width]`, `rows = lists.ends.len()`) set to, or if
/// `accumulate` increased by, `Σ_j first_j · p[k_j]` and `Σ_j second_j · q[k_j]` over row
/// `r`'s nonzeros in `lists`, tile by tile of at most `K::TILE` vectors, each tile over all
/// the rows.
///
/// # Safety
/// `K`'s CPU features must be available; the indices in `lists` are rows of `p` and `q`,
/// which are `width` long like the rows of `sp` and `sq`.
unsafe fn tiles<K: BlockKernels>(
    sp: &mut [f32],
    sq: &mut [f32],
    p: &[f32],
    q: &[f32],
    lists: Lists,
    accumulate: bool,
) {
    const { assert!(K::TILE >= 1 && K::TILE <= 7, "tiles of 1 to 7 vectors") };
    let width = sp.len().checked_div(lists.ends.len()).unwrap_or(0);
    let vectors = width.div_ceil(K::LANES);
    let mut first = 0;
    while first < vectors {
        let tile = (vectors - first).min(K::TILE);
        // SAFETY: as this function's; the tile's vectors start below `width`.
        unsafe {
            match tile {
                1 => tile_rows::<K, 1>(sp, sq, p, q, lists, accumulate, first),
                2 => tile_rows::<K, 2>(sp, sq, p, q, lists, accumulate, first),
                3 => tile_rows::<K, 3>(sp, sq, p, q, lists, accumulate, first),
                4 => tile_rows::<K, 4>(sp, sq, p, q, lists, accumulate, first),
                5 => tile_rows::<K, 5>(sp, sq, p, q, lists, accumulate, first),
                6 => tile_rows::<K, 6>(sp, sq, p, q, lists, accumulate, first),
                _ => tile_rows::<K, 7>(sp, sq, p, q, lists, accumulate, first),
            }
        }
        first += tile;
    }
}

/// One tile (`V` vectors from column `K::LANES · first`) of every row of [`tiles`].
///
/// # Safety
/// As [`tiles`], with the tile's vectors starting below `width`.
unsafe fn tile_rows<K: BlockKernels, const V: usize>(
    sp: &mut [f32],
    sq: &mut [f32],
    p: &[f32],
    q: &[f32],
    lists: Lists,
    accumulate: bool,
    first: usize,
) {
    let Some(width) = sp.len().checked_div(lists.ends.len()) else {
        return;
    };
    let rows = sp.chunks_exact_mut(width).zip(sq.chunks_exact_mut(width));
    for (r, (sp, sq)) in rows.enumerate() {
        // SAFETY: as this function's, for one row.
        unsafe { K::tile::<V>(sp, sq, p, q, lists.row(r), accumulate, first) };
    }
}

/// Each thread's lists of nonzeros, kept from call to call: new ones would be zeroed for
/// every call (600 kB for 64 rows of 784 inputs), which cost the paper's net 4% of its
/// training time.
struct Scratch {
    rows: Nonzeros<f32>,
    columns: Nonzeros<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch {
        rows: Nonzeros::new(0),
        columns: Nonzeros::new(0),
    });
}

/// Rows whose nonzeros [`gather_rows`] collects before it accumulates them, tile by tile:
/// a tile's columns of `p` and `q` (`inner · 112` floats each, 700 kB together for 784
/// inputs), once in a core's L2 cache, serve all of these rows, where row by row every
/// nonzero read its rows of `p` and `q` from L3 (6.3 MB for a 784 → 1000 layer).
const ROW_BLOCK: usize = 64;

/// See `KernelFloat::gather_rows`: blocks of [`ROW_BLOCK`] rows, their nonzeros collected
/// first, then each tile of columns over all the rows of the block.
///
/// # Safety
/// `K`'s CPU features must be available, and the lengths those of `shape`
/// (`Shape::gather`).
pub(super) unsafe fn gather_rows<K: BlockKernels>(
    shape: Shape,
    c: Coefficients<f32>,
    p: &[f32],
    q: &[f32],
    sp: &mut [f32],
    sq: &mut [f32],
) {
    SCRATCH.with_borrow_mut(|scratch| {
        let nonzeros = &mut scratch.rows;
        nonzeros.make_room(ROW_BLOCK * shape.inner);
        let (inner, width) = (shape.inner, shape.width);
        let mut ends = [0usize; ROW_BLOCK];
        let block = ROW_BLOCK * width;
        let blocks = sp.chunks_mut(block).zip(sq.chunks_mut(block));
        for (b, (sp, sq)) in blocks.enumerate() {
            let rows = sp.len() / width;
            let mut at = 0;
            for (r, end) in ends.iter_mut().enumerate().take(rows) {
                let (row, second) = c.row(b * ROW_BLOCK + r, inner);
                // SAFETY: `nonzeros` holds `ROW_BLOCK · inner + 16` entries and `at` is at
                // most `r · inner`.
                at += unsafe { K::collect(row, second, nonzeros, at) };
                *end = at;
            }
            let lists = Lists {
                found: nonzeros,
                ends: &ends[..rows],
            };
            // SAFETY: the indices found are below `inner`, the rows of `p` and `q`, which
            // are `width` long like the rows of `sp` and `sq`.
            unsafe { tiles::<K>(sp, sq, p, q, lists, false) };
        }
    });
}

/// See `KernelFloat::scatter_rows`, computed as a gather: each output row `k` (an input
/// column) accumulates `Σ_r s[r,k] · p_rows[r]` in registers over the rows where column `k`
/// is nonzero, one tile of columns at a time over all the block's `k`. A tile of the rows
/// `p_rows`, `q_rows` (`rows · 112` floats each, 450 kB together at a batch of 500), once
/// in L2, serves every `k`, and no output is stored more than once per tile; scattering
/// each row's products into the outputs instead stored every output vector once per
/// nonzero, and read the outputs from L3 where they outgrew L2. Each output's terms are
/// added in increasing `r`, as a row-by-row scatter adds them.
///
/// # Safety
/// `K`'s CPU features must be available, and the lengths those of `shape`
/// (`Shape::scatter`).
pub(super) unsafe fn scatter_rows<K: BlockKernels>(
    shape: Shape,
    s: Columns<f32>,
    p_rows: &[f32],
    q_rows: &[f32],
    p_out: &mut [f32],
    q_out: &mut [f32],
) {
    SCRATCH.with_borrow_mut(|scratch| {
        let Scratch {
            rows: by_row,
            columns: by_column,
        } = scratch;
        let inner = shape.inner;
        let rows = s.row_count();
        by_row.make_room(rows * inner);
        // Each row's nonzeros, then the same entries sorted by column (stably, so in
        // increasing row within a column), with the row as the index.
        let mut row_ends = vec![0usize; rows];
        let mut ends = vec![0usize; inner];
        let mut at = 0;
        for (row, end) in s.rows().zip(&mut row_ends) {
            // SAFETY: `by_row` holds `rows · inner + 16` entries and `at` is at most
            // `r · inner` for row `r`.
            at += unsafe { K::collect(row, None, by_row, at) };
            *end = at;
        }
        for &k in &by_row.indices[..at] {
            ends[k as usize] += 1;
        }
        let mut next = vec![0usize; inner];
        let mut total = 0;
        for (end, next) in ends.iter_mut().zip(&mut next) {
            *next = total;
            total += *end;
            *end = total;
        }
        by_column.make_room(at);
        let mut start = 0;
        for (r, &end) in row_ends.iter().enumerate() {
            for j in start..end {
                let k = by_row.indices[j] as usize;
                let to = next[k];
                next[k] += 1;
                by_column.indices[to] = r as u32;
                by_column.first[to] = by_row.first[j];
                by_column.second[to] = by_row.second[j];
            }
            start = end;
        }
        let lists = Lists {
            found: by_column,
            ends: &ends,
        };
        // SAFETY: the indices are rows of `p_rows` and `q_rows`, `width` long like the rows
        // of `p_out` and `q_out`, which hold `inner` of them.
        unsafe { tiles::<K>(p_out, q_out, p_rows, q_rows, lists, true) };
    });
}
