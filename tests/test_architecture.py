"""The package's shape (docs/architecture.md), checked from the source files.

Imports run one way: commands and study tools -> loop, state and the Python API ->
tasks -> models, data, metrics. The dataset builders and the configs import nothing
from the rest of the package. No module imports another of this package inside a
function (the way a cycle is usually hidden), and the import graph has no cycle. No
module outside the builders is over 450 lines, and every ``vad_jax`` path the docs name
exists.
"""

import ast
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# Folder of the repository -> package it installs as (pyproject.toml, package-dir).
ROOTS = {"vad_jax": "vad_jax", "configs": "vad_jax.configs", "tfds_builders": "vad_jax.tfds_builders"}
# ``python -m vad_jax.X`` of the commands' and study tools' earlier places, kept for scripts.
ALIASES = {
  "vad_jax.train",
  "vad_jax.evaluate",
  "vad_jax.calibrate",
  "vad_jax.detect",
  "vad_jax.benchmark",
  "vad_jax.ablations",
  "vad_jax.folds",
  "vad_jax.curve",
  "vad_jax.ensemble",
  "vad_jax.device_check",
  "vad_jax.data.benchmark",
  "vad_jax.data.prepare_benchmark",
}
LOOP_AND_STATE = {
  "vad_jax.loop",
  "vad_jax.state",
  "vad_jax.tasks",
  "vad_jax.config_flags",
  "vad_jax.detector",
  "vad_jax.export",
  "vad_jax.throughput",
  "vad_jax.aot",
}
MAX_LINES = 450


def module_files(with_test_helpers: bool = False) -> dict[str, pathlib.Path]:
  modules = {}
  for folder, package in ROOTS.items():
    for path in sorted((REPO / folder).rglob("*.py")):
      parts = path.relative_to(REPO / folder).with_suffix("").parts
      helper = path.name.endswith("_test.py") or "dummy_data" in parts or path.name == "testing.py"
      if helper and not with_test_helpers:
        continue  # tests and fixtures, not part of the installed library's graph
      name = ".".join((package, *parts))
      modules[name.removesuffix(".__init__")] = path
  return modules


MODULES = module_files()
ENTRY_POINTS = {m for m in MODULES if m.startswith(("vad_jax.commands.", "vad_jax.studies.")) or m in ALIASES} | {
  "vad_jax.__main__"
}


def _resolve(module: str, node: ast.ImportFrom) -> str:
  if not node.level:
    return node.module or ""
  package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
  for _ in range(node.level - 1):
    package = package.rpartition(".")[0]
  return f"{package}.{node.module}" if node.module else package


def imports(module: str) -> list[tuple[str, bool]]:
  """``(imported project module, inside a function)`` for every import statement."""
  tree = ast.parse(MODULES[module].read_text())
  found = []

  def visit(node, in_function):
    for child in ast.iter_child_nodes(node):
      nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
      if isinstance(child, ast.Import):
        found.extend((alias.name, nested) for alias in child.names)
      elif isinstance(child, ast.ImportFrom):
        base = _resolve(module, child)
        for alias in child.names:
          target = f"{base}.{alias.name}"
          found.append((target if target in MODULES else base, nested))
      visit(child, nested)

  visit(tree, False)
  return [(name, nested) for name, nested in found if name.split(".")[0] == "vad_jax"]


def graph() -> dict[str, set[str]]:
  return {m: {t for t, nested in imports(m) if not nested and t in MODULES and t != m} for m in MODULES}


def test_the_files_map_onto_the_installed_packages():
  for expected in (
    "vad_jax.loop",
    "vad_jax.commands.train",
    "vad_jax.studies.folds",
    "vad_jax.dual_stream.memory",
    "vad_jax.hybrid.model",
    "vad_jax.configs.default",
    "vad_jax.tfds_builders.ucsd_ped.ucsd_ped_dataset_builder",
  ):
    assert expected in MODULES


def test_no_import_cycle():
  edges, state, stack = graph(), {}, []

  def visit(m):
    state[m] = "open"
    stack.append(m)
    for n in sorted(edges[m]):
      if state.get(n) == "open":
        pytest.fail("import cycle: " + " -> ".join(stack[stack.index(n) :] + [n]))
      if n not in state:
        visit(n)
    stack.pop()
    state[m] = "done"

  for m in sorted(edges):
    if m not in state:
      visit(m)


def test_no_project_import_inside_a_function():
  inside = [(m, t) for m in MODULES for t, nested in imports(m) if nested]
  assert not inside, f"imports of project modules inside functions: {inside}"


@pytest.mark.parametrize(
  "package, allowed", [("vad_jax.tfds_builders", "vad_jax.tfds_builders"), ("vad_jax.configs", "vad_jax.configs")]
)
def test_builders_and_configs_import_nothing_else_from_the_package(package, allowed):
  for module in (m for m in MODULES if m == package or m.startswith(package + ".")):
    outside = [t for t, _ in imports(module) if t != allowed and not t.startswith(allowed + ".")]
    assert not outside, f"{module} imports {outside}"


