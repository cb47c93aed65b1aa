"""The package's layering: no import circle, no import that runs back up the layer order, the command line
imported only by itself, no other package's private module, no import of the package face from inside,
no argparse or printing below `cli/`, backend frameworks only lazily where they belong.

The layer order (low -> high; `import_graph.LAYERS`): version, backends < config < layers < models <
data, convert < training < apps < complexity < cli. The graph is read with `ast` (`import_graph.py`), so
these specs import nothing of the package and run in well under a second on every backend. The checker
itself is specified on small synthetic packages at the end of this file.
"""

import textwrap

import pytest

import import_graph
from helpers import REPO
from import_graph import ImportGraph

PACKAGE = REPO / "vidtr_keras"

# Imports that run up the layer order on purpose: plug-ins imported lazily, only when the feature is used.
# (importer, the module it names): why. Keep it short; an entry the code no longer has fails the spec.
LAZY_PLUGINS = {
    ("vidtr_keras.models.loading", "vidtr_keras.convert.gluonmm"): (
        "an official checkpoint is one of the specs load_model dispatches; its converter is loaded only "
        "when a spec names one (as keras-hub's preset loader dispatches by format)"
    ),
    ("vidtr_keras.training.trainer", "vidtr_keras.complexity.flops"): (
        "`threads='auto'` counts a training batch's multiply-adds with the analytic FLOP model, only on the "
        "torch backend's thread decision; a model it cannot count keeps the default threads"
    ),
}
# Modules below cli/ that print: child processes whose standard output is the runner's protocol
# (`PROGRESS`/`RESULT` lines read by `complexity/runner.py`), not text for a person.
PRINTING = {
    "vidtr_keras.complexity.benchmark": "a measuring child process: its PROGRESS and RESULT lines are its output",
    "vidtr_keras.complexity.worker": "a measuring child process: its ITEM lines are its output",
}
# Backend frameworks imported (lazily) outside backends/ and complexity/: where the framework is the file
# format, not a backend workaround.
FRAMEWORK_USERS = {
    ("vidtr_keras.apps.export", "tensorflow"): "SavedModel and TFLite files are written by TensorFlow itself",
    ("vidtr_keras.apps.export", "torch"): "ONNX from the PyTorch backend is written by torch.onnx",
    ("vidtr_keras.convert.io", "torch"): "official PyTorch checkpoints (.pth) are read with torch.load",
}


@pytest.fixture(scope="module")
def graph():
    return ImportGraph(PACKAGE)


