"""How long `ftstudio eval` takes on a run of the embedded model: the quick check with the base model measured
(an empty base cache: the first check on this base), then again with the base's answers kept, then the
thorough check with the base's answers kept.

Each check is its own process under GNU time with OMP_NUM_THREADS=1, so its CPU-seconds (user + system) do not
depend on what else the machine runs; the wall time is recorded beside the load average. Run:
    python bench/eval_time.py RUN_DIR [--out bench/results/eval_time.json]
RUN_DIR is a finished run of the demo project (`ftstudio demo --steps 20` makes one); its eval/ report is
rewritten by the checks.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_check(run_dir: Path, home: Path, thorough: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FTSTUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    load_before = os.getloadavg()[0]
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "studio.cli", "eval", str(run_dir), "--json"]
    done = subprocess.run(command + (["--thorough"] if thorough else []), env=env, capture_output=True, text=True,
                          check=True)
    field = lambda name: float(re.search(rf"{name}: ([0-9.]+)", done.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([0-9:.]+)", done.stderr).group(1)
    seconds = sum(float(part) * 60 ** k for k, part in enumerate(reversed(wall.split(":"))))
    report = json.loads(done.stdout)
    return {"check": report["check"], "questions": report["general"]["questions"],
            "prose_tokens": report["general"]["prose_tokens"], "base_cached": report["base"].get("cached", []),
            "user_s": field("User time \\(seconds\\)"), "system_s": field("System time \\(seconds\\)"),
            "cpu_s": round(field("User time \\(seconds\\)") + field("System time \\(seconds\\)"), 1),
            "wall_s": round(seconds, 1), "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "verdict": [report["verdict"]["learned"], report["verdict"]["kept"]],
            "peak_rss_mb": round(field("Maximum resident set size \\(kbytes\\)") / 1024)}


def main() -> int:
    import torch
    import transformers

    from studio.paths import models_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "eval_time.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "models").symlink_to(models_dir())  # the embedded model, not converted again
        for name, thorough in (("quick, base measured", False), ("quick, base kept", False),
                               ("thorough, the base's held-out answers kept", True)):
            rows.append({"name": name, **timed_check(args.run_dir, home, thorough)})
            print(json.dumps(rows[-1]), flush=True)
    result = {"date": time.strftime("%Y-%m-%d"), "command": "OMP_NUM_THREADS=1 /usr/bin/time -v ftstudio eval RUN [--thorough]",
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, shared with other work",
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                           "python": platform.python_version()},
              "run": str(args.run_dir), "checks": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
