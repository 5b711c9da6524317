"""A small project of Python components and pipelines, used by tests/jobs/test_python_components.py.

Its folder (``tests/jobs/python_project``) is the components' ``code``: the folder
holding the top-level package ``shop``, from which ``python -m keel.function``
imports them.
"""
