#!/usr/bin/env python3
"""Read the event files `recurrent train/fit --tensorboard DIR` wrote with TensorBoard's own reader.

    pip install tensorboard
    python3 Tools/check_tensorboard.py DIR [TAG ...]

Prints each scalar tag with its number of points and its first and last (step, value), and
exits non-zero when a file does not parse, a record fails its CRC, or a TAG is missing.
"""
import glob
import os
import sys

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader


def main():
    folder, wanted = sys.argv[1], sys.argv[2:]
    files = sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*")))
    if not files:
        sys.exit(f"no event files in {folder}")
    scalars = {}
    for path in files:
        events = list(EventFileLoader(path).Load())  # checks lengths and CRCs as it reads
        if not events or events[0].file_version != "brain.Event:2":
            sys.exit(f"{path}: the first event is not file_version brain.Event:2")
        for event in events[1:]:
            for value in event.summary.value:
                number = value.simple_value if value.HasField("simple_value") else value.tensor.float_val[0]
                scalars.setdefault(value.tag, []).append((event.step, number))
    for tag, points in sorted(scalars.items()):
        print(f"{tag}: {len(points)} points, first {points[0]}, last {points[-1]}")
    missing = [t for t in wanted if t not in scalars]
    if missing:
        sys.exit(f"missing tags: {missing}")


if __name__ == "__main__":
    main()
