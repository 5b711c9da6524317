"""Pipeline step: score the trained model on the validation set and write a report."""

import argparse
import json
import pickle
from pathlib import Path

import pandas as pd

import keel
from keel.quickstart import flights
from keel.quickstart.training import validation_scores

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--model", required=True)
parser.add_argument("--report", required=True)
parser.add_argument("--auc", required=True, help="file to write the AUC to (a literal output)")
args = parser.parse_args()

valid = pd.read_parquet(Path(args.data) / "valid.parquet")
split = flights.Split(
    valid[flights.FEATURES][:0], valid[flights.TARGET][:0], valid[flights.FEATURES], valid[flights.TARGET]
)
# The model folder is this pipeline's own train output (MLflow format: model.pkl inside).
model = pickle.loads((Path(args.model) / "model.pkl").read_bytes())
scores = validation_scores(model, split)
with keel.start_run() as run:
    run.log_metrics(scores)
(Path(args.report) / "report.json").write_text(json.dumps(scores, indent=2))
Path(args.auc).write_text(json.dumps(scores["valid_auc"]))
print(json.dumps(scores))
