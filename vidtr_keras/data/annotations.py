"""Annotation lists and class-name files.

Two list formats, chosen by the file name (`.csv` -> CSV) or `fmt`:
- the official one: one video per line, space separated, `path num_frames label` (gluonmm's list
  format); multi-label lists (Charades-style) give several labels, as more fields or comma separated:
  `path num_frames 3 17` or `path num_frames 3,17`;
- CSV: `path,label` (an optional header row `path,label`); several labels separated by `;`.
Labels are class indices, or class names when a class-names file is given. Blank lines and lines
starting with `#` are skipped.

Nothing is dropped silently: every line that does not parse, and every label outside the class list,
becomes an `AnnotationProblem` naming the file and line. Evaluation reports them and goes on;
training refuses to start (`AnnotationList.raise_if_problems`).

Class-names files: one name per line, in class-index order; lines of the form `index name` or
`index,name` are accepted when the indices are exactly 0, 1, 2, ... (Kinetics-style label maps).
"""

import csv
import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    """One annotated video.

    Attributes:
        path: the path as written in the list (relative to the dataset root unless absolute).
        labels: class indices (one for single-label lists).
        num_frames: the frame count written in an official-format list (None for CSV). Sampling uses
            the count of the decoded video, as the official loader does; this one is informative.
        source: the list file, and `line` its 1-based line number, for messages.
    """

    path: str
    labels: tuple
    num_frames: int = None
    source: str = ""
    line: int = 0

    @property
    def label(self):
        return self.labels[0]

    def resolve(self, root=None):
        """The file to open: `path` under `root` (absolute paths are kept)."""
        if root is None or os.path.isabs(self.path):
            return self.path
        return os.path.join(root, self.path)

    @property
    def where(self):
        return f"{self.source}:{self.line}"


@dataclasses.dataclass(frozen=True)
class AnnotationProblem:
    """A line of a list (or a video it names) that cannot be used, with the reason."""

    source: str
    line: int
    message: str
    path: str = None

    def __str__(self):
        return f"{self.source}:{self.line}: {self.message}"

    def to_dict(self):
        return {"file": self.source, "line": self.line, "path": self.path, "problem": self.message}


@dataclasses.dataclass
class AnnotationList:
    """The usable records of a list plus the problems found in it."""

    source: str
    records: list
    problems: list
    class_names: list = None
    num_classes: int = None

    @property
    def multi_label(self):
        return any(len(r.labels) > 1 for r in self.records)

    def __len__(self):
        return len(self.records)

    def raise_if_problems(self, what="annotation list", limit=20):
        """ValueError listing (up to `limit`) problems, or nothing when the list is clean."""
        if not self.problems:
            return
        lines = [str(p) for p in self.problems[:limit]]
        more = len(self.problems) - limit
        if more > 0:
            lines.append(f"... and {more} more")
        raise ValueError(f"The {what} {self.source!r} has {len(self.problems)} problem(s):\n  " + "\n  ".join(lines))

    def check_files(self, root=None):
        """Adds a problem for every record whose file does not exist; returns the new problems."""
        found = []
        for record in self.records:
            path = record.resolve(root)
            if not os.path.isfile(path):
                found.append(AnnotationProblem(record.source, record.line, f"video not found: {path}", record.path))
        self.problems.extend(found)
        return found


