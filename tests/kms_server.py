"""moto's server on 127.0.0.1 serving AWS KMS's API for the envelope-encryption tests: no AWS account,
no network. Started as a subprocess (``MotoKms``), so stopping it is a real KMS outage.

moto (5.2) keeps one rule of KMS's out: a disabled key still encrypts and decrypts there, where KMS
answers ``DisabledException`` (``KMSInvalidStateException`` for a key pending deletion). The server
this module starts applies that rule to moto's own key states (``_key_state_rule``) before it runs
moto's server; everything else is moto's. Run alone: ``python tests/kms_server.py PORT``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def _key_state_rule() -> None:
    """A disabled key (or one pending deletion) refuses Encrypt, GenerateDataKey, Decrypt and
    ReEncrypt, as KMS does: moto's backend methods are wrapped to check the key's state."""
    from moto.core.exceptions import JsonRESTError
    from moto.kms.models import KmsBackend

    def check(backend: Any, key_id: str) -> None:
        key = backend.keys[backend.any_id_to_key_id(key_id)]
        if key.key_state == "Disabled":
            raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
        if key.key_state != "Enabled":
            raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is {key.key_state}.")

    encrypt, decrypt = KmsBackend.encrypt, KmsBackend.decrypt

    def checked_encrypt(self: Any, key_id: str, plaintext: bytes, encryption_context: dict[str, str]) -> Any:
        check(self, key_id)
        return encrypt(self, key_id=key_id, plaintext=plaintext, encryption_context=encryption_context)

    def checked_decrypt(self: Any, ciphertext_blob: bytes, encryption_context: dict[str, str],
                        key_id: str | None = None) -> Any:
        plaintext, arn = decrypt(self, ciphertext_blob=ciphertext_blob, encryption_context=encryption_context,
                                 key_id=key_id)
        check(self, arn)  # the key the blob was wrapped by, before its plaintext leaves
        return plaintext, arn

    KmsBackend.encrypt = checked_encrypt  # generate_data_key and re_encrypt call these two
    KmsBackend.decrypt = checked_decrypt


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class MotoKms:
    """One moto server: ``start()``, ``env`` (what boto3 reads: the endpoint, fake credentials, a
    region), ``client()``, ``create_key()``, ``stop()``. ``no_auth_actions``: moto's IAM checks
    start after that many requests (``INITIAL_NO_AUTH_ACTION_COUNT``), so IAM users and policies
    made first are then enforced."""

    def __init__(self, no_auth_actions: int | None = None) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.no_auth_actions = no_auth_actions
        self.env = {
            "AWS_ENDPOINT_URL": f"http://{HOST}:{self.port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_MAX_ATTEMPTS": "2",  # an unreachable KMS fails in about a second
        }

    def start(self) -> MotoKms:
        env = dict(os.environ)
        if self.no_auth_actions is not None:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(self.no_auth_actions)
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(self.port)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def client(self, service: str = "kms", **credentials: str) -> Any:
        """A boto3 client of this server (the test's own: the store makes its own from ``env``)."""
        import boto3

        return boto3.client(service, endpoint_url=self.env["AWS_ENDPOINT_URL"], region_name=self.env["AWS_REGION"],
                            aws_access_key_id=credentials.get("key", "testing"),
                            aws_secret_access_key=credentials.get("secret", "testing"))

    def create_key(self, alias: str | None = None) -> str:
        """A new symmetric key: its alias name when one is given (``alias/...``), else its ARN."""
        kms = self.client()
        arn = kms.create_key(Description="zoho-mongo-store test")["KeyMetadata"]["Arn"]
        if alias is not None:
            kms.create_alias(AliasName=alias, TargetKeyId=arn)
            return alias
        return str(arn)

    def arn(self, key: str) -> str:
        return str(self.client().describe_key(KeyId=key)["KeyMetadata"]["Arn"])

    def disable(self, key: str) -> None:
        """Disable a key (by any of its names, ``aws-kms:`` or not: moto's DisableKey takes its bare id only)."""
        kms = self.client()
        kms.disable_key(KeyId=kms.describe_key(KeyId=key.removeprefix("aws-kms:"))["KeyMetadata"]["KeyId"])


if __name__ == "__main__":
    _key_state_rule()
    from moto.server import main

    main(["-H", HOST, "-p", sys.argv[1]])
