"""A terse progress logger for headless runs (``guttrial build``): one line per step, rejected files shown.

Dagster's event log (what the UI shows) is unaffected; this only decides what the terminal prints.
"""

import logging

import dagster as dg


class ProgressHandler(logging.Handler):
    """Prints one line per finished step and per rejected file, instead of Dagster's full debug log."""

    def __init__(self, quiet: bool) -> None:
        super().__init__(level=logging.DEBUG)
        self.quiet = quiet

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", {}) or {}
        event = meta.get("dagster_event")
        message = meta.get("orig_message") or record.getMessage()
        step = meta.get("step_key") or ""
        if self.quiet:
            return
        if event is not None:
            kind = event.event_type_value
            if kind == "STEP_START":
                print(f"  ... {step}", flush=True)
            elif kind == "STEP_SUCCESS":
                print(f"  ok  {step}", flush=True)
            elif kind == "STEP_FAILURE":
                failure = event.step_failure_data
                reason = failure.error.message.strip() if failure and failure.error else ""
                print(f"  FAILED {step}: {reason}", flush=True)
            elif kind == "STEP_SKIPPED":
                print(f"  skip {step} (upstream failed or blocked)", flush=True)
        elif record.levelno >= logging.WARNING:
            # Long listings (e.g. every sample below a rarefaction depth) stay in the Dagster event log.
            text = message if len(message) <= 300 else message[:300] + " ... (full text in the run's event log)"
            print(f"      {text}", flush=True)


@dg.logger(
    config_schema={"quiet": dg.Field(bool, default_value=False, description="print nothing while running")},
    description="One line per step and per warning, for terminals and CI logs.",
)
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.getLogger("guttrial.progress")
    logger.handlers = [ProgressHandler(bool(init_context.logger_config["quiet"]))]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger
