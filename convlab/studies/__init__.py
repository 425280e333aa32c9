"""Studies (hyperparameter sweeps): the study spec and its space, the sampler and pruner, the top-up.

Nothing here imports Flask or Celery: the API validates and creates studies
with it, and the workers top them up and decide pruning with it
(docs/studies.md).
"""
