"""What a Zoho webhook body means: every wrapper key, both body encodings, the signature, unusable bodies."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tds_pipelines.entities import ENTITIES
from tds_pipelines.zoho.webhooks import (
    UnusableDelivery,
    decode_body,
    parse_delivery,
    signature,
    signature_matches,
)

WRAPPED = [(spec.name, spec.singular or spec.get_key, spec.id_field) for spec in ENTITIES]


@pytest.mark.parametrize("name, wrapper, id_field", WRAPPED)
def test_every_entity_is_found_from_its_wrapper_key(name, wrapper, id_field):
    record = {id_field: "42", "contact_type": "vendor" if name == "vendors" else "customer"}
    delivery = parse_delivery({wrapper: record})
    assert (delivery.entity, delivery.zoho_id, delivery.record, delivery.deleted) == (name, "42", record, False)


def test_customer_payments_also_answer_to_zoho_module_name_and_the_url_can_name_the_entity():
    assert parse_delivery({"customerpayment": {"payment_id": "7"}}).entity == "customer_payments"
    assert parse_delivery({"payment_id": "7"}, entity="customer_payments").zoho_id == "7"  # a bare record
    assert parse_delivery({"contact": {"contact_id": "1"}}, entity="vendors").entity == "vendors"


def test_delete_event_and_numeric_ids():
    delivery = parse_delivery({"invoice": {"invoice_id": 982000000567114}}, event="deleted")
    assert delivery.deleted and delivery.zoho_id == "982000000567114"


def test_the_key_names_one_version_of_one_record():
    first = parse_delivery({"item": {"item_id": "1", "name": "a", "last_modified_time": "2026-01-01"}})
    again = parse_delivery({"item": {"name": "a", "last_modified_time": "2026-01-01", "item_id": "1"}})
    edited = parse_delivery({"item": {"item_id": "1", "name": "b", "last_modified_time": "2026-01-01"}})
    deleted = parse_delivery(
        {"item": {"item_id": "1", "name": "a", "last_modified_time": "2026-01-01"}}, event="deleted"
    )
    assert first.key == again.key and len({first.key, edited.key, deleted.key}) == 3
    assert parse_delivery({"item": {"item_id": "1", "name": "x\ud800"}}).key  # any string hashes


@pytest.mark.parametrize(
    "document, entity, reason",
    [
        ([1, 2], None, "not an object"),
        ({"quote": {"quote_id": "1"}}, None, "no known record key"),
        ({"invoice": {"total": 5}}, None, "no invoice_id"),
        ({"invoice": "text"}, None, "not a JSON object"),
        ({"invoice_id": "1"}, "quotes", "unknown entity 'quotes'"),
    ],
)
def test_unusable_bodies_say_why(document, entity, reason):
    with pytest.raises(UnusableDelivery, match=reason):
        parse_delivery(document, entity=entity)


def test_json_and_form_bodies_decode_to_the_same_document():
    document = {"salesorder": {"salesorder_id": "5", "line_items": [{"line_item_id": "9"}]}}
    body = json.dumps(document).encode()
    assert decode_body(body, "application/json") == document
    form = urlencode({"JSONString": json.dumps(document)}).encode()
    assert decode_body(form, "application/x-www-form-urlencoded; charset=UTF-8") == document
    with pytest.raises(UnusableDelivery, match="not JSON"):
        decode_body(b"<xml/>", "application/json")
    with pytest.raises(UnusableDelivery, match="JSONString"):
        decode_body(b"a=1", "application/x-www-form-urlencoded")


def test_signature_is_hmac_sha256_of_sorted_params_then_body():
    body = b'{"item": {"item_id": "1"}}'
    expected = signature("s3cretKey123", {"b": "2", "a": "1"}, body)
    assert expected == signature("s3cretKey123", {"a": "1", "b": "2"}, body)
    assert signature_matches("s3cretKey123", {"a": "1", "b": "2"}, body, expected.upper())
    assert not signature_matches("s3cretKey123", {"a": "1"}, body, expected)
    assert not signature_matches("s3cretKey123", {}, body, None)
