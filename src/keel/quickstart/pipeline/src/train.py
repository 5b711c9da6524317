"""Pipeline step (and sweep trial): train one model on the prepared features, logging as it learns.

The model is saved in the MLflow format (``MLmodel`` with a signature and an input
example), so registered from this output it is an ``mlflow_model``: a batch endpoint
scores it with no scoring script, and ``mlflow.pyfunc.load_model`` opens it too.
"""

import argparse
import shutil
import tempfile
from pathlib import Path

import pandas as pd

import keel
from keel.models.saving import save_model
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
train, valid = pd.read_parquet(data / "train.parquet"), pd.read_parquet(data / "valid.parquet")
split = flights.Split(
    train[flights.FEATURES], train[flights.TARGET], valid[flights.FEATURES], valid[flights.TARGET]
)
overrides = {"max_depth": args.max_depth, "min_samples_leaf": args.min_samples_leaf}
with keel.start_run() as run:  # inside a Keel job, this logs into that job
    model = TRAINERS[args.model_type](run, split, **overrides)
    scores = validation_scores(model, split)
    run.log_metrics(scores)
# Whoever scores it parallelises already (a batch endpoint runs worker processes): one thread each.
model.set_params(**{key: None for key in model.get_params() if key.endswith("n_jobs")})
with tempfile.TemporaryDirectory() as scratch:  # save_model makes its folder; the output's exists
    saved = Path(scratch) / "model"
    save_model(model, saved, input_example=split.valid_x.head(5), run_id=run.name)
    shutil.copytree(saved, args.model, dirs_exist_ok=True)
print(f"{args.model_type}: valid AUC {scores['valid_auc']:.4f}")
