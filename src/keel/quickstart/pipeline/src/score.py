"""Scheduled job: score one day of December (a tumbling window), or one file that landed in incoming/.

``--features DIR --day 2013-12-03T00:00:00Z`` scores that day's features file (the
window's start names the day); ``--flights FILE`` scores raw flight rows, made into
features by the same code as training. Either way the predictions are written as
Parquet and the day's figures logged as the job's metrics.
"""

import argparse
from pathlib import Path

import pandas as pd

import keel
from keel.quickstart import flights

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True, help="a registered model: models:/NAME@ALIAS")
parser.add_argument("--features", help="a folder of daily features files (flights-2013-12)")
parser.add_argument("--day", help="the window's start, an ISO time: which day's file to score")
parser.add_argument("--flights", help="a CSV file of raw flights")
parser.add_argument("--out", required=True)
args = parser.parse_args()

if args.flights:
    frame, name = flights.features(pd.read_csv(args.flights)), Path(args.flights).stem
else:
    name = f"flights-{args.day[:10]}"
    frame = pd.read_parquet(Path(args.features) / f"{name}.parquet")
model = keel.load_model(args.model)  # the version the alias names now, its files hash-checked
frame["prediction"] = model.predict(frame[flights.FEATURES])
frame.to_parquet(Path(args.out) / f"{name}-scored.parquet", index=False)
figures = {
    "rows": float(len(frame)),
    "predicted_late": float(frame["prediction"].mean()),
    "actually_late": float(frame[flights.TARGET].mean()),
    "accuracy": float((frame["prediction"] == frame[flights.TARGET]).mean()),
}
with keel.start_run() as run:
    run.log_metrics(figures)
print(
    f"scored {name}: {len(frame):,} flights, {figures['predicted_late']:.1%} predicted late, "
    f"accuracy {figures['accuracy']:.1%}"
)
