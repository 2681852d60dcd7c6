"""Sampling: seeded, reproducible, right moments, serializable."""

import keras
import numpy as np
import pytest
from keras import ops

from dealwithit.layers import Sampling


def test_seeded_sampling_is_reproducible_with_right_std():
    z_mean = np.full((20_000, 2), 3.0, "float32")
    z_log_var = np.log(np.full((20_000, 2), 0.25, "float32"))
    first = ops.convert_to_numpy(Sampling(seed=7)([z_mean, z_log_var]))
    second = ops.convert_to_numpy(Sampling(seed=7)([z_mean, z_log_var]))
    np.testing.assert_array_equal(first, second)
    assert first.mean() == pytest.approx(3.0, abs=0.02)
    assert first.std() == pytest.approx(0.5, rel=0.02)


def test_sampling_draws_fresh_noise_each_call():
    layer = Sampling(seed=1)
    zeros = np.zeros((4, 3), "float32")
    a = ops.convert_to_numpy(layer([zeros, zeros]))
    b = ops.convert_to_numpy(layer([zeros, zeros]))
    assert not np.allclose(a, b)


def test_sampling_get_config_round_trips():
    layer = Sampling(seed=3, name="s")
    clone = Sampling.from_config(layer.get_config())
    assert clone.seed == 3 and clone.name == "s"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, Sampling) and restored.seed == 3


def test_sampling_rejects_non_integer_seed():
    with pytest.raises(ValueError, match="Expected seed to be an int"):
        Sampling(seed="one")
