"""What a `vaebench tune --dask` run cost, from its own output (saved with `| tee tune.log`):

    python bench/tune_log.py tune.log

Wall time (first to last timestamped line), trials per hour, each trial's experiment time and
overhead as the drain printed them, and how busy the workers were (the sum of the experiments'
times over the wall time: the number of workers if none ever idled).
"""

import re
import statistics
import sys
from datetime import datetime, timedelta
from pathlib import Path

text = Path(sys.argv[1]).read_text()
stamps = [datetime.strptime(s, "%H:%M:%S") for s in re.findall(r"^(\d\d:\d\d:\d\d)  ", text, re.MULTILINE)]
wall = (stamps[-1] - stamps[0]) % timedelta(days=1)  # past midnight too
done = re.findall(r"done on (\S+): experiment (\d+) s, overhead ([\d.]+) s", text)
experiment = [int(e) for _, e, _ in done]
overhead = [float(o) for _, _, o in done]
seconds = wall.total_seconds()
print(f"trials collected: {len(done)} ({len(re.findall('FAILED', text))} FAILED lines)")
print(f"wall time: {seconds:,.0f} s ({seconds / 60:.1f} min); trials per hour: {len(done) / (seconds / 3600):.1f}")
print(f"experiment per trial: {min(experiment)}-{max(experiment)} s, mean {statistics.mean(experiment):.0f} s")
print(
    f"overhead per trial: {min(overhead):.1f}-{max(overhead):.1f} s, mean {statistics.mean(overhead):.1f} s"
    f" ({100 * sum(overhead) / sum(experiment):.1f} % of the experiments' time)"
)
print(f"sum of experiment times / wall time: {sum(experiment) / seconds:.2f}")
