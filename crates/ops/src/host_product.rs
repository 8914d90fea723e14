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
    sizes: [usize; 3],
    scale: T,
) {
    let threads = rayon::current_num_threads();
    product_on(threads, dst, keep, lhs, rhs, sizes, scale);
}

/// Two independent products of the same sizes, `dst[i] = lhs[i] · rhs[i]` (as in
/// [`product`]), at the same time, each on half of the caller's rayon threads.
///
/// Two products of `gemm` side by side, one thread each, outrun the same products one after
/// the other on two threads each: on 200 × 3072 × 200 (the forward pass and the parameter
/// gradients of the CIFAR-10 net's first layer), 159-189 GFLOP/s against 109-125 for the
/// forward orientation and 147-162 against 132-153 for the gradients' (three rounds on this
/// project's 2-core machine); `gemm` shares out too little work between threads at this size.
///
/// # Panics
/// As [`product`].
pub fn product_pair<T: ProductFloat>(
    dst: [&mut [T]; 2],
    lhs: [Operand<T>; 2],
    rhs: [Operand<T>; 2],
    sizes: [usize; 3],
) {
    let threads = rayon::current_num_threads();
    let half = (threads / 2).max(1);
    let [first, second] = dst;
    rayon::join(
        || product_on(half, first, None, lhs[0], rhs[0], sizes, T::one()),
        || {
            product_on(
                threads - half,
                second,
                None,
                lhs[1],
                rhs[1],
                sizes,
                T::one(),
            )
        },
    );
}

/// [`product_into`] on at most `threads` rayon threads.
fn product_on<'a, T: ProductFloat>(
    threads: usize,
    dst: &mut [T],
    keep: Option<T>,
    lhs: Operand<'a, T>,
    rhs: Operand<'a, T>,
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
    let parallelism = if threads > 1 && rows * inner * cols >= PARALLEL_WORK {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let stride = |s: usize| isize::try_from(s).expect("stride fits isize");
    // `gemm` reads a left operand of unit row stride as it is, and packs any other
    // transposed, element by element (`pack_lhs`: 9% of a profile of 3072-200-200-10
    // training, half its forward products, with a row-major input on the left). Where the
    // left operand has no unit row stride and the right one has a unit column stride, the
    // transposed problem `dstᵀ = rhsᵀ · lhsᵀ` has a left operand `gemm` reads as it is;
    // `dst` is then written column by column. Each `(values, column stride, row stride)`
    // is as `gemm` sees it.
    let transpose = lhs.row_stride != 1 && rhs.col_stride == 1;
    let as_is = |o: Operand<'a, T>| (o.values, o.col_stride, o.row_stride);
    let transposed = |o: Operand<'a, T>| (o.values, o.row_stride, o.col_stride);
    let (m, n, dst_cs, dst_rs, lhs, rhs) = if transpose {
        (cols, rows, cols, 1, transposed(rhs), transposed(lhs))
    } else {
        (rows, cols, 1, cols, as_is(lhs), as_is(rhs))
    };
    // SAFETY: `fits` checked that every element read lies within its slice, and `dst` holds
    // exactly `rows · cols` elements, written row-major in either orientation; with `keep`
    // `None` (`read_dst` false) `dst`'s old values are not read. `T` is `f32` or `f64`,
    // which `gemm` dispatches on.
    unsafe {
        gemm::gemm(
            m,
            n,
            inner,
            dst.as_mut_ptr(),
            stride(dst_cs),
            stride(dst_rs),
            keep.is_some(),
            lhs.0.as_ptr(),
            stride(lhs.1),
            stride(lhs.2),
            rhs.0.as_ptr(),
            stride(rhs.1),
            stride(rhs.2),
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

    /// `[rows, cols]` row-major values with no structure a wrong stride could keep.
    fn matrix(rows: usize, cols: usize, salt: usize) -> Vec<f64> {
        (0..rows * cols)
            .map(|i| ((i * 7919 + salt * 104_729) % 101) as f64 / 50.0 - 1.0)
            .collect()
    }

    /// The row-major transpose of the row-major `[rows, cols]` matrix `a`.
    fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
        let mut t = vec![0.0; a.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        t
    }

    fn assert_close(got: &[f64], expected: &[f64], factor: f64, case: &str) {
        for (x, y) in got.iter().zip(expected) {
            assert!(
                (x - factor * y).abs() < 1e-12,
                "{case}: {x} vs {}",
                factor * y
            );
        }
    }

    /// Every combination of row-major and transposed operands (each of `gemm`'s two
    /// orientations), below and above the size from which `gemm` shares the work among
    /// threads, plain and accumulated.
    #[test]
    fn products_in_every_layout_and_accumulated_match_the_triple_loop() {
        for sizes @ [rows, inner, cols] in [[37, 300, 45], [200, 300, 150]] {
            let (a, b) = (matrix(rows, inner, 1), matrix(inner, cols, 2));
            let (a_t, b_t) = (transpose(&a, rows, inner), transpose(&b, inner, cols));
            let expected = naive(&a, &b, sizes);
            let lhs = [
                ("lhs row-major", Operand::plain(&a, inner)),
                ("lhs transposed", Operand::transposed(&a_t, rows)),
            ];
            let rhs = [
                ("rhs row-major", Operand::plain(&b, cols)),
                ("rhs transposed", Operand::transposed(&b_t, inner)),
            ];
            for (lhs_name, lhs) in lhs {
                for (rhs_name, rhs) in rhs {
                    let case = format!("{sizes:?}, {lhs_name}, {rhs_name}");
                    let mut dst = vec![f64::NAN; rows * cols];
                    product(&mut dst, lhs, rhs, sizes);
                    assert_close(&dst, &expected, 1.0, &case);
                    // 2 · dst + 0.5 · lhs · rhs
                    product_into(&mut dst, Some(2.0), lhs, rhs, sizes, 0.5);
                    assert_close(&dst, &expected, 2.5, &format!("{case}, accumulated"));
                }
            }
        }
    }

    /// Two products at once give each product's values.
    #[test]
    fn a_pair_of_products_gives_each_product() {
        let sizes @ [rows, inner, cols] = [200, 300, 150];
        let (a, b) = (matrix(rows, inner, 3), matrix(inner, cols, 4));
        let (c, d) = (matrix(rows, inner, 5), matrix(inner, cols, 6));
        let mut dst = [vec![f64::NAN; rows * cols], vec![f64::NAN; rows * cols]];
        let [first, second] = &mut dst;
        product_pair(
            [first, second],
            [Operand::plain(&a, inner), Operand::plain(&c, inner)],
            [Operand::plain(&b, cols), Operand::plain(&d, cols)],
            sizes,
        );
        assert_close(&dst[0], &naive(&a, &b, sizes), 1.0, "first");
        assert_close(&dst[1], &naive(&c, &d, sizes), 1.0, "second");
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
