"""The end-of-sweep table, and what opens the runs in the MLflow UI: a saved view of the sweep
(or of a single run) and the URL that loads it.

How MLflow 3.17's UI decides what a URL shows (read from its bundle, mlflow/server/js/build,
and checked in headless Chromium by tests/test_ui_browser.py):
- `workflowType=machine_learning` in the URL selects the model-training UI. Without it a fresh
  browser gets the GenAI one (the default it keeps in localStorage) and `#/experiments/<id>`
  redirects to "Overview: Traces". The experiment tag `mlflow.experimentKind` does not change
  that in 3.17: with its workflow switch on (as in OSS builds) the UI derives the kind from
  the workflow type and reads the tag only where the switch is off.
- `viewStateShareKey=K` loads the view stored in the experiment tag `mlflow.sharedViewState.K`
  (what the UI's "Views" menu saves): search filter, order, chart sections and cards, which
  runs the charts draw. A URL that also carries a search facet (searchFilter, orderByKey...)
  ignores it; `compareRunsMode` and `workflowType` are not facets.
- Child runs are nested, collapsed, under their parent only when the parent is loaded too, and
  the UI fetches parents only when runs are ordered by start time: ordered by final_val_loss,
  the jobs of a sweep are listed flat and the charts draw every one of them. Without a view,
  charts draw the first 10 runs (`runsHiddenMode`); the view says SHOW_ALL.
- Without a view, each metric gets a line chart if its latest step is >= 1, else a bar chart,
  in alphabetical order; a run's colour is its `mlflow.runColor` tag, else a hash of its id.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any, Sequence
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from trainer import schema
from trainer.contract import REDACTED, Summary, redact
from trainer.tables import format_table, human

log = logging.getLogger("lmsweep")

UI_PORT = 5000  # `mlflow ui`'s default
VIEW_TAG = "mlflow.sharedViewState."  # + key: a view of the UI's "Views" menu
# What the charts show, in this order: the curves that compare the jobs, the one-off values
# (bar charts: one bar per run), then the rest of the histories.
LOSS_CURVES = (schema.VAL_LOSS, schema.TRAIN_LOSS)
ONE_OFFS = (
    schema.FINAL_VAL_LOSS,
    schema.BEST_VAL_LOSS,
    schema.UNIGRAM_ENTROPY,
    schema.OPTIMIZER_STATE_BYTES_PER_PARAM,
    schema.LOGGING_SECONDS,
    schema.EVAL_SECONDS,
)
HISTORIES = (
    schema.LR,
    schema.GRAD_NORM,
    schema.TOKENS_PER_S,
    schema.BATCH_TOKENS,
    schema.TOKENS,
    schema.FLOPS,
    schema.WALL_CLOCK,
    schema.SKIPPED_STEPS,
)
# The table's columns (one click away from the charts): who ran what from which commit, and
# the result. Ids as the UI's column state names them.
COLUMNS = (
    "attributes.`User`",
    "attributes.`Source`",
    "attributes.`Version`",
    f"metrics.`{schema.FINAL_VAL_LOSS}`",
)


def table(rows: Sequence[Summary | str]) -> str:
    """`rows` holds a Summary per job, or the error text of a job that failed."""
    header = ("run", "params", "tokens", "wall-clock", "final val loss", "outcome")
    body = []
    for r in rows:
        if isinstance(r, Summary):
            loss = "nan" if math.isnan(r.final_val_loss) else f"{r.final_val_loss:.4f}"
            body.append(
                (
                    r.name,
                    human(r.params_total),
                    human(r.tokens),
                    f"{r.wall_clock_s:.1f}s",
                    loss,
                    r.outcome,
                )
            )
        else:
            body.append((r, "-", "-", "-", "-", "failed"))
    out = [format_table(header, body)]
    baselines = {r.unigram_entropy for r in rows if isinstance(r, Summary)}
    if len(baselines) == 1:
        out.append(f"unigram-entropy baseline (no context): {baselines.pop():.4f} nats/token")
    return "\n".join(out)


# --- the saved view ---------------------------------------------------------------------------
def _section(uuid: str, name: str, columns: int = 3) -> dict:
    return {
        "uuid": uuid,
        "name": name,
        "display": True,
        "isReordered": False,
        "deleted": False,
        "isGenerated": False,
        "columns": columns,
    }


def _card(kind: str, metric: str, section: str) -> dict:
    """A chart card as the UI's own classes build them (RunsChartsLineCardConfig/BarCard).
    Not `isGenerated`: the UI turns a generated bar chart into a line chart once a run logs
    the metric at a step >= 1."""
    card = {
        "uuid": f"lmsweep-{metric}",
        "type": kind,
        "runsCountToCompare": 10,
        "metricSectionId": section,
        "deleted": False,
        "isGenerated": False,
        "displayName": metric,
        "metricKey": metric,
    }
    if kind == "LINE":
        card.update(
            lineSmoothness=0,
            xAxisScaleType="linear",
            scaleType="linear",
            range={},
            xAxisKey="step",
            selectedXAxisMetricKey="",
            yAxisKey="metric",
            yAxisExpressions=[],
            ignoreOutliers=False,
            useGlobalXaxisKey=True,
            useGlobalLineSmoothing=True,
        )
    return card


def view_state(search_filter: str) -> dict:
    """The runs that `search_filter` selects, flat (ordered by final val loss, best first), all
    drawn: the loss curves first, two to a row, then the one-off values and other histories.
    A metric not listed here still gets a chart (the UI adds it to "Model metrics")."""
    sections = [
        _section("lmsweep-loss", "Loss", columns=2),
        _section("lmsweep-once", "One value per run"),
        _section("lmsweep-histories", "Model metrics"),
        _section("lmsweep-system", "System metrics"),
    ]
    cards = (
        [_card("LINE", m, "lmsweep-loss") for m in LOSS_CURVES]
        + [_card("BAR", m, "lmsweep-once") for m in ONE_OFFS]
        + [_card("LINE", m, "lmsweep-histories") for m in HISTORIES]
    )
    return {
        "searchFilter": search_filter,
        "orderByKey": f"metrics.`{schema.FINAL_VAL_LOSS}`",
        "orderByAsc": True,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "modelVersionFilter": "All Runs",
        "datasetsFilter": [],
        "runsHiddenMode": "SHOW_ALL",
        "hideEmptyCharts": True,
        "isAccordionReordered": True,
        "compareRunSections": sections,
        "compareRunCharts": cards,
        # Widths apply to the columns in columnOrder only. The run names get room for two or
        # three overrides (the chart view's run list is a fixed 295 px).
        "selectedColumns": ["attributes.`Duration`", *COLUMNS],
        "columnOrder": ["attributes.`Run Name`", "runDateAndNestInfo", "duration", *COLUMNS],
        "columnWidths": {"attributes.`Run Name`": 300, "attributes.`Source`": 200},
        "globalLineChartConfig": {
            "xAxisKey": "step",
            "lineSmoothness": 0,
            "selectedXAxisMetricKey": "",
        },
    }


def save_view(client: Any, experiment_id: str, key: str, name: str, search_filter: str) -> str:
    """Store the view as the UI's "Views" menu does (an experiment tag holding
    {name, createdAt, updatedAt, state}); returns its key, or "" when the store refuses it
    (a server that lets this user log runs but not edit the experiment): the hint then opens
    the experiment's runs without it."""
    now = int(time.time() * 1000)
    envelope = {
        "name": name,
        "createdAt": now,
        "updatedAt": now,
        "state": json.dumps(view_state(search_filter), separators=(",", ":")),
    }
    try:
        client.set_experiment_tag(experiment_id, VIEW_TAG + key, json.dumps(envelope))
    except Exception as e:  # its text may hold the store's URI: the type only
        log.warning(f"no saved MLflow view {name!r}: {type(e).__name__}")
        return ""
    return key


