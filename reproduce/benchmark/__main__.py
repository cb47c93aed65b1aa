"""`python -m reproduce.benchmark --report | --rerun BACKEND PRESET [MODE [FRAMES]]` (the measuring run itself
is `python -m reproduce benchmark [--quick]`)."""

import json
import sys

from reproduce import common
from reproduce.benchmark import rerun
from reproduce.benchmark.report import stored_machine, write_report


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--rerun"] and len(argv) in (3, 4, 5):
        # --rerun BACKEND PRESET [MODE [FRAMES]]
        from rich.console import Console
        from rich.progress import Progress

        args = argv[1:]
        with Progress(console=Console()) as progress:
            ctx = common.Context(progress, progress.console)
            print(rerun(ctx, args[0], args[1], *(args[2:3] or ["train"]), *(int(a) for a in args[3:4])))
        return 0
    if argv != ["--report"]:
        sys.exit(
            "usage: python -m reproduce benchmark [--quick]  |  python -m reproduce.benchmark --report  |  "
            "python -m reproduce.benchmark --rerun BACKEND PRESET [MODE [FRAMES]]"
        )
    path = common.RESULTS / "benchmark_runs.json"
    saved = json.loads(path.read_text())
    if "machine" not in saved:  # a run stored before its machine was: keep the one its report names
        saved["machine"] = stored_machine(saved)
        path.write_text(json.dumps(saved, indent=1))
    print(write_report(saved["results"], saved["skipped"], saved["backends"], saved["loadavg"], saved["machine"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
