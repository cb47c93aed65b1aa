"""`python -m reproduce.learning --report [TASK ...] | --rerun-task TASK` (the training run itself is
`python -m reproduce learning [--quick]`)."""

import json
import sys

from reproduce import common
from reproduce.learning import rerun_task, run
from reproduce.learning.report import report
from reproduce.learning.sensitivity import run_easy

USAGE = (
    "usage: python -m reproduce learning [--quick]  |  python -m reproduce.learning --report [TASK ...]  |  "
    "python -m reproduce.learning --rerun-task TASK  |  python -m reproduce.learning --run TASK [TASK ...]"
)


def _report(tasks):
    """Rewrites the report from results/learning_runs.json, optionally of some tasks only."""
    path = common.RESULTS / "learning_runs.json"
    saved = json.loads(path.read_text())
    if tasks:
        saved["spec"]["tasks"] = [t for t in saved["spec"]["tasks"] if t in tasks]
        saved["runs"] = [r for r in saved["runs"] if r["task"] in tasks]
        saved["spec"]["note"] = (
            f"**Partial report: only the task(s) {', '.join(saved['spec']['tasks'])} of the stored run** "
            "(`python -m reproduce.learning --report TASK ...`)."
        )

    class _Quiet:
        quick = saved["spec"]["seeds"] == 1

    if "easy" not in saved:  # older runs: train the easy regime now and keep it with the runs
        saved["easy"] = run_easy(1 if _Quiet.quick else 3)
        if not tasks:  # the whole run (a partial report keeps the file as it is)
            path.write_text(json.dumps(saved, indent=1))
    return report(
        _Quiet(),
        saved["spec"],
        saved["runs"],
        saved["minutes"],
        saved["easy"],
        saved.get("reruns"),
        easy_date=saved.get("easy_date"),
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 2 and argv[0] == "--rerun-task":
        with common.session() as ctx:
            ctx.console.print(f"wrote {rerun_task(ctx, argv[1])}")
        return 0
    if argv[:1] == ["--run"] and len(argv) > 1:
        with common.session() as ctx:
            ctx.console.print(f"wrote {run(ctx, argv[1:])}")
        return 0
    if argv[:1] == ["--report"]:
        print(f"wrote {_report(argv[1:])}")
        return 0
    sys.exit(USAGE)


if __name__ == "__main__":
    sys.exit(main())