def sweep_view(client: Any, experiment_id: str, sweep_id: str) -> str:
    return save_view(
        client,
        experiment_id,
        f"sweep-{sweep_id}",
        f"sweep {sweep_id}",
        f"tags.`{schema.TAG_SWEEP_ID}` = '{sweep_id}' and "
        f"tags.`{schema.TAG_ROLE}` = '{schema.ROLE_JOB}'",
    )


def run_view(client: Any, experiment_id: str, run_id: str, name: str) -> str:
    return save_view(
        client, experiment_id, f"run-{run_id}", f"run {name}", f"attributes.run_id = '{run_id}'"
    )


# --- the hint ---------------------------------------------------------------------------------
def ui_url(server: str, experiment_id: str, view: str = "") -> str:
    """The runs of the experiment in the model-training UI, as charts, through `view` if given.
    Credentials in `server` are dropped: the browser asks for them."""
    parts = urlsplit(server.rstrip("/"))
    parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1])
    query = {
        **({"viewStateShareKey": view} if view else {}),
        "compareRunsMode": "CHART",
        "workflowType": "machine_learning",
    }
    return (
        f"{urlunsplit(parts)}/#/experiments/{experiment_id}/runs?"
        f"{urlencode(query, quote_via=quote)}"
    )


def ui_hint(tracking_uri: str, experiment_id: str, view: str = "") -> str:
    """What to run and open to see the runs. A password in `tracking_uri` is never printed:
    a server URL goes without credentials (the browser asks), a store URI redacted."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {ui_url(tracking_uri, experiment_id, view)}"
    secret = f":{REDACTED}@" in redact(tracking_uri)
    return (
        f"mlflow ui --backend-store-uri {redact(tracking_uri)}"
        + ("   # with the password in place of ***" if secret else "")
        + "\n"
        f"        then open {ui_url(f'http://127.0.0.1:{UI_PORT}', experiment_id, view)}"
    )


def run_hint(uri: str, summary: Summary) -> str:
    """The hint after a single run: its own view (the run alone, charts as for a sweep)."""
    from trainer import tracking

    view = summary.run_id and run_view(
        tracking.client_for(uri), summary.experiment_id, summary.run_id, summary.name
    )
    return ui_hint(redact(uri), summary.experiment_id, view)
