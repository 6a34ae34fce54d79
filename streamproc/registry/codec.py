"""Leads in and out of the registry's wire format, and the lead field mapping for plain JSON.

:func:`codec_for` picks what the settings ask for: ``None`` for plain JSON with
streamproc's own field names (the handler's fast path, ``decode_lead``), a
:class:`ShapedJsonCodec` for plain JSON with ``lead_fields``, a :class:`RegistryCodec` for
``input_format registry``. A codec's :meth:`decode` is async (it may ask the registry) and
raises a LeadError for a record that cannot be a lead, or :class:`RegistryUnavailable`
while the registry is down (the handler then holds the lead); :meth:`encode` is pure.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import fastavro
import orjson

from streamproc.errors import (
    ConfigError,
    InvalidPayload,
    OutputRefused,
    RegistryUnavailable,
    UndecodablePayload,
)
from streamproc.logs import get_logger
from streamproc.records.lead import Lead
from streamproc.records.mapping import LeadObject, LeadShape, decode_shaped_json
from streamproc.records.wire import frame, split
from streamproc.registry.client import RegisteredSchema, RegistryClient, Rejected
from streamproc.registry.config import CodecConfig
from streamproc.registry.extend import avro_enrichment, extend_avro, extend_json_schema
from streamproc.registry.once import MadeOnce
from streamproc.settings import RecordFormat

__all__ = ["OutputSchema", "RegistryCodec", "ShapedJsonCodec", "codec_for"]

log = get_logger(__name__)


def codec_for(config: CodecConfig) -> ShapedJsonCodec | RegistryCodec | None:
    """The codec the settings ask for; None for the default (plain JSON, our names)."""
    if config.input_format is RecordFormat.REGISTRY:
        if config.registry is None:
            raise ValueError("RegistryClient needs schema_registry_url")
        return RegistryCodec(config, RegistryClient(config.registry))
    if config.lead_fields:
        return ShapedJsonCodec(config)
    return None


def _json_default(value: Any) -> Any:
    """What orjson cannot write of an Avro record: decimals as text, bytes as base64."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json_value(obj: LeadObject, enrichment: dict[str, Any], meta: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {**obj, "enrichment": enrichment, "enrichment_meta": meta}, default=_json_default
    )


class ShapedJsonCodec:
    """Plain JSON records with the user's field names (``lead_fields``)."""

    def __init__(self, config: CodecConfig) -> None:
        self._shape = LeadShape(config.lead_fields)
        self._max_bytes = config.max_lead_bytes

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def decode(self, value: bytes | None) -> tuple[Lead, LeadObject]:
        return decode_shaped_json(value, self._shape, max_bytes=self._max_bytes)

    def encode(self, obj: LeadObject, enrichment: dict[str, Any], meta: dict[str, Any]) -> bytes:
        return _json_value(obj, enrichment, meta)


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """The registered schema an enriched lead is written with."""

    schema_id: int
    schema_type: str
    #: fastavro's parsed schema (Avro); None for JSON Schema.
    avro: Any = None


