//! Host access to the storage of `flex` tensors, for the kernels of this crate.

use burn::backend::flex::FlexTensor;
use burn::tensor::Element;

/// The tensor laid out contiguously from the start of its storage (a copy only when it is
/// not already).
pub(crate) fn contiguous(tensor: FlexTensor) -> FlexTensor {
    let layout = tensor.layout();
    if layout.contiguous_offsets() == Some((0, layout.num_elements())) {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// The values of a [`contiguous`] tensor of element type `T`.
pub(crate) fn values<T: Element + bytemuck::Pod>(tensor: &FlexTensor) -> &[T] {
    tensor
        .as_slice()
        .expect("a contiguous tensor of the dispatched dtype")
}

/// The values of a [`contiguous`] tensor of element type `T`, for writing in place; the
/// storage is copied first if another tensor shares it.
pub(crate) fn values_mut<T: Element + bytemuck::Pod>(tensor: &mut FlexTensor) -> &mut [T] {
    let len = tensor.layout().num_elements();
    &mut tensor.storage_mut()[..len]
}
