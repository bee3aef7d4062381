"""Where `train fit` runs: the backend's own data-parallel API over every visible accelerator,
and the precision it trains in."""

import contextlib
import os

import keras


def setup_devices():
    """Enter the backend's own data-parallel API over every visible accelerator.

    Returns (device names, a context manager to build and compile the model in, policy name).
    TensorFlow: `tf.distribute.MirroredStrategy` over all GPUs, or over the logical CPUs when
    more than one is configured (the tests do that to exercise this path). JAX:
    `keras.distribution.DataParallel` over all devices. Mixed precision (bfloat16) on GPUs.
    """
    backend = keras.backend.backend()
    policy = "float32"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        devices = [d.name for d in (gpus or cpus)]
        if gpus:
            policy = "mixed_bfloat16"
        scope = tf.distribute.MirroredStrategy(devices).scope() if len(devices) > 1 or gpus else contextlib.nullcontext()
    elif backend == "jax":
        import jax

        accelerators = [d for d in jax.devices() if d.platform != "cpu"]
        devices = [str(d) for d in (accelerators or jax.devices())]
        if accelerators:
            policy = "mixed_bfloat16"
        if len(devices) > 1:
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=accelerators or jax.devices()))
        scope = contextlib.nullcontext()
    else:
        devices, scope = [backend], contextlib.nullcontext()
    keras.mixed_precision.set_global_policy(policy)
    return devices, scope, policy


def cpu_count():
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
