"""Make great-expectations do less work per expectation and per Data Docs page, without changing what it computes.

Measured on the 120-patient demo (1,230 expectations in 128 suites, ``tests/bench/gx_validation.py``), GX spent
most of its time on work whose result never changes during a validation:

* ``Expectation.configuration`` is a property that rebuilds an ``ExpectationConfiguration`` from a pydantic
  ``.dict()`` of the expectation (deep-copying every value set) on *every* access, and GX reads it ~70 times per
  expectation while planning and evaluating its metrics: a third of the validation time.
  :func:`cached_configurations` memoises it per expectation object while a validation runs (GX builds the objects
  it validates from the suite's configurations and never mutates them during a validation; the cache is dropped
  when the validation ends, so an expectation edited afterwards is read afresh).
* Every Data Docs page is rendered by a new Jinja view with its own Jinja environment, so every template is
  parsed and compiled again for every page: half the rendering time. :func:`install` gives all of them one
  shared in-memory bytecode cache (templates compiled once per process).
* The pandas engine fingerprints every batch by hashing the whole DataFrame (twice per suite: once for the batch,
  once for its validator) only to store the hash as a batch marker nobody reads. :func:`install` skips it.
"""

import contextlib
from collections.abc import Iterator
from typing import Any

_installed = False


def _memory_bytecode_cache() -> Any:
    """A process-wide in-memory Jinja bytecode cache (keyed by template name and source checksum)."""
    import jinja2

    class MemoryBytecodeCache(jinja2.BytecodeCache):
        def __init__(self) -> None:
            self.codes: dict[str, bytes] = {}

        def load_bytecode(self, bucket: Any) -> None:
            code = self.codes.get(bucket.key)
            if code is not None:
                bucket.bytecode_from_string(code)

        def dump_bytecode(self, bucket: Any) -> None:
            self.codes[bucket.key] = bucket.bytecode_to_string()

    return MemoryBytecodeCache()


def install() -> None:
    """Apply the process-wide settings (idempotent): shared template cache, no batch fingerprints."""
    global _installed
    if _installed:
        return
    from great_expectations.execution_engine import pandas_execution_engine
    from great_expectations.render.view import view

    # A DataFrame at or above this size is not fingerprinted (GX's own switch for big frames); 0 = never.
    pandas_execution_engine.HASH_THRESHOLD = 0

    shared = _memory_bytecode_cache()
    original_init = view.DefaultJinjaView.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.env.bytecode_cache = shared

    view.DefaultJinjaView.__init__ = init  # type: ignore[method-assign]
    _installed = True


@contextlib.contextmanager
def cached_configurations() -> Iterator[None]:
    """Within the block, each expectation object builds its ``configuration`` once (see the module docstring)."""
    from great_expectations.expectations.expectation import Expectation

    original = Expectation.__dict__["configuration"]
    if getattr(original.fget, "_guttrial_cached", False):  # nested: the outer block's cache serves
        yield
        return
    cache: dict[int, tuple[Any, Any]] = {}

    def configuration(self: Any) -> Any:
        hit = cache.get(id(self))
        if hit is None or hit[0] is not self:
            # The object itself is kept with its configuration, so its id cannot be reused while cached.
            hit = (self, original.fget(self))
            cache[id(self)] = hit
        return hit[1]

    cached = property(configuration, doc=original.__doc__)
    cached.fget._guttrial_cached = True  # type: ignore[attr-defined]
    Expectation.configuration = cached  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Expectation.configuration = original  # type: ignore[method-assign]
        cache.clear()


# ------------------------------------------------------------------------------------------------ pre-screen
#
# GX's remaining cost is its planning and bookkeeping per expectation (metric graphs, pydantic objects), not the
# pandas work. For the common expectation types the pandas work is one vectorised line, the same line GX runs
# (its ``_pandas`` metric implementations, quoted beside each rule below). The pre-screen runs that line on the
# rows GX would consider (nulls dropped the way GX drops them) and reports the expectations it *proves* pass.
# Everything else -- any failure, any exception, an empty domain, a ``row_condition``, an unusual dtype or
# argument, an expectation type not listed -- goes to GX as before, and failures are always re-examined by GX
# in full, so a verdict of GX is never replaced by a guess: the pre-screen can only skip GX's overhead for an
# expectation that holds.


def _nonnull(frame: Any, column: str) -> Any:
    """The column's values on GX's domain for column map expectations (``filter_column_isnull``)."""
    values = frame[column]
    return values[values.notna()]


def _all_true(condition: Any) -> bool:
    """Every entry is a real ``True`` (a nullable boolean with NA, or a non-boolean result, proves nothing)."""
    import pandas as pd

    if not pd.api.types.is_bool_dtype(condition.dtype) or condition.isna().any():
        return False
    return bool(condition.all())


