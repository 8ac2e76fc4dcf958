"""Checks of parameter values that functions outside an estimator share: one of each.

Also how a public parameter is renamed: the old name keeps working, with a
``FutureWarning``, for two releases.

Estimators check their parameters with scikit-learn's ``_parameter_constraints``;
these serve plain functions and methods, with the same messages everywhere.
"""

import warnings
from numbers import Integral

#: Saliency methods the gradient engine computes attributions with: the values of
#: ``method``, which the engine checks and the transformer's constraints name.
METHODS = ("gradient", "smoothgrad", "gradient_x_input", "integrated_gradients", "gradcam")


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


#: Default of a renamed parameter's old name: scikit-learn's marker that it
#: was not given.
DEPRECATED = "deprecated"


def renamed_parameter(where, old_name, old_value, new_name, new_value, new_default):
    """The value of a parameter renamed ``old_name`` -> ``new_name``, warning when the old name is used.

    The old name keeps working for two releases (renamed in 0.2, removed in
    0.4) with a ``FutureWarning``, as scikit-learn deprecates names; giving
    both names is an error.
    """
    if isinstance(old_value, str) and old_value == DEPRECATED:
        return new_value
    if new_value is not new_default:
        raise TypeError(f"{where} got both {old_name} and {new_name}; pass only {new_name}.")
    warn_renamed(f"{where}'s {old_name}", new_name, stacklevel=4)
    return old_value


def warn_renamed(old, new, stacklevel=3):
    """The ``FutureWarning`` of a public name ``old`` renamed ``new`` (in 0.2, removed in 0.4)."""
    warnings.warn(f"{old} was renamed {new} in 0.2 and will be removed in 0.4; use {new}.",
                  FutureWarning, stacklevel=stacklevel)
