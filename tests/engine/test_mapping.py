from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from connectors.base import MappingHints
from connectors.errors import ConfigError
from engine.errors import MappingError
from engine.fields import LeadFieldSpec
from engine.mapping import CompiledMapping, compile_mapping
from state.models import CONTENT_FIELDS

# Contract §3, verbatim.
HUBSPOT_MAPPING = """
lead_id: id                                   # required: the record's id in the source
updated_at: properties.lastmodifieddate       # the record's modification time
fields:
  email: {from: properties.email, transform: [strip, lower]}
  first_name: properties.firstname            # short form: a path
  last_name: properties.lastname
  name: {template: "{properties.firstname} {properties.lastname}"}
  phone: {from: properties.phone, transform: [{e164: {region: US}}]}
  status:
    from: properties.hs_lead_status
    map: {NEW: new, OPEN: contacted, IN_PROGRESS: contacted, CONNECTED: qualified, UNQUALIFIED: lost}
    default: new
  score: {from: properties.hubspotscore, type: int}
  tags: {from: properties.tags, split: ";"}
  custom.industry: properties.industry        # custom.* must be declared in lead_fields
  source: {value: hubspot}                    # a constant
require: [email]                              # a record without these fails, item by item
"""

LEAD_FIELDS = [
    LeadFieldSpec(name="industry", type="string"),
    LeadFieldSpec(name="budget", type="number"),
    LeadFieldSpec(name="seats", type="integer"),
    LeadFieldSpec(name="active", type="boolean"),
    LeadFieldSpec(name="signed_at", type="datetime"),
    LeadFieldSpec(name="topics", type="list"),
]


def hubspot_record(**properties: Any) -> dict[str, Any]:
    base = {
        "email": "  Jane.Doe@Example.COM ",
        "firstname": "Jane",
        "lastname": "Doe",
        "phone": "(415) 555-2671",
        "hs_lead_status": "OPEN",
        "hubspotscore": "42",
        "tags": "webinar; vip;;",
        "industry": "Software",
        "lastmodifieddate": "2024-09-11T13:27:39.356Z",
    }
    return {"id": "501", "properties": {**base, **properties}}


def mapping(fields: dict[str, Any], **top: Any) -> CompiledMapping:
    return compile_mapping(
        {"lead_id": "id", "fields": fields, **top}, lead_fields=LEAD_FIELDS
    )


