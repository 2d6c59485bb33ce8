"""AWS KMS as a key provider (``kms_key="aws-kms:<key id, ARN or alias>"``; the ``kms`` extra).

A data key comes from ``GenerateDataKey`` (AES_256) and is opened with ``Decrypt``, both with the
encryption context naming the database and collection; ``wrap`` (``rotate-key --rewrap``) is
``Encrypt``. The region, credentials and endpoint are boto3's standard settings (``AWS_REGION``
or ``AWS_DEFAULT_REGION``, the credential chain, ``AWS_ENDPOINT_URL``); a key given by its ARN is
asked in the ARN's region. Only this module imports boto3, and only a store configured with an
``aws-kms:`` key imports this module.

botocore logs every request and response body at DEBUG (``botocore.endpoint``,
``botocore.parsers``): with an application's DEBUG logging on, that is the plaintext data key and
the wrapped one. Records of those loggers are dropped on the thread making a call here, for the
call's duration (``kms.unlogged``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from .kms import NOT_OPENED, KeyProvider, KmsError, unlogged

CONNECT_TIMEOUT, READ_TIMEOUT = 5.0, 10.0
"""One KMS request's bounds (boto3's defaults are 60 s each); its retries are boto3's own settings."""
REFUSALS = {
    "DisabledException": "the key is disabled",
    "KMSInvalidStateException": "the key is not in a usable state (pending deletion, or pending import)",
    "NotFoundException": "no such key (or alias) in this account and region",
    "IncorrectKeyException": "the data key was wrapped by another KMS key",
    "InvalidCiphertextException": NOT_OPENED,
    "InvalidKeyUsageException": "the key is not a symmetric encryption key",
    "KeyUnavailableException": "the key is unavailable right now",
    "KMSInternalException": "KMS failed internally",
    "ThrottlingException": "KMS throttled the request",
    "UnrecognizedClientException": "these AWS credentials are not valid",
    "InvalidSignatureException": "these AWS credentials are not valid (the signature was refused)",
    "ExpiredTokenException": "these AWS credentials have expired",
}
DENIED = "access denied: these AWS credentials may not use this key for this (see the IAM permissions in docs/encryption.md)"
UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)
_ARN_REGION = re.compile(r"arn:aws[a-z-]*:kms:([a-z0-9-]+):")
BODY_LOGGERS = ("botocore.endpoint", "botocore.parsers")
"""botocore's loggers that quote request and response bodies at DEBUG."""


class AwsKms(KeyProvider):
    """A KMS key of AWS. ``key``: its id, ARN, alias name (``alias/zoho-tokens``) or alias ARN, the
    same in every process (the data key is recorded under this name)."""

    scheme = "aws-kms"

    def __init__(self, key: str, client: Any = None) -> None:
        """``client``: a boto3 KMS client of yours (else one is made from the standard settings)."""
        self.key = key
        self._client = client

    def generate(self, context: Mapping[str, str]) -> tuple[bytes, bytes]:
        answer = self._ask(lambda kms: kms.generate_data_key(KeyId=self.key, KeySpec="AES_256",
                                                             EncryptionContext=dict(context)))
        return answer["Plaintext"], answer["CiphertextBlob"]

    def wrap(self, data_key: bytes, context: Mapping[str, str]) -> bytes:
        answer = self._ask(lambda kms: kms.encrypt(KeyId=self.key, Plaintext=data_key, EncryptionContext=dict(context)))
        return bytes(answer["CiphertextBlob"])

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        # KeyId: KMS opens it only with this key, never with another one the blob names.
        answer = self._ask(lambda kms: kms.decrypt(KeyId=self.key, CiphertextBlob=wrapped,
                                                   EncryptionContext=dict(context)))
        return bytes(answer["Plaintext"])

    def client(self) -> Any:
        """The boto3 KMS client, made on first use."""
        if self._client is None:
            session = boto3.session.Session()
            found = _ARN_REGION.match(self.key)
            region = found.group(1) if found else session.region_name or os.environ.get("AWS_REGION") or None
            self._client = session.client("kms", region_name=region,
                                          config=Config(connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT))
        return self._client

    def _ask(self, call: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        """One KMS call; any failure is a ``KmsError`` phrase (KMS's error text is not kept: it can
        quote ARNs and principals, and is not ours to show)."""
        try:
            with unlogged(*BODY_LOGGERS):
                return call(self.client())
        except ClientError as error:
            raise KmsError(refusal(error.response)) from None
        except NoCredentialsError:
            raise KmsError("no AWS credentials found (the standard chain: the environment, a profile, a role)") from None
        except NoRegionError:
            raise KmsError("no AWS region: set AWS_REGION, or name the key by its ARN") from None
        except UNREACHABLE:
            raise KmsError("KMS is unreachable") from None
        except BotoCoreError as error:
            raise KmsError(f"the AWS client failed ({type(error).__name__})") from None


def refusal(response: Mapping[str, Any]) -> str:
    """The phrase for KMS's error answer: its code, or its HTTP status (403: denied)."""
    code = str((response.get("Error") or {}).get("Code") or "")
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if code in REFUSALS:
        return REFUSALS[code]
    if code.startswith("AccessDenied") or status == 403 or code == "403":
        return DENIED
    shown = code if re.fullmatch(r"[A-Za-z0-9]{1,64}", code) else f"HTTP {status}"
    return f"KMS answered {shown}"
