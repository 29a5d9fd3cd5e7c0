"""Where a pytest session keeps the plugin's state (config.stash): one key, and one holder, each."""

from __future__ import annotations

import pytest

from pytest_k8sdns.config import Settings
from pytest_k8sdns.kube.images import Choice
from pytest_k8sdns.results import Results
from pytest_k8sdns.session import Run
from pytest_k8sdns.verdict.gate import Gate

#: the resolved settings, from pytest_configure on
SETTINGS_KEY = pytest.StashKey[Settings]()
#: the run (cluster, namespace, facts), from pytest_sessionstart on, when a cluster was asked for
RUN_KEY = pytest.StashKey[Run]()
#: every measurement and outcome of the session
RESULTS_KEY = pytest.StashKey[Results]()
#: the upgrade gate, with --k8sdns-baseline
GATE_KEY = pytest.StashKey[Gate]()
#: the images a kind cluster the plugin creates runs, and why each (kube/images.py)
IMAGES_KEY = pytest.StashKey[list[Choice]]()
