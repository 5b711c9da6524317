"""Three models for the late-flight question, each logging as it learns.

Each trainer logs its params, a metric curve (per fold, per batch of trees, or per
boosting stage) and the model file, and returns the validation scores. Every model
takes the features as they are, categories as text: it carries its own encoding, so
it scores a month it never saw (new airports included) the way it was trained.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from keel.quickstart.flights import CATEGORICAL, FEATURES, Split
from keel.tracking.sdk import Run

Trainer = Callable[..., Any]  # (run, data, **overrides) -> fitted model


def validation_scores(model: Any, data: Split) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    probability = model.predict_proba(data.valid_x)[:, 1]
    predicted = (probability >= 0.5).astype(int)
    return {
        "valid_auc": float(roc_auc_score(data.valid_y, probability)),
        "valid_accuracy": float(accuracy_score(data.valid_y, predicted)),
        "valid_f1": float(f1_score(data.valid_y, predicted)),
        "valid_log_loss": float(log_loss(data.valid_y, probability)),
    }


def with_encoded_categories(classifier: Any) -> Any:
    """``classifier`` behind an encoder that turns the category columns into integers, as
    columns of the same names (a category unseen in training becomes -1)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    unknown = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype="float32")
    encode = ColumnTransformer(
        [("categories", unknown, CATEGORICAL)], remainder="passthrough", verbose_feature_names_out=False
    ).set_output(transform="pandas")
    return make_pipeline(encode, classifier)


@contextmanager
def one_openmp_thread() -> Iterator[None]:
    """Gradient boosting on one OpenMP thread. On data this small, its threads synchronise at
    every tree node, and on a busy machine each wait costs a time slice: 45,000 rows trained
    in 0.7 s on one thread and in 13-26 s on two, on a loaded two-core machine."""
    import sklearn.ensemble  # noqa: F401 - loads the OpenMP runtime: only a loaded one can be limited
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def train_logistic_regression(run: Run, data: Split, **overrides: Any) -> Any:
    """Scaled numbers, one-hot categories; AUC logged per cross-validation fold."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [f for f in FEATURES if f not in CATEGORICAL]
    params = {"model": "logistic_regression", "C": 1.0, "folds": 3, "max_iter": 300}
    run.log_params(params)

    def build() -> Any:
        encode = ColumnTransformer(
            [
                ("numbers", StandardScaler(), numeric),
                ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ]
        )
        classifier = LogisticRegression(C=params["C"], max_iter=params["max_iter"])
        return make_pipeline(encode, classifier)

    from sklearn.metrics import roc_auc_score

    folds = StratifiedKFold(n_splits=params["folds"], shuffle=True, random_state=13)
    for fold, (fit_rows, test_rows) in enumerate(folds.split(data.train_x, data.train_y)):
        model = build().fit(data.train_x.iloc[fit_rows], data.train_y.iloc[fit_rows])
        score = model.predict_proba(data.train_x.iloc[test_rows])[:, 1]
        run.log_metric("cv_auc", float(roc_auc_score(data.train_y.iloc[test_rows], score)), step=fold)
    return build().fit(data.train_x, data.train_y)


def train_random_forest(run: Run, data: Split, **overrides: Any) -> Any:
    """Trees added ten at a time (warm start); validation AUC logged after each batch."""
    from sklearn.ensemble import RandomForestClassifier

    max_trees = 60
    max_depth = int(overrides.get("max_depth") or 12)
    min_leaf = int(overrides.get("min_samples_leaf") or 20)
    run.log_params(
        {
            "model": "random_forest",
            "max_trees": max_trees,
            "max_depth": max_depth,
            "min_samples_leaf": min_leaf,
        }
    )
    forest = with_encoded_categories(
        RandomForestClassifier(
            n_estimators=0,
            max_depth=max_depth,
            min_samples_leaf=min_leaf,
            warm_start=True,
            n_jobs=-1,
            random_state=13,
        )
    )
    for trees in range(10, max_trees + 1, 10):
        forest.set_params(randomforestclassifier__n_estimators=trees)
        forest.fit(data.train_x, data.train_y)
        scores = validation_scores(forest, data)
        run.log_metrics(
            {"valid_auc": scores["valid_auc"], "valid_log_loss": scores["valid_log_loss"]},
            step=trees,
        )
    return forest


def train_gradient_boosting(run: Run, data: Split, **overrides: Any) -> Any:
    """Histogram gradient boosting; validation AUC and loss logged every ten stages."""
    params = {
        "model": "gradient_boosting",
        "max_iter": 200,
        "learning_rate": 0.1,
        "max_leaf_nodes": 31,
    }
    run.log_params(params)
    with one_openmp_thread():
        return _boost(run, data, params)


def _boost(run: Run, data: Split, params: dict[str, Any]) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import log_loss, roc_auc_score

    model = with_encoded_categories(
        HistGradientBoostingClassifier(
            max_iter=params["max_iter"],
            learning_rate=params["learning_rate"],
            max_leaf_nodes=params["max_leaf_nodes"],
            categorical_features=CATEGORICAL,
            early_stopping=False,
            random_state=13,
        )
    ).fit(data.train_x, data.train_y)
    encoded_valid, booster = model[:-1].transform(data.valid_x), model[-1]
    for stage, probability in enumerate(booster.staged_predict_proba(encoded_valid), start=1):
        if stage % 10 == 0:
            run.log_metrics(
                {
                    "valid_auc": float(roc_auc_score(data.valid_y, probability[:, 1])),
                    "valid_log_loss": float(log_loss(data.valid_y, probability[:, 1])),
                },
                step=stage,
            )
    return model


TRAINERS: dict[str, Trainer] = {
    "logistic_regression": train_logistic_regression,
    "random_forest": train_random_forest,
    "gradient_boosting": train_gradient_boosting,
}


def train_and_log(run: Run, name: str, data: Split) -> dict[str, float]:
    """Train one model inside ``run``; log final scores and the pickled model."""
    started = time.perf_counter()
    model = TRAINERS[name](run, data)
    scores = validation_scores(model, data)
    scores["train_seconds"] = time.perf_counter() - started
    run.log_metrics(scores)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pkl"
        path.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        run.log_artifact(path, artifact_path="model")
    run.log_dict({"features": FEATURES, "categorical": CATEGORICAL}, "model/features.json")
    return scores
