"""Train the benchmark's model and save it the way one server expects (run by ``serving_vs_peers.py``).

Run with the interpreter of the server's venv (standard library, scikit-learn and the library under
test only)::

    python serving_prepare.py --kind joblib|mlflow|loopml --out DIR --result RESULT.json [--model M --sklearn V]

The model is the benchmark's own, ``LogisticRegression(max_iter=5000)`` fitted on scikit-learn's bundled
breast-cancer data as a DataFrame (30 float columns): loaded from the joblib file ``M`` when this
venv's scikit-learn is version ``V`` (the one that wrote it), else trained here the same way
(deterministic). Then it is saved:

* ``joblib``: ``DIR/model.joblib`` (the hand-written FastAPI app and the BentoML service load it);
* ``mlflow``: an MLflow model folder ``DIR/model`` (``mlflow.sklearn.save_model`` with an input example);
* ``loopml``: registers it as ``cancer`` with an input example and points alias ``champion`` at it, in the
  project named by ``LOOPML_PROJECT_DIR``.

RESULT.json gets the library versions, the preparation time and the model's predictions on every row,
which the benchmark compares with its own copy of the model (so every server serves the same model).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

MODEL_NAME = "cancer"
ALIAS = "champion"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=["joblib", "mlflow", "loopml"], required=True)
    p.add_argument("--out", required=True, help="folder for the saved model")
    p.add_argument("--result", required=True, help="JSON file for versions and predictions")
    p.add_argument("--model", help="the benchmark's fitted model (joblib)")
    p.add_argument("--sklearn", help="the scikit-learn version that wrote --model")
    args = p.parse_args()
    t0 = time.perf_counter()

    import joblib
    import sklearn
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    info: dict[str, object] = {"sklearn": sklearn.__version__}
    if args.model and args.sklearn == sklearn.__version__:
        model = joblib.load(args.model)
        info["trained_here"] = False
    else:  # unpickling across scikit-learn versions is unsafe: train the same model here
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(max_iter=5000).fit(X, y)
        info["trained_here"] = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.kind == "joblib":
        path = out / "model.joblib"
        joblib.dump(model, path)
        info["model"] = str(path)
    elif args.kind == "mlflow":
        import mlflow
        import mlflow.sklearn

        path = out / "model"
        # pip_requirements given: the model is served with --env-manager local, so skip MLflow's requirement inference
        mlflow.sklearn.save_model(model, str(path), input_example=X.head(5),
                                  pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
        info.update(model=str(path), version=mlflow.__version__)
    else:
        import loopml
        import loopml.registry as reg

        mv = reg.register(model, MODEL_NAME, input_example=X.head(5))
        reg.set_alias(MODEL_NAME, ALIAS, mv.version)
        info.update(model=f"models:/{MODEL_NAME}@{ALIAS}", registered_version=mv.version, version=loopml.__version__)

    info["seconds"] = time.perf_counter() - t0
    info["predictions"] = [int(v) for v in model.predict(X)]
    Path(args.result).write_text(json.dumps(info))


if __name__ == "__main__":
    main()
