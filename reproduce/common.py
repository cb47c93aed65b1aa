"""Shared by the reproduce scripts and the development benchmarks (`benchmarks/`): the machine header,
result files, progress bars, gaps, which backends are installed, and measurements in fresh processes."""

import contextlib
import csv
import datetime
import importlib.metadata
import importlib.util
import os
import pathlib
import platform
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
BACKENDS = ("tensorflow", "jax", "torch")


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def _version(dist):
    for name in (dist, dist.replace("-cpu", "")):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def machine_info():
    """CPU, cores, RAM, package versions and date: the header of every results file."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(_ram_gib(), 1),
        "python": platform.python_version(),
        "keras": _version("keras"),
        "tensorflow": _version("tensorflow-cpu")
        if _version("tensorflow-cpu") != "not installed"
        else _version("tensorflow"),
        "jax": _version("jax"),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def installed(backend):
    """Whether the library of a Keras backend ("tensorflow", "jax", "torch") is installed here."""
    return importlib.util.find_spec(backend) is not None


def installed_backends():
    """The backends of BACKENDS whose library is installed, in that order."""
    return [b for b in BACKENDS if installed(b)]


def header_lines(title, backends, command, info=None):
    """The header of a results file; `info` (a `machine_info()` dict) is the measuring run's machine when
    a report is rewritten from stored figures, the current machine otherwise."""
    info = info or machine_info()
    return [
        f"# {title}",
        "",
        f"- machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, no GPU",
        f"- backend(s): {', '.join(backends) if backends else 'none (analytic, numpy only)'}",
        f"- versions: python {info['python']}, keras {info['keras']}, tensorflow {info['tensorflow']}, "
        f"jax {info['jax']}, torch {info['torch']}, numpy {info['numpy']}",
        f"- date: {info['date']}",
        f"- written by `{command}`; GFLOPs are G multiply-adds per clip (one view), the paper's unit",
        "",
    ]


def read_header_info(path):
    """The `machine_info()` dict a results file's header was written from (its machine, versions and
    date lines), or None when `path` has no such header."""
    import re

    path = pathlib.Path(path)
    if not path.exists():
        return None
    text = path.read_text()
    machine = re.search(r"^- machine: (.+), (\d+) cores, ([\d.]+) GiB RAM", text, re.M)
    versions = re.search(r"^- versions: (.+)$", text, re.M)
    date = re.search(r"^- date: (.+)$", text, re.M)
    if not (machine and versions and date):
        return None
    info = {"cpu": machine.group(1), "cores": int(machine.group(2)), "ram_gib": float(machine.group(3))}
    for part in versions.group(1).split(", "):
        name, _, version = part.partition(" ")
        info[name] = version
    info["date"] = date.group(1).strip()
    return info


def fmt(value, digits=None):
    """Markdown text of a value: floats with 2 decimals below 100, 1 above; large ints with thousands
    separators; None as "-"."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "-"
        if digits is None:
            digits = 2 if abs(value) < 100 else 1
        return f"{value:.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10000:
        return f"{value:,}"
    return str(value)


def gap(ours, paper):
    """Relative gap of our figure to the paper's, as text ("+0.8%")."""
    if ours is None or paper is None or paper == 0:
        return "-"
    return f"{(ours / paper - 1) * 100:+.1f}%"


def write(name, title, columns, rows, notes=(), backends=(), extra_markdown=(), command=None, info=None):
    """Writes results/NAME.md (header, table, notes) and results/NAME.csv (the same rows).

    Args:
        columns: column names.
        rows: lists of values (numbers are formatted in the markdown, raw in the CSV).
        notes: markdown paragraphs after the table.
        extra_markdown: more markdown blocks (e.g. a second table) after the notes.
        command: the command that regenerates the file, for its header (default `python -m reproduce NAME`).
        info: the machine and versions of the header (`machine_info()` of the run that measured the
            figures, when they are written again from a stored run; default: this machine, now).
    """
    RESULTS.mkdir(exist_ok=True)
    command = command or f"python -m reproduce {name}"
    lines = header_lines(title, backends, command, info)
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    lines.append("")
    for note in notes:
        lines.append(note)
        lines.append("")
    for block in extra_markdown:
        lines.append(block)
        lines.append("")
    (RESULTS / f"{name}.md").write_text("\n".join(lines))
    with open(RESULTS / f"{name}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
    return RESULTS / f"{name}.md"


def markdown_table(columns, rows):
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines)


class Context:
    """What a reproduce script gets: a rich progress display, the quick flag and the console."""

    def __init__(self, progress, console, quick=False):
        self.progress = progress
        self.console = console
        self.quick = quick

    def task(self, description, total):
        return self.progress.add_task(description, total=total)

    def advance(self, task, description=None):
        if description is None:
            self.progress.advance(task)
        else:
            self.progress.update(task, advance=1, description=description)

    def log(self, message):
        self.console.log(message)


@contextlib.contextmanager
def session(quick=False):
    """A rich progress display on the console and the `Context` the scripts get, for a command-line run."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        yield Context(progress, console, quick=quick)


def worker(ctx, task, backend, description, timeout=None):
    """Runs a measurement task in a fresh process on `backend`, with a progress bar per model."""
    from vidtr_keras.complexity.measure import run_worker

    n = 1 if task["kind"] == "train_memory" else len(task["models"])
    bar = ctx.task(f"{description} [{backend}]", n)

    def on_item(item):
        status = "error" if "error" in item else f"{item['wall_seconds']:.0f}s"
        ctx.advance(bar, f"{description} [{backend}] {item['label']} ({status})")
        if "error" in item:
            ctx.log(f"[red]{backend} {item['label']}: {item['error']}[/red]")

    return run_worker(task, backend, on_item=on_item, timeout=timeout)


def python_executable():
    return sys.executable
