"""The configs: JSON round trips, checks, and old files that still load."""

import json

import pytest

from dealwithit.config import VAEConfig, VectorConfig


def test_vector_config_round_trips_through_json(tmp_path):
    config = VectorConfig(conditions=("Male",), target_probability=0.9, inverse_l2=0.01)
    assert VectorConfig.from_json(config.to_json(tmp_path / "config.json")) == config


def test_old_vector_config_with_l2_loads_as_inverse_l2(tmp_path):
    """``l2`` was scikit-learn's C under a misleading name; old files map it, same value."""
    values = VectorConfig().to_dict()
    values["l2"] = values.pop("inverse_l2") * 5
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    assert VectorConfig.from_json(path).inverse_l2 == pytest.approx(0.005)


def test_unknown_fields_are_still_refused():
    with pytest.raises(ValueError, match=r"Received unknown: \['l3'\]"):
        VectorConfig.from_dict({"l3": 1.0})
    with pytest.raises(ValueError, match="unknown"):
        VAEConfig.from_dict({"l2": 1.0})  # the rename belongs to VectorConfig only


@pytest.mark.parametrize(
    "changes, message",
    [({"target_probability": 1.0}, "target_probability"), ({"inverse_l2": 0.0}, "inverse_l2")],
)
def test_vector_config_refuses_values_auto_alpha_cannot_use(changes, message):
    with pytest.raises(ValueError, match=message):
        VectorConfig(**changes)


def test_vae_config_refuses_a_negative_logit_weight():
    with pytest.raises(ValueError, match="logit_weight"):
        VAEConfig(logit_weight=-1.0)
    assert VAEConfig.from_dict({}).logit_weight == 0.0  # configs saved before it load as off


def test_a_vae_config_saved_before_the_logits_term_loads_with_it_off():
    """The shipped weights' config has no ``logit_weight``: they were trained without it."""
    old = VAEConfig().to_dict()
    del old["logit_weight"]
    assert VAEConfig.from_dict(old).logit_weight == 0.0
    assert VAEConfig().logit_weight == 100.0  # today's default
    assert VAEConfig.from_dict(VAEConfig().to_dict()) == VAEConfig()
