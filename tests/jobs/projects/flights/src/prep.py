"""Joins monthly CSV files and keeps rows over a delay threshold (a pipeline step)."""

import argparse
import csv
import os
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--raw", required=True)
parser.add_argument("--min-delay", type=int, default=0)
parser.add_argument("--out", required=True)
parser.add_argument("--count", default=None)
args = parser.parse_args()

rows = []
for path in sorted(Path(args.raw).glob("*.csv")):
    with open(path) as handle:
        rows += [r for r in csv.DictReader(handle) if int(r["delay"]) >= args.min_delay]
with open(Path(args.out) / "clean.csv", "w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=["carrier", "delay"])
    writer.writeheader()
    writer.writerows(rows)
if args.count:
    Path(args.count).write_text(str(len(rows)))
ledger = os.environ.get("KEEL_TEST_LEDGER")
if ledger:
    with open(ledger, "a") as handle:
        handle.write(f"prep {os.environ['KEEL_JOB_NAME']}\n")
print(f"kept {len(rows)} rows")