def test_imports_run_from_entry_points_to_tasks_to_components():
  edges = graph()
  for module, targets in edges.items():
    if module in ENTRY_POINTS:
      continue
    assert not targets & ENTRY_POINTS, f"{module} imports an entry point: {targets & ENTRY_POINTS}"
    if module not in LOOP_AND_STATE:
      assert not targets & LOOP_AND_STATE, f"{module} imports the loop/state layer: {targets & LOOP_AND_STATE}"
  for system, other in (("vad_jax.dual_stream", "vad_jax.hybrid"), ("vad_jax.hybrid", "vad_jax.dual_stream")):
    for module in (m for m in edges if m.startswith(system + ".")):
      crossing = {t for t in edges[module] if t.startswith(other)}
      assert not crossing, f"{module} imports the other system: {crossing}"


def test_the_loop_and_tools_name_no_model_loss_or_metric():
  """Only ``vad_jax.tasks`` imports the task modules; the entry points and the loop
  reach models, losses and evaluation through it."""
  system_modules = {m for m in MODULES if m.startswith(("vad_jax.dual_stream", "vad_jax.hybrid"))}
  for module in ENTRY_POINTS | LOOP_AND_STATE - {"vad_jax.tasks"}:
    assert not graph()[module] & system_modules, f"{module} imports {graph()[module] & system_modules}"


def test_the_aliases_run_a_command_and_hold_nothing_else():
  """``python -m vad_jax.train`` and the other old places only start their command."""
  for alias in ALIASES:
    tree = ast.parse(MODULES[alias].read_text())
    body = [node for node in tree.body if not isinstance(node, (ast.Import, ast.ImportFrom, ast.Expr))]
    assert len(body) == 1 and isinstance(body[0], ast.If), f"{alias} holds more than the start of its command"
    assert {t for t, _ in imports(alias)} <= ENTRY_POINTS | {"vad_jax.cli", "vad_jax.commands", "vad_jax.studies"}


def test_no_module_over_the_line_limit():
  """Outside the dataset builders (one archive layout each), no module, test modules
  included, is over ``MAX_LINES`` lines."""
  paths = [p for m, p in MODULES.items() if not m.startswith("vad_jax.tfds_builders")]
  paths += sorted((REPO / "tests").rglob("*.py"))
  long = {str(p.relative_to(REPO)): n for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES}
  assert not long, f"modules over {MAX_LINES} lines: {long}"


def _top_level_names(path: pathlib.Path) -> set[str]:
  names = set()
  for node in ast.parse(path.read_text()).body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
      names.add(node.name)
    elif isinstance(node, ast.Assign):
      names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
      names.add(node.target.id)
    elif isinstance(node, ast.ImportFrom):
      names.update(alias.asname or alias.name for alias in node.names)
  return names


def missing_doc_paths(text: str) -> list[str]:
  """The ``vad_jax.a.b`` names (a module, or a module's top-level name) and
  ``vad_jax/a/b.py`` files of ``text`` that do not exist in the installed package."""
  modules = module_files(with_test_helpers=True)
  missing = []
  for name in re.findall(r"\bvad_jax(?:\.\w+)+", text):
    parts = name.split(".")
    parts = parts[: next((i for i, p in enumerate(parts) if p.isupper()), len(parts))]  # NAME: a placeholder
    module = next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in modules), None)
    rest = parts[len(module.split(".")) :] if module else parts
    if module is None or (rest and rest[0] not in _top_level_names(modules[module])):
      missing.append(name)
  for path in re.findall(r"\bvad_jax/[\w/]+\.py\b", text):
    if path.removesuffix(".py").removesuffix("/__init__").replace("/", ".") not in modules:
      missing.append(path)
  return missing


def test_the_doc_path_check_finds_a_missing_module():
  assert missing_doc_paths("see vad_jax.models.networks and vad_jax/classification.py") == [
    "vad_jax.models.networks",
    "vad_jax/classification.py",
  ]
  assert missing_doc_paths("vad_jax.loop.train_and_evaluate, vad_jax.studies.NAME, vad_jax/dual_stream/memory.py") == []


def test_every_vad_jax_path_named_in_the_docs_exists():
  docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
  missing = {str(d.relative_to(REPO)): found for d in docs if (found := missing_doc_paths(d.read_text()))}
  assert not missing, f"docs name vad_jax paths that do not exist: {missing}"


def test_test_modules_have_unique_names():
  """pytest imports test modules by base name (the test folders are not packages): two
  ``test_x.py`` in different folders stop the collection of the second."""
  names = [p.name for p in (REPO / "tests").rglob("test_*.py")]
  assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
