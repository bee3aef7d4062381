"""Two process-wide changes for a server that keeps one model for its life (the page), and
their undoing, for a process that runs the page and then other work (the tests).

- Streamlit calls `keras.backend.clear_session()` at the end of each script run, for apps that
  build a model per run. For a page that loads one model per server the call only costs: a full
  garbage collection holding the GIL and a flushed TensorFlow kernel cache, and every session's
  run queues behind them. `tune_for_one_model` makes it do nothing.
- It also hides what is loaded by then (TensorFlow, the model) from Python's garbage collector
  (`gc.freeze`), so an automatic full collection does not walk all of it while every session
  waits.

`python -m webtest.load` measures what they buy (docs/benchmarks.md).
"""

import gc


def tune_for_one_model():
    """Make Keras's clear_session a no-op and freeze the heap loaded so far."""
    import keras

    if not hasattr(keras.backend.clear_session, "replaced"):
        def keep_the_session(free_memory=True):
            """Does nothing: the page's one model outlives every script run."""

        keep_the_session.replaced = keras.backend.clear_session
        keras.backend.clear_session = keep_the_session
    gc.freeze()


def untune():
    """Undo `tune_for_one_model`: Keras's own clear_session back, the heap unfrozen."""
    import keras

    replaced = getattr(keras.backend.clear_session, "replaced", None)
    if replaced is not None:
        keras.backend.clear_session = replaced
    gc.unfreeze()
