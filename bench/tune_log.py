"""What a `vaebench tune --dask` run cost, from its own output (saved with `| tee tune.log`):

    python bench/tune_log.py tune.log

Wall time (first to last timestamped line), trials per hour, each trial's experiment time and
overhead as the drain printed them, and how busy the workers were (the sum of the experiments'
times over the wall time: the number of workers if none ever idled).

A log of a study stopped and resumed (`tee -a`) spans the pause between the two runs, which the
wall time counts. So the same figures are given again over the time some collected experiment was
running (each one from its `done` line back by its experiment time and overhead): that leaves out
the pause, and also the time of experiments a stop killed, which never came back.
"""

import re
import statistics
import sys
from datetime import datetime, timedelta
from pathlib import Path

DONE = re.compile(r"^(\d\d:\d\d:\d\d)  .*done on (\S+): experiment (\d+) s, overhead ([\d.]+) s", re.MULTILINE)


def clock(stamp: str, first: datetime) -> float:
    """Seconds since the log's first line (a log may pass midnight)."""
    return ((datetime.strptime(stamp, "%H:%M:%S") - first) % timedelta(days=1)).total_seconds()


def covered(intervals: list[tuple[float, float]]) -> float:
    """The length of the union of the intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        total += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return total


def main(log: Path) -> None:
    text = log.read_text()
    stamps = re.findall(r"^(\d\d:\d\d:\d\d)  ", text, re.MULTILINE)
    first = datetime.strptime(stamps[0], "%H:%M:%S")
    wall = clock(stamps[-1], first)
    done = DONE.findall(text)
    experiment = [int(e) for _, _, e, _ in done]
    overhead = [float(o) for _, _, _, o in done]
    running = covered([(clock(t, first) - int(e) - float(o), clock(t, first)) for t, _, e, o in done])
    print(f"trials collected: {len(done)} ({len(re.findall('FAILED', text))} FAILED lines)")
    print(f"experiment per trial: {min(experiment)}-{max(experiment)} s, mean {statistics.mean(experiment):.0f} s")
    print(
        f"overhead per trial: {min(overhead):.1f}-{max(overhead):.1f} s, mean {statistics.mean(overhead):.1f} s"
        f" ({100 * sum(overhead) / sum(experiment):.1f} % of the experiments' time)"
    )
    for name, seconds in (("wall time", wall), ("time with a collected experiment running", running)):
        print(
            f"{name}: {seconds:,.0f} s ({seconds / 60:.1f} min); trials per hour: {len(done) / (seconds / 3600):.1f};"
            f" sum of experiment times / it: {sum(experiment) / seconds:.2f}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
