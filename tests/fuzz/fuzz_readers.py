"""Long fuzz campaign over every reader (``make fuzz`` / ``python tests/fuzz/fuzz_readers.py --minutes N``).

Runs the hypothesis strategies of :mod:`harness` against every reader target in rounds, round-robin,
until the time budget is spent, and prints per target the examples run, how many inputs loaded and how
many were rejected (and the distinct rejection messages), plus every failure hypothesis found and shrank.
The exit status is 1 when any input broke the property (another exception type, a malformed rejection, a
hang or an inconsistent table). Failures are kept in hypothesis' example database (``.hypothesis/``), so
the normal test run (``tests/test_fuzz_readers.py``) replays them.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ on the path: `fuzz` is a package there

from hypothesis import HealthCheck, given, settings

from fuzz.harness import Target, build_targets, run_one, strategy_for


def _kind(message: str) -> str:
    """A rejection message without its file name and specific values, to count distinct kinds."""
    text = message.split(": ", 1)[-1]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    return re.sub(r"\d+", "N", text)[:110]


def _property(target: Target, landing: Path, examples: int, stats: collections.Counter, kinds: collections.Counter):
    """The reader property as a hypothesis test over ``target``'s strategy, counting outcomes."""

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
    @given(data=strategy_for(target))
    def one(data: bytes) -> None:
        outcome = run_one(target, landing, data)
        stats[outcome.status] += 1
        stats["max_ms"] = max(stats["max_ms"], int(outcome.seconds * 1000))
        if outcome.status == "rejected":
            kinds[_kind(outcome.detail)] += 1

    return one


def _flatten(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _flatten(sub)]
    return [exc]


def _save(findings: Path, name: str, data: bytes | None) -> str:
    """Keep a failing input as ``<findings>/<target>-<sha1>.bin`` so it can be replayed; returns a note."""
    if data is None:
        return ""
    findings.mkdir(parents=True, exist_ok=True)
    path = findings / f"{name}-{hashlib.sha1(data).hexdigest()[:12]}.bin"
    path.write_bytes(data)
    return f" [input saved: {path}]"


def campaign(targets: dict[str, Target], landing: Path, seconds: float, round_examples: int, findings: Path) -> int:
    stats = {name: collections.Counter() for name in targets}
    kinds = {name: collections.Counter() for name in targets}
    failures: list[str] = []
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        for name, target in targets.items():
            if time.monotonic() >= deadline:
                break

            one = _property(target, landing, round_examples, stats[name], kinds[name])
            try:
                one()
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                for sub in _flatten(exc):
                    saved = _save(findings, name, getattr(sub, "data", None))
                    failures.append(f"[{name}] {type(sub).__name__}: {sub}{saved}")
                    print(f"FAIL [{name}] {type(sub).__name__}: {str(sub)[:3000]}{saved}", flush=True)
                    for line in getattr(sub, "__notes__", [])[:6]:
                        print(f"    note: {line[:600]}", flush=True)
    total = 0
    print(f"\n{'target':<16} {'examples':>9} {'loaded':>7} {'rejected':>9} {'kinds':>6} {'max ms':>7}")
    for name, c in stats.items():
        n = c["loaded"] + c["rejected"]
        total += n
        print(f"{name:<16} {n:>9} {c['loaded']:>7} {c['rejected']:>9} {len(kinds[name]):>6} {c['max_ms']:>7}")
    print(f"\n{total} examples in {rounds} rounds; {len(failures)} failure(s)")
    if "--kinds" in sys.argv:
        for name, counter in kinds.items():
            print(f"\n== {name}")
            for kind, count in counter.most_common():
                print(f"{count:>6}  {kind}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="time budget (default 10)")
    parser.add_argument("--targets", help="comma-separated target names (default: all)")
    parser.add_argument("--round", type=int, default=100, help="examples per target per round (default 100)")
    parser.add_argument("--kinds", action="store_true", help="print the distinct rejection messages per target")
    parser.add_argument(
        "--findings", type=Path, default=Path("data/fuzz_findings"), help="where failing inputs are saved"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="guttrial-fuzz-") as tmp:
        work = Path(tmp)
        targets = build_targets(work)
        if args.targets:
            wanted = args.targets.split(",")
            unknown = sorted(set(wanted) - set(targets))
            if unknown:
                parser.error(f"unknown targets {unknown}; choose from {sorted(targets)}")
            targets = {n: targets[n] for n in wanted}
        print(f"fuzzing {len(targets)} targets for {args.minutes:g} min: {', '.join(targets)}", flush=True)
        return campaign(targets, work / "landing", args.minutes * 60, args.round, args.findings)


if __name__ == "__main__":
    sys.exit(main())