def _between(values: Any, kwargs: dict[str, Any]) -> bool:
    import pandas as pd

    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is None and high is None:  # GX raises: let it
        return False
    if low is not None and high is not None and low > high:
        return False
    dtype = values.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    dated = pd.api.types.is_datetime64_any_dtype(dtype) and not isinstance(low or high, str)
    if not (numeric or dated):  # object/str columns: GX compares value by value with type rules; let it
        return False
    # ColumnValuesBetween._pandas_vectorized
    ok = pd.Series(True, index=values.index)
    if low is not None:
        ok &= (values > low) if kwargs.get("strict_min") else (values >= low)
    if high is not None:
        ok &= (values < high) if kwargs.get("strict_max") else (values <= high)
    return _all_true(ok)


def _proves_pass(kind: str, kwargs: dict[str, Any], frame: Any) -> bool:
    import pandas as pd

    if kwargs.get("row_condition") or kwargs.get("condition_parser"):
        return False
    if any(isinstance(v, dict) for v in kwargs.values()):  # suite parameters ({"$PARAMETER": ...}): GX resolves
        return False
    if kind == "expect_table_columns_to_match_set":
        expected, actual = set(kwargs.get("column_set") or ()), set(frame.columns)
        if kwargs.get("exact_match", True) is False:
            return expected <= actual
        return expected == actual and kwargs.get("column_set") is not None
    if kind == "expect_table_row_count_to_equal":
        return isinstance(kwargs.get("value"), int) and len(frame) == kwargs["value"]
    if len(frame) == 0:
        return False
    column = kwargs.get("column")
    if column is not None and column not in frame.columns:
        return False
    if kind == "expect_column_values_to_not_be_null":  # ColumnValuesNonNull: ~column.isnull()
        return not frame[column].isna().any()
    if kind == "expect_column_values_to_be_null":  # ColumnValuesNull: column.isnull()
        return bool(frame[column].isna().all())
    if kind == "expect_compound_columns_to_be_unique":  # CompoundColumnsUnique: ~duplicated(keep=False)
        columns = list(kwargs.get("column_list") or ())
        if not columns or any(c not in frame.columns for c in columns):
            return False
        rows = frame[columns]
        mode = kwargs.get("ignore_row_if", "all_values_are_missing")
        if mode == "all_values_are_missing":
            rows = rows[~rows.isna().all(axis=1)]
        elif mode == "any_value_is_missing":
            rows = rows[~rows.isna().any(axis=1)]
        elif mode != "never":
            return False
        return len(rows) > 0 and not rows.duplicated(keep=False).any()
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":  # a >= b (or_equal) / a > b
        a, b = kwargs.get("column_A"), kwargs.get("column_B")
        if a not in frame.columns or b not in frame.columns:
            return False
        pair = frame[[a, b]]
        mode = kwargs.get("ignore_row_if", "both_values_are_missing")
        if mode == "either_value_is_missing":
            pair = pair[pair.notna().all(axis=1)]
        elif mode == "both_values_are_missing":
            pair = pair[pair.notna().any(axis=1)]
        elif mode != "neither":
            return False
        if len(pair) == 0 or pair.isna().any().any():  # a comparison with a missing value: let GX decide
            return False
        return _all_true(pair[a] >= pair[b] if kwargs.get("or_equal") else pair[a] > pair[b])
    if column is None:
        return False
    values = _nonnull(frame, column)
    if len(values) == 0:
        return False
    if kind.endswith("_in_set") and pd.api.types.is_datetime64_any_dtype(values.dtype):
        return False  # GX parses the value set as dates first (and fails on text that is no date)
    if kind == "expect_column_values_to_be_in_set":  # ColumnValuesInSet: column.isin(value_set)
        value_set = kwargs.get("value_set")
        return value_set is not None and _all_true(values.isin(value_set))
    if kind == "expect_column_values_to_not_be_in_set":  # ~column.isin(value_set)
        value_set = kwargs.get("value_set")
        return value_set is not None and _all_true(~values.isin(value_set))
    if kind == "expect_column_values_to_match_regex":  # column.astype(str).str.contains(regex)
        regex = kwargs.get("regex")
        return isinstance(regex, str) and _all_true(values.astype(str).str.contains(regex))
    if kind == "expect_column_values_to_be_unique":  # ~column.duplicated(keep=False)
        return not values.duplicated(keep=False).any()
    if kind == "expect_column_values_to_be_between":
        return _between(values, kwargs)
    return False


def proven_passes(configurations: Any, frame: Any) -> set[Any]:
    """Ids of the expectations (by their configurations) that certainly pass on ``frame`` (see above)."""
    proven: set[Any] = set()
    for config in configurations:
        try:
            if config.id is not None and _proves_pass(config.type, dict(config.kwargs), frame):
                proven.add(config.id)
        except Exception:  # anything unexpected: GX decides
            continue
    return proven
