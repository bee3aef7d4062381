"""Where `train fit` runs: the backend's own data-parallel API over every visible accelerator,
and the precision it trains in."""

import contextlib
import functools
import os

import keras


def setup_devices(precision=None):
    """Enter the backend's own data-parallel API over every visible accelerator.

    Returns (device names, a context manager to build and compile the model in, policy name).
    TensorFlow: `tf.distribute.MirroredStrategy` over all GPUs, or over the logical CPUs when
    more than one is configured (the tests do that to exercise this path). JAX:
    `keras.distribution.DataParallel` over all devices. Mixed precision (bfloat16) on GPUs,
    unless `precision` ("float32" or "mixed_bfloat16") names the policy: the tests train in
    bfloat16 on a CPU, so the GPU's arithmetic is checked where there is no GPU.
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
    policy = precision or policy
    keras.mixed_precision.set_global_policy(policy)
    return devices, scope, policy


def restores_global_state(function):
    """`function`, with the global state `setup_devices` sets (Keras's precision policy and,
    under JAX, its distribution) put back as it was when it returns or fails: a run that
    stops half-way does not leave mixed precision to whatever runs next in the process."""
    @functools.wraps(function)
    def restoring(*args, **kwargs):
        policy, distribution = keras.mixed_precision.global_policy(), keras.distribution.distribution()
        try:
            return function(*args, **kwargs)
        finally:
            keras.mixed_precision.set_global_policy(policy)
            keras.distribution.set_distribution(distribution)
    return restoring


def compile_whole_steps(model):
    """Under JAX, let Keras compile each training and prediction step with XLA as one program.

    Keras marks its random rotation, zoom and translation layers as not XLA-compilable, for
    TensorFlow's sake (their TensorFlow kernel has no XLA form), and then runs a JAX step op by
    op. Their JAX code is plain `jax.numpy` and compiles. Call before `compile` (and before
    `predict` on a model never compiled); under other backends it changes nothing."""
    if keras.backend.backend() == "jax":
        for layer in model._flatten_layers():
            layer.supports_jit = True


def cpu_count():
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
