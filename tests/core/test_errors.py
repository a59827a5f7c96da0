"""The one error hierarchy: every layer's refusal is an ``errors.Error`` of the kind it means."""

import pytest

from jupyter_backendai import errors
from jupyter_backendai.core import errors as core_errors
from jupyter_backendai.core.apps import AppError
from jupyter_backendai.core.environ import EnvironError
from jupyter_backendai.core.passwords import WeakPasswordError
from jupyter_backendai.core.signing import SignatureError
from jupyter_backendai.core.slots import SlotError
from jupyter_backendai.db import admin
from jupyter_backendai.db.folders.access import Forbidden as FolderForbidden
from jupyter_backendai.db.tokens import TokenError
from jupyter_backendai.hub.spec import SpecError
from jupyter_backendai.manager.base import APIError
from jupyter_backendai.manager.gql.filter import FilterError
from jupyter_backendai.manager.transfer_tokens import TransferTokenError
from jupyter_backendai.storage import errors as storage_errors
from jupyter_backendai.storage.clone import CopyTooLarge


def test_the_top_level_module_is_the_core_hierarchy():
    assert errors.Error is core_errors.Error
    assert set(errors.__all__) == set(core_errors.__all__)


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        (admin.AdminError("x"), errors.Error, 400),
        (admin.NotFound("x"), errors.NotFound, 404),
        (admin.Conflict("x"), errors.Conflict, 409),
        (FolderForbidden("x"), errors.Forbidden, 403),
        (SlotError("x"), errors.BadRequest, 400),
        (SpecError("x"), errors.BadRequest, 400),
        (TokenError("x"), errors.BadRequest, 400),
        (FilterError("x"), errors.BadRequest, 400),
        (AppError("x"), errors.BadRequest, 400),
        (EnvironError("x"), errors.BadRequest, 400),
        (WeakPasswordError(["8 characters"]), errors.BadRequest, 400),
        (SignatureError("x"), errors.Unauthorized, 401),
        (TransferTokenError("x"), errors.Unauthorized, 401),
        (storage_errors.UnsafePath("x"), errors.BadRequest, 400),
        (storage_errors.PermissionDenied("x"), errors.Forbidden, 403),
        (storage_errors.NotFound("x"), errors.NotFound, 404),
        (storage_errors.AlreadyExists("x"), errors.Conflict, 409),
        (storage_errors.UploadTooLarge("x"), errors.TooLarge, 413),
        (storage_errors.QuotaExceeded(adding=2, used=1, replaced=0, quota=2), errors.TooLarge, 413),
        (CopyTooLarge(10, 5), errors.TooLarge, 413),
        (storage_errors.StorageError("x"), errors.Error, 500),
    ],
)
def test_each_layers_errors_carry_their_status(error, kind, status):
    assert isinstance(error, kind)
    assert error.status == status
    # Callers that only know "bad input" keep catching them.
    assert isinstance(error, ValueError)
    assert error.reason == str(error)


def test_refusals_are_for_the_caller_and_failures_are_not():
    assert errors.NotFound("gone").for_caller
    assert not storage_errors.InsufficientStorage("full").for_caller
    assert not errors.Error("boom").for_caller
    # A handler's own 5xx (the hub failed) is written for the caller; so is "come back later".
    assert APIError(502, "the hub is down").for_caller
    assert errors.Unavailable("no registry").for_caller


def test_one_condition_can_be_answered_with_another_status():
    full = storage_errors.StorageError("the folder is full", status=413)
    assert full.status == 413 and full.for_caller and full.message == "the folder is full"


def test_api_error_keeps_its_title_extra_and_headers():
    e = APIError(429, "slow down\nplease", headers={"Retry-After": "3"}, limit=5)
    assert isinstance(e, errors.Error) and e.status == e.status_code == 429
    assert str(e) == e.title == "slow down\nplease"
    # ``reason`` is the status line's: one line, at most 200 characters.
    assert e.reason == "slow down please" and e.extra == {"limit": 5} and e.headers == {"Retry-After": "3"}
