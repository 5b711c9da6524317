"""Release step: the champion and the challenger on December, a month neither was trained on.

Writes ``report.json`` (each model's AUC and accuracy) for the people who approve the
release, and logs the same figures as the step's metrics.
"""

import argparse
import json
import pickle
from pathlib import Path

import pandas as pd

import keel
from keel.quickstart import flights
from keel.quickstart.training import validation_scores

parser = argparse.ArgumentParser()
parser.add_argument("--champion", required=True, help="models:/NAME@ALIAS")
parser.add_argument("--challenger", required=True, help="models:/NAME@ALIAS")
parser.add_argument("--data", required=True, help="December's daily features files")
parser.add_argument("--report", required=True)
args = parser.parse_args()

december = pd.concat([pd.read_parquet(path) for path in sorted(Path(args.data).glob("*.parquet"))])
split = flights.Split(
    december[flights.FEATURES][:0],
    december[flights.TARGET][:0],
    december[flights.FEATURES],
    december[flights.TARGET],
)
figures: dict[str, dict[str, float | str]] = {}
for role in ("champion", "challenger"):
    loaded = keel.load_model(getattr(args, role))
    # Probabilities, for the AUC: the registry's own pickle, read only once its hash checked out.
    scores = validation_scores(pickle.loads(loaded.verified_bytes("model.pkl")), split)
    figures[role] = {
        "version": loaded.version.version,
        "auc": scores["valid_auc"],
        "accuracy": scores["valid_accuracy"],
    }
with keel.start_run() as run:
    run.log_metrics(
        {f"{role}_{key}": float(figures[role][key]) for role in figures for key in ("auc", "accuracy")}
    )
report = {**figures, "rows": len(december)}
(Path(args.report) / "report.json").write_text(json.dumps(report, indent=2))
print(json.dumps(report))
