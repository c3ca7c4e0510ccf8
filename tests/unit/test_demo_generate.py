"""The demo data from specs/userbookings.yaml: shape, rules, marginals and correlations.

The spec replaced a hand-written generator; these tests keep the demo realistic. Bounds are
wide enough for sampling noise at these sizes but narrow enough that a broken distribution
or a lost correlation fails. Exactness of the declared truths is tested in test_datagen.py
and by the golden tests; here only that the demo declares the ones the README promises.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_synth.datagen import answer_key, check_truths, generate_tables
from airflow_synth.demo.generate import demo_spec, generate_users

pytestmark = pytest.mark.unit

N_USERS = 5_000
SEED = 11
AVG_SESSIONS = 40
MAX_SECS_ELAPSED = 1_799_977.0
USER_COLUMNS = (
    "id",
    "date_account_created",
    "timestamp_first_active",
    "first_device_type",
    "signup_app",
    "signup_method",
    "signup_flow",
    "gender",
    "age",
    "language",
    "affiliate_channel",
    "affiliate_provider",
    "first_affiliate_tracked",
    "first_browser",
    "country_destination",
    "date_first_booking",
)
SESSION_COLUMNS = (
    "user_id",
    "action",
    "action_type",
    "action_detail",
    "device_type",
    "secs_elapsed",
)
DESTINATIONS = {"NDF", "US", "other", "FR", "IT", "GB", "ES", "CA", "DE", "NL", "AU", "PT"}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return generate_tables(
        demo_spec(), seed=SEED, rows={"users": N_USERS}, per_parent_mean={"sessions": AVG_SESSIONS}
    )


@pytest.fixture(scope="module")
def users() -> pd.DataFrame:
    return generate_users(N_USERS, SEED)


@pytest.fixture(scope="module")
def sessions(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return tables["sessions"]


@pytest.fixture(scope="module")
def counts(users: pd.DataFrame, sessions: pd.DataFrame) -> pd.Series:
    """Session rows per user, aligned with users (zeros included)."""
    per_user = sessions["user_id"].value_counts()
    return per_user.reindex(users["id"], fill_value=0).reset_index(drop=True)


def booked(users: pd.DataFrame) -> pd.Series:
    return users["country_destination"] != "NDF"


def user_codes(users: pd.DataFrame, sessions: pd.DataFrame) -> np.ndarray:
    """Row number in ``users`` of each session's user."""
    return pd.Index(users["id"]).get_indexer(sessions["user_id"])


# --- shape and hard rules ----------------------------------------------------------------


def test_users_have_the_kaggle_columns_and_types(users: pd.DataFrame) -> None:
    assert tuple(users.columns) == USER_COLUMNS
    assert len(users) == N_USERS
    for column in ("date_account_created", "timestamp_first_active", "date_first_booking"):
        assert users[column].dtype == "datetime64[ns]", column
    assert users["age"].dtype == float
    for column in ("gender", "signup_method", "language", "signup_app", "first_browser"):
        assert users[column].notna().all(), column
    assert set(users["signup_flow"]) <= {0, 1, 2, 3, 8, 10, 12, 15, 21, 23, 24, 25}


def test_user_ids_are_unique_kaggle_style_ids(users: pd.DataFrame) -> None:
    assert users["id"].is_unique
    assert users["id"].str.fullmatch(r"[0-9a-z]{10}").all()


def test_booking_date_is_null_exactly_for_ndf_and_never_before_the_account(
    users: pd.DataFrame,
) -> None:
    ndf = users["country_destination"] == "NDF"
    assert (users["date_first_booking"].isna() == ndf).all()
    with_booking = users[~ndf]
    assert (with_booking["date_first_booking"] >= with_booking["date_account_created"]).all()
    # A third book on the day they sign up.
    same_day = with_booking["date_first_booking"] == with_booking["date_account_created"]
    assert 0.25 < same_day.mean() < 0.45


def test_dates_lie_in_the_kaggle_period(users: pd.DataFrame) -> None:
    created = users["date_account_created"]
    assert created.min() >= pd.Timestamp("2010-01-01")
    assert created.max() <= pd.Timestamp("2014-06-30")
    assert (created.dt.normalize() == created).all()
    first_active = users["timestamp_first_active"]
    assert first_active.min() >= pd.Timestamp("2009-01-01")
    assert (first_active < created + pd.Timedelta(days=1)).all()
    assert 0.8 < (first_active.dt.normalize() == created).mean() < 0.95
    # Growth: later years have far more sign-ups.
    per_year = created.dt.year.value_counts()
    assert per_year[2013] > 3 * per_year[2010]


