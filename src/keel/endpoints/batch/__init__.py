"""Batch endpoints: score whole data sets with a registered model, in parallel, as jobs.

    keel batch-endpoint create -f endpoint.yml
    keel batch-deployment create -f deployment.yml --set-default
    keel batch-endpoint invoke --name flights-batch --input azureml:flights-march:1 --stream

Modules, in the order an invocation meets them:

    specs       the endpoint and deployment YAML (Azure ML's shapes), settings, --set overrides
    endpoints   endpoints and deployments: create (model registered, code snapshotted), read, delete
    run         invoke: the job, its driver (inputs, model, plan, workers, outcome)
    inputs      the input made local: a path, a data asset version, a datastore path
    planning    mini-batches: files of a folder, or row ranges of a table
    pool        the executor interface and its local implementation (forked processes)
    worker      inside a worker: init(), then run(mini_batch) or the model's predict
    engine      the scheduler: dispatch, retries, timeouts, the error threshold
    output      the append_row file, assembled in order while scoring goes on
    publish     the output committed and registered as a data asset version
    records     the job's extra records: invocations and per-mini-batch outcomes
    preload     libraries imported once in the driver so forked workers start warm
"""
