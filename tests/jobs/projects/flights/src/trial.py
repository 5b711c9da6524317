"""A sweep trial: a score with a known optimum at lr=0.3, logged per epoch through MLflow."""

import argparse
from pathlib import Path

import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--depth", type=int, default=4)
parser.add_argument("--out", required=True)
parser.add_argument("--silent", action="store_true")
args = parser.parse_args()
with mlflow.start_run():
    for epoch in range(4):
        if not args.silent:
            mlflow.log_metric(
                "score", -((args.lr - 0.3) ** 2) - 0.01 * abs(args.depth - 4) + epoch * 0.001, step=epoch
            )
(Path(args.out) / "params.txt").write_text(f"{args.lr} {args.depth}")
