"""The MLflow UI as a user sees it: a tiny real sweep into the default SQLite store, `mlflow ui`
started as the sweep's closing hint says, and the URL it prints loaded in a fresh headless
Chromium (Debian's /usr/bin/chromium, driven by Playwright; nothing is downloaded).

The only change to what is printed is the port: the hint names `mlflow ui`'s default 5000, the
test serves on a free one. Without /usr/bin/chromium ($LMSWEEP_CHROMIUM) or playwright the
tests skip with the reason; under CI (LMSWEEP_REQUIRE_BROWSER=1, set by .ci/run) they fail.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_launch
from tests.test_e2e_sweep import TINY
from trainer import schema

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("LMSWEEP_CHROMIUM", "/usr/bin/chromium"))  # Debian's
# What headless Chromium needs on a machine without network or sandbox (the session notes).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JOBS = ("model=mixer", "model=transformer")
EXPERIMENT = "ui check"  # not the default: the hint must name this one's id
PRINTED_HOST = "127.0.0.1:5000"
CARD = '[data-testid="experiment-view-compare-runs-card"]'
LOAD_S = 90  # a loaded 2-core machine: the UI fetches runs, then histories


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (Debian: apt-get install chromium; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make setup installs the dev extras)"
    return None


@pytest.fixture(scope="module")
def chromium() -> Path:
    why = _browser_missing()
    if why is not None:
        if os.environ.get("LMSWEEP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LMSWEEP_REQUIRE_BROWSER=1 but {why}", pytrace=False)
        pytest.skip(why)
    return CHROMIUM


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, corpus, chromium):
    """Two tiny jobs in the launch directory's default store; what the sweep printed."""
    from trainer.data.corpus import corpus_dir

    cwd = tmp_path_factory.mktemp("ui")
    cache = cwd / "cache"
    corpus_dir(cache).parent.mkdir(parents=True)
    corpus_dir(cache).symlink_to(corpus)
    r = _launch(cwd, "-m", "model=" + ",".join(j.split("=")[1] for j in JOBS))
    return (cwd, *_hint(r.stdout), MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}"))


