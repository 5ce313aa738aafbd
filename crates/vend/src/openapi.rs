//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand.

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn pan_param() -> Value {
    json!({"name": "pan", "in": "path", "required": true, "description": "18-digit PAN, or an 11- or 13-digit DRN", "schema": {"type": "string"}})
}

fn page_params() -> Value {
    json!([
        {"name": "after", "in": "query", "schema": {"type": "string"}},
        {"name": "before", "in": "query", "schema": {"type": "integer"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}
    ])
}

/// The OpenAPI document of the HTTP API.
#[must_use]
pub fn document() -> Value {
    let id = |s: &str| json!({"type": "string", "description": s});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "sts vending service",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Issues STS (IEC 62055-41) tokens through a security module. Every vend carries a client request ID: repeating it returns the same tokens (200, `reprint: true`); reusing it for a different request is refused (409). Money vends are priced by the tariff version in force at the sale; the first units or money purchase of a calendar month (UTC) under a tariff with a free allowance brings a second token. Decimal amounts are JSON strings, never numbers."
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "An API key `sts_<id>_<secret>`; roles admin, vendor, engineer, auditor"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "code"], "properties": {
                    "error": {"type": "string"}, "code": {"type": "string"},
                    "fields": {"type": "object", "additionalProperties": {"type": "string"}, "description": "bad field -> what is wrong"}}},
                "MeterInput": {"type": "object", "properties": {
                    "pan": id("18 digits, IIN 600727 or 0000, Luhn check digit"), "drn": id("11 or 13 digits (instead of pan)"),
                    "sgc": id("supply group code, 6 digits"), "ti": id("tariff index, 2 digits"), "krn": id("key revision 1-9"),
                    "kt": id("key type 0-3 or DITK/DDTK/DUTK/DCTK"), "ea": id("07, 09 or 11"), "dkga": id("01-04"),
                    "base_date": id("1993, 2014 or 2035"), "ken": id("key expiry number 0-255, default 255"),
                    "utility": {"enum": ["electricity", "water", "gas", "time"]}, "status": {"enum": ["active", "suspended", "retired"]},
                    "apply_without_key_change": {"type": "boolean", "description": "update only: the meter already holds the new key"}}},
                "Meter": {"type": "object", "properties": {
                    "pan": {"type": "string"}, "drn": {"type": "string"}, "sgc": {"type": "string"}, "ti": {"type": "string"},
                    "krn": {"type": "string"}, "kt": {"type": "string"}, "ea": {"type": "string"}, "dkga": {"type": "string"},
                    "base_date": {"type": "string"}, "ken": {"type": "string"}, "utility": {"type": "string"}, "status": {"type": "string"},
                    "last_tid": {"type": ["integer", "null"]},
                    "pending_key_change": {"type": ["object", "null"], "description": "from (held) and to (wanted) key records"},
                    "created": {"type": "integer"}, "updated": {"type": "integer"}}},
                "VendRequest": {"type": "object", "required": ["request_id", "meter", "token"], "properties": {
                    "request_id": id("client request ID, 1-128 printable ASCII characters"),
                    "meter": id("PAN or DRN"),
                    "token": {"type": "object", "required": ["type"], "properties": {
                        "type": {"enum": ["credit", "money", "currency", "max_power", "phase_unbalance", "clear_credit", "clear_tamper", "tariff_rate", "water_factor", "key_change"]},
                        "service": {"enum": ["electricity", "water", "gas", "time"], "description": "credit, money and currency; default: the meter's utility"},
                        "amount": id("credit: units with at most one decimal (rounded up to the token's encoding); money: what the customer pays, in the tariff's currency with at most its decimal places (units = amount / price, rounded down to 0.1 unit and to the token's encoding); currency: decimal currency units"),
                        "watts": {"type": "integer"}, "register": {"description": "\"all\" or 0-7, 65535"},
                        "rate": {"type": "integer"}, "factor": {"type": "integer"}, "include_sgc": {"type": "boolean"}}}}},
                "Vend": {"type": "object", "properties": {
                    "request_id": {"type": "string"}, "meter": {"type": "string"}, "kind": {"enum": ["credit", "management", "key_change"]},
                    "request": {"type": "object"},
                    "tokens": {"type": "array", "items": {"type": "object", "properties": {
                        "number": {"type": "string"}, "formatted": {"type": "string"}, "class": {"type": "integer"},
                        "subclass": {"type": "integer"}, "tid": {"type": ["integer", "null"]}, "description": {"type": "string"}}}},
                    "tid": {"type": ["integer", "null"]}, "security_module": {"type": "string"}, "check_value": {"type": ["string", "null"]},
                    "key_change": {"type": ["object", "null"]}, "amount": {"type": ["object", "null"], "description": "service and units (or currency) of the purchase token"},
                    "key": {"type": "object", "description": "the key record the tokens were made under", "properties": {
                        "sgc": {"type": "string"}, "ti": {"type": "string"}, "krn": {"type": "string"}, "kt": {"type": "string"}}},
                    "tariff": {"type": ["object", "null"], "description": "credit: the tariff version in force at the sale", "properties": {
                        "id": {"type": "integer"}, "version": {"type": "integer"}, "utility": {"type": "string"}, "ti": {"type": "string"},
                        "currency": {"type": "string"}, "price": {"type": "string"}, "unit": {"type": "string"},
                        "effective_from": {"type": "string", "format": "date-time"}, "allowance": {"type": ["string", "null"]}}},
                    "money": {"type": ["object", "null"], "description": "money vends: the sale, exact decimals", "properties": {
                        "currency": {"type": "string"}, "paid": {"type": "string"}, "price": {"type": "string"}, "units": {"type": "string"},
                        "cost": {"type": "string", "description": "units * price"}, "change": {"type": "string", "description": "paid - cost, not on the token"},
                        "rule": {"type": "string"}}},
                    "allowance": {"type": ["object", "null"], "description": "the free allowance issued with this vend (its token follows the purchase token)", "properties": {
                        "month": {"type": "string", "description": "YYYY-MM, UTC"}, "units": {"type": "string"}, "tid": {"type": ["integer", "null"]}, "tariff_id": {"type": "integer"}}},
                    "created": {"type": "integer"}, "reprint": {"type": "boolean"}}},
                "TariffInput": {"type": "object", "required": ["utility", "ti", "currency", "price"], "properties": {
                    "utility": {"enum": ["electricity", "water", "gas", "time"]},
                    "ti": id("the meters' tariff index, 00-99"),
                    "currency": id("ISO 4217 code, three capital letters"),
                    "currency_decimals": {"type": "integer", "minimum": 0, "maximum": 4, "default": 2, "description": "decimal places of money in this currency"},
                    "price": id("price per unit, a decimal string with at most 6 places, more than 0"),
                    "effective_from": id("UTC: YYYY-MM-DD, YYYY-MM-DD HH:MM or YYYY-MM-DDTHH:MM:SSZ (whole minutes); now or later; default now"),
                    "allowance": id("monthly free allowance in units, at most one decimal; absent for none")}},
                "Tariff": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "utility": {"type": "string"}, "ti": {"type": "string"}, "version": {"type": "integer"},
                    "currency": {"type": "string"}, "currency_decimals": {"type": "integer"}, "price": {"type": "string"}, "unit": {"type": "string"},
                    "effective_from": {"type": "string", "format": "date-time"}, "allowance": {"type": ["string", "null"]},
                    "created": {"type": "integer"}, "created_by": {"type": ["string", "null"]},
                    "in_force": {"type": "boolean", "description": "the version of its utility and TI in force now"}}},
                "DailyReport": {"type": "object", "properties": {
                    "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
                    "rows": {"type": "array", "items": {"type": "object", "properties": {
                        "day": {"type": "string", "format": "date"}, "vendor": {"type": "string", "description": "API key ID"},
                        "vendor_name": {"type": ["string", "null"]}, "tariff_id": {"type": ["integer", "null"]},
                        "tariff_version": {"type": ["integer", "null"]}, "utility": {"type": ["string", "null"]}, "ti": {"type": ["string", "null"]},
                        "currency": {"type": ["string", "null"]}, "sales": {"type": "integer"}, "units": {"type": "string"},
                        "money": {"type": ["string", "null"]}, "allowances": {"type": "integer"}, "allowance_units": {"type": "string"}}}}}},
                "Campaign": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "name": {"type": "string"},
                    "selection": {"type": "object", "description": "sgc, krn, base_date (null: any), pan_list"},
                    "target": {"type": "object", "description": "sgc, ti, krn, base_date, dkga (null: the meter's own), include_sgc"},
                    "chunk_size": {"type": "integer"}, "state": {"enum": ["created", "running", "done"]},
                    "checkpoint": {"type": ["string", "null"], "description": "last PAN of the last committed chunk"},
                    "chunks": {"type": "integer"}, "selected": {"type": "integer"}, "processed": {"type": "integer"},
                    "progress": {"type": "number", "description": "processed / selected, 0 to 1"},
                    "items": {"type": "object", "description": "pending, delivered, failed, skipped, superseded, exported"},
                    "created": {"type": "integer"}, "started": {"type": ["integer", "null"]},
                    "finished": {"type": ["integer", "null"]}, "updated": {"type": "integer"}}}
            }
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/healthz": {"get": {"summary": "Database reachable", "security": [], "responses": {"200": {"description": "ok"}, "503": {"description": "database unreachable"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "text exposition 0.0.4"}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/v1/meters": {
                "post": {"summary": "Register a meter (admin)", "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/MeterInput"}}}},
                    "responses": {"201": ok("registered", "Meter"), "409": error_response("already registered"), "422": error_response("bad fields")}},
                "get": {"summary": "List meters in PAN order", "parameters": page_params(), "responses": {"200": {"description": "{\"meters\": [Meter]}"}}}},
            "/v1/meters/{pan}": {
                "parameters": [pan_param()],
                "get": {"summary": "Look a meter up", "responses": {"200": ok("the meter", "Meter"), "404": error_response("no such meter")}},
                "patch": {"summary": "Update a meter (admin); a new SGC, TI, KRN, KT, base date or DKGA makes a key change pending",
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/MeterInput"}}}},
                    "responses": {"200": ok("updated", "Meter"), "404": error_response("no such meter"), "422": error_response("bad fields")}}},
            "/v1/meters/{pan}/vends": {"parameters": [pan_param()],
                "get": {"summary": "A meter's vends, newest first", "parameters": page_params(), "responses": {"200": {"description": "{\"vends\": [Vend]}"}}}},
            "/v1/vends": {"post": {"summary": "Vend: credit (vendor), management and key change tokens (engineer)",
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/VendRequest"}}}},
                "responses": {"201": ok("issued and recorded", "Vend"), "200": ok("reprint of the same request ID", "Vend"),
                    "403": error_response("role"), "404": error_response("no such meter"),
                    "409": error_response("request ID reused with other content, key change pending, meter not active, no tariff in force (money)"),
                    "413": error_response("body too large"), "422": error_response("bad fields, or refused by the security module")}}},
            "/v1/vends/{request_id}": {"get": {"summary": "A past vend by request ID",
                "parameters": [{"name": "request_id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": ok("the vend", "Vend"), "404": error_response("unknown request ID")}}},
            "/v1/api-keys": {"post": {"summary": "Create an API key (admin); the key is shown once",
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["role", "name"], "properties": {
                    "role": {"enum": ["admin", "vendor", "engineer", "auditor"]}, "name": {"type": "string"}}}}}},
                "responses": {"201": {"description": "{id, role, key}"}}}},
            "/v1/api-keys/{id}": {"delete": {"summary": "Revoke an API key (admin)",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"204": {"description": "revoked"}, "404": error_response("unknown key")}}},
            "/v1/campaigns": {"get": {"summary": "Key change campaigns, newest first, with progress (created and run with `sts campaign`)",
                "responses": {"200": {"description": "{\"campaigns\": [Campaign]}"}}}},
            "/v1/campaigns/{id}": {"get": {"summary": "A campaign's progress, and its first items without a set (failed, skipped, superseded) with the reason; never a token",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "Campaign plus {\"problems\": [{pan, state, reason}]}"}, "404": error_response("no such campaign")}}},
            "/v1/audit": {"get": {"summary": "The append-only audit table (admin, auditor)", "parameters": page_params(),
                "responses": {"200": {"description": "{\"audit\": [{seq, time, key_id, request_id, sm_id, kcv, action, details}]}"}}}},
            "/v1/tariffs": {
                "post": {"summary": "Create a tariff version (admin); versions never change, a new one supersedes from its effective time",
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/TariffInput"}}}},
                    "responses": {"201": ok("created", "Tariff"), "403": error_response("role"), "422": error_response("bad fields (nothing stored)")}},
                "get": {"summary": "Every tariff version, by utility, TI and effective time",
                    "parameters": [{"name": "utility", "in": "query", "schema": {"type": "string"}}, {"name": "ti", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "{\"tariffs\": [Tariff]}"}}}},
            "/v1/tariffs/{id}": {"get": {"summary": "A tariff version",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "responses": {"200": ok("the version", "Tariff"), "404": error_response("no such version")}}},
            "/v1/reports/daily": {"get": {"summary": "Daily sales per vendor and tariff version (admin, auditor); CSV with format=csv or Accept: text/csv",
                "parameters": [
                    {"name": "from", "in": "query", "required": true, "schema": {"type": "string", "format": "date"}, "description": "first UTC day"},
                    {"name": "to", "in": "query", "required": true, "schema": {"type": "string", "format": "date"}, "description": "last UTC day, included; at most 366 days"},
                    {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}}],
                "responses": {"200": {"description": "the report", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/DailyReport"}},
                    "text/csv": {"schema": {"type": "string"}, "description": "RFC 4180, a header line of the row's names, CRLF"}}},
                    "403": error_response("role"), "422": error_response("bad dates")}}}
        }
    })
}
