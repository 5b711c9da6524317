"""Pipeline step: flights → features, split into training and validation sets (Parquet).

With ``--daily``, every row's features go unsplit into one Parquet file per day: a
month to score with the model, built by the same code as what it was trained on.
"""

import argparse
from pathlib import Path

import pandas as pd

from keel.quickstart import flights

parser = argparse.ArgumentParser()
parser.add_argument("--table", required=True, help="a Parquet folder (flights-clean), or a CSV file")
parser.add_argument("--valid-fraction", type=float, default=0.25)
parser.add_argument("--daily", action="store_true", help="every row, unsplit: one Parquet file per day")
parser.add_argument("--out", required=True)
args = parser.parse_args()

table = Path(args.table)
parts = sorted(table.glob("*.parquet")) if table.is_dir() else [table]
frame = pd.concat(
    [pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path) for path in parts],
    ignore_index=True,
)
features = flights.features(frame)
out = Path(args.out)
if args.daily:
    for (year, month, day), rows in frame.groupby(["year", "month", "day"]):
        day_features = flights.features(rows)
        if len(day_features):
            day_features.to_parquet(out / f"flights-{year}-{month:02d}-{day:02d}.parquet", index=False)
else:
    split = flights.split(features, valid_fraction=args.valid_fraction)
    split.train_x.assign(**{flights.TARGET: split.train_y}).to_parquet(out / "train.parquet", index=False)
    split.valid_x.assign(**{flights.TARGET: split.valid_y}).to_parquet(out / "valid.parquet", index=False)
print(f"prepared {len(features):,} flights from {len(parts)} file(s)")
