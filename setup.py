"""The one thing pyproject.toml cannot say: the repository's top-level resources/ folder goes into the wheel as
studio/resources (found through importlib.resources; see studio/paths.py). Everything else is in pyproject.toml."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["studio*", "ui*"]) + ["studio.resources"],
      package_dir={"studio.resources": "resources"})
