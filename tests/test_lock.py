"""constraints.txt, the lock every install uses, agrees with pyproject.toml and with this environment.

A dependency added to pyproject.toml without `make lock`, or a range moved past its pin, fails here
rather than resolving anew on the next fresh machine.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pairs = [line.split("==") for line in lines if line.strip() and not line.startswith("#")]
    assert all(len(p) == 2 for p in pairs), "every line of constraints.txt is name==version"
    return {canonicalize_name(name): version.strip() for name, version in pairs}


def declared() -> list[Requirement]:
    """Every requirement pyproject.toml states, its extras' included (not the project's own name)."""
    texts = [*PROJECT["dependencies"], *(r for extra in PROJECT["optional-dependencies"].values() for r in extra)]
    return [r for r in map(Requirement, texts) if canonicalize_name(r.name) != PROJECT["name"]]


def applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**default_environment(), "extra": e}) for e in extras or {""})


def installed_closure() -> dict[str, str]:
    """name -> installed version of everything `pip install -e .[dev]` brought, walked from the metadata."""
    seen: dict[str, str] = {}
    todo = [(PROJECT["name"], {"dev", "team"})]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        distribution = importlib.metadata.distribution(name)
        if key in seen and not extras:
            continue
        seen[key] = distribution.version
        for requirement in map(Requirement, distribution.requires or []):
            if applies(requirement, extras) and canonicalize_name(requirement.name) != PROJECT["name"]:
                todo.append((requirement.name, set(requirement.extras)))
    return {k: v for k, v in seen.items() if k != PROJECT["name"]}


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    lock = pins()
    unpinned = [str(r) for r in declared() if canonicalize_name(r.name) not in lock]
    assert not unpinned, f"not in constraints.txt (run `make lock`): {unpinned}"
    outside = [
        f"{r} but {lock[canonicalize_name(r.name)]}"
        for r in declared()
        if lock[canonicalize_name(r.name)] not in r.specifier
    ]
    assert not outside, f"pinned outside pyproject.toml's range (run `make lock`): {outside}"


def test_this_environment_is_the_lock() -> None:
    """What the tests run on is what the lock says: no package of the install unpinned or at another version."""
    lock = pins()
    closure = installed_closure()
    assert "torch" in closure and "dvc-webdav" in closure  # the walk reached the pipeline's and the team's packages
    unpinned = sorted(set(closure) - set(lock))
    assert not unpinned, f"installed but not in constraints.txt (run `make lock`): {unpinned}"
    other = {name: (version, lock[name]) for name, version in closure.items() if lock[name] != version}
    assert not other, f"installed version differs from the lock (run `make setup-dev`): {other}"
