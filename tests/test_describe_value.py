"""gen3c.errors.describe_value: what a one-line refusal says it got, worded as English is."""

from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

from gen3c.errors import describe_value, with_article


def test_a_type_name_starting_with_a_vowel_sound_takes_an():
    # Before: "a object", "a Image", "a OrderedDict of 2 items".
    assert describe_value(object()) == "an object"
    assert describe_value(Image.new("RGB", (2, 2))) == "an Image"
    assert describe_value(OrderedDict(a=1, b=2)) == "an OrderedDict of 2 items"
    assert [with_article(noun) for noun in ("object", "Image", "tuple", "numpy array", "UUID", "UserDict", "Event")] == [
        "an object", "an Image", "a tuple", "a numpy array", "a UUID", "a UserDict", "an Event"
    ]  # fmt: skip


def test_one_item_is_one_item():
    # Before: "a list of 1 items".
    assert describe_value([1]) == "a list of 1 item"
    assert describe_value({"frames": []}) == "a dict of 1 item"
    assert describe_value(()) == "a tuple of 0 items" and describe_value({1, 2, 3}) == "a set of 3 items"


def test_arrays_numbers_and_text_are_worded_as_before():
    assert describe_value(np.zeros((32, 48))) == "a numpy array of shape (32, 48)"
    assert describe_value(torch.ones(1, 4, 4)) == "a torch tensor of shape (1, 4, 4)"
    assert describe_value(5) == "int '5'" and describe_value(None) == "NoneType 'None'" and describe_value("60") == "str '60'"
    assert describe_value(torch.float16) == "dtype 'torch.float16'"
