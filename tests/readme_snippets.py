#!/usr/bin/env python3
"""The README's usage snippets are the code that tests/test_snippets.c compiles and runs:
the first ```c block under "Add the middleware", "Add items to the cache", "Read items
from the cache", "Announce changes", the two DynamoDB sections and the push section must appear, line for
line (indentation aside), in its file under example_server/snippets/. Prints a Criterion-style synthesis line."""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SCACHE_SOURCE_ROOT", ".")
files = {
    "Add the middleware": "add_middleware.c",
    "Add items to the cache": "add_items.c",
    "Read items from the cache": "read_items.c",
    "Announce changes": "announce_changes.c",
    "DynamoDB: read-aside GetItem": "dynamodb.c",
    "DynamoDB: change records on the stream": "dynamodb.c",
    "Push configuration": "push.c",
}
readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()
passed = failed = 0
for title, name in files.items():
    # the first ```c block of the section (### or ## heading)
    m = re.search(r"^#{2,3} " + re.escape(title) + r"\n(?:(?!^#).)*?```c\n(.*?)```", readme,
                  re.S | re.M)
    src = open(os.path.join(root, "example_server", "snippets", name), encoding="utf-8").read()
    block = [l.strip() for l in m.group(1).splitlines()] if m else []
    lines = [l.strip() for l in src.splitlines()]
    found = bool(block) and any(lines[i:i + len(block)] == block
                                for i in range(len(lines) - len(block) + 1))
    if found:
        passed += 1
        print(f"[PASS] readme::{name}")
    else:
        failed += 1
        why = "no ```c block under the heading" if not block else "differs from the file"
        print(f"[FAIL] readme::{name}: the README's \"{title}\" snippet {why}")
print(f"[====] Synthesis: Tested: {passed + failed} | Passing: {passed} | Failing: {failed} | Crashing: 0")
sys.exit(1 if failed else 0)
