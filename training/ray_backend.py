"""Run independent tasks (evaluation episodes, training runs) as Ray tasks, results in submission order.

Used by ``ceas-eval --backend ray`` (one task per episode) and ``ceas-train --backend ray`` (one task per training
run). Ray is an optional extra (``pip install -e ".[ray]"``); it is imported only here and only when asked for.

Decisions:

* ``address=None`` lets ``ray.init`` start a private local instance; ``"auto"`` or ``"HOST:PORT"`` connect to a
  running cluster (``ray start --head`` on the head node). A connection this module opened is shut down again when
  the study ends; one that was already open is left alone.
* Every task asks for one CPU (``num_cpus=1``) and runs torch with one thread, like the local process pool.
* Workers import the tasks' code from their own Python environment: on a multi-machine cluster every node needs
  ceas-gym (and any plug-in package) installed, and paths (model files, ``-f`` log folders) must be readable or
  writable at the same place on every node (a shared file system).
* Results come back in the order the tasks were submitted, whatever order they finish in, so a study gives the
  same files as with the local backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class RayUnavailableError(RuntimeError):
    """Ray is not installed or the cluster cannot be reached."""


def import_ray() -> Any:
    """Import ``ray`` or raise :class:`RayUnavailableError` with the install command."""
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(
            "--backend ray needs Ray, an optional extra: pip install -e \".[ray]\" (or pip install 'ray>=2.9')"
        ) from None
    return ray


def _one_thread_call(function: Callable[[Item], Result], item: Item) -> Result:
    """Run ``function(item)`` with one torch thread (the cores are shared by the parallel tasks)."""
    import torch

    torch.set_num_threads(1)
    return function(item)


def ray_map(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    address: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Result]:
    """``[function(item) for item in items]``, each call one Ray task; results in the order of ``items``.

    Args:
        function: A module-level (importable, picklable) function.
        items: Its arguments, one per task (picklable).
        address: Ray cluster address (``"auto"``, ``"HOST:PORT"``), or ``None`` for a private local instance.
        progress: Called with 1 whenever a task finishes (e.g. a tqdm bar's ``update``).

    Raises:
        RayUnavailableError: Ray is not installed, or ``address`` cannot be reached.
    """
    ray = import_ray()
    tick = progress or (lambda _: None)
    opened = not ray.is_initialized()
    if opened:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise RayUnavailableError(f"--address {address!r}: cannot connect to a Ray cluster ({error})") from None
    try:
        remote = ray.remote(num_cpus=1)(_one_thread_call)
        references = [remote.remote(function, item) for item in items]
        position = {reference: index for index, reference in enumerate(references)}
        results: list[Any] = [None] * len(references)
        pending = list(references)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for reference in done:
                results[position[reference]] = ray.get(reference)
                tick(1)
        return results
    finally:
        if opened:
            ray.shutdown()
