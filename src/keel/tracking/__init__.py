"""Experiment tracking: experiments, jobs' params, metrics, tags and artifacts."""