def problem(spec: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        compile_mapping(spec, lead_fields=LEAD_FIELDS[:1])
    return caught.value


@pytest.fixture(name="hubspot")
def hubspot_fixture() -> CompiledMapping:
    return compile_mapping(
        yaml.safe_load(HUBSPOT_MAPPING),
        lead_fields=[LeadFieldSpec(name="industry", type="string")],
    )


def test_hubspot_example(hubspot: CompiledMapping) -> None:
    unmapped: list[tuple[str, Any]] = []
    assert hubspot.apply(hubspot_record(), unmapped) == {
        "lead_id": "501",
        "source_updated_at": datetime(2024, 9, 11, 13, 27, 39, 356000, tzinfo=UTC),
        "email": "jane.doe@example.com",
        "first_name": "Jane",
        "last_name": "Doe",
        "name": "Jane Doe",
        "company": None,
        "title": None,
        "phone": "+14155552671",
        "owner": None,
        "status": "contacted",
        "source": "hubspot",
        "score": 42,
        "tags": ["webinar", "vip"],
        "custom_fields": {"industry": "Software"},
    }
    assert unmapped == []
    assert hubspot.targets == (
        "email", "first_name", "last_name", "name", "phone", "status", "score", "tags",
        "custom.industry", "source",
    )  # fmt: skip


def test_hubspot_sparse_record_keeps_every_content_field(
    hubspot: CompiledMapping,
) -> None:
    record = {"id": 7, "properties": {"email": "a@b.co", "firstname": "", "tags": None}}
    lead = hubspot.apply(record)
    assert list(lead) == ["lead_id", "source_updated_at", *CONTENT_FIELDS]
    assert lead["lead_id"] == "7"
    assert lead["source_updated_at"] is None
    assert lead["first_name"] is None
    assert lead["name"] is None
    assert lead["status"] == "new"  # missing -> default
    assert lead["score"] is None
    assert lead["tags"] == []
    assert lead["custom_fields"] == {}


def test_hubspot_hints(hubspot: CompiledMapping) -> None:
    assert hubspot.hints() == MappingHints(
        id_path="id",
        updated_at_path="properties.lastmodifieddate",
        paths=frozenset(
            {"id", "properties.lastmodifieddate", "properties.email",
             "properties.firstname", "properties.lastname", "properties.phone",
             "properties.hs_lead_status", "properties.hubspotscore", "properties.tags",
             "properties.industry"}
        ),
    )  # fmt: skip
    assert hubspot.lead_id_path == "id"
    assert hubspot.updated_at_path == "properties.lastmodifieddate"
    assert hubspot.source_paths == hubspot.hints().paths


def test_map_default_and_unmapped(hubspot: CompiledMapping) -> None:
    unmapped: list[tuple[str, Any]] = []
    lead = hubspot.apply(hubspot_record(hs_lead_status="ZOMBIE"), unmapped)
    assert lead["status"] == "new"
    assert unmapped == [("status", "ZOMBIE")]
    assert (
        hubspot.apply(hubspot_record(hs_lead_status="connected"))["status"]
        == "qualified"
    )


def test_map_without_default_passes_the_value_through() -> None:
    m = mapping(
        {"owner": {"from": "o", "map": {"1": "alice", 2: "bob", True: "carol"}}}
    )
    unmapped: list[tuple[str, Any]] = []
    assert m.apply({"id": 1, "o": 1}, unmapped)["owner"] == "alice"
    assert m.apply({"id": 1, "o": 2.0}, unmapped)["owner"] == "bob"
    assert m.apply({"id": 1, "o": True}, unmapped)["owner"] == "carol"
    assert m.apply({"id": 1, "o": "dave"}, unmapped)["owner"] == "dave"
    assert unmapped == [("owner", "dave")]
    assert m.apply({"id": 1, "o": "eve"})["owner"] == "eve"  # no list given: fine


def test_map_applies_to_each_item_of_a_list() -> None:
    m = mapping({"tags": {"from": "t", "split": ",", "map": {"a": "alpha", "x": None}}})
    unmapped: list[tuple[str, Any]] = []
    assert m.apply({"id": 1, "t": "a,b,x"}, unmapped)["tags"] == ["alpha", "b"]
    assert unmapped == [("tags", "b")]


def test_case_insensitive_map_fallback_skips_ambiguous_keys() -> None:
    m = mapping(
        {"owner": {"from": "o", "map": {"Ann": "ann", "ANN": "anne", "Bo": "bo"}}}
    )
    unmapped: list[tuple[str, Any]] = []
    assert m.apply({"id": 1, "o": "ANN"}, unmapped)["owner"] == "anne"
    assert m.apply({"id": 1, "o": " bo "}, unmapped)["owner"] == "bo"
    assert m.apply({"id": 1, "o": "ann "}, unmapped)["owner"] == "ann"  # passed through
    assert unmapped == [("owner", "ann ")]


def test_blank_after_transforms_is_missing() -> None:
    m = mapping(
        {
            "title": {"from": "t", "transform": ["strip"], "default": "n/a"},
            "score": {"from": "s", "type": "int", "default": 0},
            "company": {"from": "c", "type": "string"},
        }
    )
    lead = m.apply({"id": 1, "t": "   ", "c": 12.0})
    assert (lead["title"], lead["score"], lead["company"]) == ("n/a", 0, "12")


def test_coalesce_template_and_value() -> None:
    m = mapping(
        {
            "email": {"coalesce": ["work.email", "emails.0.value", "email"]},
            "name": {"template": "{first}  {middle} {last} ({org.name})"},
            "company": {"template": "{{{org.name}}}"},
            "source": {"value": "import"},
        }
    )
    record = {
        "id": 1, "work": {"email": ""}, "emails": [{"value": "x@y.co"}],
        "email": "z@y.co", "first": "Ada", "last": "Lovelace", "org": {"name": "AE"},
    }  # fmt: skip
    lead = m.apply(record)
    assert lead["email"] == "x@y.co"
    assert lead["name"] == "Ada Lovelace (AE)"
    assert lead["company"] == "{AE}"
    assert lead["source"] == "import"
    assert m.apply({"id": 1, "email": "z@y.co"})["email"] == "z@y.co"
    empty = m.apply({"id": 1})
    assert empty["email"] is None
    assert empty["name"] == "()"
    assert mapping({"name": {"template": "{a} {b}"}}).apply({"id": 1})["name"] is None


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"a": {"b": [{"c": "deep"}]}}, "deep"),
        ({"a": {"b": [1]}}, None),
        ({"a": {"b": []}}, None),
        ({"a": {"b": "text"}}, None),
        ({"a": None}, None),
        ({"a": {"b": {"0": {"c": "dict key"}}}}, "dict key"),
        ({}, None),
    ],
)
def test_nested_paths(record: dict[str, Any], expected: str | None) -> None:
    m = mapping({"company": "a.b.0.c"})
    assert m.apply({"id": 1, **record})["company"] == expected


