"""Which real rows a model never sees: the holdout, one rule for every table.

Privacy is measured against rows the model did not train on, so the split belongs to
training (this room) and the assess room reads it. A single feature table and every table
of a set are split the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: Below this many real rows nothing is held out (a holdout of one or two rows measures
#: nothing, and the model would lose a tenth of very little data).
MIN_ROWS_FOR_HOLDOUT = 10


def split_holdout(
    frame: pd.DataFrame,
    share: float,
    seed: int | None = None,
    *,
    columns: Sequence[str] | None = None,
    salt: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split real rows into (train, holdout) by *distinct row*, seeded.

    Rows identical on ``columns`` (the measured ones; default all) form one group and a
    group is held out whole. Why: privacy is measured against the holdout as "rows the
    model never saw". A duplicated row split across both sides is a held-out row at
    distance 0 from training; with 3% duplicates the near-copy yardstick (the closest
    1% of held-out rows) became 0 and no near copy was caught. Ids issued fresh must not be
    in ``columns``: they make every row distinct and would undo the grouping.

    Groups are taken in a seeded random order while they fit into ``share`` of the rows
    (a group larger than what is left is skipped), so the holdout size is as requested
    wherever the groups allow. The holdout is empty when ``share`` is 0 or the table has
    fewer than :data:`MIN_ROWS_FOR_HOLDOUT` rows (see :func:`holdout_shortfall`).
    """
    empty = frame.iloc[0:0].reset_index(drop=True)
    held = holdout_mask(frame, share, seed, columns=columns, salt=salt)
    if not held.any():
        return frame.reset_index(drop=True), empty
    return (
        frame.loc[~held].reset_index(drop=True),
        frame.loc[held].reset_index(drop=True),
    )


def holdout_mask(
    frame: pd.DataFrame,
    share: float,
    seed: int | None = None,
    *,
    columns: Sequence[str] | None = None,
    salt: str | None = None,
) -> Any:
    """Which rows :func:`split_holdout` holds out (a boolean array; all False for none).

    One rule for every table of every run: a single feature table and each table of a set
    are split the same way (the set engine keeps row labels, so it needs the mask).

    With a ``salt`` (a model that may be reused on later runs) a row is held out when the
    keyed hash of its content (``columns``) falls below ``share``: the same row lands on
    the same side in every run with that salt, so the rows a reused model was trained on
    never reach a later run's holdout (memorised rows would look like "unseen" closeness
    and weaken the privacy gates); a row new since then is unseen and may be held out.
    Equal rows share their hash, so they stay together as with the seeded split; the
    holdout's size is ``share`` of the rows up to chance (binomial), not exactly.
    """
    import numpy as np
    import pandas as pd

    none = np.zeros(len(frame), dtype=bool)
    if share <= 0 or len(frame) < MIN_ROWS_FOR_HOLDOUT:
        return none
    keys = list(columns) if columns is not None else list(frame.columns)
    if salt is not None:
        return _keyed_mask(frame, keys, share, salt, none)
    if keys:
        hashes = pd.util.hash_pandas_object(frame[keys].astype(object), index=False).to_numpy()
        codes = pd.factorize(hashes)[0]
    else:
        codes = np.arange(len(frame))
    sizes = np.bincount(codes)
    order = np.random.default_rng(seed if seed is not None else 0).permutation(sizes.size)
    target = int(round(len(frame) * share))
    cumulative = np.cumsum(sizes[order])
    taken = int(np.searchsorted(cumulative, target, side="right"))  # groups that fit whole
    chosen = list(order[:taken])
    held = int(cumulative[taken - 1]) if taken else 0
    for group in order[taken:]:  # fill the rest with the groups that still fit
        if held >= target:
            break
        if held + sizes[group] <= target:
            chosen.append(group)
            held += int(sizes[group])
    mask = np.isin(codes, np.asarray(chosen, dtype=codes.dtype))
    return none if mask.all() else mask  # never hold out everything


def _keyed_mask(
    frame: pd.DataFrame, keys: Sequence[str], share: float, salt: str, none: Any
) -> Any:
    """Rows whose keyed hash (pandas' SipHash with ``salt`` as the 16-byte key) of the
    ``keys`` columns falls below ``share`` of the hash range."""
    import numpy as np
    import pandas as pd

    key = (salt * 16)[:16] if len(salt) < 16 else salt[:16]
    if not keys:
        return none
    hashes = pd.util.hash_pandas_object(
        frame[list(keys)].astype(object), index=False, hash_key=key
    ).to_numpy(dtype=np.uint64)
    mask = (hashes / float(2**64)) < share
    return none if mask.all() else mask  # never hold out everything
