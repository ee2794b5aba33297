"""Headless stages: formats, generation, filters, rendering, training, jobs.

Each stage is a plain function or class over typed configs; stages read and write
through ``datastore``. Nothing here imports streamlit.
"""

# Commit hooks by area: each module has ``install()`` that appends its functions to
# ``datastore.versions.IN_COMMIT_HOOKS`` / ``AFTER_COMMIT_HOOKS`` (idempotently). Installed
# when any pipelines module is first imported, so every commit made through the service
# layer runs them. Hook modules must import cheaply (heavy imports inside the hook).
HOOK_MODULES = ("pipelines.review.hooks", "pipelines.quality.hooks")


def _install_hooks() -> None:
    import importlib
    for name in HOOK_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name not in (name, name.rsplit(".", 1)[0]):
                raise
            continue
        mod.install()


_install_hooks()