RULES = {
    "no_import_circle": lambda g: import_graph.circles(g, LAZY_PLUGINS),
    "every_module_in_a_layer": import_graph.modules_outside_layers,
    "every_import_resolves": import_graph.unresolved_imports,
    "no_import_runs_back_up": lambda g: import_graph.imports_up(g, LAZY_PLUGINS),
    "cli_imported_only_from_cli": import_graph.imports_of_cli,
    "no_private_module_of_another_package": import_graph.private_imports,
    "no_import_of_the_package_face": import_graph.imports_of_the_face,
    "no_argparse_or_print_below_cli": lambda g: import_graph.argparse_or_print(g, PRINTING),
    "frameworks_only_lazily_in_backends_and_measurement": lambda g: import_graph.framework_imports(g, FRAMEWORK_USERS),
    "lazy_plugin_allowlist_matches_the_code": lambda g: import_graph.stale_plugins(g, LAZY_PLUGINS),
    "printing_allowlist_matches_the_code": lambda g: import_graph.stale_printing(g, PRINTING),
    "framework_allowlist_matches_the_code": lambda g: import_graph.stale_framework_imports(g, FRAMEWORK_USERS),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_the_package_keeps_its_layering(graph, rule):
    violations = RULES[rule](graph)
    if violations:
        pytest.fail(f"{rule}: {len(violations)} violation(s)\n  " + "\n  ".join(violations), pytrace=False)


@pytest.mark.parametrize("folder", ["reproduce", "benchmarks"])
def test_the_scripts_have_no_import_circle(folder):
    if not (REPO / folder / "__init__.py").exists():
        pytest.skip(f"{folder}/ is not a package in this checkout")
    found = import_graph.circles(ImportGraph(REPO / folder))
    if found:
        pytest.fail("\n  ".join([f"{folder}: {len(found)} circle(s)", *found]), pytrace=False)


def test_every_allowlist_entry_says_why():
    for allowlist in (LAZY_PLUGINS, PRINTING, FRAMEWORK_USERS):
        for entry, reason in allowlist.items():
            assert isinstance(reason, str) and len(reason.split()) >= 5, entry


# --- the checker itself, on small synthetic packages -------------------------------------------------


def _package(tmp_path, files):
    """A package `vidtr_keras` under `tmp_path` with the given `{relative path: source}` files."""
    for name, source in files.items():
        path = tmp_path / "vidtr_keras" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    for folder in [tmp_path / "vidtr_keras", *(tmp_path / "vidtr_keras").rglob("*")]:
        if folder.is_dir() and folder.name != "__pycache__" and not (folder / "__init__.py").exists():
            (folder / "__init__.py").write_text("")
    return ImportGraph(tmp_path / "vidtr_keras")


CLEAN = {
    "__init__.py": "from vidtr_keras.models import build_model\nfrom vidtr_keras.version import __version__\n",
    "version.py": "__version__ = '0'\n",
    "layers/__init__.py": "from vidtr_keras.layers.attention import Attention\n",
    "layers/_utils.py": "def check(): pass\n",
    "layers/attention.py": "from vidtr_keras.layers._utils import check\nfrom . import _utils\nclass Attention: pass\n",
    "models/__init__.py": "from vidtr_keras.models.task import build_model\nfrom .loading import load_model\n",
    "models/task.py": "from vidtr_keras.layers import Attention\nfrom vidtr_keras.models.loading import load_model\n"
    "def build_model(): pass\n",
    "models/loading.py": "from vidtr_keras import version\n"
    "def load_model(spec):\n    from vidtr_keras.convert import gluonmm\n",
    "convert/__init__.py": "",
    "convert/gluonmm.py": "from ..models.task import build_model\n",
    "cli/__init__.py": "import argparse\nfrom vidtr_keras.cli import args\nprint('hello')\n",
    "cli/args.py": "def add_flags(parser): pass\n",
}
PLUGINS = {("vidtr_keras.models.loading", "vidtr_keras.convert.gluonmm"): "the converter is a plug-in"}


def test_a_clean_package_keeps_every_rule(tmp_path):
    graph = _package(tmp_path, CLEAN)
    assert import_graph.circles(graph, PLUGINS) == []
    assert import_graph.imports_up(graph, PLUGINS) == []
    assert import_graph.stale_plugins(graph, PLUGINS) == []
    assert import_graph.modules_outside_layers(graph) == []
    assert import_graph.unresolved_imports(graph) == []
    assert import_graph.imports_of_cli(graph) == []
    assert import_graph.private_imports(graph) == []
    assert import_graph.imports_of_the_face(graph) == []
    assert import_graph.argparse_or_print(graph) == []
    assert import_graph.framework_imports(graph) == []


def test_imports_resolve_to_the_module_python_would_run(tmp_path):
    graph = _package(tmp_path, CLEAN)
    named = {(e.src, e.dst) for e in graph.imports if not e.implicit}
    assert ("vidtr_keras.layers.attention", "vidtr_keras.layers._utils") in named  # `from . import _utils`
    assert ("vidtr_keras.models.loading", "vidtr_keras.version") in named  # `from vidtr_keras import version`
    assert ("vidtr_keras.models", "vidtr_keras.models.loading") in named  # `from .loading import ...`
    assert ("vidtr_keras.models.task", "vidtr_keras.layers") in named  # a name of the package face
    implicit = {(e.src, e.dst) for e in graph.imports if e.implicit}
    # importing models.task from outside models/ runs models/__init__.py first; from inside it does not
    assert ("vidtr_keras.convert.gluonmm", "vidtr_keras.models") in implicit
    assert ("vidtr_keras.models.task", "vidtr_keras.models") not in implicit
    (lazy,) = [e for e in graph.imports if e.dst == "vidtr_keras.convert.gluonmm"]
    assert lazy.lazy and lazy.src == "vidtr_keras.models.loading" and lazy.line == 3


def test_a_circle_is_found_with_its_modules_and_import_lines(tmp_path):
    graph = _package(
        tmp_path,
        {**CLEAN, "layers/_utils.py": "from vidtr_keras.layers import attention\ndef check(): pass\n"},
    )
    (found,) = import_graph.circles(graph, PLUGINS)
    assert "vidtr_keras.layers._utils -> vidtr_keras.layers.attention -> vidtr_keras.layers._utils" in found
    assert "vidtr_keras/layers/_utils.py:1 `from vidtr_keras.layers import attention`" in found


def test_a_submodule_importing_its_package_face_back_is_a_circle(tmp_path):
    graph = _package(tmp_path, {**CLEAN, "models/loading.py": "from vidtr_keras.models import build_model\n"})
    (found,) = import_graph.circles(graph, PLUGINS)
    assert "vidtr_keras.models -> vidtr_keras.models.loading -> vidtr_keras.models" in found


def test_a_circle_through_a_package_init_run_by_a_submodule_import_is_found(tmp_path):
    # data.dataset names models.config, whose package's __init__ imports models.task, which imports data
    files = {
        **CLEAN,
        "models/config.py": "X = 1\n",
        "models/task.py": "from vidtr_keras.data.dataset import load\ndef build_model(): pass\n",
        "data/dataset.py": "from vidtr_keras.models.config import X\ndef load(): pass\n",
    }
    (found,) = import_graph.circles(_package(tmp_path, files), PLUGINS)
    assert "(runs vidtr_keras.models's __init__ first)" in found
    assert "vidtr_keras.data.dataset -> vidtr_keras.models -> vidtr_keras.models.task" in found


def test_a_lazy_circle_is_a_circle_unless_it_is_an_allowlisted_plugin(tmp_path):
    files = {**CLEAN, "layers/_utils.py": "def check():\n    from vidtr_keras.layers.attention import Attention\n"}
    (found,) = import_graph.circles(_package(tmp_path, files), PLUGINS)
    assert "lazily, vidtr_keras/layers/_utils.py:2" in found
    # the plug-in loading -> convert.gluonmm -> models.task -> models.loading is no circle
    assert import_graph.circles(_package(tmp_path, CLEAN), PLUGINS) == []
    assert import_graph.circles(_package(tmp_path, CLEAN), {}) != []


def test_imports_that_run_back_up_are_found_lazy_or_not(tmp_path):
    files = {
        **CLEAN,
        "layers/attention.py": "from vidtr_keras.models.task import build_model\nclass Attention: pass\n",
        "convert/io.py": "def read():\n    from vidtr_keras.data import video\n",
        "data/__init__.py": "",
        "data/video.py": "from vidtr_keras import version\n",
    }
    found = import_graph.imports_up(_package(tmp_path, files), PLUGINS)
    assert len(found) == 2, found
    assert found[0].startswith(
        "convert (rank 4) imports data (rank 4): vidtr_keras.convert.io -> vidtr_keras.data.video"
    )
    assert "lazily" in found[0]
    assert found[1].startswith("layers (rank 2) imports models (rank 3): vidtr_keras.layers.attention")


def test_an_allowlisted_plugin_must_stay_lazy_and_must_exist(tmp_path):
    files = {**CLEAN, "models/loading.py": "from vidtr_keras.convert import gluonmm\ndef load_model(spec): pass\n"}
    graph = _package(tmp_path, files)
    (found,) = import_graph.imports_up(graph, PLUGINS)
    assert "allowlisted only as a lazy import" in found and "models.loading -> vidtr_keras.convert.gluonmm" in found
    (stale,) = import_graph.stale_plugins(graph, PLUGINS)
    assert "vidtr_keras.models.loading -> vidtr_keras.convert.gluonmm is allowlisted but no longer imported" in stale


def test_the_cli_private_modules_and_the_face_are_guarded(tmp_path):
    files = {
        **CLEAN,
        "models/task.py": "import vidtr_keras\nfrom vidtr_keras.layers._utils import check\n"
        "def build_model():\n    from vidtr_keras.cli import args\n",
        "layers/attention.py": "from vidtr_keras import __version__\nclass Attention: pass\n",
        "models/presets.py": "from vidtr_keras.layers.attention import _private_helper\n",
        "_flags.py": "",
        "layers/encoder.py": "from vidtr_keras import _flags\n",
    }
    graph = _package(tmp_path, files)
    (cli,) = import_graph.imports_of_cli(graph)
    assert "vidtr_keras.models.task -> vidtr_keras.cli.args: lazily" in cli
    private = import_graph.private_imports(graph)
    assert [p.split(":")[0] for p in private] == [
        "private module of vidtr_keras",
        "private name _private_helper of vidtr_keras.layers",
        "private module of vidtr_keras.layers",
    ]
    assert "`from vidtr_keras.layers._utils import check`" in private[2]
    face = import_graph.imports_of_the_face(graph)
    assert [f.split(":")[0] for f in face] == [
        "vidtr_keras.layers.attention -> vidtr_keras",
        "vidtr_keras.models.task -> vidtr_keras",
    ]
    assert [m.split(":")[0] for m in import_graph.modules_outside_layers(graph)] == ["vidtr_keras/_flags.py"]


def test_argparse_print_and_frameworks_below_the_cli_are_found(tmp_path):
    files = {
        **CLEAN,
        "models/task.py": "import argparse\nimport torch\ndef build_model():\n    print('built')\n",
        "backends/__init__.py": "",
        "backends/torch_cpu.py": "def threads():\n    import torch\n",
        "backends/xla_cpu.py": "import jax.numpy\n",
        "models/presets.py": "def fast():\n    from jax import jit\n",
        "complexity/__init__.py": "",
        "complexity/worker.py": "def main():\n    import tensorflow as tf\n    print('RESULT {}')\n",
        "__main__.py": "print('ok')\n",
    }
    graph = _package(tmp_path, files)
    printing = import_graph.argparse_or_print(graph)
    assert printing == [
        "vidtr_keras/complexity/worker.py:3 calls print()",
        "vidtr_keras.models.task -> argparse: vidtr_keras/models/task.py:1 `import argparse`",
        "vidtr_keras/models/task.py:4 calls print()",
    ]
    assert import_graph.argparse_or_print(graph, {"vidtr_keras.complexity.worker": "a child"}) == printing[1:]
    assert import_graph.stale_printing(graph, {"vidtr_keras.models.presets": "prints nothing"}) != []
    frameworks = [f.split(" -> ")[0] for f in import_graph.framework_imports(graph)]
    assert frameworks == [
        "module-level import of jax: vidtr_keras.backends.xla_cpu",
        "jax imported outside backends and complexity: vidtr_keras.models.presets",
        "module-level import of torch: vidtr_keras.models.task",
    ]
    assert len(import_graph.framework_imports(graph, {("vidtr_keras.models.presets", "jax"): "x"})) == 2
    assert import_graph.stale_framework_imports(graph, {("vidtr_keras.models.task", "torch"): "x"}) != []
