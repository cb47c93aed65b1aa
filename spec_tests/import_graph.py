"""A package's import graph read with `ast` (nothing is imported), and the layering rules checked on it.

`ImportGraph(path)` reads every module of the package at `path`; each import statement becomes one
`Import` edge from the importing module to the module it names, resolved the way Python resolves it:
`from vidtr_keras import data` names the subpackage `vidtr_keras.data`, `from vidtr_keras.data import
VideoReader` the package's face (its `__init__`), `from .video import x` the sibling module. Imports
inside functions are kept too, marked `lazy` (they run when the function is called, not on import).

Importing `a.b.c` from outside the package `a.b` first runs `a/b/__init__.py`: that is an edge to the
package face too (`implicit`), which is how `apps/predict.py -> models/__init__ -> models/task.py ->
apps/predict.py` is a circle although `apps/predict.py` names `models/task.py`'s sibling. A module
inside `a.b` gets no such edge: its package was being imported before the module itself ran, so a
package's `__init__` importing its own submodules is no circle with them, unless one of them imports
the package face back (`from vidtr_keras.models import build_model` inside `models/`).

Each rule function takes a graph and returns its violations, one readable line each, naming the
modules, the file, the line and the import statement.
"""

import ast
import dataclasses
import pathlib

# The layer order, low -> high: a module may import its own layer and the layers below it. Layers of
# the same rank do not import each other (data and convert), except that everything may read `version`.
LAYERS = {
    "version": 0,
    "backends": 0,
    "config": 1,
    "layers": 2,
    "models": 3,
    "data": 4,
    "convert": 4,
    "training": 5,
    "apps": 6,
    "complexity": 7,
    "cli": 8,
}
# Backend frameworks: Keras imports the one in use; library modules write keras.ops.
FRAMEWORKS = ("tensorflow", "torch", "jax", "jaxlib")
# Where backend frameworks may be imported (lazily): the backend workarounds and the measurement tooling,
# which counts FLOPs and memory with each backend's own tools.
FRAMEWORK_HOMES = ("backends", "complexity")


