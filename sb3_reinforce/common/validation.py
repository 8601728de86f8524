"""Checks of constructor arguments: each raises a ``ValueError`` naming the parameter, the value and what is allowed."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any


def check_choice(name: str, value: Any, allowed: Sequence[str]) -> None:
    """
    Require ``value`` to be one of ``allowed``.

    >>> check_choice("baseline", "avg", ("none", "mean"))
    Traceback (most recent call last):
    ...
    ValueError: baseline='avg' is not supported; allowed values: 'none', 'mean'

    :param name: Parameter name, for the message.
    :param value: The value given.
    :param allowed: The accepted values.
    """
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name}={value!r} is not supported; allowed values: {choices}")


def check_int(name: str, value: Any, minimum: int, why: str = "") -> None:
    """
    Require an integer ``value >= minimum``.

    >>> check_int("n_episodes", 1, 2, "with baseline='mean'")
    Traceback (most recent call last):
    ...
    ValueError: n_episodes=1 is not allowed: it must be an integer >= 2 with baseline='mean'

    :param name: Parameter name, for the message.
    :param value: The value given.
    :param minimum: Smallest accepted value.
    :param why: Optional reason appended to the message (e.g. which option needs it).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        reason = f" {why}" if why else ""
        raise ValueError(f"{name}={value!r} is not allowed: it must be an integer >= {minimum}{reason}")


def check_number(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    low_inclusive: bool = True,
    allow_none: bool = False,
) -> None:
    """
    Require a finite real number in ``[low, high]`` (or ``(low, high]`` when ``low_inclusive`` is False).

    >>> check_number("gamma", 0.99, 0.0, 1.0)  # accepted: returns None
    >>> check_number("gamma", 1.5, 0.0, 1.0)
    Traceback (most recent call last):
    ...
    ValueError: gamma=1.5 is not allowed: it must be a finite number in [0.0, 1.0]
    >>> check_number("truncation", 0.0, 0.0, low_inclusive=False, allow_none=True)
    Traceback (most recent call last):
    ...
    ValueError: truncation=0.0 is not allowed: it must be a finite number > 0.0 or None

    :param name: Parameter name, for the message.
    :param value: The value given.
    :param low: Lower bound.
    :param high: Upper bound (inclusive).
    :param low_inclusive: Whether ``low`` itself is accepted.
    :param allow_none: Whether ``None`` is accepted (an option that can be switched off).
    """
    if value is None and allow_none:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        ok = (value >= low if low_inclusive else value > low) and value <= high
    if not ok:
        left = "[" if low_inclusive else "("
        interval = f"in {left}{low}, {high}]" if math.isfinite(high) else (f">= {low}" if low_inclusive else f"> {low}")
        none = " or None" if allow_none else ""
        raise ValueError(f"{name}={value!r} is not allowed: it must be a finite number {interval}{none}")
