"""The LSTM schedule study over several seeds, with schedule-free AdamW as a row.

Runs ``benchmarks/lstm.py --sweep-schedules`` (AdamW under each schedule) and
``--optimizer schedule_free_adamw --sweep-schedules constant`` (schedule-free
AdamW at a constant peak with its own ``warmup_steps``) once per seed, each in
its own process, same budget and batches, and prints per row the mean and the
range over seeds of the final validation loss, so the table says what is noise.
A seed changes both the initial weights and the batch sequence.

    python benchmarks/schedule_study.py --seeds 0,1,2 --steps 300 --out study
    python benchmarks/schedule_study.py --sf-lr 2e-3,1e-2 --more-lr 1e-2 --out study

Writes ``<out>/study.json`` (every run's final losses) and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCHEDULES = ("constant", "warmup_stable_decay", "cosine_decay_restarts", "one_cycle",
             "cosine_decay", "inverse_sqrt", "linear_cosine_decay", "exponential_decay")


def run(argv: list, out: pathlib.Path) -> dict:
    """One ``lstm.py`` sweep in a fresh process (reused if ``out`` has a finished
    one: a study can be resumed); its ``sweep`` results."""
    done = out / "lstm.json"
    if done.exists():
        result = json.loads(done.read_text())
        if "sweep" in result and not result.get("interrupted"):
            return result["sweep"]
    cmd = [sys.executable, str(ROOT / "benchmarks" / "lstm.py"), *argv, "--out", str(out)]
    print("+", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads((out / "lstm.json").read_text())["sweep"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup-steps", type=int, default=15)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of every row")
    p.add_argument("--more-lr", default="",
                   help="more AdamW peak learning rates, comma-separated, each for the "
                   "--more-schedules (rows named with their lr)")
    p.add_argument("--more-schedules", default="constant,warmup_stable_decay")
    p.add_argument("--sf-lr", default="2e-3",
                   help="schedule-free learning rates, comma-separated (one row each; the "
                   "reference package's default is 2.5e-3)")
    p.add_argument("--schedules", default=",".join(SCHEDULES))
    p.add_argument("--out", default="schedule_study")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = pathlib.Path(args.out)
    common = ["--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps)]
    rows: dict = {}
    for seed in seeds:
        sweep = run([*common, "--seed", str(seed), "--lr", str(args.lr),
                     "--sweep-schedules", args.schedules], out / f"seed{seed}" / "adamw")
        for name, r in sweep.items():
            rows.setdefault(f"adamw + {name}", {})[seed] = r
        for lr in [x for x in args.more_lr.split(",") if x]:
            sweep = run([*common, "--seed", str(seed), "--lr", lr,
                         "--sweep-schedules", args.more_schedules],
                        out / f"seed{seed}" / f"adamw_{lr}")
            for name, r in sweep.items():
                rows.setdefault(f"adamw + {name} (lr {lr})", {})[seed] = r
        for lr in args.sf_lr.split(","):
            sweep = run([*common, "--seed", str(seed), "--lr", lr, "--optimizer",
                         "schedule_free_adamw", "--sweep-schedules", "constant"],
                        out / f"seed{seed}" / f"schedule_free_{lr}")
            rows.setdefault(f"schedule_free_adamw (lr {lr})", {})[seed] = sweep["constant"]
    table = {name: {"valid": [r["final_valid_loss"] for r in by_seed.values()],
                    "train": [r["final_train_loss"] for r in by_seed.values()]}
             for name, by_seed in rows.items()}
    (out / "study.json").write_text(json.dumps({"seeds": seeds, "steps": args.steps,
                                                 "rows": table}, indent=1))
    lines = ["| row | final validation loss, mean [min, max] over seeds | final train loss, mean |",
             "|---|---|---|"]
    for name, t in sorted(table.items(), key=lambda kv: statistics.mean(kv[1]["valid"])):
        v = t["valid"]
        lines.append(f"| `{name}` | {statistics.mean(v):.3f} [{min(v):.3f}, {max(v):.3f}] | "
                     f"{statistics.mean(t['train']):.3f} |")
    print("\n".join(lines))
    (out / "study.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
