"""The OpenAPI 3.1 document, generated from the route declarations (never written by hand)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import prism_kernels
from widgets.server.models import ErrorBody, Metadata
from widgets.server.routing import Route

REF = "#/components/schemas/{model}"

ERROR_STATUSES = {
    "400": "Invalid input or malformed JSON (the offending field is named in details.field)",
    "401": "Missing, malformed or unknown API key",
    "402": "A spending budget is spent (PRISM_LLM_BUDGET_USD): details give the key id, what "
    "was spent and the budget",
    "403": "The key's role may not call this route",
    "404": "Unknown route or id",
    "405": "Method not allowed on this path",
    "413": "Request body too large",
    "422": "Well-formed input with no solution (no collision-free path, unreachable pose); "
    "details.field names the input and details.reason says why",
    "429": "Rate limit exceeded (see Retry-After)",
    "500": "Internal error (no trace is returned)",
    "503": "A dependency is unavailable",
    "504": "The computation timed out",
}


def _query_parameters(model: type[BaseModel], defs: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF, mode="validation")
    defs.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        params.append(
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {k: v for k, v in prop.items() if k != "title"},
                **({"description": prop["description"]} if "description" in prop else {}),
            }
        )
    return params


def build_openapi(routes: list[Route], server_url: str | None = None) -> dict[str, Any]:
    """An OpenAPI 3.1 document listing every route with request and response schemas."""
    models: list[tuple[type[BaseModel], str]] = [
        (ErrorBody, "serialization"),
        (Metadata, "serialization"),
    ]
    for r in routes:
        if r.request is not None:
            models.append((r.request, "validation"))
        if r.response is not None:
            models.append((r.response, "serialization"))
    seen = set()
    unique = []
    for m in models:
        if m not in seen:
            seen.add(m)
            unique.append(m)
    key_map, top = models_json_schema(unique, ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return key_map[(model, mode)]

    paths: dict[str, Any] = {}
    tags = sorted({r.tag for r in routes if r.tag})
    for r in routes:
        op: dict[str, Any] = {
            "operationId": r.operation_id,
            "summary": r.summary or r.name,
            "tags": [r.tag] if r.tag else [],
            "parameters": [],
            "responses": {},
        }
        if r.description and r.description != r.summary:
            op["description"] = r.description
        for p in r.path_params:
            op["parameters"].append(
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            )
        if r.query is not None:
            op["parameters"].extend(_query_parameters(r.query, schemas))
        if r.request is not None:
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": ref(r.request, "validation"),
                        **({"example": r.example} if r.example is not None else {}),
                    }
                },
            }
        data_schema: dict[str, Any] = (
            ref(r.response, "serialization") if r.response is not None else {}
        )
        op["responses"]["200"] = {
            "description": "Success envelope",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["success", "data"],
                        "properties": {
                            "success": {"const": True},
                            "data": data_schema,
                            "metadata": ref(Metadata, "serialization"),
                        },
                    }
                }
            },
        }
        streamed = getattr(r.handler, "event_stream", None)
        if streamed:  # the same operation may answer as server-sent events
            # One server-sent event, as a client parses it: its name and its data (a JSON text).
            op["responses"]["200"]["content"]["text/event-stream"] = {
                "schema": {
                    "type": "object",
                    "description": streamed,
                    "required": ["data"],
                    "properties": {
                        "event": {"type": "string"},
                        "data": {"type": "string", "contentMediaType": "application/json"},
                    },
                }
            }
        wanted = ["400", "404", "405", "413", "422", "429", "500", "503", "504"]
        # statuses only some routes answer, declared by their handler (``fn.extra_statuses``)
        wanted += [str(c) for c in getattr(r.handler, "extra_statuses", ())]
        if r.auth:
            wanted += ["401", "403"]
        for code in sorted(wanted):
            op["responses"][code] = {
                "description": ERROR_STATUSES[code],
                "content": {"application/json": {"schema": ref(ErrorBody, "serialization")}},
            }
        if r.auth:
            op["security"] = [{"bearerAuth": []}, {"apiKeyHeader": []}]
        else:
            op["security"] = []
        paths.setdefault(r.path, {})[r.method.lower()] = op
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "PRISM API",
            "version": prism_kernels.__version__,
            "description": "PRISM-AI compatible REST API: every answer is computed. "
            "Errors are JSON {success: false, error, message, details}.",
        },
        "paths": paths,
        "tags": [{"name": t} for t in tags],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