def read_class_names(path):
    """Class names in index order from a class-names file (see the module docstring)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No class-names file at {path!r}.")
    with open(path, encoding="utf-8") as f:
        lines = [(i + 1, line.strip()) for i, line in enumerate(f)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not lines:
        raise ValueError(f"The class-names file {path!r} is empty.")
    indexed = []
    for _, line in lines:
        head, sep, rest = line.replace(",", " ", 1).partition(" ")
        if not sep or not head.isdigit() or not rest.strip():
            indexed = None
            break
        indexed.append((int(head), rest.strip().strip('"')))
    if indexed is not None and [i for i, _ in indexed] == list(range(len(indexed))):
        names = [name for _, name in indexed]
    else:
        names = [line for _, line in lines]
    seen = {}
    for (number, _), name in zip(lines, names):
        if name in seen:
            raise ValueError(f"{path}:{number}: class name {name!r} repeats line {seen[name]}.")
        seen[name] = number
    return names


def _label_index(token, class_names, num_classes):
    """(index, None) or (None, reason) for one label token."""
    token = token.strip()
    if not token:
        return None, "empty label"
    try:
        value = int(token)
    except ValueError:
        if class_names is not None and token in class_names:
            return class_names.index(token), None
        if class_names is not None:
            return None, f"label {token!r} is not a class index or a name in the class list"
        return None, f"label {token!r} is not an integer class index (give a class-names file to use names)"
    limit = len(class_names) if class_names is not None else num_classes
    if value < 0 or (limit is not None and value >= limit):
        bound = f"0 .. {limit - 1}" if limit is not None else ">= 0"
        return None, f"label {value} is outside the class list ({bound})"
    return value, None


def _parse_labels(tokens, class_names, num_classes):
    labels, reasons = [], []
    for token in tokens:
        index, reason = _label_index(token, class_names, num_classes)
        if reason:
            reasons.append(reason)
        else:
            labels.append(index)
    return tuple(labels), reasons


def _official_line(text, class_names, num_classes):
    fields = text.split()
    if len(fields) < 3:
        return None, [f"expected 'path num_frames label', found {len(fields)} field(s): {text!r}"]
    path, frames = fields[0], fields[1]
    try:
        num_frames = int(frames)
    except ValueError:
        return None, [f"num_frames {frames!r} is not an integer (expected 'path num_frames label')"]
    if num_frames < 0:
        return None, [f"num_frames {num_frames} is negative"]
    tokens = [t for field in fields[2:] for t in field.split(",") if t != ""]
    labels, reasons = _parse_labels(tokens, class_names, num_classes)
    if reasons:
        return None, reasons
    return (path, labels, num_frames), []


def _csv_row(row, class_names, num_classes):
    if len(row) != 2:
        return None, [f"expected 'path,label', found {len(row)} field(s): {','.join(row)!r}"]
    path, label_field = row[0].strip(), row[1]
    if not path:
        return None, ["empty path"]
    tokens = [t for t in label_field.split(";") if t.strip() != ""]
    if not tokens:
        return None, ["empty label"]
    labels, reasons = _parse_labels(tokens, class_names, num_classes)
    if reasons:
        return None, reasons
    return (path, labels, None), []


def read_annotations(path, class_names=None, num_classes=None, fmt="auto"):
    """Reads an annotation list; never raises for a bad line (see `AnnotationList.problems`).

    Args:
        path: the list file.
        class_names: a list of names (or a class-names file path): labels may be names, and must be
            below len(class_names).
        num_classes: without class names, labels must be below this (None: only >= 0 is checked).
        fmt: "official" (space separated), "csv" or "auto" (by the file name).

    Raises:
        FileNotFoundError: the list itself does not exist.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No annotation list at {path!r}.")
    if isinstance(class_names, (str, os.PathLike)):
        class_names = read_class_names(class_names)
    if fmt == "auto":
        fmt = "csv" if path.lower().endswith(".csv") else "official"
    if fmt not in ("official", "csv"):
        raise ValueError(f"fmt must be 'official', 'csv' or 'auto', got {fmt!r}.")
    records, problems = [], []
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.splitlines()
    rows = list(csv.reader(lines)) if fmt == "csv" else None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if fmt == "csv":
            row = rows[number - 1]
            if number == 1 and [c.strip().lower() for c in row][:2] == ["path", "label"]:
                continue
            parsed, reasons = _csv_row(row, class_names, num_classes)
        else:
            parsed, reasons = _official_line(stripped, class_names, num_classes)
        if reasons:
            first = (row[0].strip() if row else None) if fmt == "csv" else stripped.split()[0]
            problems.extend(AnnotationProblem(path, number, reason, first) for reason in reasons)
            continue
        video, labels, frames = parsed
        records.append(VideoRecord(video, labels, frames, path, number))
    if not records and not problems:
        problems.append(AnnotationProblem(path, 0, "the list holds no video"))
    limit = len(class_names) if class_names is not None else num_classes
    return AnnotationList(path, records, problems, class_names=class_names, num_classes=limit)


__all__ = ["AnnotationList", "AnnotationProblem", "VideoRecord", "read_annotations", "read_class_names"]
