"""Every public class, function and method of sb3_reinforce documents its parameters and its return value.

The HTML documentation (``make docs``) renders these docstrings through autodoc, so a parameter
without a ``:param name:`` line is a parameter missing from the documentation.  The rules, checked on
every public module of the package (names without a leading underscore, defined in that module):

- a docstring (a method may inherit its base class's docstring, as autodoc shows it);
- one ``:param name:`` line per parameter of the signature (``self``, ``cls``, ``*args`` and
  ``**kwargs`` excepted); a class documents its constructor's parameters, as in SB3;
- a ``:return:`` line when the return annotation is not ``None`` (properties excepted: their
  docstring is the description of the value).

The docstring examples (``>>>``) of the same modules are run by :func:`test_docstring_examples`.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

import sb3_reinforce

PARAM = re.compile(r":param\s+(?:[^:\n]*\s)?(\w+)\s*:")
RETURN = re.compile(r":returns?:")


def public_modules() -> list[ModuleType]:
    """The package and every submodule whose dotted name has no component starting with ``_``."""
    modules = [sb3_reinforce]
    for info in pkgutil.walk_packages(sb3_reinforce.__path__, prefix="sb3_reinforce."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def _public_names(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None) or [name for name in vars(module) if not name.startswith("_")]
    return [name for name in names if not name.startswith("_")]


def public_objects() -> Iterator[tuple[str, Any, str]]:
    """``(qualified name, object, kind)`` for every public function, class, method and property."""
    seen: set[int] = set()
    for module in public_modules():
        for name in _public_names(module):
            obj = getattr(module, name, None)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != module.__name__:
                continue  # imported from elsewhere (checked where it is defined) or not code
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            qualified = f"{module.__name__}.{name}"
            if inspect.isfunction(obj):
                yield qualified, obj, "function"
                continue
            yield qualified, obj, "class"
            for attr_name, attr in vars(obj).items():
                if attr_name.startswith("_"):
                    continue
                if isinstance(attr, property):
                    yield f"{qualified}.{attr_name}", attr, "property"
                elif isinstance(attr, (staticmethod, classmethod)):
                    yield f"{qualified}.{attr_name}", getattr(obj, attr_name), "static"
                elif inspect.isfunction(attr):
                    yield f"{qualified}.{attr_name}", getattr(obj, attr_name), "method"


OBJECTS = sorted(public_objects(), key=lambda item: item[0])


def _docstring(obj: Any, kind: str) -> str:
    if kind == "property":
        return inspect.getdoc(obj.fget) or ""
    return inspect.getdoc(obj) or ""  # getdoc falls back to the base class's docstring, as autodoc does


def _parameters(obj: Any, kind: str) -> list[str]:
    if kind == "property":
        return []
    try:
        signature = inspect.signature(obj)
    except ValueError:  # an exception class with the built-in constructor: nothing to document
        return []
    parameters = list(signature.parameters.values())
    if kind == "method" and parameters and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]
    skipped = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in parameters if p.kind not in skipped]


def _returns_value(obj: Any, kind: str) -> bool:
    if kind in ("class", "property"):
        return False
    annotation = inspect.signature(obj).return_annotation
    return annotation not in (inspect.Signature.empty, None, "None")


def missing_documentation(obj: Any, kind: str) -> list[str]:
    """
    What the docstring of ``obj`` lacks.

    :param obj: A function, class, bound method or property.
    :param kind: ``"function"``, ``"class"``, ``"method"``, ``"static"`` or ``"property"``.
    :return: One entry per problem (empty when the docstring is complete).
    """
    doc = _docstring(obj, kind)
    if not doc.strip():
        return ["no docstring"]
    documented = set(PARAM.findall(doc))
    problems = [f":param {name}: missing" for name in _parameters(obj, kind) if name not in documented]
    if _returns_value(obj, kind) and not RETURN.search(doc):
        problems.append(":return: missing")
    return problems


def test_the_check_finds_the_public_api():
    """The walk reaches the algorithms, their methods and the shared functions (guards against an empty check)."""
    names = {name for name, _, _ in OBJECTS}
    for expected in (
        "sb3_reinforce.reinforce.reinforce.REINFORCE",
        "sb3_reinforce.offpolicy_pg.offpolicy_pg.OffPolicyPG.save_replay_buffer",
        "sb3_reinforce.common.returns.discount_weights",
        "sb3_reinforce.common.importance_weights.per_decision_weights",
        "sb3_reinforce.common.episode_replay_buffer.EpisodeReplayBuffer.sample",
        "sb3_reinforce.zoo.register",
        "sb3_reinforce.zoo.samplers.sample_reinforce_params",
    ):
        assert expected in names


def test_the_check_catches_an_undocumented_parameter():
    def documented(a: int, b: int) -> int:
        """
        Add.

        :param a: One number.
        :return: The sum.
        """
        return a + b

    assert missing_documentation(documented, "function") == [":param b: missing"]


@pytest.mark.parametrize(("name", "obj", "kind"), OBJECTS, ids=[name for name, _, _ in OBJECTS])
def test_public_docstring_documents_every_parameter(name: str, obj: Any, kind: str):
    assert missing_documentation(obj, kind) == [], f"{name}: {', '.join(missing_documentation(obj, kind))}"


# Modules whose docstrings hold ``>>>`` examples; each must have at least one, and all must pass.
DOCTEST_MODULES = [
    "sb3_reinforce.common.masking",
    "sb3_reinforce.common.recurrent",
    "sb3_reinforce.common.baselines",
    "sb3_reinforce.common.collector",
    "sb3_reinforce.common.episodes",
    "sb3_reinforce.common.errors",
    "sb3_reinforce.common.gradient_step",
    "sb3_reinforce.common.importance_weights",
    "sb3_reinforce.common.surrogate",
    "sb3_reinforce.common.validation",
]


@pytest.mark.parametrize("module_name", DOCTEST_MODULES)
def test_docstring_examples(module_name: str):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module_name} has no docstring example"
    assert result.failed == 0


def test_every_module_with_docstring_examples_is_run():
    """A ``>>>`` example added to another module must be added to DOCTEST_MODULES, so it is run too."""
    finder = doctest.DocTestFinder()
    with_examples = {
        module.__name__ for module in public_modules() if any(test.examples for test in finder.find(module))
    }
    assert with_examples <= set(DOCTEST_MODULES), sorted(with_examples - set(DOCTEST_MODULES))
