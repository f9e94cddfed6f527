"""Errors the HubSpot portal raises; the app turns each into HubSpot's error body."""

from __future__ import annotations

import json
from typing import Any

JsonObj = dict[str, Any]


class PortalError(Exception):
    """A request the portal refuses, with HubSpot's status, category and message."""

    status = 400
    category = "VALIDATION_ERROR"

    def __init__(
        self,
        message: str,
        *,
        context: dict[str, list[str]] | None = None,
        errors: list[JsonObj] | None = None,
        sub_category: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.context = context
        self.errors = errors
        self.sub_category = sub_category

    def body(self, correlation_id: str) -> JsonObj:
        """HubSpot's JSON error body."""
        out: JsonObj = {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id,
            "category": self.category,
        }
        if self.sub_category:
            out["subCategory"] = self.sub_category
        if self.context:
            out["context"] = self.context
        if self.errors:
            out["errors"] = self.errors
        return out


class ValidationError(PortalError):
    """A 400 VALIDATION_ERROR."""


class PropertyValuesError(ValidationError):
    """Written values that fail validation (HubSpot's ``Property values were not valid``)."""

    def __init__(self, problems: list[JsonObj], record_id: str | None = None) -> None:
        # HubSpot embeds the per-property problems as JSON text inside the message.
        super().__init__(
            "Property values were not valid: " + json.dumps(problems, separators=(",", ":")),
            context={"ids": [record_id]} if record_id else None,
        )
        self.problems = problems
        self.record_id = record_id


class ObjectNotFound(PortalError):
    """A 404 OBJECT_NOT_FOUND."""

    status = 404
    category = "OBJECT_NOT_FOUND"


class AlreadyExists(PortalError):
    """A 409 OBJECT_ALREADY_EXISTS (duplicate property or group name)."""

    status = 409
    category = "OBJECT_ALREADY_EXISTS"