@dataclasses.dataclass(frozen=True)
class Module:
    name: str
    path: pathlib.Path  # relative to the folder that holds the package
    is_package: bool
    tree: ast.Module

    @property
    def package(self):
        """The package this module belongs to (a package's `__init__` belongs to the package itself)."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclasses.dataclass(frozen=True)
class Import:
    """One edge: `src` imports `dst` (a module of the package, or an outside top-level name)."""

    src: str
    dst: str
    path: pathlib.Path
    line: int
    text: str  # the statement as written (normalised by ast.unparse)
    lazy: bool  # inside a function: runs when it is called, not when `src` is imported
    via: str  # the module the statement names: `dst` itself, or for an implicit edge its submodule
    implicit: bool = False  # the package face that importing `via` from outside the package runs first
    names: tuple = ()  # the names a from-import takes from `dst` (not submodules)

    def __str__(self):
        how = "lazily, " if self.lazy else ""
        runs = f" (runs {self.dst}'s __init__ first)" if self.implicit else ""
        return f"{self.src} -> {self.dst}{runs}: {how}{self.path}:{self.line} `{self.text}`"


def _statements(tree):
    """Every import statement (and `importlib.import_module("literal")` call) with whether it is lazy."""
    stack = [(tree, False)]
    while stack:
        node, lazy = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, lazy
            elif (
                isinstance(child, ast.Call)
                and ast.unparse(child.func) in ("importlib.import_module", "import_module", "__import__")
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and isinstance(child.args[0].value, str)
            ):
                yield child, lazy
            stack.append((child, lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))))


class ImportGraph:
    """The modules of the package at `package_dir` and every import between them (and to outside names)."""

    def __init__(self, package_dir):
        package_dir = pathlib.Path(package_dir)
        self.root = package_dir.name
        self.modules = {}
        for path in sorted(package_dir.rglob("*.py")):
            parts = path.relative_to(package_dir.parent).with_suffix("").parts
            if any(p.startswith(".") or p == "__pycache__" for p in parts):
                continue
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            self.modules[name] = Module(name, path.relative_to(package_dir.parent), is_package, tree)
        self.imports = []  # edges between the package's modules, explicit and implicit
        self.external = []  # edges to outside top-level names (dst = "torch", "argparse", ...)
        self.unresolved = []  # imports of the package's names that name no module of it
        for module in self.modules.values():
            for node, lazy in sorted(_statements(module.tree), key=lambda s: s[0].lineno):
                self._add(module, node, lazy)
        self.imports = sorted(set(self.imports), key=lambda e: (e.src, e.line, e.implicit, e.dst))

    def _edge(self, module, node, lazy, dst, names=()):
        text = " ".join(ast.unparse(node).split())
        top = dst.partition(".")[0]
        if top != self.root:
            self.external.append(Import(module.name, top, module.path, node.lineno, text, lazy, dst, names=names))
            return
        if dst not in self.modules:
            self.unresolved.append(Import(module.name, dst, module.path, node.lineno, text, lazy, dst, names=names))
            return
        self.imports.append(Import(module.name, dst, module.path, node.lineno, text, lazy, dst, names=names))
        parts = dst.split(".")
        for i in range(2, len(parts)):  # the package faces between the root and dst
            face = ".".join(parts[:i])
            if module.name != face and not module.name.startswith(face + "."):
                self.imports.append(Import(module.name, face, module.path, node.lineno, text, lazy, dst, True))

    def _add(self, module, node, lazy):
        if isinstance(node, ast.Call):
            self._edge(module, node, True, node.args[0].value)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                self._edge(module, node, lazy, alias.name)
        else:
            if node.level:
                package = module.package.split(".")
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            names = []
            for alias in node.names:
                if f"{base}.{alias.name}" in self.modules:
                    self._edge(module, node, lazy, f"{base}.{alias.name}")
                else:
                    names.append(alias.name)
            if names:
                self._edge(module, node, lazy, base, tuple(names))

    def layer(self, name):
        """The layer a module belongs to (`None` for the package face and for modules outside every layer)."""
        parts = name.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None

    def calls(self, module, function):
        """Lines where `module` calls the builtin `function` by name."""
        tree = self.modules[module].tree
        return sorted(
            n.lineno
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == function
        )


def _lazy_plugin(edge, plugins):
    return edge.lazy and (edge.src, edge.via) in plugins


def circles(graph, plugins=None):
    """Every set of modules that import each other in a loop (lazy imports count; allowlisted lazy plug-ins
    do not), each shown as one loop through it with the import statements."""
    plugins = plugins or {}
    following = {}
    for edge in graph.imports:
        if edge.src != edge.dst and not _lazy_plugin(edge, plugins):
            following.setdefault(edge.src, {}).setdefault(edge.dst, edge)
    found = []
    for component in _strongly_connected(graph.modules, following):
        if len(component) < 2:
            continue
        start = min(component)
        loop = _shortest_loop(start, component, following)
        members = f" (all of {', '.join(sorted(component))})" if len(component) > len(loop) else ""
        found.append(
            f"circle {' -> '.join([e.src for e in loop] + [start])}{members}:\n      " + "\n      ".join(map(str, loop))
        )
    return found


def _strongly_connected(nodes, following):
    """Tarjan's strongly connected components, iteratively."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(following.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(following.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _shortest_loop(start, component, following):
    """The edges of a shortest loop from `start` back to itself inside `component` (breadth first)."""
    came_from = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child, edge in sorted(following.get(node, {}).items()):
            if child == start:
                path = [edge]
                while came_from[node] is not None:
                    path.append(came_from[node])
                    node = came_from[node].src
                return path[::-1]
            if child in component and child not in came_from:
                came_from[child] = edge
                queue.append(child)
    raise AssertionError(f"{start} is in a strongly connected component but on no loop")


def modules_outside_layers(graph):
    """Modules that belong to no layer of the order (a top-level module the order does not name)."""
    return [
        f"{m.path}: {m.name} is in no layer; the layers are {', '.join(LAYERS)}"
        for m in graph.modules.values()
        if m.name != graph.root and not m.name.endswith(".__main__") and graph.layer(m.name) is None
    ]


def unresolved_imports(graph):
    """Imports of the package's own names that name no module of it (a module moved and a caller did not)."""
    return [f"{e}: there is no module {e.dst}" for e in graph.unresolved]


