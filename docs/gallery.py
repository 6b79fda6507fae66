"""Regenerate the schedule gallery: one PNG per schedule family and docs/gallery.md.

    python docs/gallery.py                       # writes docs/gallery/*.png and docs/gallery.md
    python docs/gallery.py --out /tmp/g --markdown /tmp/g/gallery.md

Every curve is written as the same expression `jaxsched plot` accepts, parsed
by `jaxsched._cli.parse_schedule`, so the page's code is exactly what was
drawn. Uses matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys
from typing import NamedTuple, Sequence

HERE = pathlib.Path(__file__).resolve().parent


class Family(NamedTuple):
    slug: str  # file name of the PNG
    title: str
    text: str  # one or two sentences for the page
    expressions: tuple[str, ...]  # jaxsched schedule expressions, one curve each
    steps: int  # plot the steps 0..steps


FAMILIES: tuple[Family, ...] = (
    Family("exponential", "Exponential, natural-exponential and inverse-time decay",
           "TensorFlow's classic decays, `p = t / decay_steps` (floored with "
           "`staircase=True`).",
           ("exponential_decay(0.1, 100, 0.5)",
            "exponential_decay(0.1, 100, 0.5, staircase=True)",
            "natural_exp_decay(0.1, 100, 0.3)",
            "inverse_time_decay(0.1, 100, 1.0)"), 500),
    Family("polynomial", "Polynomial decay",
           "From `learning_rate` to `end_learning_rate` in `decay_steps`; with "
           "`cycle=True` each period restarts lower (TensorFlow's rule).",
           ("polynomial_decay(0.1, 400, 0.001)",
            "polynomial_decay(0.1, 400, 0.001, power=2.0)",
            "polynomial_decay(0.1, 400, 0.001, power=0.5)",
            "polynomial_decay(0.1, 150, 0.001, cycle=True)"), 500),
    Family("cosine", "Cosine decay",
           "Half a cosine from `learning_rate` down to `alpha * learning_rate`, "
           "then flat.",
           ("cosine_decay(0.1, 400)",
            "cosine_decay(0.1, 400, alpha=0.2)",
            "cosine_decay(0.1, 250)"), 500),
    Family("restarts", "Cosine decay with warm restarts (SGDR)",
           "Periods of `first_decay_steps * t_mul**i` steps, peaks scaled by "
           "`m_mul**i`; PyTorch's `CosineAnnealingWarmRestarts` is `m_mul=1`.",
           ("cosine_decay_restarts(0.1, 100, t_mul=1.0)",
            "cosine_decay_restarts(0.1, 100, t_mul=2.0)",
            "cosine_decay_restarts(0.1, 100, t_mul=2.0, m_mul=0.6, alpha=0.1)"), 1000),
    Family("linear-cosine", "Linear cosine and noisy linear cosine decay",
           "A cosine multiplied by a linear decay (Bello et al., 2017); the noisy "
           "variant adds reproducible Gaussian noise to the linear part.",
           ("noisy_linear_cosine_decay(0.1, 500, initial_variance=0.01, seed=1)",
            "linear_cosine_decay(0.1, 500)",
            "linear_cosine_decay(0.1, 500, num_periods=3.0, beta=0.05)"), 500),
    Family("piecewise", "Constant, piecewise constant and joined schedules",
           "`piecewise_constant` keeps the boundary step in the earlier piece "
           "(TensorFlow); `join` runs schedules one after another, each from its "
           "own step 0 (optax).",
           ("piecewise_constant([100, 250, 400], [0.1, 0.05, 0.02, 0.005])",
            "constant(0.03)",
            "join([constant(0.08), cosine_decay(0.08, 250)], [150])"), 500),
    Family("one-cycle", "One-cycle",
           "PyTorch's `OneCycleLR`: up from `max_lr / div_factor` to `max_lr`, "
           "then down to `max_lr / div_factor / final_div_factor`.",
           ("one_cycle(0.1, 500)",
            "one_cycle(0.1, 500, anneal_strategy='linear')",
            "one_cycle(0.1, 500, pct_start=0.25, three_phase=True)"), 500),
    Family("cyclic", "Cyclical learning rates",
           "PyTorch's `CyclicLR` between `base_lr` and `max_lr`: triangular, "
           "triangular2 (halving amplitude) and exp_range.",
           ("cyclic(0.01, 0.1, 50)",
            "cyclic(0.01, 0.1, 50, mode='triangular2')",
            "cyclic(0.01, 0.1, 50, 100, mode='exp_range', gamma=0.997)"), 450),
    Family("warmup", "Warmup and inverse square root",
           "`warmup` puts a linear ramp in front of any schedule (Keras' "
           "`warmup_target`); `inverse_sqrt` is the Transformer schedule.",
           ("warmup(cosine_decay(0.1, 400), 100)",
            "warmup(exponential_decay(0.1, 100, 0.5), 50, init_value=0.02)",
            "inverse_sqrt(0.1, 100)"), 500),
    Family("wsd", "Warmup-stable-decay (WSD)",
           "Warmup, a long flat phase at the peak, then a short decay: linear, "
           "cosine or `1 - sqrt(p)`.",
           ("warmup_stable_decay(0.1, 50, 300, 150)",
            "warmup_stable_decay(0.1, 50, 300, 150, decay='cosine')",
            "warmup_stable_decay(0.1, 50, 300, 150, decay='sqrt')"), 500),
    Family("cosine-variants", "Periodic, multi-cycle and sharpened cosines",
           "`periodic=True` keeps the cosine going past `decay_steps` (PyTorch's "
           "`CosineAnnealingLR`, Hugging Face's cosine schedules); `num_cycles` sets "
           "the number of cosine periods per `decay_steps`; `exponent` sharpens it "
           "(optax); `shift` starts a schedule part-way.",
           ("cosine_decay(0.1, 200, periodic=True)",
            "cosine_decay(0.1, 500, num_cycles=1.5, alpha=0.1)",
            "cosine_decay(0.1, 400, exponent=3.0)",
            "shift(cosine_decay(0.1, 400), 200)"), 500),
    Family("warmup-shapes", "Warmup shapes",
           "`warmup(..., mode=)`: linear, cosine, sqrt (Hugging Face's `1-sqrt`) or "
           "exponential (geometric, from a positive `init_value`).",
           ("warmup(constant(0.1), 200)",
            "warmup(constant(0.1), 200, mode='cosine')",
            "warmup(constant(0.1), 200, mode='sqrt')",
            "warmup(constant(0.1), 200, 0.001, mode='exponential')"), 300),
    Family("wsd-s", "WSD with Hugging Face's shapes, and WSD-S cycles",
           "`warmup_stable_decay` takes HF's warmup and decay types (with "
           "`min_lr_ratio` as `init_value = end_value`), and repeats stable + decay "
           "`cycles` times with an optional re-warm (WSD-S).",
           ("warmup_stable_decay(0.1, 50, 250, 200, 0.01, 0.01, 'cosine', warmup='cosine')",
            "warmup_stable_decay(0.1, 20, 100, 50, decay='sqrt', cycles=3, rewarm_steps=10)"),
           520),
    Family("inverse-sqrt", "Inverse square root with timescale, shift and floor",
           "`inverse_sqrt(peak, warmup, timescale=, shift=, min_value=)`: Hugging "
           "Face's `timescale`, and a floor on the decay.",
           ("inverse_sqrt(0.1, 50)",
            "inverse_sqrt(0.1, 50, timescale=200)",
            "inverse_sqrt(0.1, 0, timescale=20, min_value=0.02)"), 500),
    Family("interpolate", "Piecewise interpolation",
           "optax's `piecewise_interpolate_schedule`: the scales accumulate at each "
           "boundary and the value moves linearly or along a half cosine between them.",
           ("piecewise_interpolate(0.1, [100, 300, 400], [0.5, 0.2, 4.0])",
            "piecewise_interpolate(0.1, [100, 300, 400], [0.5, 0.2, 4.0], 'cosine')"), 500),
    Family("cooldown", "Cooldown and a trailing zero phase",
           "`cooldown` ends any schedule with a linear or 1-sqrt cooldown to zero over "
           "its last steps (Hägele et al., 2024); `join` with `constant(0.0)` gives "
           "MaxText's trailing zero-learning-rate phase.",
           ("cooldown(warmup(constant(0.1), 50), 400, 100)",
            "cooldown(cosine_decay(0.1, 1000, alpha=0.5), 400, 100, 'sqrt')",
            "join([warmup(cosine_decay(0.08, 300, 0.1), 50), constant(0.0)], [350])"), 500),
    Family("momentum", "Momentum companions",
           "`one_cycle_momentum` and `cyclic_momentum` are the momentum (or Adam's "
           "`b1`) that PyTorch's `OneCycleLR` and `CyclicLR` set with "
           "`cycle_momentum=True`: low where the rate peaks.",
           ("one_cycle_momentum(500)",
            "cyclic_momentum(0.8, 0.9, 50)"), 500),
    Family("arithmetic", "Schedule arithmetic",
           "`*` and `+` combine schedules and numbers into `product` and `add` "
           "schedules (also callable by name): a scaled schedule, a floor, a schedule "
           "modulated by another.",
           ("cosine_decay(0.1, 500) * 0.5",
            "add([cosine_decay(0.09, 500), 0.01])",
            "product([cosine_decay(0.1, 500), cyclic(0.5, 1.0, 25)])"), 500),
)


def _python(expression: str) -> str:
    """`join([constant(1.0)], [])` -> `js.join([js.constant(1.0)], [])`."""
    from jaxsched._cli import schedule_names

    pattern = r"\b(" + "|".join(sorted(schedule_names(), key=len, reverse=True)) + r")\("
    return re.sub(pattern, r"js.\1(", expression)


def markdown(image_dir: str = "gallery") -> str:
    """The text of docs/gallery.md, with images under `image_dir` (relative)."""
    lines = ["# Schedule gallery", "",
             "One figure per schedule family, generated by "
             "[`docs/gallery.py`](gallery.py) (run `python docs/gallery.py` to "
             "regenerate). Each curve is labelled with the expression that made "
             "it, which works unchanged on the command line: "
             "`jaxsched plot \"<expression>\" --steps N -o out.png`, or in Python "
             "with `js.` in front of each name.", ""]
    for fam in FAMILIES:
        lines += [f"## {fam.title}", "", fam.text, "",
                  f"![{fam.title}]({image_dir}/{fam.slug}.png)", "", "```python"]
        lines += [_python(e) for e in fam.expressions]
        lines += ["```", ""]
    return "\n".join(lines)


def render(family: Family, path: pathlib.Path, dpi: int = 100) -> None:
    """Draw one family into a PNG at `path`."""
    import matplotlib.pyplot as plt

    import jaxsched as js
    from jaxsched._cli import parse_schedule

    schedules = {e: parse_schedule(e) for e in family.expressions}
    fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    js.plot(schedules, family.steps, ax=ax, title=family.title, legend=False, linewidth=1.6)
    fig.legend(loc="outside lower center", ncols=2 if len(schedules) > 3 else 1,
               fontsize="small", frameon=False)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "gallery"), help="folder for the PNGs")
    parser.add_argument("--markdown", default=str(HERE / "gallery.md"),
                        help="where to write the gallery page ('' to skip)")
    parser.add_argument("--only", default="", help="comma-separated family slugs to draw")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = {s for s in args.only.split(",") if s}
    unknown = only - {f.slug for f in FAMILIES}
    if unknown:
        parser.error(f"unknown families: {', '.join(sorted(unknown))}")
    for fam in FAMILIES:
        if only and fam.slug not in only:
            continue
        render(fam, out / f"{fam.slug}.png")
        print(f"wrote {out / (fam.slug + '.png')}")
    if args.markdown:
        md = pathlib.Path(args.markdown)
        rel = os.path.relpath(out.resolve(), md.resolve().parent)
        md.write_text(markdown(pathlib.Path(rel).as_posix()))
        print(f"wrote {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
