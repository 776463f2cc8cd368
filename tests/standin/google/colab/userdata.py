"""Colab's secrets, read from the JSON file named by ``STANDIN_COLAB_SECRETS``."""

import json
import os


class SecretNotFoundError(Exception):
    """What Colab raises for a name that is not in the notebook's secrets."""


class NotebookAccessError(Exception):
    """What Colab raises when the secret exists but 'Notebook access' is off."""


def get(key: str) -> str:
    path = os.environ.get("STANDIN_COLAB_SECRETS", "")
    secrets = {}
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            secrets = json.load(f)
    if key not in secrets:
        raise SecretNotFoundError(f"Secret {key} does not exist.")
    return secrets[key]