def test_string_targets_are_text() -> None:
    m = mapping({"company": "c", "title": {"from": "t", "type": "datetime"}})
    assert m.apply({"id": 1, "c": 12.0, "t": 1704067200000})["company"] == "12"
    assert m.apply({"id": 1, "c": True})["company"] == "true"
    assert m.apply({"id": 1, "c": "  "})["company"] is None
    assert m.apply({"id": 1, "t": "2024-01-01"})["title"] == "2024-01-01T00:00:00Z"
    with pytest.raises(MappingError) as caught:
        m.apply({"id": 1, "c": {"nested": 1}})
    assert (caught.value.field, caught.value.code) == ("company", "type")


def test_require_lists_every_missing_field() -> None:
    m = mapping(
        {"email": "e", "phone": "p", "tags": "t", "custom.industry": "i"},
        require=["email", "phone", "tags", "custom.industry"],
    )
    with pytest.raises(MappingError) as caught:
        m.apply({"id": 1, "e": "", "p": None, "t": []})
    assert caught.value.code == "required"
    assert caught.value.message == (
        "missing required fields: email, phone, tags, custom.industry"
    )
    with pytest.raises(MappingError) as caught:
        m.apply({"id": 1, "e": "a@b.co", "p": "+14155552671", "t": "x"})
    assert caught.value.field == "custom.industry"
    assert caught.value.message == "missing required field: custom.industry"
    full = {"id": 1, "e": "a@b.co", "p": "+14155552671", "t": "x", "i": "Retail"}
    assert m.apply(full)["custom_fields"] == {"industry": "Retail"}


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("industry", 12, "12"),
        ("industry", "  Retail ", "Retail"),
        ("budget", "1000", 1000.0),
        ("budget", 12, 12.0),
        ("seats", "25.0", 25),
        ("active", "yes", True),
        ("active", 0, False),
        ("signed_at", 1704067200000, "2024-01-01T00:00:00Z"),
        ("signed_at", "2023-05-28T23:10:08.000+0200", "2023-05-28T21:10:08Z"),
        ("topics", "ai", ["ai"]),
        ("topics", ["ai", 3, None, "ai", ""], ["ai", "3"]),
    ],
)
def test_custom_field_coercions(field: str, raw: Any, expected: Any) -> None:
    m = mapping({f"custom.{field}": "v"})
    custom = m.apply({"id": 1, "v": raw})["custom_fields"]
    assert custom == {field: expected}
    assert type(custom[field]) is type(expected)


def test_custom_fields_without_value_are_left_out() -> None:
    m = mapping({"custom.topics": {"from": "v", "split": ";"}, "custom.budget": "b"})
    assert m.apply({"id": 1, "v": ";;", "b": None})["custom_fields"] == {}


