"""A minimal BentoML 1.4 service for ``serving_vs_peers.py``: the joblib-saved model, one worker.

Run (from bench/, in a venv with ``bentoml==1.4.39`` and scikit-learn)::

    BENCH_MODEL_PATH=model.joblib bentoml serve serving_bentoml_service:Svc --port 3000

``POST /predict`` and ``POST /predict_batched`` (adaptive batching) with ``{"inputs": [[30 floats], ...]}``
answer a JSON list of classes.
"""

import os
import warnings

import bentoml
import joblib
import numpy as np

# the model was fitted on a DataFrame; rows arrive as plain arrays, so don't warn about feature names on every call
warnings.filterwarnings("ignore", message="X does not have valid feature names")


@bentoml.service(workers=1)
class Svc:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL_PATH"])

    @bentoml.api
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.model.predict(inputs)

    @bentoml.api(batchable=True)
    def predict_batched(self, inputs: np.ndarray) -> np.ndarray:
        return self.model.predict(inputs)
