"""A ``type: data_transfer`` (copy_data) step: see :mod:`keel.data.copy.step`."""

from keel.data.copy.step import run_copy_step

__all__ = ["run_copy_step"]
