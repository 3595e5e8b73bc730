"""The scoring endpoints' answers, encoded once by `serving.service.json_answers`."""

from __future__ import annotations

import json
import math

from serving.service import json_answers


def test_answers_encode_as_the_standard_json_does() -> None:
    answers = [
        {
            "customer_id": "Ç-7",
            "churn_probability": 0.909388475161946,
            "reasons": [{"feature": "spend", "value": None, "contribution": 1e-05, "phrase": "spend unknown"}],
            "rule_hits": [],
            "expected_loss": 1234.5,
        },
        {"customer_id": "x", "error": "unknown customer_id 'x': no online features"},
    ]
    response = json_answers(answers)
    assert response.media_type == "application/json"
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.body) == answers == json.loads(json.dumps(answers))


def test_a_non_finite_number_becomes_null_not_invalid_json() -> None:
    body = json_answers([{"churn_probability": math.nan, "expected_loss": math.inf}]).body
    assert json.loads(body, parse_constant=lambda name: f"invalid {name}") == [
        {"churn_probability": None, "expected_loss": None}
    ]
