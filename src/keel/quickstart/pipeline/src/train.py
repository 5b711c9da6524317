"""Pipeline step (and sweep trial): train one model on the prepared features, logging as it learns."""

import argparse
import pickle
from pathlib import Path

import pandas as pd

import keel
from keel.quickstart import flights
from keel.quickstart.training import TRAINERS, validation_scores

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--model-type", default="gradient_boosting", choices=sorted(TRAINERS))
parser.add_argument("--max-depth", type=int, default=None)
parser.add_argument("--min-samples-leaf", type=int, default=None)
parser.add_argument("--model", required=True)
args = parser.parse_args()

data = Path(args.data)
train, valid = pd.read_csv(data / "train.csv"), pd.read_csv(data / "valid.csv")
split = flights.Split(
    train[flights.FEATURES], train[flights.TARGET], valid[flights.FEATURES], valid[flights.TARGET]
)
overrides = {"max_depth": args.max_depth, "min_samples_leaf": args.min_samples_leaf}
with keel.start_run() as run:  # inside a Keel job, this logs into that job
    model = TRAINERS[args.model_type](run, split, **overrides)
    scores = validation_scores(model, split)
    run.log_metrics(scores)
(Path(args.model) / "model.pkl").write_bytes(pickle.dumps(model))
print(f"{args.model_type}: valid AUC {scores['valid_auc']:.4f}")
