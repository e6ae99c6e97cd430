"""The loopml demo: the whole loop on scikit-learn's bundled wine dataset, in seconds.

``loopml demo`` (or :func:`run`) sets up a project folder, trains three
candidate classifiers in the ``wine`` experiment (params, per-fold
cross-validation scores as metric series, final test metrics, tags, the
dataset reference), picks the best with a search, registers it as model
``wine``, points the ``champion`` alias at it, loads ``models:/wine@champion``
back, predicts, and serves it over HTTP on 127.0.0.1 for one request. Running
it again on the same folder adds three runs and a new version and moves
``champion`` (the alias history keeps the old target,
so ``loopml models rollback wine`` undoes it).

Unlike the rest of the library this module prints: it is a guided tour,
run from the command line. It needs scikit-learn (``pip install loopml[sklearn]``).
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

__all__ = ["DemoResult", "run"]

EXPERIMENT = "wine"
MODEL_NAME = "wine"
ALIAS = "champion"
FOLDS = 5
SEED = 42


@dataclass
class DemoResult:
    """What a demo run produced."""

    project_dir: Path
    run_ids: list[str]
    best_run_id: str
    version: int
    previous_champion: int | None
    predictions: list[Any] = field(default_factory=list)
    seconds: float = 0.0
    served: list[Any] = field(default_factory=list)
    serve_url: str = ""
    request_id: str = ""
    serve_ms: float = 0.0


def _candidates() -> list[tuple[str, dict[str, Any], Any]]:
    """(run name, params, unfitted estimator) for each candidate."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out: list[tuple[str, dict[str, Any], Any]] = []
    for c in (0.001, 1.0):
        params = {"model": "logistic_regression", "C": c, "max_iter": 1000, "scaler": "standard"}
        est = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
        out.append((f"logreg-C{c:g}", params, est))
    params = {"model": "random_forest", "n_estimators": 25, "max_depth": 3, "random_state": SEED}
    out.append(("random-forest", params, RandomForestClassifier(n_estimators=25, max_depth=3, random_state=SEED)))
    return out


def _display_path(p: Path) -> str:
    try:
        rel = p.relative_to(Path.cwd())
        return str(rel) if str(rel) != "." else "."
    except ValueError:
        return str(p)