def test_sessions_reference_existing_users_grouped_by_user(
    users: pd.DataFrame, sessions: pd.DataFrame
) -> None:
    assert tuple(sessions.columns) == SESSION_COLUMNS
    position = user_codes(users, sessions)
    assert (position >= 0).all()
    # Rows of one user are contiguous and follow the order of `users`.
    assert (np.diff(position) >= 0).all()
    assert sessions["action"].notna().all()
    assert sessions["device_type"].notna().all()


def test_actions_are_consistent_combinations(sessions: pd.DataFrame) -> None:
    declared = demo_spec().tables["sessions"].columns["action"].options["values_by"][True]
    combos = {tuple(p or None for p in value.split("|")) for value in declared}
    seen = sessions[["action", "action_type", "action_detail"]].astype(object)
    seen = seen.where(seen.notna(), None).drop_duplicates()
    assert set(seen.itertuples(index=False, name=None)) <= combos
    for expected in (
        ("show", "view", "p3"),
        ("search_results", "click", "view_search_results"),
        ("personalize", "data", "wishlist_content_update"),
        ("ajax_refresh_subtotal", "click", "change_trip_characteristics"),
        ("index", "view", "view_search_results"),
        ("lookup", None, None),
    ):
        assert expected in set(seen.itertuples(index=False, name=None))
    null_type = sessions["action_type"].isna().mean()
    assert 0.04 < null_type < 0.12
    assert (sessions["action_type"].isna() == sessions["action_detail"].isna()).all()


def test_secs_elapsed_is_long_tailed_with_some_nulls(sessions: pd.DataFrame) -> None:
    secs = sessions["secs_elapsed"]
    assert 0.005 < secs.isna().mean() < 0.015
    assert secs.min() >= 0
    assert secs.max() <= MAX_SECS_ELAPSED
    assert (secs.dropna() == secs.dropna().round()).all()
    assert 500 < secs.median() < 2500
    assert secs.mean() > 8 * secs.median()
    assert secs.quantile(0.999) > 100 * secs.median()


# --- marginals ---------------------------------------------------------------------------


def test_destination_marginals_match_the_real_data(users: pd.DataFrame) -> None:
    share = users["country_destination"].value_counts(normalize=True)
    assert set(share.index) == DESTINATIONS
    assert 0.55 < share["NDF"] < 0.62
    assert 0.26 < share["US"] < 0.32
    assert share["other"] > share["FR"] > share["PT"]


def test_profile_marginals_match_the_real_data(users: pd.DataFrame) -> None:
    def share(column: str) -> pd.Series:
        return users[column].value_counts(normalize=True, dropna=False)

    assert 0.41 < share("gender")["-unknown-"] < 0.49
    assert set(users["gender"]) == {"-unknown-", "FEMALE", "MALE", "OTHER"}
    assert 0.67 < share("signup_method")["basic"] < 0.75
    assert 0.93 < share("language")["en"] < 0.99
    assert 0.61 < share("affiliate_channel")["direct"] < 0.68
    assert 0.78 < share("signup_app")["Web"] < 0.88
    assert 0.38 < share("first_device_type")["Mac Desktop"] < 0.46
    assert 0.10 < share("first_browser")["-unknown-"] < 0.22
    assert 0.01 < users["first_affiliate_tracked"].isna().mean() < 0.06
    assert 0.72 < (users["signup_flow"] == 0).mean() < 0.82


def test_age_has_the_real_datas_nulls_and_implausible_values(users: pd.DataFrame) -> None:
    age = users["age"]
    assert 0.37 < age.isna().mean() < 0.45
    known = age.dropna()
    plausible = known.between(15, 99)
    assert 0.96 < plausible.mean() < 0.995
    assert 28 < known[plausible].median() < 38
    assert (known < 5).any()
    assert known.between(100, 150).any()
    assert (known > 1900).any()
    assert (known == known.round()).all()


# --- correlations ------------------------------------------------------------------------


def test_users_with_more_sessions_book_more(users: pd.DataFrame, counts: pd.Series) -> None:
    is_booked = booked(users)
    top = counts >= counts.quantile(0.8)
    bottom = counts <= counts.quantile(0.2)
    assert is_booked[top].mean() > is_booked[bottom].mean() + 0.25
    assert counts[is_booked].mean() > 2 * counts[~is_booked].mean()


