"""The hand-written baseline of ``serving_vs_peers.py``: what a team writes to serve a scikit-learn model.

Run (from bench/)::

    BENCH_MODEL_PATH=model.joblib uvicorn serving_fastapi_app:app --host 127.0.0.1 --port 8000

``POST /predict`` with ``{"inputs": [[30 floats], ...]}`` answers ``{"predictions": [0 or 1, ...]}``.
"""

import os
import warnings

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

# the model was fitted on a DataFrame; rows arrive as plain lists, so don't warn about feature names on every call
warnings.filterwarnings("ignore", message="X does not have valid feature names")
model = joblib.load(os.environ["BENCH_MODEL_PATH"])
app = FastAPI()


class Rows(BaseModel):
    inputs: list[list[float]]


@app.post("/predict")
async def predict(rows: Rows) -> dict[str, list[int]]:
    return {"predictions": model.predict(np.asarray(rows.inputs)).tolist()}