def run(project_dir: str | os.PathLike[str] = "demo-project", *, console: Console | None = None) -> DemoResult:
    """Run the demo in ``project_dir`` (created and initialised if needed) and print a tour.

    Args:
        project_dir: the demo's project folder; re-running on the same folder adds runs and a model version.
        console: where to print (default: standard output).

    Returns:
        The run ids, the registered version and the predictions.

    Raises:
        LoopmlError: a store or registry operation failed.
        ImportError: scikit-learn is not installed.
    """
    started = time.perf_counter()
    from loopml.cli import _render

    out = console or _render.console()
    try:
        import sklearn  # noqa: F401
    except ImportError as e:
        raise ImportError("the demo needs scikit-learn: pip install 'loopml[sklearn]'") from e

    from loopml import data, registry, tracking
    from loopml.config import load_settings
    from loopml.project import init_project

    steps = 10
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
        TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
        console=out, transient=False,
    )
    run_ids: list[str] = []
    with progress:
        task = progress.add_task("Setting up the project", total=steps)

        init = init_project(project_dir, keep_existing=True)
        settings = load_settings(init.project_dir)
        progress.advance(task)

        progress.update(task, description="Loading the wine dataset")
        from sklearn.datasets import load_wine
        from sklearn.metrics import accuracy_score, f1_score
        from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split

        bunch = load_wine(as_frame=True)
        df = bunch.frame
        X, y = bunch.data, bunch.target
        class_names = list(bunch.target_names)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=SEED, stratify=y)
        # a versioned, profiled snapshot; re-registering the same rows returns the same version
        dataset = data.register("wine", df, source="sklearn.datasets.load_wine", settings=settings)
        data.set_alias("wine", "training", dataset.version, settings=settings)
        progress.advance(task)

        folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
        fitted: dict[str, Any] = {}
        for name, params, est in _candidates():
            progress.update(task, description=f"Training {name}")
            tags = {"demo": "true", "dataset": "sklearn.datasets.load_wine", "family": params["model"]}
            with tracking.start_run(EXPERIMENT, name=name, params=params, tags=tags, settings=settings) as active:
                active.log_dataset(dataset)
                cv = cross_validate(est, X_train, y_train, cv=folds, scoring=("accuracy", "f1_macro"))
                active.log_metric_batch("cv_accuracy", [float(v) for v in cv["test_accuracy"]],
                                        steps=list(range(FOLDS)))
                active.log_metric_batch("cv_f1", [float(v) for v in cv["test_f1_macro"]], steps=list(range(FOLDS)))
                est.fit(X_train, y_train)
                pred = est.predict(X_test)
                active.log_metrics({
                    "cv_accuracy_mean": float(cv["test_accuracy"].mean()),
                    "cv_accuracy_std": float(cv["test_accuracy"].std()),
                    "accuracy": float(accuracy_score(y_test, pred)),
                    "f1": float(f1_score(y_test, pred, average="macro")),
                }, step=0)
                active.log_dict({"classes": class_names, "features": list(X.columns)}, "model_info.json")
                run_ids.append(active.id)
                fitted[active.id] = est
            progress.advance(task)

        progress.update(task, description="Picking the best run")
        ids = ", ".join(f"'{i}'" for i in run_ids)
        page = tracking.search_runs(EXPERIMENT, filter=f"id in ({ids}) and status = 'finished'",
                                    order_by=["metrics.accuracy DESC", "metrics.f1 DESC", "metrics.cv_accuracy_mean DESC"],
                                    max_results=len(run_ids), settings=settings)
        best = page.runs[0]
        progress.advance(task)

        progress.update(task, description=f"Registering model '{MODEL_NAME}'")
        mv = registry.register(fitted[best.id], MODEL_NAME, input_example=X.head(5), run_id=best.id,
                               description=f"wine classifier from run {best.name}",
                               tags={"source": "loopml demo"}, settings=settings)
        progress.advance(task)

        progress.update(task, description=f"Pointing @{ALIAS} at version {mv.version}")
        previous = registry.set_alias(MODEL_NAME, ALIAS, mv.version, settings=settings)
        progress.advance(task)

        progress.update(task, description=f"Loading models:/{MODEL_NAME}@{ALIAS} and predicting")
        loaded = registry.load(f"models:/{MODEL_NAME}@{ALIAS}", settings=settings)
        sample = X_test.head(5)
        predictions = [int(p) for p in loaded.predict(sample)]
        progress.advance(task)

        progress.update(task, description=f"Serving models:/{MODEL_NAME}@{ALIAS} over HTTP and calling it")
        url, request_id, served, serve_ms = _serve_and_call(settings, sample)
        progress.update(task, description="Done", completed=steps)

    result = DemoResult(init.project_dir, run_ids, best.id, mv.version, previous, predictions,
                        time.perf_counter() - started, served, url, request_id, serve_ms)
    runs = {r.id: r for r in page.runs}
    _print_summary(out, result, [runs[i] for i in run_ids if i in runs], best, mv, sample,
                   list(y_test.head(5)), class_names)
    return result


