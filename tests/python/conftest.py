"""Fixtures shared by the Python client tests: one broker per test module.

When a test of the module failed, the tail of the broker's log is printed and its temporary
directory is kept; SLUICE_KEEP_DATA=1 keeps it always.
"""

import os
import shutil
import tempfile

import pytest

from sluice_broker import Broker, tail


@pytest.fixture(scope="module")
def broker(request):
    root = tempfile.mkdtemp(prefix="sluice-python-")
    b = Broker(root)
    b.start()
    failed_before = request.session.testsfailed
    yield b
    b.stop()
    if request.session.testsfailed > failed_before:
        print(f"\n--- sluice broker log {b.log_path} (last 200 lines) ---\n{tail(b.log_path)}\n---")
    elif not os.environ.get("SLUICE_KEEP_DATA"):
        shutil.rmtree(root, ignore_errors=True)
