"""The code MLflow logs for the churn model ("models from code"): it names the class, so nothing is pickled.

`model.pyfunc.log_bundle` hands MLflow this file's path; MLflow runs it when the model is loaded.
No module of the platform imports it.
"""

import mlflow

from model.pyfunc import ChurnModel

mlflow.models.set_model(ChurnModel())
