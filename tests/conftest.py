"""Project-wide pytest settings. Subpackages keep their own fixtures in their own conftest.py."""

import os

# Candidate code and simulators must never see real keys during tests.
for _name in list(os.environ):
    if _name.endswith("_API_KEY") or _name.startswith("OPENAI_"):
        os.environ.pop(_name)
