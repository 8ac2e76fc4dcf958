"""Producing the next item of an iterator while the caller uses the current one."""

import queue
import threading

#: Seconds between checks, by a producer waiting for room, that its consumer is still there.
POLL_SECONDS = 0.1


def ahead(iterable, depth=1):
    """Yield the items of ``iterable``, produced up to ``depth`` ahead in a thread.

    For batches computed on an accelerator: the device works on the next batch
    while the host turns the current one into maps. Items come in order; an
    exception raised by ``iterable`` is raised here, at the item it replaced.
    Leaving the loop early (``break``, an exception, closing the generator)
    stops the thread after the item it is producing, so nothing keeps running
    once the caller has moved on.
    """
    items = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def put(entry):
        while not stopped.is_set():
            try:
                items.put(entry, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in iterable:
                if not put((True, item)):
                    return
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
            put((False, error))
            return
        finally:
            # A generator left early runs its cleanup now, in this thread.
            getattr(iterable, "close", lambda: None)()
        put((False, None))

    thread = threading.Thread(target=produce, name="sensloc-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            is_item, value = items.get()
            if is_item:
                yield value
            elif value is None:
                return
            else:
                raise value
    finally:
        stopped.set()
        thread.join()
