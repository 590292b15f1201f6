"""Drop TensorBoard events logged after a checkpoint, so a resumed run does not show those steps twice.

A run killed at step ``t + x`` and resumed from its checkpoint at ``t`` logs steps ``t + 1 ... t + x`` again.
:func:`purge_events_after` rewrites every event file under the run's TensorBoard folder without the events whose
step exceeds ``t`` (what ``SummaryWriter(purge_step=t + 1)`` asks TensorBoard to hide when it reads, done on disk
so that every reader of the files agrees). Events without a step (the file version, graphs) are kept; a record
truncated by the kill ends the file's readable part and is dropped with it. Each file is rewritten atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

from ceas_gym.files import atomic_write_bytes

__all__ = ["purge_events_after"]


def _records(path: Path) -> list[bytes]:
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader

    return list(RawEventFileLoader(str(path)).Load())


def purge_events_after(folder: Path, step: int) -> int:
    """Remove events with a step above ``step`` from every ``events.out.tfevents.*`` file under ``folder``.

    Args:
        folder: The run's TensorBoard folder (searched recursively; missing is fine).
        step: The last step to keep (the checkpoint's ``num_timesteps``).

    Returns:
        The number of events removed.
    """
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    removed = 0
    for path in sorted(Path(folder).rglob("events.out.tfevents.*")):
        kept = io.BytesIO()
        writer = RecordWriter(kept)
        dropped = 0
        for record in _records(path):
            event = event_pb2.Event.FromString(record)
            if event.step > step:
                dropped += 1
                continue
            writer.write(record)
        rewritten = kept.getvalue()
        if dropped or rewritten != path.read_bytes():  # also drops a trailing record cut short by a kill
            atomic_write_bytes(path, rewritten)
        removed += dropped
    return removed
