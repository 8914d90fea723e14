//! Host matrix products through the `gemm` crate (the one burn-flex's `matmul` calls, with
//! its AVX-512 kernels where the CPU has them), reading each operand through its strides so
//! that no transpose is copied, and accumulating into the destination where asked: for the
//! dense spike-and-slab operation and for the analysis, which updates products in place.

use num_traits::Float;

/// The element types of [`product`]: `f32` and `f64` (sealed, as `gemm` takes no others).
pub trait ProductFloat: Float + Send + Sync + 'static + sealed::Sealed {}
impl ProductFloat for f32 {}
impl ProductFloat for f64 {}

mod sealed {
    /// Keeps [`super::ProductFloat`] to the types `gemm` dispatches on.
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// One operand of a product: values read as a matrix with the given strides.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a, T> {
    /// The values, row-major or not.
    pub values: &'a [T],
    /// Elements between consecutive rows.
    pub row_stride: usize,
    /// Elements between consecutive columns.
    pub col_stride: usize,
}

impl<'a, T> Operand<'a, T> {
    /// A row-major `[rows, cols]` matrix.
    pub fn plain(values: &'a [T], cols: usize) -> Self {
        Self {
            values,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major `[cols, rows]` matrix: `[rows, cols]`, nothing copied.
    pub fn transposed(values: &'a [T], rows: usize) -> Self {
        Self {
            values,
            row_stride: 1,
            col_stride: rows,
        }
    }

    /// Whether every element of a `[rows, cols]` reading lies within `values`.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || (rows - 1)
                .checked_mul(self.row_stride)
                .zip((cols - 1).checked_mul(self.col_stride))
                .and_then(|(r, c)| r.checked_add(c))
                .is_some_and(|last| last < self.values.len())
    }
}

/// `dst = lhs · rhs` for `lhs` `[rows, inner]`, `rhs` `[inner, cols]`, `dst` row-major
/// `[rows, cols]`, on the rayon threads of the caller's pool.
///
/// # Panics
/// If an operand's strides reach outside its values or `dst` is not `rows · cols` long.
pub fn product<T: ProductFloat>(
    dst: &mut [T],
    lhs: Operand<T>,
    rhs: Operand<T>,
    sizes: [usize; 3],
) {
    product_into(dst, None, lhs, rhs, sizes, T::one());
}

/// `dst = keep · dst + scale · lhs · rhs` (`keep` `None`: `dst`'s old values are not read),
/// sizes as in [`product`].
///
/// # Panics
/// As [`product`].
pub fn product_into<T: ProductFloat>(
    dst: &mut [T],
    keep: Option<T>,
    lhs: Operand<T>,
    rhs: Operand<T>,
    [rows, inner, cols]: [usize; 3],
    scale: T,
) {
    assert!(dst.len() == rows * cols, "product: destination size");
    assert!(
        lhs.fits(rows, inner) && rhs.fits(inner, cols),
        "product: operand outside its values"
    );
    if rows == 0 || cols == 0 {
        return;
    }
    if inner == 0 {
        match keep {
            Some(keep) => dst.iter_mut().for_each(|x| *x = *x * keep),
            None => dst.fill(T::zero()),
        }
        return;
    }
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 && rows * inner * cols >= PARALLEL_WORK {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let stride = |s: usize| isize::try_from(s).expect("stride fits isize");
    // SAFETY: `fits` checked that every element read lies within its slice, and `dst` holds
    // exactly `rows · cols` elements written with row stride `cols`; with `keep` `None`
    // (`read_dst` false) `dst`'s old values are not read. `T` is `f32` or `f64`, which
    // `gemm` dispatches on.
    unsafe {
        gemm::gemm(
            rows,
            cols,
            inner,
            dst.as_mut_ptr(),
            1,
            stride(cols),
            keep.is_some(),
            lhs.values.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.values.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            keep.unwrap_or(T::zero()),
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Multiply-adds from which a product is shared among threads: burn-flex's own threshold
/// (`192³`).
const PARALLEL_WORK: usize = 192 * 192 * 192;

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain triple loop, in f64.
    fn naive(a: &[f64], b: &[f64], [rows, inner, cols]: [usize; 3]) -> Vec<f64> {
        let mut out = vec![0.0; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                out[r * cols + c] = (0..inner).map(|k| a[r * inner + k] * b[k * cols + c]).sum();
            }
        }
        out
    }

    #[test]
    fn products_through_strides_and_accumulated_match_the_triple_loop() {
        let sizes @ [rows, inner, cols] = [37, 300, 45];
        let a: Vec<f64> = (0..rows * inner)
            .map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0)
            .collect();
        let b: Vec<f64> = (0..inner * cols)
            .map(|i| ((i * 104_729) % 97) as f64 / 48.0 - 1.0)
            .collect();
        let expected = naive(&a, &b, sizes);
        let mut dst = vec![f64::NAN; rows * cols];
        product(
            &mut dst,
            Operand::plain(&a, inner),
            Operand::plain(&b, cols),
            sizes,
        );
        for (x, y) in dst.iter().zip(&expected) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
        // b read as the transpose of its row-major transpose.
        let mut b_t = vec![0.0; b.len()];
        for k in 0..inner {
            for c in 0..cols {
                b_t[c * inner + k] = b[k * cols + c];
            }
        }
        let mut again = vec![0.0; rows * cols];
        product(
            &mut again,
            Operand::plain(&a, inner),
            Operand::transposed(&b_t, inner),
            sizes,
        );
        assert_eq!(again, dst);
        // 2 · dst + 0.5 · a · b
        product_into(
            &mut dst,
            Some(2.0),
            Operand::plain(&a, inner),
            Operand::plain(&b, cols),
            sizes,
            0.5,
        );
        for (x, y) in dst.iter().zip(&expected) {
            assert!((x - 2.5 * y).abs() < 1e-12, "{x} vs {}", 2.5 * y);
        }
    }

    #[test]
    #[should_panic(expected = "operand outside its values")]
    fn an_operand_too_short_for_its_sizes_is_refused() {
        let mut dst = vec![0.0f32; 4];
        product(
            &mut dst,
            Operand::plain(&[1.0; 3], 2),
            Operand::plain(&[1.0; 4], 2),
            [2, 2, 2],
        );
    }
}