def _launch(cwd: Path, *args: str):
    short = {"budget.steps=20", "train.eval_every=10", f"tracking.experiment='{EXPERIMENT}'"}
    tiny = [o for o in TINY if o.split("=")[0] not in {s.split("=")[0] for s in short}]
    r = run_launch(
        *args,
        *tiny,
        *short,
        cwd=cwd,
        env={"LMSWEEP_CACHE": str(cwd / "cache"), "MLFLOW_TRACKING_URI": ""},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _hint(stdout: str) -> tuple[str, str]:
    """The command and the URL of the closing `MLflow: mlflow ui ...\n then open URL`."""
    lines = stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("MLflow: "))
    return lines[at].removeprefix("MLflow: "), lines[at + 1].strip().removeprefix("then open ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """The server, its uvicorn and workers: the process group its pid leads."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(sweep):
    """The printed `mlflow ui ...` command, on a free port; its base URL."""
    import requests

    cwd, command, _, _ = sweep
    argv = shlex.split(command)
    assert argv[:2] == ["mlflow", "ui"], command
    argv[0] = str(Path(sys.executable).with_name("mlflow"))
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # starts in ~4 s
    for _ in range(3):  # another process may take the free port before the server
        port = _free_port()
        log = (cwd / f"mlflow-ui-{port}.log").open("w")
        proc = subprocess.Popen(
            [*argv, "--port", str(port), "--workers", "1"],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        if proc.poll() is None and time.monotonic() < deadline:
            break
        _stop(proc)
    else:
        pytest.fail("mlflow ui did not start:\n" + Path(log.name).read_text()[-3000:])
    try:
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    """A fresh Chromium profile: nothing remembered from an earlier visit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(chromium),
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1600, "height": 1000},
        )
        context.set_default_timeout(LOAD_S * 1000)
        yield context
        context.close()


def _keep(page, path: Path) -> Path:
    page.screenshot(path=str(path))
    if os.environ.get("LMSWEEP_ARTIFACTS"):
        out = Path(os.environ["LMSWEEP_ARTIFACTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / path.name)
    return path


@pytest.fixture(scope="module")
def charts(sweep, server, browser, tmp_path_factory):
    """The printed URL, once loaded and drawn; its screenshot is kept."""
    from playwright.sync_api import expect

    _, _, url, _ = sweep
    assert url.startswith(f"http://{PRINTED_HOST}/#/experiments/"), url
    page = browser.new_page()
    page.goto(url.replace(PRINTED_HOST, server, 1))
    val_loss = page.locator(CARD).filter(has=page.locator('h4[title="val_loss"]'))
    expect(val_loss.locator("path.js-line")).to_have_count(
        2 * len(JOBS),  # line + raw each
        timeout=LOAD_S * 1000,
    )
    time.sleep(1)  # let the last traces settle before the picture
    _keep(page, tmp_path_factory.mktemp("screenshots") / "mlflow-ui-sweep.png")
    yield page
    page.close()


def _jobs(client: MlflowClient):
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], f"tags.`{schema.TAG_SWEEP_ID}` != ''")
    jobs = [r for r in runs if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_JOB]
    parent = next(r for r in runs if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_SWEEP)
    return exp, jobs, parent


def _rgb(hex_color: str) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_printed_url_opens_the_model_training_runs_view(charts, sweep):
    exp, _, _ = _jobs(sweep[3])
    path = charts.url.split("#", 1)[1]
    assert path.startswith(f"/experiments/{exp.experiment_id}/runs?"), charts.url
    assert "workflowType=machine_learning" in path
    assert "Sessions" not in charts.inner_text("body")  # the GenAI side bar
    for section in ("Loss", "One value per run", "Model metrics"):
        assert charts.get_by_text(section, exact=True).count() == 1


@pytest.mark.parametrize("metric", [schema.VAL_LOSS, schema.TRAIN_LOSS])
def test_every_job_is_a_curve_in_its_own_colour_named_by_its_overrides(charts, sweep, metric):
    _, jobs, _ = _jobs(sweep[3])
    card = charts.locator(CARD).filter(has=charts.locator(f'h4[title="{metric}"]'))
    lines = [
        p
        for p in card.locator("path.js-line").all()
        if "stroke-opacity: 1;" in (p.get_attribute("style") or "")
    ]
    drawn = {p.get_attribute("style").split("stroke: ", 1)[1].split(";")[0]: p for p in lines}
    colours = {_rgb(r.data.tags["mlflow.runColor"]) for r in jobs}
    assert set(drawn) == colours and len(colours) == len(JOBS)
    for path in drawn.values():
        assert path.get_attribute("d").count("L") >= 1  # at least two points joined
    legend = card.inner_text()
    for name in JOBS:
        assert f"{name} ({metric})" in legend
        assert charts.get_by_text(name, exact=True).count() >= 1  # the run list


def test_one_off_values_are_bar_charts_not_lines(charts, sweep):
    _, jobs, _ = _jobs(sweep[3])
    card = charts.locator(CARD).filter(has=charts.locator(f'h4[title="{schema.FINAL_VAL_LOSS}"]'))
    assert card.locator("path.js-line").count() == 0
    bars = [
        float(t.get_attribute("data-unformatted"))
        for t in card.locator("g.trace.bars g.point text").all()
    ]
    expected = [r.data.metrics[schema.FINAL_VAL_LOSS] for r in jobs]
    assert sorted(bars) == pytest.approx(sorted(expected), abs=0.006)  # shown to 2 places
    # Logged at step 0, so that the UI draws them as bars in any view, not only in lmsweep's.
    for r in jobs:
        for key in (
            schema.FINAL_VAL_LOSS,
            schema.BEST_VAL_LOSS,
            schema.UNIGRAM_ENTROPY,
            schema.OPTIMIZER_STATE_BYTES_PER_PARAM,
            schema.LOGGING_SECONDS,
            schema.EVAL_SECONDS,
        ):
            assert [m.step for m in sweep[3].get_metric_history(r.info.run_id, key)] == [0]


def test_table_shows_who_ran_what_from_which_commit(sweep, server, browser, tmp_path_factory):
    """The same view as a table (one click away): MLflow's User, Source and Version columns."""
    from playwright.sync_api import expect

    _, _, url, client = sweep
    _, jobs, _ = _jobs(client)
    page = browser.new_page()
    page.goto(
        url.replace(PRINTED_HOST, server, 1).replace(
            "compareRunsMode=CHART", "compareRunsMode=TABLE"
        )
    )
    cells = page.locator('.ag-center-cols-container [col-id="attributes.`User`"]')
    expect(cells).to_have_count(len(JOBS), timeout=LOAD_S * 1000)
    assert set(cells.all_inner_texts()) == {getpass.getuser()}
    sources = page.locator('.ag-center-cols-container [col-id="attributes.`Source`"]')
    assert all(t.strip().startswith("launch.py model=") for t in sources.all_inner_texts())
    commit = jobs[0].data.tags.get("mlflow.source.git.commit", "")
    versions = page.locator('.ag-center-cols-container [col-id="attributes.`Version`"]')
    assert commit and all(commit.startswith(t.strip()) for t in versions.all_inner_texts())
    _keep(page, tmp_path_factory.mktemp("screenshots") / "mlflow-ui-table.png")
    page.close()


def test_parent_run_page_says_what_the_sweep_was(sweep, server, browser):
    from playwright.sync_api import expect

    _, _, _, client = sweep
    exp, _, parent = _jobs(client)
    page = browser.new_page()
    page.goto(f"http://{server}/#/experiments/{exp.experiment_id}/runs/{parent.info.run_id}")
    description = page.get_by_text("launch.py -m model=mixer,transformer").first
    expect(description).to_be_visible(timeout=LOAD_S * 1000)
    expect(page.get_by_text("final val loss").first).to_be_attached()
    page.close()


def test_single_run_hint_opens_that_run(sweep, server, browser):
    """`python launch.py` (no -m) prints the same kind of hint, for its own run alone."""
    from playwright.sync_api import expect

    cwd, _, _, client = sweep
    command, url = _hint(_launch(cwd, "model=mixer", "seed=1").stdout)
    assert command == sweep[1]
    exp = client.get_experiment_by_name(EXPERIMENT)
    run = client.search_runs([exp.experiment_id], "params.seed = '1'")[0]
    assert f"/#/experiments/{exp.experiment_id}/runs?" in url
    page = browser.new_page()
    page.goto(url.replace(PRINTED_HOST, server, 1))
    card = page.locator(CARD).filter(has=page.locator('h4[title="val_loss"]'))
    expect(card.locator("path.js-line")).to_have_count(2, timeout=LOAD_S * 1000)
    assert f"{run.info.run_name} (val_loss)" in card.inner_text()
    page.close()
