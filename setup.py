"""Build script: metadata, dependencies and the `lmsweep` command are in pyproject.toml; this
says what its static keys cannot. The checkout's top-level conf/ ships as the package
`lmsweep_conf` (its YAML files as package data), where the installed command finds it
(launch.py); launch.py itself ships as the module `launch`, whose cli() the command runs."""

from setuptools import find_namespace_packages, setup

CODE = ["trainer", "sweeper", "analysis", "hydra_plugins"]  # hydra_plugins: a namespace

setup(
    packages=[
        *find_namespace_packages(include=[f"{p}*" for p in CODE], exclude=["*.__pycache__"]),
        "lmsweep_conf",
    ],
    package_dir={"lmsweep_conf": "conf"},
    package_data={"lmsweep_conf": ["*.yaml", "**/*.yaml"]},
    py_modules=["launch"],
)
