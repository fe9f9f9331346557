"""How fast the end-to-end simulator runs: panel-days per wall minute with the real firmware.

    .venv/bin/python bench/simspeed.py [--scenario chain-week] [--days N] [--sites N] [--hogs 0,2]

For each CPU-hog count it runs `rating sim run SCENARIO --check --quiet` (the real firmware on
virtual panels -> our own Mosquitto -> `rating gateway run` -> SQLite) while that many busy
processes (started and stopped by this script) compete for the cores, and reports panel-days per
wall minute of the whole run and of its simulation loop, the check's verdict, and the runner's
real-time waits (ack holds, waits for the gateway/broker, spent in select) from truth.json.

Reference, measured in the same run: the CPU the run used (runner + gateway + broker children)
turned into the rate the machine's cores would allow if nothing ever waited
(panel-days / (CPU seconds / cores)), and the model pipeline (`--pure`, no firmware, broker or
database) of the same scenario.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATING = os.path.join(REPO, ".venv", "bin", "rating")
HOG = "import time\nend = time.monotonic() + %d\nwhile time.monotonic() < end:\n    pass\n"


def start_hogs(n, limit_s):
    """n busy processes at normal priority; each stops by itself after limit_s at the latest."""
    return [subprocess.Popen([sys.executable, "-c", HOG % limit_s]) for _ in range(n)]


def stop_hogs(procs):
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def run_once(scenario, days, sites, hogs, out):
    args = [RATING, "sim", "run", scenario, "--check", "--quiet", "--out", out]
    if days:
        args += ["--days", str(days)]
    if sites:
        args += ["--sites", str(sites)]
    procs = start_hogs(hogs, 3600)
    try:
        t0 = time.monotonic()
        res = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
        wall = time.monotonic() - t0
    finally:
        stop_hogs(procs)
    with open(os.path.join(out, "truth.json")) as f:
        doc = json.load(f)
    return res, wall, doc


def pure_time(scenario, days, sites, out):
    args = [RATING, "sim", "run", scenario, "--pure", "--check", "--quiet", "--out", out]
    if days:
        args += ["--days", str(days)]
    if sites:
        args += ["--sites", str(sites)]
    t0 = time.monotonic()
    subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True)
    return time.monotonic() - t0


def _load():
    """The 1-minute load average (other work on the machine moves every figure here)."""
    return "%.1f" % os.getloadavg()[0]


def main():
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[1])
    ap.add_argument("--scenario", default="chain-week", help="a name in simulator/scenarios or a file")
    ap.add_argument("--days", type=int)
    ap.add_argument("--sites", type=int)
    ap.add_argument("--hogs", default="0,2", help="comma-separated counts of busy processes (default 0,2)")
    a = ap.parse_args()
    scenario = a.scenario
    if not os.path.exists(scenario):
        scenario = os.path.join(REPO, "simulator", "scenarios", scenario + ".toml")
    cores = os.cpu_count() or 1
    tmp = tempfile.mkdtemp(prefix="rating-bench-sim-")
    print("machine: %d cores; scenario %s" % (cores, os.path.basename(scenario)))
    ref = pure_time(scenario, a.days, a.sites, os.path.join(tmp, "pure"))
    print("reference: model pipeline (--pure) of the same scenario: %.1f s" % ref)
    ok = True
    for hogs in [int(x) for x in a.hogs.split(",")]:
        load_before = _load()
        res, wall, doc = run_once(scenario, a.days, a.sites, hogs, os.path.join(tmp, "e2e-%d" % hogs))
        r = doc["runner"]
        st, tm = r["stats"], r["timing"]
        pdays = st["panel_days"]
        cpu = tm["cpu_runner_s"] + tm["cpu_gateway_s"]
        checked = "check OK" if res.returncode == 0 else "CHECK FAILED (exit %d)" % res.returncode
        ok = ok and res.returncode == 0
        print(
            "hogs %d: %d panel-days in %.1f s wall = %.0f panel-days/min (loop %.1f s = %.0f/min); %s"
            % (hogs, pdays, wall, pdays * 60 / wall, tm["run_s"], pdays * 60 / tm["run_s"], checked)
        )
        print(
            "  waits: %d ack holds %.2f s (%d over 100 ms: %.2f s, longest %.2f s; %d gave up), held for faults "
            "%.2f s, select %d calls %.2f s; ack timeouts fired %d (resent %d events); smoothed ack time %.1f ms"
            % (
                st["holds"],
                st["hold_s"],
                st.get("holds_over_100ms", 0),
                st.get("holds_over_100ms_s", 0.0),
                st.get("hold_max_s", 0.0),
                st.get("hold_expired", 0),
                st.get("fault_wait_s", 0.0),
                st["selects"],
                st.get("select_s", 0.0),
                st.get("ack_timeouts", 0),
                st.get("resends", 0),
                st.get("ack_rtt_ms", 0.0),
            )
        )
        print(
            "  CPU: runner %.1f s, gateway (+ stopped brokers) %.1f s = %.0f ms per panel-day; setup %.1f s, "
            "finish %.1f s (per run, not per panel-day)"
            % (tm["cpu_runner_s"], tm["cpu_gateway_s"], cpu * 1000 / pdays, tm["setup_s"], tm["finish_s"])
        )
        print(
            "  reference: CPU-bound rate on %d cores %.0f panel-days/min; load average %s before, %s after"
            % (cores, pdays * 60 / (cpu / cores), load_before, _load())
        )
        if res.returncode != 0:
            print(res.stdout[-2000:], res.stderr[-2000:])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
