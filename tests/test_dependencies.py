"""The wheel's dependencies are tested ranges and constraints.txt pins inside them, so
installing the wheel beside a newer JAX of the same minor keeps it (docs/stack.md shows
the install itself; it needs the package index, so it is not run here)."""

import pathlib
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = pathlib.Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
RANGED = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "grain", "ml-collections")


def requirements() -> dict[str, Requirement]:
  return {canonicalize_name(Requirement(r).name): Requirement(r) for r in PROJECT["dependencies"]}


def constraints() -> dict[str, Version]:
  pins = {}
  for line in (REPO / "constraints.txt").read_text().splitlines():
    line = line.split("#")[0].strip()
    if line:
      name, version = line.split("==")
      pins[canonicalize_name(name)] = Version(version)
  return pins


@pytest.mark.parametrize("name", RANGED)
def test_core_libraries_are_ranges_that_hold_the_pinned_version(name):
  requirement = requirements()[name]
  operators = sorted(spec.operator for spec in requirement.specifier)
  assert operators == ["<", ">="], f"{requirement}: expected >=oldest-passing,<next-minor"
  pinned = constraints()[name]
  upper = next(Version(s.version) for s in requirement.specifier if s.operator == "<")
  assert pinned in requirement.specifier, (name, pinned, str(requirement))
  assert upper == Version(f"{pinned.major}.{pinned.minor + 1}"), f"{requirement}: the upper bound is the next minor"


def test_a_newer_jax_of_the_pinned_minor_is_accepted_and_the_next_minor_is_not():
  jax = requirements()["jax"].specifier
  pinned = constraints()["jax"]
  newer = Version(f"{pinned.major}.{pinned.minor}.{pinned.micro + 1}")
  assert newer > pinned and newer in jax
  assert Version(f"{pinned.major}.{pinned.minor + 1}.0") not in jax
  assert Version("0.10.2") in jax  # the oldest stack the suite passed on


def test_every_installed_requirement_is_pinned_in_the_constraints():
  pins = constraints()
  for name in requirements():
    assert name in pins, f"{name} has no exact version in constraints.txt"


def test_accelerator_extras_name_jaxs_own_plugins():
  extras = PROJECT["optional-dependencies"]
  assert extras["cuda12"] == ["jax[cuda12]"] and extras["cuda13"] == ["jax[cuda13]"]
  assert extras["tpu"] == ["jax[tpu]"] and extras["cuda"] == extras["cuda12"]
  assert extras["aot"] == ["jax[tpu,cuda12-local]"]
  assert not any(r.startswith(("jax[", "libtpu")) for r in extras["test"])  # the test venv stays CPU-only
