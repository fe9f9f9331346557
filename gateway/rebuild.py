"""`rating rebuild --jobs N`: re-derive every panel in parallel worker processes.

Derivation is per panel (a panel's polls depend on its own events and the settings history
only), so the panels are independent units of work: the parent clears the derived tables,
lists the panels and hands them out in batches of consecutive panels (BATCH) to N worker
processes (spawned, each with its own database connection). A worker derives a batch with
`gateway.derive.rebuild_panels`: the batch's events read page by page in one key order, its
derived rows and rollups written together (COPY on PostgreSQL), several panels a transaction,
so the statements are per page and per transaction, not per panel; its memory is bounded by a
page of events and one panel's polls, not by the store. The result is the one derivation of
every panel's (tests/gateway/test_rebuild.py compares every derived table).

PostgreSQL takes the workers' transactions side by side (each writes only its own panels'
rows, and the batches are disjoint key ranges). SQLite admits one writer at a time: workers there queue on its write lock (busy
timeout), so the default on SQLite is one process, and more only help while the others read.
Every process reports its peak resident memory (ru_maxrss), shown by the command and the
benchmark (bench/rebuild.py).
"""

import concurrent.futures
import multiprocessing
import os
import resource
import sys
import time
from dataclasses import dataclass, field

from gateway import db as dbmod
from gateway import derive, store

# panels per task: small enough to balance a few heavy panels across workers, large enough
# that a task's few set-up queries (boot clocks, verdicts, POS feeds of its panels) and its
# last, partly filled transaction cost little next to deriving it
BATCH = 32


@dataclass
class Result:
    panels: int
    jobs: int
    seconds: float
    peak_kib: dict[str, int] = field(default_factory=dict)  # "parent" / "worker <pid>" -> KiB

    @property
    def worker_peak_kib(self) -> int:
        return max((v for k, v in self.peak_kib.items() if k != "parent"), default=0)


def default_jobs(url: str) -> int:
    """The CPU count on PostgreSQL; 1 on SQLite (one writer at a time)."""
    if url.startswith(("postgresql://", "postgres://")):
        return max(1, os.cpu_count() or 1)
    return 1


def _peak_kib() -> int:
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


_WORKER_DB = None


def _worker_init(url: str) -> None:
    global _WORKER_DB
    _WORKER_DB = dbmod.connect(url)


def _worker_run(panels: list[tuple[str, str]], now_ms: int, sizes: tuple[int, int]) -> tuple[int, int, int]:
    """Derive `panels` in this worker; (panels done, pid, peak KiB so far)."""
    assert _WORKER_DB is not None
    derive.rebuild_panels(_WORKER_DB, panels, now_ms, *sizes)
    return len(panels), os.getpid(), _peak_kib()


def rebuild(
    db: dbmod.Database,
    now_ms: int,
    jobs: int | None = None,
    progress=None,
    page: int = derive.REBUILD_PAGE,
    per_transaction: int = derive.REBUILD_TRANSACTION,
) -> Result:
    """Clear the derived tables of `db` and derive every panel again with `jobs` processes
    (None: default_jobs; 1: in this process), `page` events a query, whole panels of about
    `per_transaction` events a transaction. progress(done, total) after each batch."""
    started = time.monotonic()
    jobs = default_jobs(db.url) if jobs is None else max(1, int(jobs))
    derive.clear_derived(db)
    panels = store.event_panels(db)
    result = Result(panels=len(panels), jobs=jobs, seconds=0.0)
    sizes = (page, per_transaction)
    if jobs == 1 or len(panels) <= 1:
        for i in range(0, len(panels), BATCH):
            derive.rebuild_panels(db, panels[i : i + BATCH], now_ms, *sizes)
            if progress:
                progress(min(i + BATCH, len(panels)), len(panels))
    else:
        _in_workers(db.url, panels, now_ms, jobs, sizes, result, progress)
    result.peak_kib["parent"] = _peak_kib()
    result.seconds = time.monotonic() - started
    return result


def _in_workers(url, panels, now_ms, jobs, sizes, result, progress):
    batches = [panels[i : i + BATCH] for i in range(0, len(panels), BATCH)]
    done = 0
    ctx = multiprocessing.get_context("spawn")  # no inherited connections or threads
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(jobs, len(batches)), mp_context=ctx, initializer=_worker_init, initargs=(url,)
    ) as pool:
        futures = [pool.submit(_worker_run, batch, now_ms, sizes) for batch in batches]
        try:
            for fut in concurrent.futures.as_completed(futures):
                n, pid, peak = fut.result()
                key = "worker %d" % pid
                result.peak_kib[key] = max(result.peak_kib.get(key, 0), peak)
                done += n
                if progress:
                    progress(done, len(panels))
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
