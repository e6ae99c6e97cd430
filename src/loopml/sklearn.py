"""Autologging for scikit-learn.

``loopml.sklearn.autolog()`` wraps ``fit`` of every scikit-learn estimator
so that each top-level fit records, in the active run (or a new run when none
is active): the estimator's params, training metrics (accuracy, F1,
precision, recall and ROC AUC for classifiers; R², MSE, RMSE and MAE for
regressors; the best cross-validation score and params of a search), and the
fitted model as a run artifact — optionally registered as a model version.

Fits called from inside another fit (a Pipeline's steps, a search's
candidates) are not logged separately. Logging problems never break
training: they are reported as warnings and the fit's result is returned.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

from loopml.config import Settings

logger = logging.getLogger(__name__)

__all__ = ["autolog", "training_metrics"]

_state = threading.local()
_patched: dict[type, Any] = {}
_options: dict[str, Any] = {}


def _json_param(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    return repr(value)[:500]


def training_metrics(estimator: Any, X: Any, y: Any) -> dict[str, float]:
    """Training-set metrics of a fitted estimator, by its kind (classifier or regressor)."""
    import numpy as np
    from sklearn import metrics as skm
    from sklearn.base import is_classifier, is_regressor

    out: dict[str, float] = {}
    if y is None or not hasattr(estimator, "predict"):
        return out
    pred = estimator.predict(X)
    if is_classifier(estimator):
        out["training_accuracy"] = skm.accuracy_score(y, pred)
        out["training_f1"] = skm.f1_score(y, pred, average="weighted", zero_division=0)
        out["training_precision"] = skm.precision_score(y, pred, average="weighted", zero_division=0)
        out["training_recall"] = skm.recall_score(y, pred, average="weighted", zero_division=0)
        if hasattr(estimator, "predict_proba"):
            try:
                proba = estimator.predict_proba(X)
                if proba.shape[1] == 2:
                    out["training_roc_auc"] = skm.roc_auc_score(y, proba[:, 1])
                else:
                    out["training_roc_auc"] = skm.roc_auc_score(y, proba, multi_class="ovr")
            except (ValueError, AttributeError):
                pass
    elif is_regressor(estimator):
        mse = skm.mean_squared_error(y, pred)
        out["training_r2"] = skm.r2_score(y, pred)
        out["training_mse"] = mse
        out["training_rmse"] = float(np.sqrt(mse))
        out["training_mae"] = skm.mean_absolute_error(y, pred)
    return {k: float(v) for k, v in out.items()}


def _log_fit(run: Any, estimator: Any, X: Any, y: Any) -> None:
    import pandas as pd

    from loopml.errors import ParamConflictError

    params = {k: _json_param(v) for k, v in estimator.get_params(deep=False).items()}
    try:
        run.log_params(params)
    except ParamConflictError:
        # a second estimator in the same run: keep the first one's params, record this one's under its class
        run.log_params({f"{type(estimator).__name__}.{k}": v for k, v in params.items()})
    run.set_tags({"estimator_class": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
                  "loopml.autolog": "sklearn"})
    run.log_metrics(training_metrics(estimator, X, y))
    if hasattr(estimator, "best_score_"):
        run.log_metrics({"best_cv_score": float(estimator.best_score_)})
    if hasattr(estimator, "best_params_"):
        run.log_params({f"best_{k}": _json_param(v) for k, v in estimator.best_params_.items()})
    if _options.get("log_models", True):
        import cloudpickle

        run.service.log_bytes(run.id, cloudpickle.dumps(estimator), "model/model.pkl")
    register_as = _options.get("register_as")
    if register_as:
        from loopml import registry

        example = X.head(5) if isinstance(X, pd.DataFrame) else X[:5]
        registry.get_registry(run.service.backend.settings).register(
            estimator, register_as, input_example=example, run_id=run.id
        )


def _wrap(cls: type, original: Any) -> Any:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_state, "depth", 0) > 0:
            return original(self, *args, **kwargs)
        from loopml import tracking

        _state.depth = 1
        try:
            active = tracking.active_run()
            own = active is None
            run = active if active is not None else tracking.start_run(_options.get("experiment"), name=type(self).__name__,
                                                                        settings=_options.get("settings"))
            try:
                result = original(self, *args, **kwargs)
            except BaseException as e:
                if own:
                    run.end("killed" if isinstance(e, KeyboardInterrupt) else "failed")
                raise
            X = args[0] if args else kwargs.get("X")
            y = args[1] if len(args) > 1 else kwargs.get("y")
            try:
                _log_fit(run, self, X, y)
            except Exception as e:  # never break the user's training
                logger.warning("autolog could not record %s.fit: %s", type(self).__name__, e)
            if own:
                run.end("finished")
            return result
        finally:
            _state.depth = 0

    fit._loopml_autolog = True  # type: ignore[attr-defined]
    return fit


def autolog(*, log_models: bool = True, register_as: str | None = None, experiment: str | None = None,
            disable: bool = False, settings: Settings | None = None) -> None:
    """Turn scikit-learn autologging on (or off with ``disable=True``).

    Args:
        log_models: store each fitted model as the run artifact ``model/model.pkl``.
        register_as: also register each fitted model as a version of this registered model.
        experiment: experiment for runs that autolog starts itself (default ``"default"``).
        disable: undo the patching.
        settings: project settings for runs autolog starts (default: the project's).
    """
    if disable:
        for cls, original in _patched.items():
            cls.fit = original  # type: ignore[attr-defined]
        _patched.clear()
        _options.clear()
        return
    _options.update(log_models=log_models, register_as=register_as, experiment=experiment, settings=settings)
    from sklearn.utils import all_estimators

    for _, est in all_estimators():
        # patch where ``fit`` is defined, including abstract bases such as BaseSearchCV
        for cls in est.__mro__:
            original = cls.__dict__.get("fit")
            if original is None or not cls.__module__.startswith("sklearn.") or cls in _patched:
                continue
            if getattr(original, "_loopml_autolog", False):
                continue
            _patched[cls] = original
            cls.fit = _wrap(cls, original)
