"""Pipeline step: monthly flight files → features, split into training and validation sets."""

import argparse
from pathlib import Path

import pandas as pd

from keel.quickstart import flights

parser = argparse.ArgumentParser()
parser.add_argument("--raw", required=True, help="folder of monthly CSV files")
parser.add_argument("--valid-fraction", type=float, default=0.25)
parser.add_argument("--out", required=True)
args = parser.parse_args()

monthly = sorted(Path(args.raw).glob("*.csv"))
frame = pd.concat([pd.read_csv(path) for path in monthly], ignore_index=True)
features = flights.features(frame)
split = flights.split(features, valid_fraction=args.valid_fraction)
out = Path(args.out)
split.train_x.assign(**{flights.TARGET: split.train_y}).to_csv(out / "train.csv", index=False)
split.valid_x.assign(**{flights.TARGET: split.valid_y}).to_csv(out / "valid.csv", index=False)
print(f"prepared {len(features):,} flights from {len(monthly)} monthly files")
