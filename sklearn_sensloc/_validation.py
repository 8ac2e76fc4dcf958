"""Checks of parameter values that functions outside an estimator share: one of each.

Estimators check their parameters with scikit-learn's ``_parameter_constraints``;
these serve plain functions and methods, with the same messages everywhere.
"""

from numbers import Integral


def is_int(value):
    """Whether ``value`` is an integer (numpy's included), and not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_positive_int(value, name, *, allow_none=False):
    """``value`` as an int >= 1 (None stays None when ``allow_none``); else a ValueError naming it."""
    if value is None and allow_none:
        return None
    if not is_int(value) or value < 1:
        also = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a positive int{also}; got {value!r}.")
    return int(value)


def check_image_size(value, name="image_size", *, minimum=1):
    """``(height, width)`` in pixels from an ``image_size`` value; None stays None.

    The package's one meaning of ``image_size``: an int ``n`` is an ``n x n``
    square, a pair is ``(height, width)``; ``--image-size`` on the command
    line is the same, typed ``N`` or ``HxW``.
    """
    if value is None:
        return None
    if is_int(value):
        size = (value, value)
    else:
        try:
            size = tuple(value)
        except TypeError:
            size = ()
    if len(size) != 2 or not all(is_int(side) and side >= minimum for side in size):
        raise ValueError(
            f"{name} must be an int n (n x n pixels) or a pair (height, width) of ints >= "
            f"{minimum}; got {value!r}."
        )
    return int(size[0]), int(size[1])