class RegistryCodec:
    """Records in the registry's wire format, Avro or JSON Schema, read through the
    registry; enriched leads written as plain JSON or (``output_format registry``) in the
    wire format with the input's schema extended (:mod:`streamproc.registry.extend`)."""

    def __init__(self, config: CodecConfig, client: RegistryClient) -> None:
        self.client = client
        self._shape = LeadShape(config.lead_fields)
        self._max_bytes = config.max_lead_bytes
        self._write_registry = config.output_format is RecordFormat.REGISTRY
        self._input_subject = f"{config.topic_raw}-value"
        self._output_subject = f"{config.topic_enriched}-value"
        self._avro: dict[int, Any] = {}
        self._outputs: MadeOnce[int, OutputSchema] = MadeOnce()

    async def start(self) -> None:
        """Check, before the first lead, that the registry answers the Confluent-compatible
        API and, for ``output_format registry``, that the output schema of the input
        subject's latest version is compatible with the output subject, and register it.
        A ConfigError (one line) when not, or when the registry does not answer."""
        try:
            await self.client.check()
        except RegistryUnavailable as exc:
            raise ConfigError(
                f"schema_registry_url: {exc.args[0]}; check STREAMPROC_SCHEMA_REGISTRY_URL"
            ) from None
        except Rejected as exc:
            raise ConfigError(f"schema_registry_url: {exc.message}") from None
        if not self._write_registry:
            return
        try:
            latest = await self.client.latest(self._input_subject)
            if latest is None:
                log.info(
                    "registry.no_input_schema",
                    subject=self._input_subject,
                    note="output schemas are registered as input schemas are met",
                )
                return
            schema_type, text = _extended(latest)
            reasons = await self.client.compatible(self._output_subject, schema_type, text)
            if reasons:
                raise ConfigError(
                    f"output_format registry: the enriched schema of {self._input_subject} "
                    f"(id {latest.schema_id}) is not compatible with {self._output_subject} "
                    f"under its compatibility level: {reasons[0]}; register a compatible "
                    "version or change the subject's compatibility"
                )
            await self._output(latest)
        except RegistryUnavailable as exc:
            raise ConfigError(
                f"schema_registry_url: {exc.args[0]}; check STREAMPROC_SCHEMA_REGISTRY_URL"
            ) from None
        except (Rejected, ValueError, OutputRefused) as exc:
            raise ConfigError(f"output_format registry: {exc}") from None

    async def close(self) -> None:
        await self.client.close()

    async def decode(self, value: bytes | None) -> tuple[Lead, LeadObject]:
        if value is not None and len(value) > self._max_bytes:
            raise InvalidPayload(
                f"record is {len(value)} bytes, over the {self._max_bytes}-byte limit"
            )
        schema_id, payload = split(value)
        schema = await self.client.schema(schema_id)
        if schema.schema_type == "AVRO":
            obj = self._read_avro(schema, payload)
        elif schema.schema_type == "JSON":
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise UndecodablePayload(
                    f"schema id {schema_id} is JSON Schema but the payload is not JSON: "
                    f"{exc.msg} at position {exc.pos}"
                ) from None
        else:
            raise UndecodablePayload(
                f"schema id {schema_id} is {schema.schema_type}: streamproc reads Avro and "
                "JSON Schema"
            )
        if not isinstance(obj, dict):
            raise InvalidPayload(f"schema id {schema_id}: the record is not an object")
        lead, fields = self._shape.read(obj)
        output = await self._output(schema) if self._write_registry else None
        return lead, LeadObject(obj, fields, output)

    def encode(self, obj: LeadObject, enrichment: dict[str, Any], meta: dict[str, Any]) -> bytes:
        output: OutputSchema | None = obj.schema
        if output is None:
            return _json_value(obj, enrichment, meta)
        if output.schema_type == "JSON":
            return frame(output.schema_id, _json_value(obj, enrichment, meta))
        record = {
            **obj,
            "enrichment": avro_enrichment(enrichment),
            "enrichment_meta": {"cache_key": None, "cached_at": None, **meta},
        }
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, output.avro, record)
        return frame(output.schema_id, buffer.getvalue())

    def _read_avro(self, schema: RegisteredSchema, payload: memoryview) -> Any:
        parsed = self._avro.get(schema.schema_id)
        if parsed is None:
            try:
                parsed = fastavro.parse_schema(schema.document)
            except Exception as exc:  # fastavro raises several types for a bad schema
                raise UndecodablePayload(
                    f"schema id {schema.schema_id} is not an Avro schema fastavro reads: {exc}"
                ) from None
            self._avro[schema.schema_id] = parsed
        stream = io.BytesIO(payload)
        try:
            obj = fastavro.schemaless_reader(stream, parsed, None)
        except Exception as exc:  # EOF, bad varint, bad union index: all one verdict
            raise UndecodablePayload(
                f"the payload does not decode with its Avro schema (id {schema.schema_id}): "
                f"{exc.__class__.__name__}"
            ) from None
        if stream.tell() != len(payload):
            raise UndecodablePayload(
                f"the payload has {len(payload) - stream.tell()} bytes beyond its Avro record "
                f"(schema id {schema.schema_id})"
            )
        return obj

    async def _output(self, schema: RegisteredSchema) -> OutputSchema:
        """The output schema of an input schema, registered once per input id; concurrent
        leads of one new input schema wait for one registration."""
        return await self._outputs.get(schema.schema_id, lambda: self._register(schema))

    async def _register(self, schema: RegisteredSchema) -> OutputSchema:
        try:
            schema_type, text = _extended(schema)
        except ValueError as exc:
            raise OutputRefused(
                f"no output schema for input schema {schema.schema_id}: {exc}"
            ) from None
        try:
            output_id = await self.client.register(self._output_subject, schema_type, text)
        except Rejected as exc:
            raise OutputRefused(
                f"the registry refused the output schema of input schema {schema.schema_id} "
                f"under {self._output_subject} ({exc.status}: {exc.message})"
            ) from None
        avro = fastavro.parse_schema(orjson.loads(text)) if schema_type == "AVRO" else None
        output = OutputSchema(output_id, schema_type, avro)
        log.info(
            "registry.output_schema",
            subject=self._output_subject,
            input_id=schema.schema_id,
            output_id=output_id,
        )
        return output


def _extended(schema: RegisteredSchema) -> tuple[str, str]:
    """The output schema's type and text for an input schema (ValueError when none)."""
    if schema.schema_type == "AVRO":
        return "AVRO", orjson.dumps(extend_avro(schema.document)).decode()
    if schema.schema_type == "JSON":
        return "JSON", orjson.dumps(extend_json_schema(schema.document)).decode()
    raise ValueError(f"schema type {schema.schema_type} is not one streamproc writes")
