"""The one module that uses an MLflow internal: the map of installed packages a model log builds.

Why it exists. `mlflow.pyfunc.log_model` checks the model's stated pip requirements against the
installed packages (`mlflow.utils.requirements_utils.warn_dependency_requirement_mismatches`). The
first check in a process builds MLflow's map of modules to packages with
`importlib_metadata.packages_distributions()`, which reads the file list of every installed
distribution; that is most of a training run's `model.pyfunc.log_bundle`. The map is kept for the
process, so building it earlier, on a spare thread while the trees train (`training.pipeline`),
takes it off the run's path. No public API builds it: `index_installed_packages` calls
`requirements_utils._init_modules_to_packages_map`, the function the check itself calls, and
`tests/unit/model/test_mlflow_adapter.py` pins it and checks that a requirement check afterwards
reads no distribution again.
"""

from __future__ import annotations


def index_installed_packages() -> bool:
    """Build MLflow's map of installed packages now (once per process).

    Returns:
        Whether it was built; False when this MLflow no longer has the function (the model log then
        builds the map itself, as without this call).
    """
    from mlflow.utils import requirements_utils

    build = getattr(requirements_utils, "_init_modules_to_packages_map", None)
    if build is None:
        return False
    build()
    return True