def test_some_users_have_no_sessions_and_the_average_is_as_asked(
    users: pd.DataFrame, counts: pd.Series
) -> None:
    assert 0.05 < (counts == 0).mean() < 0.10
    assert AVG_SESSIONS * 0.9 < counts.mean() < AVG_SESSIONS * 1.1
    assert counts.max() > 5 * AVG_SESSIONS  # heavy users exist (negative binomial, r = 0.7)


def test_missing_age_and_gender_mean_fewer_bookings(users: pd.DataFrame) -> None:
    is_booked = booked(users)
    assert is_booked[users["age"].notna()].mean() > is_booked[users["age"].isna()].mean() + 0.15
    unknown_gender = users["gender"] == "-unknown-"
    assert is_booked[~unknown_gender].mean() > is_booked[unknown_gender].mean() + 0.05
    assert users["age"].isna()[unknown_gender].mean() > 0.6
    assert users["age"].isna()[~unknown_gender].mean() < 0.25


def test_older_bookers_travel_abroad_more(users: pd.DataFrame) -> None:
    bookers = users[booked(users)]
    us = bookers["country_destination"] == "US"
    assert us[bookers["age"].between(18, 29)].mean() > us[bookers["age"].between(45, 95)].mean()


def test_signup_method_app_and_device_go_together(users: pd.DataFrame) -> None:
    app = users["signup_app"]
    device = users["first_device_type"]
    assert (app[device.isin(["Mac Desktop", "Windows Desktop"])] == "Web").mean() > 0.95
    assert (app[device.isin(["iPhone", "iPad"])] == "iOS").mean() > 0.45
    assert not ((app == "iOS") & device.str.startswith("Android")).any()
    assert not ((app == "Android") & device.isin(["iPhone", "iPad"])).any()
    assert (users["signup_flow"][app == "iOS"] == 25).mean() > 0.7
    facebook = users["signup_method"] == "facebook"
    unknown = users["gender"] == "-unknown-"
    assert unknown[facebook].mean() < 0.2 < unknown[~facebook].mean()
    direct = users["affiliate_channel"] == "direct"
    assert (users["affiliate_provider"][direct] == "direct").mean() > 0.99
    assert (
        users["affiliate_provider"][users["affiliate_channel"] == "sem-brand"] == "google"
    ).mean() > 0.7


def test_session_devices_follow_the_signup_device(
    users: pd.DataFrame, sessions: pd.DataFrame
) -> None:
    first_device = users["first_device_type"].to_numpy()[user_codes(users, sessions)]
    device = sessions["device_type"].astype(str).to_numpy()
    for signup, session_device in (
        ("Mac Desktop", "Mac Desktop"),
        ("Windows Desktop", "Windows Desktop"),
    ):
        rows = first_device == signup
        assert (device[rows] == session_device).mean() > 0.7, signup


def test_bookers_do_booking_things(users: pd.DataFrame, sessions: pd.DataFrame) -> None:
    row_booked = booked(users).to_numpy()[user_codes(users, sessions)]
    requested = (sessions["action"] == "requested").to_numpy()
    assert requested[row_booked].mean() > 10 * requested[~row_booked].mean()


def test_the_demo_declares_the_truths_the_readme_promises_and_honours_them(
    users: pd.DataFrame, counts: pd.Series
) -> None:
    key = answer_key(
        demo_spec(), rows={"users": N_USERS}, per_parent_mean={"sessions": AVG_SESSIONS}
    )
    assert set(key) >= {
        "booking_rate_by_month",
        "signup_method_shares",
        "gender_shares",
        "sessions_per_user",
        "users_rows",
    }
    assert len(key["booking_rate_by_month"].expected) == 54  # every month 2010-01 .. 2014-06
    frame = users.assign(booked=booked(users), sessions_per_user=counts.to_numpy())
    report = check_truths(frame, key)
    assert report.ok, report.diff()


def test_generate_users_is_deterministic_and_the_seed_matters() -> None:
    a = generate_users(300, 3)
    pd.testing.assert_frame_equal(a, generate_users(300, 3))
    assert not a["id"].equals(generate_users(300, 4)["id"])
    assert generate_users(0, 1).empty
    with pytest.raises(ValueError, match="n_users"):
        generate_users(-1)
