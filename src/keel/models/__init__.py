"""The model registry: named, immutable model versions with their files, flavors and lineage.

registry        versions: register, resolve, list, update, archive (and ModelVersion)
references      the forms that name a version: azureml:NAME:VER, models:/NAME@ALIAS …
aliases         @champion and friends
sources         where the files to register are: paths, job outputs, run artifacts
spec            Azure ML's model YAML
registered      registered models as a whole, and searches (MLflow's registry API)
files           a version's manifest and checked copies out
scoring         open a version (hash-checked) and predict with it: LoadedModel
flavors         onnx, sklearn and python_function loaders
mlflow_format   the MLmodel file; saving what MLflow loads (saving, onnx)
signatures      signatures: checking inputs, inferring from examples
lineage         model ← job ← data versions ← their jobs
sdk             keel.log_model, keel.load_model
"""
