#!/usr/bin/env bash
# Repeat every negative-control case N times (default 3) and print, per case, how often it did
# not give its expected verdict: the flake count. Each repetition makes one kind cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
out=$(mktemp -d)
for i in $(seq 1 "$runs"); do
  python3 -m pytest tests/e2e/test_negative_controls.py --infra=require -q -p no:cacheprovider \
    --junitxml="$out/run-$i.xml" >"$out/run-$i.log" 2>&1 || true
  echo "run $i: $(tail -1 "$out/run-$i.log")"
done
python3 - "$out" "$runs" <<'PY'
import sys, glob, xml.etree.ElementTree as ET
out, runs = sys.argv[1], int(sys.argv[2])
bad: dict[str, int] = {}
for path in sorted(glob.glob(f"{out}/run-*.xml")):
    for case in ET.parse(path).iter("testcase"):
        name = case.get("name")
        failed = any(case.find(tag) is not None for tag in ("failure", "error", "skipped"))
        bad[name] = bad.get(name, 0) + int(failed)
for name, n in sorted(bad.items()):
    print(f"{name}: {n} of {runs} runs off")
print(f"flake count: {sum(bad.values())} of {len(bad) * runs} case runs")
PY
