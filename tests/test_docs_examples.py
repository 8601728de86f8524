"""The documentation's code runs: every example of docs/examples/, and the "Can I use?" tables.

The pages include the files of ``docs/examples/`` verbatim (``literalinclude``), so running the
files here runs exactly the code readers see.  Each example reads the environment variable
``SB3_REINFORCE_EXAMPLE_STEPS`` for its training budget (its real budget otherwise); here it is set
small, so every example trains, saves, loads and predicts in a few seconds.  Pages may not carry
Python code of their own (it would not be run): code goes into ``docs/examples/``.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import (
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)

from sb3_reinforce import REINFORCE, OffPolicyPG

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("*.py"))
# Pages written by others that hold results, not code (checked only for their includes).
RESULT_PAGES = {"benchmarks.md"}
PAGES = sorted(DOCS.glob("*.md"))
INCLUDE = re.compile(r"^```\{literalinclude\}\s+(\S+)", re.MULTILINE)
PYTHON_BLOCK = re.compile(r"^[ \t]*(```|~~~|:::)[ \t]*(\{code(?:-block)?\}[ \t]*)?(python3?|py|pycon)\b", re.MULTILINE)
EXAMPLE_STEPS = "500"


def test_examples_exist():
    assert len(EXAMPLES) >= 5, EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs(example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    source = example.read_text()
    assert "SB3_REINFORCE_EXAMPLE_STEPS" in source, "every example must let the tests shrink its budget"
    monkeypatch.setenv("SB3_REINFORCE_EXAMPLE_STEPS", EXAMPLE_STEPS)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)  # examples save files in the working directory
    runpy.run_path(str(example), run_name="__main__")


def test_every_example_is_shown_and_every_include_exists():
    included: set[Path] = set()
    for page in PAGES:
        for target in INCLUDE.findall(page.read_text()):
            path = (page.parent / target).resolve()
            assert path.is_file(), f"{page.name} includes {target}, which does not exist"
            included.add(path)
    assert {path.resolve() for path in EXAMPLES} <= included, "an example in docs/examples/ is on no page"


@pytest.mark.parametrize("page", [p for p in PAGES if p.name not in RESULT_PAGES], ids=lambda p: p.name)
def test_pages_hold_no_untested_python(page: Path):
    blocks = PYTHON_BLOCK.findall(page.read_text())
    assert not blocks, f"{page.name}: move its Python code to docs/examples/ and include it with literalinclude"


# "Can I use?" on docs/reinforce.md and docs/offpolicy_pg.md: every space in the table trains.
SPACES = {
    "Discrete": lambda: IdentityEnv(3, ep_length=10),
    "Box": lambda: IdentityEnvBox(ep_length=10),
    "MultiDiscrete": lambda: IdentityEnvMultiDiscrete(2, ep_length=10),
    "MultiBinary": lambda: IdentityEnvMultiBinary(2, ep_length=10),
}


@pytest.mark.parametrize("algorithm", [REINFORCE, OffPolicyPG], ids=lambda a: a.__name__)
@pytest.mark.parametrize("space", list(SPACES))
def test_can_i_use_spaces(algorithm, space: str):
    """Action and observation space of each row (SB3's identity envs observe what they ask to act), 2 envs."""
    model = algorithm("MlpPolicy", make_vec_env(SPACES[space], n_envs=2, seed=0), n_episodes=2, seed=0)
    model.learn(1)
    assert type(model.action_space).__name__ == space
    assert type(model.observation_space).__name__ == space
    assert model.num_timesteps >= 20


@pytest.mark.parametrize("algorithm", [REINFORCE, OffPolicyPG], ids=lambda a: a.__name__)
def test_can_i_use_dict_observations(algorithm):
    env = make_vec_env(lambda: TimeLimit(SimpleMultiObsEnv(random_start=True), 20), n_envs=2, seed=0)
    model = algorithm("MultiInputPolicy", env, n_episodes=2, seed=0)
    model.learn(1)
    assert type(model.observation_space).__name__ == "Dict"


@pytest.mark.parametrize("page", ["reinforce.md", "offpolicy_pg.md"])
def test_can_i_use_table_matches_the_tests(page: str):
    """The table lists exactly the spaces tested above, and Dict for observations only."""
    text = (DOCS / page).read_text()
    table = text[text.index("## Can I use?") :].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ") and "✔" in line}
    assert set(rows) == {*SPACES, "Dict"}
    assert all(rows[space].count("✔") == 2 for space in SPACES)
    assert "❌" in rows["Dict"].split("|")[2]


def test_api_page_covers_every_shared_module():
    """docs/api.md documents every public module of sb3_reinforce.common and sb3_reinforce.zoo (a new one too)."""
    import pkgutil

    import sb3_reinforce.common
    import sb3_reinforce.zoo

    api = (DOCS / "api.md").read_text()
    documented = set(re.findall(r"automodule::\s+(\S+)", api))
    for package in (sb3_reinforce.common, sb3_reinforce.zoo):
        for info in pkgutil.iter_modules(package.__path__, prefix=f"{package.__name__}."):
            if not info.name.rsplit(".", 1)[1].startswith("_"):
                assert info.name in documented, f"docs/api.md has no automodule for {info.name}"


def test_project_refers_to_nothing_outside_it():
    """The contract is docs/maths.md: no file cites a document that users of a clone or a wheel do not have."""
    root = DOCS.parent
    folders = ("sb3_reinforce", "tests", "benchmarks", "docs", "hyperparams")
    files = [root / name for name in ("README.md", "pyproject.toml", "Makefile")]
    files += [
        p for folder in folders for p in (root / folder).rglob("*") if p.suffix in (".py", ".md", ".yml", ".toml")
    ]
    files = [p for p in files if "_build" not in p.parts]
    # The patterns are assembled, so that this file does not itself name what it looks for.
    folder, contract = "sha" + "red", "SP" + "EC"
    outside = re.compile(rf"\.\./{folder}|{folder}/seeds|{contract}\.md|{contract} §")
    offending = [f"{p.relative_to(root)}: {m.group(0)}" for p in files for m in outside.finditer(p.read_text())]
    assert len(files) > 50 and offending == []