@pytest.mark.parametrize(
    ("fields", "record", "field", "code", "message"),
    [
        ({"custom.seats": "v"}, {"v": "many"}, "custom.seats", "type",
         "'many' is not an integer"),
        ({"score": "v"}, {"v": "4.5"}, "score", "type", "'4.5' is not an integer"),
        ({"score": {"from": "v", "type": "int"}}, {"v": "x"}, "score", "type",
         "'x' is not an integer"),
        ({"email": {"from": "v", "transform": ["email"]}}, {"v": "bad@"}, "email",
         "transform", "transform 'email' failed: invalid email 'bad@'"),
        ({"status": "v"}, {"v": "zombie"}, "status", "invalid_status",
         "'zombie' is not a lead status (new, contacted, qualified, converted, lost)"),
    ],
)  # fmt: skip
def test_apply_failures(
    fields: dict[str, Any], record: dict[str, Any], field: str, code: str, message: str
) -> None:
    with pytest.raises(MappingError) as caught:
        mapping(fields).apply({"id": 1, **record})
    assert (caught.value.field, caught.value.code) == (field, code)
    assert caught.value.message.startswith(message)


def test_status_is_case_insensitive() -> None:
    assert (
        mapping({"status": "s"}).apply({"id": 1, "s": " Qualified "})["status"]
        == "qualified"
    )


def test_phone_is_always_e164() -> None:
    plain = mapping({"phone": "p"}, phone_region="us")
    assert plain.apply({"id": 1, "p": "(415) 555-2671"})["phone"] == "+14155552671"
    assert plain.apply({"id": 1, "p": 4155552671})["phone"] == "+14155552671"
    assert plain.apply({"id": 1, "p": "+442079460958"})["phone"] == "+442079460958"
    no_region = mapping({"phone": "p"})
    assert no_region.apply({"id": 1, "p": "+1 415 555 2671"})["phone"] == "+14155552671"
    with pytest.raises(MappingError) as caught:
        no_region.apply({"id": 1, "p": "(415) 555-2671"})
    assert (caught.value.field, caught.value.code) == ("phone", "transform")
    assert caught.value.message.startswith("transform 'e164' failed: invalid phone")
    assert "phone_region" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "expected"), [(123, "123"), (123.0, "123"), (" abc ", "abc"), ("0", "0")]
)
def test_lead_id_is_text(raw: Any, expected: str) -> None:
    assert mapping({}).apply({"id": raw})["lead_id"] == expected


@pytest.mark.parametrize(
    "record", [{}, {"id": None}, {"id": ""}, {"id": {"x": 1}}, {"id": True}]
)
def test_missing_lead_id(record: dict[str, Any]) -> None:
    with pytest.raises(MappingError) as caught:
        mapping({"email": "e"}).apply(record)
    assert (caught.value.field, caught.value.code) == ("lead_id", "missing_lead_id")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "2024-09-11T13:27:39.356Z",
            datetime(2024, 9, 11, 13, 27, 39, 356000, tzinfo=UTC),
        ),
        ("2023-05-28T21:10:08.000+0000", datetime(2023, 5, 28, 21, 10, 8, tzinfo=UTC)),
        ("2021-12-10 18:09:45", datetime(2021, 12, 10, 18, 9, 45, tzinfo=UTC)),
        (1704067200000, datetime(2024, 1, 1, tzinfo=UTC)),
        ("1704067200000", datetime(2024, 1, 1, tzinfo=UTC)),
        ("", None),
    ],
)
def test_updated_at_formats(raw: Any, expected: datetime | None) -> None:
    m = mapping({}, updated_at="meta.updated")
    assert m.apply({"id": 1, "meta": {"updated": raw}})["source_updated_at"] == expected


def test_bad_updated_at_fails_the_record() -> None:
    with pytest.raises(MappingError) as caught:
        mapping({}, updated_at="u").apply({"id": 1, "u": "last tuesday"})
    assert (caught.value.field, caught.value.code) == ("source_updated_at", "transform")


