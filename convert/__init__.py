"""Converters from official PyTorch checkpoints to vidjax (Flax NNX) parameters."""
