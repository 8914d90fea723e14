//! The autodiff node of the operation: the forward pass saves only `dh/dDelta`, and the
//! backward pass applies the paper's generalised backpropagation (see the module
//! documentation of [`mean_field`](super)) through the backend's operations.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend};

use super::MeanFieldBackend;
use super::reference::input_scale;
use crate::equations::DeltaFloor;

/// What the backward pass of [`spike_slab_linear`] keeps from its forward pass.
#[derive(Debug, Clone)]
struct Saved<B: Backend> {
    input: FloatTensor<B>,
    m: FloatTensor<B>,
    xi: FloatTensor<B>,
    pi: FloatTensor<B>,
    /// `dh/dDelta`, `[batch, d_output]`.
    slope: FloatTensor<B>,
}

#[derive(Debug)]
struct SpikeSlabLinearBackward;

impl<B: MeanFieldBackend> Backward<B, 4> for SpikeSlabLinearBackward {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [input_node, m_node, xi_node, pi_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Saved {
            input,
            m,
            xi,
            pi,
            slope,
        } = ops.state;
        let (grad_g, grad_delta) =
            B::spike_slab_output_grads(grad, slope, input_scale::<B>(&input));

        if let Some(node) = input_node {
            let grad_input = B::spike_slab_input_grad(
                input.clone(),
                m.clone(),
                xi.clone(),
                pi.clone(),
                grad_g.clone(),
                grad_delta.clone(),
            );
            grads.register::<B>(node.id, grad_input);
        }
        if m_node.is_some() || xi_node.is_some() || pi_node.is_some() {
            let param_grads = B::spike_slab_param_grads(input, m, xi, pi, grad_g, grad_delta);
            let (grad_m, grad_xi, grad_pi) = param_grads;
            for (node, grad) in [(m_node, grad_m), (xi_node, grad_xi), (pi_node, grad_pi)] {
                if let Some(node) = node {
                    grads.register::<B>(node.id, grad);
                }
            }
        }
    }
}

impl<B: MeanFieldBackend, C: CheckpointStrategy> MeanFieldBackend for Autodiff<B, C> {
    fn spike_slab_linear(
        input: FloatTensor<Self>,
        m: FloatTensor<Self>,
        xi: FloatTensor<Self>,
        pi: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        floor: DeltaFloor,
    ) -> FloatTensor<Self> {
        let (input, input_node) = input.into_parts();
        let (m, m_node) = m.into_parts();
        let (xi, xi_node) = xi.into_parts();
        let (pi, pi_node) = pi.into_parts();
        let eps = eps.into_primitive();
        match SpikeSlabLinearBackward
            .prepare::<C>([input_node, m_node, xi_node, pi_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (h, slope) = B::spike_slab_forward(
                    input.clone(),
                    m.clone(),
                    xi.clone(),
                    pi.clone(),
                    eps,
                    floor,
                );
                let saved = Saved {
                    input,
                    m,
                    xi,
                    pi,
                    slope,
                };
                prep.finish(saved, h)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::spike_slab_linear(input, m, xi, pi, eps, floor))
            }
        }
    }
}
