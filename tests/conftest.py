"""Shared test setup: 8 simulated CPU devices for sharding tests, offline hub, a persistent
XLA compilation cache (the same tiny programs are compiled by many tests and by the train CLI
subprocesses; a cached executable is the same binary, so results are unchanged), and XLA:CPU's
cheap code generation (no LLVM optimisation: the toy programs of the tests compile in half the
time and run in milliseconds either way; every parity tolerance holds unchanged)."""

import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 "
                      "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "vidjax-tests-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