def test_fingerprint() -> None:
    spec = yaml.safe_load(HUBSPOT_MAPPING)
    industry = [LeadFieldSpec(name="industry")]
    first = compile_mapping(spec, lead_fields=industry).fingerprint
    assert len(first) == 64
    assert int(first, 16) >= 0
    reordered = dict(reversed(list(spec.items())))
    assert compile_mapping(reordered, lead_fields=industry).fingerprint == first
    unrelated = [*industry, LeadFieldSpec(name="region")]
    assert compile_mapping(spec, lead_fields=unrelated).fingerprint == first
    retyped = [LeadFieldSpec(name="industry", type="list")]
    assert compile_mapping(spec, lead_fields=retyped).fingerprint != first
    changed = yaml.safe_load(HUBSPOT_MAPPING)
    changed["fields"]["status"]["default"] = "contacted"
    assert compile_mapping(changed, lead_fields=industry).fingerprint != first
    changed = yaml.safe_load(HUBSPOT_MAPPING)
    changed["require"] = ["email", "phone"]
    assert compile_mapping(changed, lead_fields=industry).fingerprint != first


# --- compile-time problems -------------------------------------------------------

BASE = {"lead_id": "id", "fields": {"email": "properties.email"}}


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ({"lead_id": None}, "lead_id", "missing: the path of the record's lead_id"),
        ({"lead_id": "a..b"}, "lead_id", "invalid path 'a..b': empty segment"),
        (
            {"updated_at": "modified at "},
            "updated_at",
            "invalid path 'modified at ': segment",
        ),
        (
            {"feilds": {}},
            "feilds",
            "unknown key 'feilds' (allowed: lead_id, updated_at",
        ),
        ({"phone_region": "XX"}, "phone_region", "unknown region 'XX'"),
        ({"require": ["phone"]}, "require[0]", "'phone' is required but not mapped"),
        ({"require": "email, phone"}, "require[0]", "'email, phone' is required but"),
        ({"require": {"email": 1}}, "require", "require takes a list of lead fields"),
        ({"fields": ["email"]}, "fields", "fields must be a mapping"),
    ],
)
def test_top_level_problems(change: dict[str, Any], key: str, message: str) -> None:
    spec = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    error = problem(spec)
    assert error.key == key
    assert error.message.startswith(message), error.message
    assert error.problems == []


@pytest.mark.parametrize(
    ("target", "spec", "key", "message"),
    [
        ("email", "properties. email", "fields.email", "invalid path 'properties. e"),
        ("email", {"from": ".email"}, "fields.email.from", "invalid path '.email'"),
        ("email", {"from": 5}, "fields.email.from", "a path must be text"),
        ("fax", "f", "fields.fax", "unknown lead field 'fax' (known: email,"),
        ("custom.size", "s", "fields.custom.size",
         "custom field 'size' is not declared in lead_fields"),
        ("email", {"transform": ["strip"]}, "fields.email",
         "give exactly one of from, coalesce, template, value"),
        ("email", {"from": "a", "value": "b"}, "fields.email",
         "give exactly one of from, coalesce, template, value; found from, value"),
        ("email", {"from": "a", "frm": "b"}, "fields.email.frm", "unknown key 'frm'"),
        ("email", ["a"], "fields.email", "a field is a path or a mapping"),
        ("phone", {"from": "p", "transform": ["e165"]}, "fields.phone.transform[0]",
         "unknown transform 'e165'"),
        ("title", {"from": "t", "transform": ["strip", {"truncate": 0}]},
         "fields.title.transform[1]", "'truncate' needs a length >= 1"),
        ("title", {"from": "t", "transform": "shout"}, "fields.title.transform",
         "unknown transform 'shout'"),
        ("tags", {"from": "t", "split": ""}, "fields.tags.split", "'split': the sep"),
        ("score", {"from": "s", "type": "integer"}, "fields.score.type",
         "type must be one of int, float, bool, string, datetime"),
        ("name", {"template": "{first} {last"}, "fields.name.template",
         "malformed template: unbalanced '{'"),
        ("name", {"template": "{first} {}"}, "fields.name.template",
         "malformed template: placeholder {}: empty placeholder"),
        ("name", {"template": "{first .name}"}, "fields.name.template",
         "malformed template: placeholder {first .name}: invalid path"),
        ("name", {"template": "a } b"}, "fields.name.template", "malformed template"),
        ("email", {"coalesce": ["a", "b. c"]}, "fields.email.coalesce[1]",
         "invalid path 'b. c'"),
        ("email", {"coalesce": "a"}, "fields.email.coalesce", "coalesce takes a list"),
        ("status", {"from": "s", "map": ["NEW"]}, "fields.status.map",
         "map must be a mapping"),
        ("status", {"from": "s", "map": {"OPEN": "open"}}, "fields.status.map.OPEN",
         "'open' is not a lead status"),
        ("status", {"from": "s", "default": "fresh"}, "fields.status.default",
         "'fresh' is not a lead status"),
        ("status", {"value": "hot"}, "fields.status.value", "'hot' is not a lead"),
    ],
)  # fmt: skip
def test_field_problems(target: str, spec: Any, key: str, message: str) -> None:
    error = problem({"lead_id": "id", "fields": {target: spec}})
    assert error.key == key
    assert error.message.startswith(message), error.message