def imports_up(graph, plugins=None):
    """Imports that run back up the layer order (or across layers of one rank), module-level or lazy,
    except allowlisted lazy plug-ins."""
    plugins = plugins or {}
    found = []
    for edge in graph.imports:
        low, high = graph.layer(edge.src), graph.layer(edge.dst)
        if edge.implicit or low is None or high is None or low == high:
            continue
        if LAYERS[high] < LAYERS[low] or high == "version":
            continue
        if _lazy_plugin(edge, plugins):
            continue
        why = "" if (edge.src, edge.via) not in plugins else " (allowlisted only as a lazy import)"
        found.append(f"{low} (rank {LAYERS[low]}) imports {high} (rank {LAYERS[high]}){why}: {edge}")
    return found


def stale_plugins(graph, plugins):
    """Allowlisted lazy plug-ins that the code no longer has: the list must not outlive the code."""
    lazy = {(e.src, e.via) for e in graph.imports if e.lazy}
    return [
        f"{src} -> {dst} is allowlisted but no longer imported lazily: remove it"
        for src, dst in plugins
        if (src, dst) not in lazy
    ]


def imports_of_cli(graph):
    """Imports of the command line (`cli/`) from outside it."""
    cli = f"{graph.root}.cli"
    return [
        str(e)
        for e in graph.imports
        if not e.implicit and (e.dst == cli or e.dst.startswith(cli + ".")) and not e.src.startswith(cli)
    ]


def _private_owner(name):
    """The package that owns a private module (`a.b._c` -> `a.b`), `None` if `name` is public."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def _inside(graph, src, package):
    """Whether `src` is one of `package`'s own modules. For the root package only its face and top-level
    modules are: its subpackages (the layers) are packages of their own."""
    home = graph.modules[src].package
    if package == graph.root:
        return home == package
    return home == package or home.startswith(package + ".")


def private_imports(graph):
    """Imports of another package's private module (`layers/_utils.py`) or of a private name (`_x`) from
    another package's module."""
    found = []
    for edge in graph.imports:
        if edge.implicit:
            continue
        owner = _private_owner(edge.dst)
        if owner is not None and not _inside(graph, edge.src, owner):
            found.append(f"private module of {owner or graph.root}: {edge}")
        private = [n for n in edge.names if n.startswith("_") and not n.startswith("__")]
        owner = graph.modules[edge.dst].package
        if private and not _inside(graph, edge.src, owner):
            found.append(f"private name {', '.join(private)} of {owner}: {edge}")
    return found


def imports_of_the_face(graph):
    """Library modules that import the package face itself (`import vidtr_keras`, `from vidtr_keras import
    __version__`) instead of the module that defines the name (`vidtr_keras.version`)."""
    return [str(e) for e in graph.imports if e.dst == graph.root and e.src != graph.root]


def argparse_or_print(graph, printing=None):
    """`argparse` imported or `print(` called outside `cli/` and `__main__` modules, except allowlisted
    child-process entry points."""
    printing = printing or {}
    found = []
    for name, module in graph.modules.items():
        if graph.layer(name) == "cli" or name.endswith(".__main__"):
            continue
        found += [str(e) for e in graph.external if e.src == name and e.dst == "argparse"]
        if name not in printing:
            found += [f"{module.path}:{line} calls print()" for line in graph.calls(name, "print")]
    return found


def stale_printing(graph, printing):
    """Allowlisted printers that print no more."""
    return [
        f"{name} is allowlisted to print but does not: remove it" for name in printing if not graph.calls(name, "print")
    ]


def framework_imports(graph, allowed=None):
    """Imports of TensorFlow, PyTorch or JAX: never at module level; lazily only in `backends/`, the
    measurement tooling (`complexity/`) and allowlisted modules."""
    allowed = allowed or {}
    found = []
    for edge in graph.external:
        if edge.dst not in FRAMEWORKS:
            continue
        if not edge.lazy:
            found.append(f"module-level import of {edge.dst}: {edge}")
        elif graph.layer(edge.src) not in FRAMEWORK_HOMES and (edge.src, edge.dst) not in allowed:
            found.append(f"{edge.dst} imported outside {' and '.join(FRAMEWORK_HOMES)}: {edge}")
    return found


def stale_framework_imports(graph, allowed):
    """Allowlisted framework imports that the code no longer has."""
    used = {(e.src, e.dst) for e in graph.external if e.lazy}
    return [
        f"{src} is allowlisted to import {fw} but does not: remove it" for src, fw in allowed if (src, fw) not in used
    ]
