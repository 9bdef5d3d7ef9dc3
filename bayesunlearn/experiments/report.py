"""Readable summaries of a run: `python -m bayesunlearn.experiments.report [--update-readme README.md]`.

Without options: the headline metrics of every method (metrics/methods.csv)
and the default method's timing. With --update-readme: rewrite the generated
blocks of the README (between `<!-- NAME:begin -->` and `<!-- NAME:end -->`)
from the committed metrics/methods.csv and study/summary.csv, so the README
quotes the generated tables rather than hand-typed numbers.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

METHODS_TABLE = Path("metrics/methods.csv")
STUDY_SUMMARY = Path("study/summary.csv")
TIMING = Path("metrics/timing")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def markdown(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def methods_block(path: Path = METHODS_TABLE) -> str:
    table = pd.read_csv(path)
    cols = ["method", "posterior", "operator", "failed", "gain", "indistinguishability",
            "pred_kl_unlearned_retrained", "pred_kl_original_retrained", "pred_kl_retrain_floor"]
    return markdown(table[cols])


def study_block(path: Path = STUDY_SUMMARY) -> str:
    summary = pd.read_csv(path)
    gain = summary.pivot(index="method", columns=["mode", "fraction"], values="median_gain")
    gain.columns = [f"{mode} {fraction:.0%}" for mode, fraction in gain.columns]
    failed = summary.groupby("method")[["failed", "runs"]].sum()
    gain["failed runs"] = (failed["failed"].astype(int).astype(str) + "/" + failed["runs"].astype(int).astype(str))
    return markdown(gain.reset_index())


BLOCKS = {"methods": methods_block, "study": study_block}


def update_readme(readme: Path) -> None:
    text = readme.read_text()
    for name, render in BLOCKS.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S)
        block = render()
        text = pattern.sub(lambda m, block=block: m.group(1) + block + "\n" + m.group(2), text)
    readme.write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update-readme", metavar="README", help="rewrite the README's generated tables")
    args = parser.parse_args(argv)
    if args.update_readme:
        update_readme(Path(args.update_readme))
        return
    if METHODS_TABLE.exists():
        print(methods_block())
    for path in sorted(TIMING.glob("*.json")):
        timing = json.loads(path.read_text())
        print(f"{path.stem:<20} unlearn {timing['unlearn_seconds']:.4f} s   retrain {timing['retrain_seconds']:.3f} s"
              f"   speedup {timing['speedup']:.0f}x")


if __name__ == "__main__":
    main()
