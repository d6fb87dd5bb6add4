"""The contract between what `tritonbuild` writes and what reads it back: the repository's manifest.

`NAME/tritonbuild.json` beside the ensemble says how the repository was built and what a client needs to
use it: the task, the member models, where the tokenizer is, the length buckets, the limits and outputs.
balancer.py: the header through which the balancer of `serve --replicas` names its replicas.
The client imports this package (and builder.common) and nothing else from the builder.
"""