def test_problems_are_located_and_reported_together() -> None:
    located: list[tuple[str | int, ...]] = []
    lines = {("lead_id",): 1, ("fields", "phone", "transform", 0): 5}

    def locate(path: tuple[str | int, ...]) -> int | None:
        located.append(path)
        return lines.get(path)

    spec = {
        "lead_id": "id. with space",
        "fields": {
            "phone": {"from": "p", "transform": [{"e164": {"region": "ZZ"}}]},
            "custom.size": "s",
        },
        "require": ["email"],
    }
    with pytest.raises(ConfigError) as caught:
        compile_mapping(spec, file="mappings/hubspot.yaml", locate=locate)
    error = caught.value
    assert error.message == "4 problems in mapping"
    assert error.file == "mappings/hubspot.yaml"
    assert [(p.key, p.line, p.file) for p in error.problems] == [
        ("lead_id", 1, "mappings/hubspot.yaml"),
        ("fields.phone.transform[0]", 5, "mappings/hubspot.yaml"),
        ("fields.custom.size", None, "mappings/hubspot.yaml"),
        ("require[0]", None, "mappings/hubspot.yaml"),
    ]
    assert located == [
        ("lead_id",),
        ("fields", "phone", "transform", 0),
        ("fields", "custom.size"),
        ("require", 0),
    ]
    assert str(error).startswith(
        "mappings/hubspot.yaml: 4 problems in mapping\n"
        "  - mappings/hubspot.yaml:1: lead_id: invalid path 'id. with space'"
    )


def test_single_problem_is_raised_as_is() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_mapping(BASE | {"extra": 1}, file="m.yaml", locate=lambda path: 9)
    assert str(caught.value) == (
        "m.yaml:9: extra: unknown key 'extra' "
        "(allowed: lead_id, updated_at, fields, require, phone_region)"
    )


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="a mapping must be a YAML mapping"):
        compile_mapping(["lead_id"])  # type: ignore[arg-type]


def test_mapping_without_fields() -> None:
    m = compile_mapping({"lead_id": "Id"})
    assert m.targets == ()
    assert m.apply({"Id": "x"})["tags"] == []
    assert m.fingerprint == compile_mapping({"lead_id": "Id"}).fingerprint
    assert m.fingerprint != compile_mapping({"lead_id": "id"}).fingerprint


def test_valid_paths() -> None:
    m = mapping({"email": "$properties.e-mail_1.0", "company": "Company"})
    assert m.source_paths == frozenset({"id", "$properties.e-mail_1.0", "Company"})


def test_paths_may_hold_inner_spaces_for_csv_headers() -> None:
    mapping = compile_mapping(
        {
            "lead_id": "Record ID",
            "fields": {
                "email": "Email Address",
                "name": {"template": "{First Name} {Last Name}"},
            },
        }
    )
    lead = mapping.apply(
        {
            "Record ID": "7",
            "Email Address": "a@b.co",
            "First Name": "Ada",
            "Last Name": "Lovelace",
        }
    )
    assert (lead["lead_id"], lead["email"], lead["name"]) == (
        "7",
        "a@b.co",
        "Ada Lovelace",
    )
