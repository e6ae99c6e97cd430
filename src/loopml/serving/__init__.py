"""Serving: the HTTP prediction service, deployments, API keys, the prediction log, batch scoring."""
