"""Trains a 'model' (the mean delay per carrier) and logs through MLflow (a pipeline step)."""

import argparse
import json
import os
import time
from pathlib import Path

import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--model", required=True)
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--fail-unless", default=None)
args = parser.parse_args()

run_ids = os.environ["AZUREML_RUN_ID"], os.environ["MLFLOW_RUN_ID"]  # mlflow.end_run() clears the latter
ledger = os.environ.get("KEEL_TEST_LEDGER")
if ledger:
    with open(ledger, "a") as handle:
        handle.write(f"train {os.environ['KEEL_JOB_NAME']}\n")
if args.fail_unless and not Path(args.fail_unless).exists():
    raise SystemExit(f"missing {args.fail_unless}")
time.sleep(args.sleep)
hold = os.environ.get("KEEL_TEST_HOLD")  # tests hold a step here while the file exists
while hold and Path(hold).exists():
    time.sleep(0.05)
lines = (Path(args.data) / "clean.csv").read_text().splitlines()[1:]
delays: dict[str, list[int]] = {}
for line in lines:
    carrier, delay = line.split(",")
    delays.setdefault(carrier, []).append(int(delay))
with mlflow.start_run():
    mlflow.log_param("lr", args.lr)
    for epoch in range(args.epochs):
        mlflow.log_metric("loss", args.lr / (epoch + 1), step=epoch)
(Path(args.model) / "model.json").write_text(json.dumps({k: sum(v) / len(v) for k, v in delays.items()}))
Path("outputs").mkdir(exist_ok=True)
Path("outputs/summary.txt").write_text(f"{len(lines)} rows\n")
print("environment:", *run_ids)
