"""The surrogate loss of docs/maths.md §4 and §6, whose gradient is the policy-gradient estimate."""

from __future__ import annotations

import torch as th


def surrogate_loss(log_prob: th.Tensor, advantages: th.Tensor, step_weights: th.Tensor, n_episodes: int) -> th.Tensor:
    """
    ``L = -(1/N) sum_i sum_t w_t log pi(a_t|s_t) A_t``: a mean over episodes and a sum over steps.

    Its gradient is the policy-gradient estimate.  Dividing by the number of steps instead would
    shrink long episodes' contribution and, when lengths vary, change the gradient's direction.
    The gradient with respect to each log-probability is ``-w_t A_t / N``:

    >>> log_prob = th.zeros(3, requires_grad=True)
    >>> loss = surrogate_loss(log_prob, th.tensor([1.0, 2.0, 3.0]), th.ones(3), n_episodes=2)
    >>> loss.backward()
    >>> log_prob.grad
    tensor([-0.5000, -1.0000, -1.5000])

    :param log_prob: ``log pi_theta(a_t|s_t)`` with its autograd graph, shape ``(M,)``.
    :param advantages: The weight of each log-probability, e.g. ``Ĝ_t - b_t``; treated as a constant.
    :param step_weights: Per-step factor, e.g. ``lambda_t`` or ``lambda_t * rho_t``; treated as a constant.
    :param n_episodes: Number of episodes ``N`` in the batch.
    :return: Scalar loss.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    weights = (step_weights * advantages).detach()
    return -(weights * log_prob).sum() / n_episodes


def standardize(advantages: th.Tensor, eps: float = 1e-8) -> th.Tensor:
    """
    Shift and scale to mean 0 and standard deviation 1 over all steps of the batch.

    >>> standardize(th.tensor([1.0, 2.0, 3.0]))
    tensor([-1.,  0.,  1.])

    :param advantages: Per-step values, shape ``(M,)``.
    :param eps: Added to the standard deviation so a constant batch maps to zeros.
    :return: Standardised values, same shape.
    """
    if advantages.numel() < 2:
        return advantages - advantages.mean()
    return (advantages - advantages.mean()) / (advantages.std() + eps)
