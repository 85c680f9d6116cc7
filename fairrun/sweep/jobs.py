"""One job of a multirun: a failing job writes ``<job dir>/error.txt`` and returns, so the launcher goes on
with the other jobs; Ctrl-C or SIGTERM still stops the sweep."""
from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Callable

from fairrun.core.errors import FairrunError, paragraph

log = logging.getLogger("fairrun")

ERROR = "error.txt"


def failure_text(err: BaseException) -> str:
    """error.txt for an exception: one paragraph; for an unexpected exception also its traceback."""
    if isinstance(err, FairrunError):
        return paragraph(f"fairrun: error: {err}") + "\n"
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        message = (f"out of GPU memory ({' '.join(str(err).split())[:300]}). Lower trainer.batch_size or "
                   f"trainer.eval_batch_size, pass gpu.data_on_device=false, or run fewer jobs per GPU "
                   f"(hydra.launcher.n_jobs).")
    else:
        message = f"unexpected {type(err).__name__}: {err}"
    trace = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return paragraph(f"fairrun: error: {message}") + "\n\n" + trace


def run_sweep_job(work: Callable[[], object], run_dir: Path, job_num, sweep_dir: Path) -> None:
    """Run one job of a multirun. A failure is written to ``<run dir>/error.txt`` and logged, and the job
    returns, so the sweep goes on; Ctrl-C or SIGTERM (after the job saved checkpoints/last.pt) stops the
    sweep with code 130 or 143."""
    from fairrun.core.errors import Interrupted

    try:
        work()
    except Interrupted as err:
        print(paragraph(f"fairrun: interrupted: {err}. The sweep stopped; launch the same command again with "
                         f"hydra.sweep.dir={sweep_dir} to resume it (finished jobs are skipped)."),
              file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    except Exception as err:  # noqa: BLE001 - every failure stays in its job
        text = failure_text(err)
        if not getattr(err, "record_in_run_dir", True):  # the directory holds another run: left untouched
            print(paragraph(f"fairrun: error: job {job_num} not run: {' '.join(str(err).split())}"),
                  file=sys.stderr)
            return
        where = run_dir / ERROR
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            where.write_text(text)
        except OSError as write_err:  # a full disk or read-only dir: the log line below is then the record
            where = f"not recorded in {where}: {write_err.strerror or write_err}"
        log.error("job %s failed (%s): %s", job_num, where, " ".join(text.split("\n\n")[0].split()))
    finally:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()
