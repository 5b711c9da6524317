"""Data: datastores, versioned data assets, verified copies and transforms."""
