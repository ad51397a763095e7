"""Two textrelu processes at once on a small machine: OpenMP's waiting threads, spinning or asleep.

    python benchmarks/contention.py [--max-epochs 5] [--repeats 2]

torch's CPU threads (OpenMP: libgomp in the PyPI wheels) spin for a while when they wait for
work, which is fast when a process has the cores to itself and ruinous when two processes share
them: each one's spinning threads take the cores the other's need. textrelu sets
OMP_WAIT_POLICY=PASSIVE when imported (textrelu/__init__.py; a value the user set is kept). This
script times the same `textrelu finetune` on the embedded kitchen reviews (data/, the demo's
training half), alone and two at once, under three wait policies: textrelu's PASSIVE, libgomp's
default (the variable removed before torch loads: textrelu before PASSIVE) and ACTIVE. Each
command runs in a fresh child process (common.run_child); the table gives the median wall and
CPU seconds per process and the slowdown of two at once over alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
from pathlib import Path

import common

KITCHEN = common.REPO / "data" / "amazon-kitchen"
# a child that sets the wait policy ('default': libgomp's own) after textrelu's import, before torch's
CHILD = (
    "import os, sys\n"
    "import textrelu\n"
    "policy = sys.argv[1]\n"
    "if policy == 'default':\n"
    "    os.environ.pop('OMP_WAIT_POLICY')\n"
    "else:\n"
    "    os.environ['OMP_WAIT_POLICY'] = policy\n"
    "from textrelu.cli import app\n"
    "app(sys.argv[2:], prog_name='textrelu')\n"
)
POLICIES = ("PASSIVE", "default", "ACTIVE")
LABELS = {"PASSIVE": "PASSIVE (textrelu's)", "default": "libgomp's default (textrelu before)"}


def finetune_argv(policy: str, out: Path, epochs: int) -> list[str]:
    files = [f"{KITCHEN / name}.review[:800]" for name in ("positive", "negative")]
    return [
        common.PYTHON, "-c", CHILD, policy, "finetune", *files, "--task", "sentiment",
        "--no-search", "--max-epochs", str(epochs), "--out", str(out), "-q",
    ]  # fmt: skip


def at_once(argvs: list[list[str]]) -> list[dict]:
    """Run the commands at the same time, each in its own child; their run_child results."""
    results = [None] * len(argvs)

    def run(i):
        results[i] = common.run_child(argvs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(argvs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(r is None for r in results):
        raise RuntimeError("a child failed (see above)")
    return results


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-epochs", type=int, default=5, help="finetune's epochs (no search)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print("\n".join(common.machine_lines()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        at_once([finetune_argv("PASSIVE", work / "warm.pt", 1)])  # numba's cache, the page cache
        for policy in POLICIES:
            alone, two = [], []
            for r in range(args.repeats):
                alone += at_once([finetune_argv(policy, work / f"a{r}.pt", args.max_epochs)])
                two += at_once([finetune_argv(policy, work / f"{i}{r}.pt", args.max_epochs) for i in "bc"])
            wall_alone = statistics.median(x["wall"] for x in alone)
            wall_two = statistics.median(x["wall"] for x in two)
            rows.append(
                [
                    LABELS.get(policy, policy),
                    f"{wall_alone:.1f}",
                    f"{statistics.median(x['cpu'] for x in alone):.1f}",
                    f"{wall_two:.1f}",
                    f"{statistics.median(x['cpu'] for x in two):.1f}",
                    f"{wall_two / wall_alone:.1f}x",
                ]
            )
            print(f"  {policy}: alone {wall_alone:.1f} s, two at once {wall_two:.1f} s each", flush=True)
    print()
    print(
        common.table(
            [
                "OMP_WAIT_POLICY",
                "alone s",
                "alone CPU s",
                "two at once s (each)",
                "two at once CPU s",
                "slowdown",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
