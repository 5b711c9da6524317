"""Running jobs: command jobs, pipelines and sweeps from resolved specs, with reuse and lineage."""
