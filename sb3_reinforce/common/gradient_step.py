"""One optimiser step on the loss terms, refused when anything in it is not finite (docs/maths.md §8).

The gradient is checked before the step.  A step can still turn finite parameters into infinite
ones (a learning rate too large for float32, say), so :class:`GuardedStep` keeps a copy of the
parameters and of the optimiser's state from before the step, in buffers allocated once and
overwritten in place, and puts them back if the step went wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch as th

from sb3_reinforce.common.errors import NonFiniteLossError, require_finite
from sb3_reinforce.common.estimator import LossTerms


def total_loss(losses: LossTerms, ent_coef: float, vf_coef: float) -> th.Tensor:
    """
    ``policy_loss + ent_coef * entropy_loss + vf_coef * value_loss``, each term checked first.

    :param losses: The loss terms.
    :param ent_coef: Entropy coefficient.
    :param vf_coef: Value-function coefficient.
    :return: The total loss.
    """
    for name in ("policy_loss", "value_loss", "entropy_loss"):
        require_finite(name, getattr(losses, name))
    return losses.policy_loss + ent_coef * losses.entropy_loss + vf_coef * losses.value_loss


def gradient_norm(parameters: Sequence[th.nn.Parameter]) -> th.Tensor:
    """
    Euclidean norm of all the parameters' gradients together (0 when none has a gradient).

    :param parameters: The parameters.
    :return: The norm, a scalar tensor.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return th.zeros(())
    return th.linalg.vector_norm(th.stack(th._foreach_norm(grads)))


def all_finite(tensors: Sequence[th.Tensor]) -> bool:
    """
    Whether no element of ``tensors`` is NaN or infinite.

    The norms of the tensors (one fused operation, one synchronisation) are finite when every
    element is; only when one is not (or overflowed: elements beyond about 1e19) are the elements
    checked one by one, through ``x - x``, which is 0 for a finite ``x`` and NaN otherwise.

    >>> all_finite([th.ones(3), th.tensor([3e38])]), all_finite([th.tensor([1.0, float("inf")])])
    (True, False)

    :param tensors: The tensors to check.
    :return: True when every element is finite.
    """
    detached = [t.detach() for t in tensors]
    if bool(th.stack(th._foreach_norm(detached)).isfinite().all()):
        return True
    return bool(th.stack(th._foreach_norm(th._foreach_sub(detached, detached))).isfinite().all())


class GuardedStep:
    """
    ``optimizer.step()``, undone if it makes a parameter non-finite.

    Before each step, the parameters and the optimiser's state tensors are copied, with one fused
    copy each, into buffers allocated at the first step (again only when the optimiser's state
    changes layout, e.g. at its first step); they are copied back only when the step went wrong.
    """

    def __init__(self) -> None:
        self._parameters: list[th.Tensor] = []
        # (parameter, name) of every tensor of the optimiser's state, the copies, and the other values.
        self._keys: list[tuple[th.Tensor, str]] = []
        self._tensors: list[th.Tensor] = []
        self._values: dict[tuple[th.Tensor, str], Any] = {}
        self._groups: list[dict[str, Any]] = []

    def step(self, optimizer: th.optim.Optimizer, parameters: Sequence[th.nn.Parameter]) -> None:
        """
        Take the step; if it fails or leaves a non-finite parameter, restore everything and raise.

        :param optimizer: The optimiser.
        :param parameters: The parameters it updates.
        :raises NonFiniteLossError: The step was undone: parameters and optimiser state are as before it.
        """
        self._save(optimizer, parameters)
        error: Exception | None = None
        try:
            optimizer.step()
        except RuntimeError as exc:  # e.g. an overflow inside the optimiser
            error = exc
        if error is None and all_finite(parameters):
            return
        self._restore(optimizer, parameters)
        raise NonFiniteLossError(
            "the parameters became non-finite (NaN or inf) in the optimiser step; the step was undone and the "
            "parameters and optimiser state are unchanged. Lower the learning rate or set max_grad_norm."
        ) from error

    def _save(self, optimizer: th.optim.Optimizer, parameters: Sequence[th.nn.Parameter]) -> None:
        self._parameters = _copy_all(self._parameters, [p.detach() for p in parameters])
        entries = [((param, name), value) for param, state in optimizer.state.items() for name, value in state.items()]
        keys = [key for key, value in entries if isinstance(value, th.Tensor)]
        tensors = [value.detach() for _, value in entries if isinstance(value, th.Tensor)]
        self._tensors = _copy_all(self._tensors if keys == self._keys else [], tensors)
        self._keys = keys
        self._values = {key: value for key, value in entries if not isinstance(value, th.Tensor)}
        self._groups = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]

    def _restore(self, optimizer: th.optim.Optimizer, parameters: Sequence[th.nn.Parameter]) -> None:
        with th.no_grad():
            th._foreach_copy_([p.detach() for p in parameters], self._parameters)
        saved: dict[th.Tensor, dict[str, Any]] = {}
        # Fresh copies: the buffers must not become the optimiser's live state.
        for (param, name), tensor in zip(self._keys, self._tensors):
            saved.setdefault(param, {})[name] = tensor.clone()
        for (param, name), value in self._values.items():
            saved.setdefault(param, {})[name] = value
        for param in list(optimizer.state):
            if param in saved:
                optimizer.state[param] = saved[param]
            else:  # state the failed step created
                del optimizer.state[param]
        for group, groups_saved in zip(optimizer.param_groups, self._groups):
            group.update(groups_saved)


