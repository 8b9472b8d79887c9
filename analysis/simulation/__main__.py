"""Command line for the simulator package (the product CLI is ``guttrial demo``).

python -m analysis.simulation demo --out DIR [--patients N] [--seed S] [--asvs N] [--faecal-per-patient N]
python -m analysis.simulation doc [docs/raw_exports.md]     # regenerate the contract tables
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from analysis.simulation.contract_doc import update_contract_doc
from analysis.simulation.trial import generate_trial


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.simulation")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write a seeded demo trial")
    demo.add_argument("--out", type=Path, required=True)
    demo.add_argument("--patients", type=int, default=120)
    demo.add_argument("--seed", type=int, default=20240501)
    demo.add_argument("--asvs", type=int, default=None)
    demo.add_argument("--faecal-per-patient", type=int, default=None)
    demo.add_argument("--overwrite", action="store_true")
    doc = sub.add_parser("doc", help="regenerate the generated tables of docs/raw_exports.md")
    doc.add_argument("path", type=Path, nargs="?", default=Path("docs/raw_exports.md"))
    args = parser.parse_args(argv)
    if args.command == "doc":
        print(f"{args.path}: {'updated' if update_contract_doc(args.path) else 'up to date'}")
        return 0
    start = time.perf_counter()
    summary = generate_trial(
        args.out,
        args.patients,
        args.seed,
        n_asvs=args.asvs,
        faecal_samples_per_patient=args.faecal_per_patient,
        overwrite=args.overwrite,
    )
    print(summary)
    print(f"generated in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
