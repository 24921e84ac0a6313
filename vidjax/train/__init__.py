"""Training and evaluation over device meshes.

``mesh`` (device mesh and logical-axis sharding rules), ``optim`` (the optax recipes of both
papers), ``step`` (jitted train / eval steps over split NNX state), ``checkpoint`` (orbax
``CheckpointManager`` facade, ``init_from``), ``metrics`` (metrics.jsonl, TensorBoard, progress),
``evaluate`` (multi-view test protocol), ``loop`` (``train_and_evaluate``, used by
``experiments/train.py``).
"""
