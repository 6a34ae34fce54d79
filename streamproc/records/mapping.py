"""The user's field names: where each lead field is in their records (``lead_fields``).

A record keeps its own shape all the way to ``leads.enriched``; the mapping only says where
to read ``lead_id``, ``email``, ``domain`` and the others. Paths are JSON Pointers or dotted
(:mod:`streamproc.fieldpaths`). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from streamproc.errors import InvalidPayload
from streamproc.fieldpaths import MISSING, Path, parse_path, read_path
from streamproc.records.lead import Lead, _validation_reason, json_object

__all__ = ["LeadObject", "LeadShape", "decode_shaped_json"]


class LeadObject(dict[str, Any]):
    """A record's own decoded object, as it came (the enriched record is built from it),
    with what streamproc read from it: the lead's fields under streamproc's names (what the
    provider is sent) and, for a registry record, the schema it was written with."""

    __slots__ = ("lead_fields", "schema")

    def __init__(
        self, obj: Mapping[str, Any], lead_fields: dict[str, Any], schema: Any = None
    ) -> None:
        super().__init__(obj)
        self.lead_fields = lead_fields
        self.schema = schema


class LeadShape:
    """Where each lead field is read from: the mapped path, else the field's own name at
    the top of the record (``lead_fields`` is validated by the settings already)."""

    def __init__(self, lead_fields: Mapping[str, str]) -> None:
        self._paths: list[tuple[str, Path, str | None]] = []
        for name in Lead.model_fields:
            text = lead_fields.get(name)
            self._paths.append((name, parse_path(text) if text else (name,), text))
        self._mapped = {name: text for name, _, text in self._paths if text}

    def read(self, obj: Mapping[str, Any]) -> tuple[Lead, dict[str, Any]]:
        """The lead in ``obj``, and its fields under streamproc's names.

        A number where a text is expected (an Avro ``long`` id) is read as its decimal text;
        a null is a field not given. Raises :class:`InvalidPayload` naming the path.
        """
        fields: dict[str, Any] = {}
        for name, path, _ in self._paths:
            value = read_path(obj, path)
            if value is MISSING or value is None:
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            fields[name] = value
        try:
            lead = Lead.model_validate(fields)
        except ValidationError as exc:
            reason = _validation_reason(exc)
            mapped = [f"{name} from {text}" for name, text in self._mapped.items()]
            where = f" (lead_fields: {', '.join(mapped)})" if mapped else ""
            raise InvalidPayload(reason + where) from None
        return lead, fields


def decode_shaped_json(
    value: bytes | None, shape: LeadShape, *, max_bytes: int
) -> tuple[Lead, LeadObject]:
    """A plain JSON record read through ``shape`` (``decode_lead`` for the default names)."""
    obj = json_object(value, max_bytes=max_bytes)
    lead, fields = shape.read(obj)
    return lead, LeadObject(obj, fields)
