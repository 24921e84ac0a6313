"""Video input pipeline: annotation sources, ArrayRecord/tfds storage, PyAV/JPEG decoding,
TSN/dense sampling, per-clip augmentation, grain pipelines and on-device mixing.

Modules: `sources` (annotation formats, record sources), `decode` (PyAV sparse decode, JPEG),
`sampling` (frame indices), `transforms` (host-side uint8 augmentation), `mixing` (JAX
normalise / mixup / cutmix), `pipeline` (grain chain, global arrays), `synthetic` (test videos),
`config` (ml_collections defaults for the two recipes).
"""