def _serve_and_call(settings: Any, sample: Any) -> tuple[str, str, list[Any], float]:
    """Start the prediction server on a free local port, POST the sample, stop it (the log is written)."""
    import json
    import urllib.request

    from loopml.serving.app import ServeOptions
    from loopml.serving.server import BackgroundServer

    with BackgroundServer(settings, model_uri=f"models:/{MODEL_NAME}@{ALIAS}",
                          options=ServeOptions(open_mode=True)) as server:  # this process only, on 127.0.0.1
        body = json.dumps({"dataframe_split": {"columns": list(sample.columns),
                                               "data": sample.to_numpy().tolist()}}).encode()
        request = urllib.request.Request(server.url + "/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
            request_id = response.headers["X-Request-ID"]
        ms = (time.perf_counter() - t0) * 1000
        return server.url, request_id, list(answer["predictions"]), ms


def _print_summary(out: Console, res: DemoResult, runs: list[Any], best: Any, mv: Any, sample: Any,
                   actual: list[Any], class_names: list[str]) -> None:
    from loopml.cli import _render as r

    out.print()
    table = r.table(f"Candidates in experiment '{EXPERIMENT}'")
    table.add_column("run", style="cyan")
    table.add_column("name")
    table.add_column("cv accuracy", justify="right")
    table.add_column("test accuracy", justify="right")
    table.add_column("test f1", justify="right")
    table.add_column("")
    for run in runs:
        is_best = run.id == best.id
        cv = f"{run.metric('cv_accuracy_mean'):.3f} ±{run.metric('cv_accuracy_std'):.3f}"
        table.add_row(run.id[:8], Text(run.name or "-"), cv, f"{run.metric('accuracy'):.3f}", f"{run.metric('f1'):.3f}",
                      Text("★ best", style="bold green") if is_best else Text(""), style="bold" if is_best else None)
    out.print(table)
    out.print()

    move = Text()
    move.append(f"{MODEL_NAME}@{ALIAS}", style="bold yellow")
    move.append(": ")
    move.append("(new)" if res.previous_champion is None else f"v{res.previous_champion}")
    move.append(f" -> v{mv.version}", style="bold green")
    sig = mv.signature
    reg = r.kv_table([
        ("model", Text(f"{mv.uri}  ({mv.flavor})", style="bold")),
        ("from run", f"{best.id}  ({best.name})"),
        ("sha256", mv.sha256[:16]),
        ("signature", f"{len(sig.inputs)} input columns -> {sig.output_dtype}" if sig is not None else None),
        ("alias", move),
    ])
    out.print(Panel(reg, title="Registered", title_align="left", expand=False))

    preds = r.table(f"models:/{MODEL_NAME}@{ALIAS} on 5 held-out rows")
    preds.add_column("row", justify="right")
    preds.add_column("alcohol", justify="right")
    preds.add_column("proline", justify="right")
    preds.add_column("predicted")
    preds.add_column("actual")
    for (idx, row), p, a in zip(sample.iterrows(), res.predictions, actual, strict=True):
        ok = "green" if p == a else "red"
        preds.add_row(str(idx), f"{row['alcohol']:.2f}", f"{row['proline']:.0f}",
                      Text(class_names[p], style=ok), class_names[int(a)])
    out.print(preds)
    same = "the same answers" if res.served == res.predictions else "DIFFERENT answers"
    out.print(Text.assemble(("Served over HTTP: ", "bold"), f"POST {res.serve_url}/invocations -> {res.served} ",
                            (f"({same}, {res.serve_ms:.1f} ms, request id {res.request_id[:12]}...)", "dim")))
    out.print()

    p = shlex.quote(_display_path(res.project_dir))
    ids = " ".join(i[:8] for i in res.run_ids)
    cmds = Text()
    for cmd, why in (
        (f"loopml -p {p} runs list", "every run, newest first"),
        (f"loopml -p {p} runs list -o 'metrics.accuracy DESC' -f 'metrics.f1 > 0.9'", "search and sort"),
        (f"loopml -p {p} runs show {res.best_run_id[:8]}", "one run in full: system, metric series, artifacts"),
        (f"loopml -p {p} runs compare {ids}", "the candidates side by side"),
        (f"loopml -p {p} models show {MODEL_NAME}", "versions, aliases, signature, alias history"),
        (f"loopml -p {p} models rollback {MODEL_NAME} --alias {ALIAS}", "undo the last alias move"),
        (f"loopml -p {p} data show wine", "the dataset version the models were trained on"),
        (f"loopml -p {p} data profile wine", "an HTML report with a chart per column"),
        (f"loopml -p {p} serve models:/{MODEL_NAME}@{ALIAS} --open", "serve it: /invocations, /v2, /metrics"),
        (f"loopml demo --project {p}", "run again: new runs, a new version, champion moves"),
    ):
        cmds.append(f"  {cmd}\n", style="bold")
        cmds.append(f"      {why}\n", style="dim")
    cmds.rstrip()
    done = Text(f"Demo finished in {res.seconds:.1f}s; project in {res.project_dir}", style="bold green")
    out.print(Panel(Group(done, Text(""), Text("Try next:", style="bold"), cmds), title="Next steps",
                    title_align="left", expand=False))

