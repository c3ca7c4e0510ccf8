"""Make a folder belong to another local user, as the staging checks see it.

As root the folder is really given away (``chown``). A developer who is not root cannot do
that, so there the ``os.stat``/``os.lstat`` the checks call report another owner for that
one path: the tests run (and can fail) everywhere instead of being skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: "nobody": another local user
OTHER_UID = 65534


def give_away(path: Path, monkeypatch: pytest.MonkeyPatch, uid: int = OTHER_UID) -> None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.chown(path, uid, -1)
        return
    resolved = os.path.realpath(path)
    absolute = os.path.abspath(path)
    real_stat, real_lstat = os.stat, os.lstat

    def theirs(info: os.stat_result) -> os.stat_result:
        fields = list(info[:10])
        fields[4] = uid  # st_uid
        return os.stat_result(fields)

    def fake_stat(p, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        info = real_stat(p, *args, **kwargs)
        return theirs(info) if os.path.realpath(p) == resolved else info

    def fake_lstat(p, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        info = real_lstat(p, *args, **kwargs)
        return theirs(info) if os.path.abspath(p) == absolute else info

    monkeypatch.setattr(os, "stat", fake_stat)
    monkeypatch.setattr(os, "lstat", fake_lstat)
