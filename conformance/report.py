"""Runs a checker's suites over one vector directory and reports, in the same form for every area.

Each suite is `(file name, check)`, where `check(doc)` yields `(id, ok, detail)`; a suite with
no file name is the checker's self-checks, `check()` with no argument. Exits non-zero on any
failure, so CI fails with it.
"""
import json, sys
from pathlib import Path


def run(area, suites, self_check_desc, argv=None):
    argv = sys.argv if argv is None else argv
    vdir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent / "vectors" / area
    failed = checked = 0
    for name, fn in suites:
        if name and not (vdir / name).exists():
            print(f"{name}: missing from {vdir}"); failed += 1; continue
        doc = json.loads((vdir / name).read_text()) if name else None
        results = list(fn(doc) if name else fn())
        bad = [(i, d) for i, ok, d in results if not ok]
        tests = sum(len(g["tests"]) for g in doc["testGroups"]) if name else 0
        if name and tests != doc.get("numberOfTests"):
            bad.append(("numberOfTests", f"{tests} tests, header says {doc.get('numberOfTests')}"))
        if name and tests == 0:
            bad.append(("tests", "no vectors"))
        extra = f"{tests} vectors, {len(results) - tests} extra checks" if name else self_check_desc
        print(f"{name or 'self-checks'}: {len(results) - len(bad)} passed, {len(bad)} failed ({extra})")
        for i, d in bad:
            print(f"  FAIL {i}: {d}")
        failed += len(bad); checked += tests
    print(f"{checked} {area} vectors checked, {failed} failures")
    sys.exit(1 if failed else 0)
