#!/usr/bin/env python3
"""Adds up what the test command ran, over the given meson build directories.

A Criterion suite counts each of its tests (from its "Synthesis" line); any other test
counts as one. A suite that died before its synthesis counts as one failure. A build
directory without a test log (it did not build) counts as one failure. Prints
"N passed, N failed" as the last line; exits 1 if anything failed.
"""
import json, os, re, sys

SYNTH = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
passed = failed = 0
for d in sys.argv[1:]:
    log = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        print(f"{d}: no test log (did not build or run)")
        failed += 1
        continue
    with open(log) as f:
        for line in f:
            t = json.loads(line)
            out = (t.get("stdout") or "") + (t.get("stderr") or "")
            m = SYNTH.findall(re.sub(r"\x1b\[[0-9;]*m", "", out))
            ok = t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
            if m:
                tested, passing, failing, crashing = map(int, m[-1])
                passed += passing
                failed += failing + crashing
                if not ok and failing + crashing == 0:
                    failed += 1
            elif ok:
                passed += 1
            else:
                failed += 1
            if not ok:
                print(f"{d}: {t.get('name')} {t.get('result')}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