def _copy_all(buffers: list[th.Tensor], sources: list[th.Tensor]) -> list[th.Tensor]:
    """``sources`` copied into ``buffers`` with one fused copy, or into new buffers when they do not match."""
    matching = len(buffers) == len(sources) and all(
        b.shape == s.shape and b.dtype == s.dtype and b.device == s.device for b, s in zip(buffers, sources)
    )
    if not matching:
        return [s.clone() for s in sources]
    if sources:
        th._foreach_copy_(buffers, sources)
    return buffers


def gradient_step(
    policy: th.nn.Module,
    losses: LossTerms,
    ent_coef: float,
    vf_coef: float,
    max_grad_norm: float | None,
    guard: GuardedStep,
) -> tuple[th.Tensor, th.Tensor]:
    """
    Backpropagate the total loss, check and clip the gradient, and take a guarded optimiser step.

    :param policy: The policy (with its ``optimizer``).
    :param losses: The loss terms.
    :param ent_coef: Entropy coefficient.
    :param vf_coef: Value-function coefficient.
    :param max_grad_norm: Clip the gradient to this norm (None: no clipping).
    :param guard: The step guard.
    :return: ``(total loss, gradient norm before clipping)``.
    :raises NonFiniteLossError: A loss term, the gradient or the new parameters were not finite; nothing changed.
    """
    loss = total_loss(losses, ent_coef, vf_coef)
    optimizer: th.optim.Optimizer = policy.optimizer  # type: ignore[assignment]
    return loss, backward_and_step(loss, optimizer, list(policy.parameters()), max_grad_norm, guard)


def backward_and_step(
    loss: th.Tensor,
    optimizer: th.optim.Optimizer,
    parameters: Sequence[th.nn.Parameter],
    max_grad_norm: float | None,
    guard: GuardedStep,
    name: str = "gradient",
) -> th.Tensor:
    """
    ``loss.backward()``, the gradient checked and clipped, then a guarded step of ``optimizer``.

    :param loss: A finite scalar loss.
    :param optimizer: The optimiser of ``parameters``.
    :param parameters: The parameters it updates (whose gradient is checked and clipped).
    :param max_grad_norm: Clip the gradient to this norm (None: no clipping).
    :param guard: The step guard.
    :param name: What the gradient is, for the error message.
    :return: The gradient norm before clipping.
    :raises NonFiniteLossError: The gradient or the new parameters were not finite; nothing changed.
    """
    optimizer.zero_grad()
    loss.backward()
    if max_grad_norm is None:
        grad_norm = gradient_norm(parameters)
    else:  # clip_grad_norm_ returns the norm before clipping; it is not computed twice
        grad_norm = th.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    require_finite(name, grad_norm)
    guard.step(optimizer, parameters)
    return grad_norm
