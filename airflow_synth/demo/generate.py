"""Demo source data: a stand-in for Kaggle's Airbnb "new user bookings" tables.

The demo needs a source database that looks and behaves like a real product database, so
that extracting, synthesizing and judging the synthetic copy is meaningful: skewed
categories, NULLs where real systems leave them, implausible values that real users type
(age 2014), and correlations a good synthesizer should keep (users who browse more book
more; app sign-ups come from phones). The real Kaggle data cannot be downloaded here and may
not be redistributed, so we generate data with the same columns and roughly the same
marginals as ``train_users_2.csv`` and ``sessions.csv`` (as used in Gretel's ESL demo).

Everything is vectorised numpy and deterministic for a seed. Random streams are derived
from ``numpy.random.SeedSequence(seed, spawn_key=...)`` per purpose (users, session counts,
each block of sessions), so the sessions do not depend on how they are batched.

Bump :data:`GENERATOR_VERSION` whenever the output for a given seed changes: the seeding
code records it and reloads the database when it differs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

#: Recorded with each seeded database; change it whenever the generated data changes.
GENERATOR_VERSION = "1"

#: Sessions are generated in blocks of about this many rows, each from its own random
#: stream, so output is independent of ``batch_rows`` and memory stays bounded.
_BLOCK_ROWS = 65_536

#: Kaggle's sessions.csv caps secs_elapsed just under 21 days.
MAX_SECS_ELAPSED = 1_799_977.0

_ACCOUNT_START = np.datetime64("2010-01-01", "D")
_ACCOUNT_END = np.datetime64("2014-06-30", "D")
_FIRST_ACTIVE_MIN = np.datetime64("2009-03-19", "D")
#: Accounts grow about 20-fold over the period, as Airbnb's did 2010-2014.
_GROWTH = 20.0
#: Share of users who never booked (country_destination 'NDF') in the real training data.
_NDF_SHARE = 0.583

USER_COLUMNS = (
    "id",
    "date_account_created",
    "timestamp_first_active",
    "date_first_booking",
    "gender",
    "age",
    "signup_method",
    "signup_flow",
    "language",
    "affiliate_channel",
    "affiliate_provider",
    "first_affiliate_tracked",
    "signup_app",
    "first_device_type",
    "first_browser",
    "country_destination",
)
SESSION_COLUMNS = (
    "user_id",
    "action",
    "action_type",
    "action_detail",
    "device_type",
    "secs_elapsed",
)

Dist = Mapping[str | None, float]

# --- user marginals (close to train_users_2.csv) -------------------------------------

FIRST_DEVICE_TYPE: Dist = {
    "Mac Desktop": 0.420,
    "Windows Desktop": 0.340,
    "iPhone": 0.097,
    "iPad": 0.067,
    "Other/Unknown": 0.050,
    "Android Phone": 0.013,
    "Android Tablet": 0.006,
    "Desktop (Other)": 0.006,
    "SmartPhone (Other)": 0.001,
}
_DEVICE_GROUP = {
    "Mac Desktop": "desktop",
    "Windows Desktop": "desktop",
    "Desktop (Other)": "desktop",
    "iPhone": "apple",
    "iPad": "apple",
    "Android Phone": "android",
    "Android Tablet": "android",
    "Other/Unknown": "other",
    "SmartPhone (Other)": "other",
}
SIGNUP_APP_BY_DEVICE_GROUP: Mapping[str, Dist] = {
    "desktop": {"Web": 0.985, "Moweb": 0.005, "iOS": 0.005, "Android": 0.005},
    "apple": {"iOS": 0.58, "Web": 0.27, "Moweb": 0.15},
    "android": {"Android": 0.55, "Moweb": 0.25, "Web": 0.20},
    "other": {"Web": 0.62, "Android": 0.18, "iOS": 0.10, "Moweb": 0.10},
}
SIGNUP_METHOD_BY_APP: Mapping[str, Dist] = {
    "Web": {"basic": 0.72, "facebook": 0.28},
    "iOS": {"basic": 0.68, "facebook": 0.32},
    "Android": {"basic": 0.55, "facebook": 0.30, "google": 0.15},
    "Moweb": {"basic": 0.66, "facebook": 0.30, "google": 0.04},
}
SIGNUP_FLOW_BY_APP: Mapping[str, Mapping[int, float]] = {
    "Web": {0: 0.90, 3: 0.04, 2: 0.03, 12: 0.02, 1: 0.005, 24: 0.003, 23: 0.002},
    "iOS": {25: 0.85, 0: 0.10, 21: 0.03, 8: 0.02},
    "Android": {24: 0.55, 0: 0.25, 10: 0.10, 15: 0.10},
    "Moweb": {23: 0.45, 12: 0.25, 0: 0.25, 8: 0.05},
}
#: Facebook sign-ups share their gender; e-mail sign-ups mostly do not say.
GENDER_BY_SIGNUP_METHOD: Mapping[str, Dist] = {
    "facebook": {"-unknown-": 0.12, "FEMALE": 0.48, "MALE": 0.395, "OTHER": 0.005},
    "basic": {"-unknown-": 0.58, "FEMALE": 0.225, "MALE": 0.194, "OTHER": 0.001},
    "google": {"-unknown-": 0.58, "FEMALE": 0.225, "MALE": 0.194, "OTHER": 0.001},
}
#: Users who skip gender usually skip age too (overall about 41% NULL, as in the data).
AGE_NULL_BY_GENDER_UNKNOWN = {True: 0.72, False: 0.16}
#: Share of stated ages that are implausible (typos, birth years, "105").
AGE_IMPLAUSIBLE_SHARE = 0.02
LANGUAGE: Dist = {
    "en": 0.9670,
    "zh": 0.0076,
    "fr": 0.0054,
    "es": 0.0042,
    "ko": 0.0035,
    "de": 0.0034,
    "it": 0.0025,
    "ru": 0.0018,
    "pt": 0.0010,
    "ja": 0.0010,
    "sv": 0.0005,
    "nl": 0.0004,
    "tr": 0.0003,
    "da": 0.0003,
    "pl": 0.0003,
    "no": 0.0002,
    "cs": 0.0001,
    "fi": 0.0001,
}
AFFILIATE_CHANNEL: Dist = {
    "direct": 0.645,
    "sem-brand": 0.122,
    "sem-non-brand": 0.088,
    "other": 0.042,
    "seo": 0.041,
    "api": 0.038,
    "content": 0.018,
    "remarketing": 0.005,
}
AFFILIATE_PROVIDER_BY_CHANNEL: Mapping[str, Dist] = {
    "direct": {"direct": 0.998, "other": 0.002},
    "sem-brand": {
        "google": 0.86,
        "bing": 0.09,
        "yahoo": 0.02,
        "baidu": 0.01,
        "naver": 0.01,
        "yandex": 0.005,
        "daum": 0.005,
    },
    "sem-non-brand": {"google": 0.78, "vast": 0.12, "bing": 0.07, "yahoo": 0.02, "other": 0.01},
    "other": {
        "craigslist": 0.45,
        "other": 0.25,
        "padmapper": 0.18,
        "facebook-open-graph": 0.07,
        "email-marketing": 0.04,
        "meetup": 0.01,
    },
    "seo": {"google": 0.80, "facebook": 0.12, "other": 0.03, "yahoo": 0.02, "bing": 0.02},
    "api": {"other": 0.90, "gsp": 0.10},
    "content": {"google": 0.50, "facebook": 0.25, "other": 0.15, "gsp": 0.10},
    "remarketing": {"google": 0.90, "facebook": 0.10},
}
FIRST_AFFILIATE_TRACKED_BY_CHANNEL: Mapping[str, Dist] = {
    "direct": {
        "untracked": 0.62,
        "linked": 0.22,
        "omg": 0.10,
        "tracked-other": 0.02,
        "product": 0.005,
        "marketing": 0.001,
        "local ops": 0.0005,
        None: 0.034,
    },
    "sem-brand": {
        "omg": 0.55,
        "untracked": 0.25,
        "linked": 0.15,
        "tracked-other": 0.02,
        None: 0.03,
    },
    "sem-non-brand": {
        "omg": 0.60,
        "untracked": 0.20,
        "linked": 0.15,
        "tracked-other": 0.02,
        None: 0.03,
    },
    "other": {
        "untracked": 0.45,
        "linked": 0.25,
        "tracked-other": 0.15,
        "product": 0.10,
        None: 0.05,
    },
    "seo": {"untracked": 0.60, "linked": 0.25, "omg": 0.10, None: 0.05},
    "api": {"untracked": 0.50, "tracked-other": 0.30, "product": 0.15, None: 0.05},
    "content": {"linked": 0.35, "untracked": 0.30, "omg": 0.20, "tracked-other": 0.10, None: 0.05},
    "remarketing": {"linked": 0.40, "omg": 0.40, "untracked": 0.15, None: 0.05},
}
FIRST_BROWSER_BY_DEVICE: Mapping[str, Dist] = {
    "Mac Desktop": {
        "Safari": 0.46,
        "Chrome": 0.34,
        "Firefox": 0.12,
        "-unknown-": 0.06,
        "Opera": 0.006,
        "AOL Explorer": 0.006,
        "Camino": 0.004,
        "Yandex.Browser": 0.004,
    },
    "Windows Desktop": {
        "Chrome": 0.41,
        "IE": 0.27,
        "Firefox": 0.22,
        "-unknown-": 0.06,
        "Opera": 0.01,
        "AOL Explorer": 0.01,
        "Maxthon": 0.005,
        "Sogou Explorer": 0.005,
        "Yandex.Browser": 0.005,
        "CoolNovo": 0.005,
    },
    "iPhone": {"Mobile Safari": 0.75, "-unknown-": 0.15, "Chrome Mobile": 0.07, "Safari": 0.03},
    "iPad": {"Mobile Safari": 0.75, "-unknown-": 0.20, "Safari": 0.03, "Chrome": 0.02},
    "Android Phone": {
        "Chrome Mobile": 0.35,
        "Android Browser": 0.25,
        "-unknown-": 0.35,
        "Mobile Firefox": 0.03,
        "Opera Mobile": 0.02,
    },
    "Android Tablet": {
        "Android Browser": 0.35,
        "Chrome Mobile": 0.25,
        "-unknown-": 0.35,
        "Silk": 0.05,
    },
    "Desktop (Other)": {"Chrome": 0.55, "Firefox": 0.30, "-unknown-": 0.10, "Opera": 0.05},
    "Other/Unknown": {
        "-unknown-": 0.55,
        "Chrome": 0.18,
        "Firefox": 0.10,
        "Safari": 0.07,
        "IE": 0.05,
        "Mobile Safari": 0.05,
    },
    "SmartPhone (Other)": {"-unknown-": 0.50, "BlackBerry Browser": 0.30, "IE Mobile": 0.20},
}
#: Native-app sign-ups have no browser; the log says '-unknown-' for most of them.
APP_BROWSER_UNKNOWN = 0.75
#: Destinations of users who booked, by age band (older travellers go abroad more).
DESTINATION_BY_AGE_BAND: Mapping[str, Dist] = {
    "unknown": {
        "US": 0.700,
        "other": 0.113,
        "FR": 0.056,
        "IT": 0.032,
        "GB": 0.026,
        "ES": 0.025,
        "CA": 0.016,
        "DE": 0.012,
        "NL": 0.0086,
        "AU": 0.0060,
        "PT": 0.0024,
    },
    "young": {
        "US": 0.740,
        "other": 0.100,
        "FR": 0.048,
        "IT": 0.026,
        "GB": 0.022,
        "ES": 0.026,
        "CA": 0.014,
        "DE": 0.010,
        "NL": 0.0080,
        "AU": 0.0040,
        "PT": 0.0020,
    },
    "middle": {
        "US": 0.700,
        "other": 0.113,
        "FR": 0.056,
        "IT": 0.032,
        "GB": 0.026,
        "ES": 0.025,
        "CA": 0.016,
        "DE": 0.012,
        "NL": 0.0086,
        "AU": 0.0060,
        "PT": 0.0024,
    },
    "senior": {
        "US": 0.600,
        "other": 0.140,
        "FR": 0.085,
        "IT": 0.055,
        "GB": 0.040,
        "ES": 0.025,
        "CA": 0.022,
        "DE": 0.014,
        "NL": 0.008,
        "AU": 0.008,
        "PT": 0.003,
    },
}
#: Bookers who speak one of these languages often travel to that country.
_HOME_COUNTRY_BY_LANGUAGE = {"fr": "FR", "de": "DE", "it": "IT", "es": "ES", "nl": "NL", "pt": "PT"}
_HOME_COUNTRY_SHARE = 0.3

# --- session marginals (close to sessions.csv) ----------------------------------------

#: (action, action_type, action_detail, weight for non-bookers, weight for bookers).
#: Consistent combinations as in the real log; bookers do more booking-related things.
ACTION_COMBOS: Sequence[tuple[str, str | None, str | None, float, float]] = (
    ("show", "view", "p3", 14.0, 12.0),
    ("search_results", "click", "view_search_results", 12.0, 10.0),
    ("personalize", "data", "wishlist_content_update", 10.0, 9.0),
    ("index", "view", "view_search_results", 8.0, 6.5),
    ("search", "click", "view_search_results", 8.0, 7.0),
    ("ajax_refresh_subtotal", "click", "change_trip_characteristics", 6.0, 7.5),
    ("lookup", None, None, 5.0, 4.0),
    ("similar_listings", "data", "similar_listings", 3.5, 3.5),
    ("social_connections", "data", "user_social_connections", 3.0, 3.0),
    ("reviews", "data", "listing_reviews", 2.5, 3.0),
    ("show", "view", "user_profile", 2.0, 2.5),
    ("update", "submit", "update_listing", 2.0, 2.0),
    ("active", "-unknown-", "-unknown-", 1.5, 1.2),
    ("similar_listings_v2", None, None, 1.5, 1.5),
    ("dashboard", "view", "dashboard", 1.5, 2.5),
    ("header_userpic", "data", "header_userpic", 1.2, 1.5),
    ("collections", "view", "user_wishlists", 1.0, 1.2),
    ("campaigns", None, None, 1.0, 0.8),
    ("edit", "view", "edit_profile", 1.0, 1.5),
    ("track_page_view", "-unknown-", "-unknown-", 0.8, 0.8),
    ("unavailabilities", "data", "unavailable_dates", 0.8, 1.2),
    ("show_personalize", "data", "view_listing", 0.7, 0.9),
    ("authenticate", "submit", "login", 0.6, 0.7),
    ("notifications", "submit", "notifications", 0.5, 0.7),
    ("confirm_email", "click", "confirm_email_link", 0.4, 0.4),
    ("ajax_check_dates", "click", "change_contact_host_dates", 0.4, 1.0),
    ("recommendations", "data", "user_profile_content_update", 0.3, 0.3),
    ("callback", "partner_callback", "oauth_response", 0.3, 0.3),
    ("create", "submit", "create_user", 0.3, 0.3),
    ("qt2", "view", "message_thread", 0.3, 1.5),
    ("ask_question", "submit", "contact_host", 0.3, 1.2),
    ("ajax_lwlb_contact", "click", "message_to_host_focus", 0.1, 0.4),
    ("other_hosting_reviews_first", None, None, 0.1, 0.2),
    ("message_post", "message_post", "message_post", 0.05, 0.8),
    ("travel_plans_current", "view", "your_trips", 0.05, 0.6),
    ("requested", "view", "p5", 0.02, 0.8),
    ("pending", "booking_request", "pending", 0.01, 0.5),
    ("agree_terms_check", "-unknown-", "-unknown-", 0.01, 0.3),
)
#: log(seconds) of the time spent on an action, by action type (median about 20 min).
_SECS_LOG_MEAN_BY_ACTION_TYPE = {
    "view": 7.3,
    "click": 6.8,
    "data": 6.6,
    "submit": 7.5,
    "-unknown-": 7.0,
    None: 7.2,
    "partner_callback": 6.2,
    "message_post": 8.3,
    "booking_request": 8.6,
}
_SECS_LOG_SD = 2.4
_SECS_USER_SD = 0.6
_SECS_NULL_SHARE = 0.01
#: Where a user's sessions mostly come from, given the device they signed up on.
MAIN_SESSION_DEVICE_BY_FIRST_DEVICE: Mapping[str, Dist] = {
    "Mac Desktop": {"Mac Desktop": 1.0},
    "Windows Desktop": {"Windows Desktop": 1.0},
    "Desktop (Other)": {"Linux Desktop": 0.6, "Chromebook": 0.4},
    "iPhone": {"iPhone": 0.95, "iPodtouch": 0.05},
    "iPad": {"iPad Tablet": 1.0},
    "Android Phone": {"Android Phone": 0.5, "Android App Unknown Phone/Tablet": 0.5},
    "Android Tablet": {"Android App Unknown Phone/Tablet": 0.6, "Tablet": 0.4},
    "Other/Unknown": {"-unknown-": 0.5, "Android App Unknown Phone/Tablet": 0.3, "iPhone": 0.2},
    "SmartPhone (Other)": {"Windows Phone": 0.5, "Blackberry": 0.4, "Opera Phone": 0.1},
}
#: The other devices users switch to (the phone app, mostly).
OTHER_SESSION_DEVICE: Dist = {
    "iPhone": 0.40,
    "Mac Desktop": 0.17,
    "Windows Desktop": 0.13,
    "Android App Unknown Phone/Tablet": 0.12,
    "iPad Tablet": 0.08,
    "Android Phone": 0.05,
    "-unknown-": 0.03,
    "Tablet": 0.01,
    "Linux Desktop": 0.005,
    "Chromebook": 0.004,
    "iPodtouch": 0.001,
}
#: Per-user share of sessions on the main device ~ Beta(a, b) (mean 0.8).
_DEVICE_LOYALTY_BETA = (8.0, 2.0)
#: Users who never produced a session row, by whether they booked.
_NO_SESSIONS_SHARE = {True: 0.04, False: 0.10}
#: Relative session activity of bookers and non-bookers (bookers browse ~3x more).
_ACTIVITY = {True: 1.8, False: 0.6}
#: Gamma shape of per-user activity: small means a long tail of heavy users.
_ACTIVITY_SHAPE = 0.7

_ID_ALPHABET = np.array(list("0123456789abcdefghijklmnopqrstuvwxyz"))
_ID_LENGTH = 10

# Purposes of the random streams derived from the seed (never reuse a number).
_STREAM_USERS = 0
_STREAM_SESSION_COUNTS = 1
_STREAM_SESSION_BLOCK = 2


def _rng(seed: int, *purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=purpose))


def _probs(dist: Dist) -> tuple[list, np.ndarray]:
    values = list(dist)
    p = np.asarray([dist[v] for v in values], dtype=float)
    return values, p / p.sum()


def _sample(rng: np.random.Generator, dist: Dist, size: int) -> np.ndarray:
    """Codes into ``list(dist)`` drawn with the (normalised) probabilities of ``dist``."""
    _, p = _probs(dist)
    return np.minimum(np.searchsorted(np.cumsum(p), rng.random(size), side="right"), len(p) - 1)


def _sample_given(
    rng: np.random.Generator,
    conditional: Mapping[str, Dist],
    condition: np.ndarray,
    condition_values: Sequence[str],
) -> tuple[list, np.ndarray]:
    """Sample a categorical column whose distribution depends on another column.

    ``condition`` holds codes into ``condition_values``; ``conditional`` maps each condition
    value to a distribution. Returns the union of outcome values and codes into it.
    """
    outcomes: list = []
    for dist in conditional.values():
        outcomes.extend(v for v in dist if v not in outcomes)
    index = {v: i for i, v in enumerate(outcomes)}
    u = rng.random(condition.shape[0])
    codes = np.empty(condition.shape[0], dtype=np.int64)
    for cond_code, cond_value in enumerate(condition_values):
        rows = condition == cond_code
        values, p = _probs(conditional[cond_value])
        local = np.minimum(np.searchsorted(np.cumsum(p), u[rows], side="right"), len(p) - 1)
        codes[rows] = np.asarray([index[v] for v in values])[local]
    return outcomes, codes


def _decode(values: Sequence, codes: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=object)[codes]


def _unique_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct 10-character ids like Kaggle's ('gxn3p5htnn')."""
    ids = np.empty(0, dtype=f"<U{_ID_LENGTH}")
    while ids.shape[0] < n:
        chars = _ID_ALPHABET[rng.integers(0, len(_ID_ALPHABET), (n - ids.shape[0], _ID_LENGTH))]
        new = np.ascontiguousarray(chars).view(f"<U{_ID_LENGTH}").ravel()
        ids = np.concatenate([ids, new])
        _, first = np.unique(ids, return_index=True)
        ids = ids[np.sort(first)]
    return ids


def _account_dates(rng: np.random.Generator, n: int) -> np.ndarray:
    """Creation dates with exponential growth over 2010-01-01 .. 2014-06-30."""
    span = int((_ACCOUNT_END - _ACCOUNT_START) / np.timedelta64(1, "D"))
    rate = np.log(_GROWTH) / span
    days = np.log1p(rng.random(n) * np.expm1(rate * (span + 1))) / rate
    return _ACCOUNT_START + np.minimum(days.astype(np.int64), span).astype("timedelta64[D]")


def _ages(rng: np.random.Generator, gender_unknown: np.ndarray) -> np.ndarray:
    """Ages with the real data's quirks: ~41% NULL, and some 1-4, 100+ and birth years."""
    n = gender_unknown.shape[0]
    plausible = np.minimum(np.round(18 + rng.gamma(2.6, 6.3, n)), 99.0)
    kind = rng.random(n)
    share = AGE_IMPLAUSIBLE_SHARE
    tiny = kind < 0.15 * share
    over_100 = (kind >= 0.15 * share) & (kind < 0.65 * share)
    birth_year = (kind >= 0.65 * share) & (kind < share)
    age = plausible.copy()
    age[tiny] = rng.integers(1, 5, tiny.sum())
    # "105" is by far the most common over-100 value in the real data.
    hundreds = np.where(rng.random(n) < 0.5, 105.0, rng.integers(100, 116, n).astype(float))
    age[over_100] = hundreds[over_100]
    years = np.where(rng.random(n) < 0.8, 2014.0 - plausible, 2014.0)
    age[birth_year] = years[birth_year]
    p_null = np.where(
        gender_unknown, AGE_NULL_BY_GENDER_UNKNOWN[True], AGE_NULL_BY_GENDER_UNKNOWN[False]
    )
    age[rng.random(n) < p_null] = np.nan
    return age


def _calibrated_probability(logit: np.ndarray, target: float) -> np.ndarray:
    """Shift ``logit`` so the mean probability is ``target`` (bisection on the intercept)."""
    if logit.size == 0:
        return logit
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(logit + mid)))) < target:
            lo = mid
        else:
            hi = mid
    return 1 / (1 + np.exp(-(logit + (lo + hi) / 2)))


def generate_users(n_users: int = 10_000, seed: int = 42) -> pd.DataFrame:
    """Generate the ``users`` table (one row per user, columns :data:`USER_COLUMNS`).

    Columns follow Kaggle's train_users_2.csv. Dates are ``datetime64[ns]`` at midnight
    (``date_first_booking`` NaT when the user never booked), ``age`` is float with NaN,
    ``first_affiliate_tracked`` holds None for missing, other text columns are ``object``.
    Rows are ordered by ``timestamp_first_active`` like the original file.
    """
    if n_users < 0:
        raise ValueError(f"n_users must be >= 0, got {n_users}")
    rng = _rng(seed, _STREAM_USERS)
    n = n_users

    devices = list(FIRST_DEVICE_TYPE)
    device = _sample(rng, FIRST_DEVICE_TYPE, n)
    groups = list(SIGNUP_APP_BY_DEVICE_GROUP)
    group = np.asarray([groups.index(_DEVICE_GROUP[d]) for d in devices])[device]
    apps, app = _sample_given(rng, SIGNUP_APP_BY_DEVICE_GROUP, group, groups)
    methods, method = _sample_given(rng, SIGNUP_METHOD_BY_APP, app, apps)
    flows, flow = _sample_given(rng, SIGNUP_FLOW_BY_APP, app, apps)
    genders, gender = _sample_given(rng, GENDER_BY_SIGNUP_METHOD, method, methods)
    gender_unknown = gender == genders.index("-unknown-")
    age = _ages(rng, gender_unknown)
    languages = list(LANGUAGE)
    language = _sample(rng, LANGUAGE, n)
    channels = list(AFFILIATE_CHANNEL)
    channel = _sample(rng, AFFILIATE_CHANNEL, n)
    providers, provider = _sample_given(rng, AFFILIATE_PROVIDER_BY_CHANNEL, channel, channels)
    tracked_values, tracked = _sample_given(
        rng, FIRST_AFFILIATE_TRACKED_BY_CHANNEL, channel, channels
    )
    browsers, browser = _sample_given(rng, FIRST_BROWSER_BY_DEVICE, device, devices)
    native_app = np.isin(app, [apps.index("iOS"), apps.index("Android")])
    browser[native_app & (rng.random(n) < APP_BROWSER_UNKNOWN)] = browsers.index("-unknown-")

    created = _account_dates(rng, n)
    seconds_in_day = rng.integers(0, 86_400, n).astype("timedelta64[s]")
    earlier = rng.random(n) < 0.12
    lag_days = np.ceil(rng.exponential(60.0, n)).astype(np.int64) * earlier
    first_active_day = np.maximum(created - lag_days.astype("timedelta64[D]"), _FIRST_ACTIVE_MIN)
    first_active = first_active_day.astype("datetime64[s]") + seconds_in_day

    # Who books: fewer of those who hide their age/gender, sign up on phones, or arrived
    # recently (less time to book); a bit more of mid-aged users. Calibrated to Kaggle's rate.
    plausible_age = (age >= 15) & (age <= 95)
    span_days = (_ACCOUNT_END - _ACCOUNT_START) / np.timedelta64(1, "D")
    recency = ((created - _ACCOUNT_START) / np.timedelta64(1, "D")) / span_days
    logit = (
        -1.0 * np.isnan(age)
        - 0.35 * gender_unknown
        - 0.5 * (app != apps.index("Web"))
        + 0.15 * (method == methods.index("facebook"))
        - 0.3 * (~np.isnan(age) & ~plausible_age)
        - 0.02 * np.where(plausible_age, np.abs(np.nan_to_num(age) - 32.0), 0.0)
        + 0.1 * (channel == channels.index("sem-brand"))
        - 0.3 * (channel == channels.index("api"))
        - 0.4 * recency
    )
    booked = rng.random(n) < _calibrated_probability(logit, 1.0 - _NDF_SHARE)

    bands = list(DESTINATION_BY_AGE_BAND)
    band = np.full(n, bands.index("unknown"))
    band[plausible_age & (age < 30)] = bands.index("young")
    band[plausible_age & (age >= 30) & (age < 45)] = bands.index("middle")
    band[plausible_age & (age >= 45)] = bands.index("senior")
    destinations, destination = _sample_given(rng, DESTINATION_BY_AGE_BAND, band, bands)
    destinations = ["NDF", *destinations]
    destination = np.where(booked, destination + 1, 0)
    home = rng.random(n) < _HOME_COUNTRY_SHARE
    for lang, country in _HOME_COUNTRY_BY_LANGUAGE.items():
        destination[booked & home & (language == languages.index(lang))] = destinations.index(
            country
        )

    # Booking lag: a third book on sign-up day, the rest after days to months.
    lag = np.where(
        rng.random(n) < 0.35, 0, np.ceil(rng.lognormal(np.log(10.0), 1.4, n)).astype(np.int64)
    )
    lag = np.minimum(lag, 730)
    booking = (created + lag.astype("timedelta64[D]")).astype("datetime64[ns]")
    booking[~booked] = np.datetime64("NaT")

    frame = pd.DataFrame(
        {
            "id": _unique_ids(rng, n).astype(object),
            "date_account_created": created.astype("datetime64[ns]"),
            "timestamp_first_active": first_active.astype("datetime64[ns]"),
            "date_first_booking": booking,
            "gender": _decode(genders, gender),
            "age": age,
            "signup_method": _decode(methods, method),
            "signup_flow": np.asarray(flows, dtype=np.int64)[flow],
            "language": _decode(languages, language),
            "affiliate_channel": _decode(channels, channel),
            "affiliate_provider": _decode(providers, provider),
            "first_affiliate_tracked": _decode(tracked_values, tracked),
            "signup_app": _decode(apps, app),
            "first_device_type": _decode(devices, device),
            "first_browser": _decode(browsers, browser),
            "country_destination": _decode(destinations, destination),
        },
        columns=list(USER_COLUMNS),
    )
    order = np.argsort(frame["timestamp_first_active"].to_numpy(), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def session_counts(
    users: pd.DataFrame, seed: int = 42, avg_sessions_per_user: float = 100
) -> np.ndarray:
    """Number of session rows of each user (aligned with ``users``' rows).

    Bookers browse about three times as much as non-bookers, activity is gamma-distributed
    (a long tail of heavy users), and 4-10% of users have no sessions at all. The expected
    total is ``len(users) * avg_sessions_per_user`` (for averages of about 1 and more).
    """
    if avg_sessions_per_user < 0:
        raise ValueError(f"avg_sessions_per_user must be >= 0, got {avg_sessions_per_user}")
    n = len(users)
    if n == 0 or avg_sessions_per_user == 0:
        return np.zeros(n, dtype=np.int64)
    rng = _rng(seed, _STREAM_SESSION_COUNTS)
    booked = users["country_destination"].to_numpy() != "NDF"
    p_active = 1.0 - np.where(booked, _NO_SESSIONS_SHARE[True], _NO_SESSIONS_SHARE[False])
    activity = np.where(booked, _ACTIVITY[True], _ACTIVITY[False])
    # Active users have 1 + Poisson(scale * activity * Gamma) rows; choose the scale so the
    # expected total matches the requested average.
    scale = (n * avg_sessions_per_user - p_active.sum()) / (p_active * activity).sum()
    scale = max(scale, 0.0)
    rate = scale * activity * rng.gamma(_ACTIVITY_SHAPE, 1 / _ACTIVITY_SHAPE, n)
    counts = 1 + rng.poisson(rate)
    counts[rng.random(n) >= p_active] = 0
    return counts.astype(np.int64)


def _combo_categories(position: int) -> tuple[list[str], np.ndarray]:
    """Categories of one field of ACTION_COMBOS and each combination's code (None -> -1)."""
    values = [combo[position] for combo in ACTION_COMBOS]
    categories = [v for v in dict.fromkeys(values) if v is not None]
    return categories, np.asarray([-1 if v is None else categories.index(v) for v in values])


# Session categories and, per action combination, its codes and log-seconds mean.
_ACTIONS, _COMBO_ACTION = _combo_categories(0)
_ACTION_TYPES, _COMBO_TYPE = _combo_categories(1)
_ACTION_DETAILS, _COMBO_DETAIL = _combo_categories(2)
_COMBO_LOG_MEAN = np.asarray([_SECS_LOG_MEAN_BY_ACTION_TYPE[c[1]] for c in ACTION_COMBOS])
_COMBO_CUMULATIVE = {
    booker: np.cumsum(weights / weights.sum())
    for booker, weights in (
        (False, np.asarray([c[3] for c in ACTION_COMBOS])),
        (True, np.asarray([c[4] for c in ACTION_COMBOS])),
    )
}
_SESSION_DEVICES = list(
    dict.fromkeys(
        [*(d for dist in MAIN_SESSION_DEVICE_BY_FIRST_DEVICE.values() for d in dist)]
        + list(OTHER_SESSION_DEVICE)
    )
)


def _session_block(
    rng: np.random.Generator,
    user_index: np.ndarray,
    booked: np.ndarray,
    first_device: np.ndarray,
) -> dict[str, np.ndarray]:
    """Session rows for ``user_index`` (one entry per row, ascending): codes and seconds."""
    n = user_index.shape[0]
    # Per-user effects, then broadcast to rows.
    users_in_block, row_user = np.unique(user_index, return_inverse=True)
    m = users_in_block.shape[0]
    main_values, main = _sample_given(
        rng,
        MAIN_SESSION_DEVICE_BY_FIRST_DEVICE,
        first_device[users_in_block],
        list(MAIN_SESSION_DEVICE_BY_FIRST_DEVICE),
    )
    loyalty = rng.beta(*_DEVICE_LOYALTY_BETA, m)
    speed = rng.normal(0.0, _SECS_USER_SD, m)
    row_booked = booked[user_index]

    # Actions: consistent (action, type, detail) triples, weighted by booker or not.
    u = rng.random(n)
    combo = np.empty(n, dtype=np.int64)
    for is_booker, cumulative in _COMBO_CUMULATIVE.items():
        rows = row_booked == is_booker
        combo[rows] = np.searchsorted(cumulative, u[rows], side="right")
    combo = np.minimum(combo, len(ACTION_COMBOS) - 1)

    # Devices: mostly the user's main device, sometimes another one.
    main_code = np.asarray([_SESSION_DEVICES.index(v) for v in main_values])[main][row_user]
    other_code = np.asarray([_SESSION_DEVICES.index(v) for v in OTHER_SESSION_DEVICE])[
        _sample(rng, OTHER_SESSION_DEVICE, n)
    ]
    device = np.where(rng.random(n) < loyalty[row_user], main_code, other_code)

    # Seconds: log-normal by action type and user, long-tailed, capped, ~1% missing.
    secs = np.floor(np.exp(rng.normal(_COMBO_LOG_MEAN[combo] + speed[row_user], _SECS_LOG_SD)))
    secs = np.minimum(secs, MAX_SECS_ELAPSED)
    secs[rng.random(n) < _SECS_NULL_SHARE] = np.nan

    # Shuffle each user's actions (rows stay grouped by user, as in sessions.csv).
    order = np.lexsort((rng.random(n), user_index))
    combo = combo[order]
    return {
        "user_id": user_index[order],
        "action": _COMBO_ACTION[combo],
        "action_type": _COMBO_TYPE[combo],
        "action_detail": _COMBO_DETAIL[combo],
        "device_type": device[order],
        "secs_elapsed": secs[order],
    }


def iter_sessions(
    users: pd.DataFrame,
    seed: int = 42,
    avg_sessions_per_user: float = 100,
    batch_rows: int = 200_000,
) -> Iterator[pd.DataFrame]:
    """Generate the ``sessions`` table for ``users`` in DataFrames of ``batch_rows`` rows.

    Rows are grouped by user in the order of ``users``. Text columns are pandas
    ``category`` (``user_id``'s categories are all of ``users['id']``, so codes are row
    numbers into ``users``); ``action_type``/``action_detail`` are NaN where the real log
    has no value, ``secs_elapsed`` is float with ~1% NaN. The concatenated output depends
    only on ``users``, ``seed`` and ``avg_sessions_per_user``, not on ``batch_rows``.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    missing = {"id", "country_destination", "first_device_type"} - set(users.columns)
    if missing:
        raise ValueError(f"users is missing columns {sorted(missing)}; pass generate_users()")
    user_ids = pd.Index(users["id"].astype(str))
    if not user_ids.is_unique:
        raise ValueError("users['id'] must be unique")
    # Built once: pandas hashes categories whenever dtypes are compared or concatenated,
    # which is what made a per-batch pd.concat slow with many users.
    dtypes = {
        "user_id": pd.CategoricalDtype(user_ids),
        "action": pd.CategoricalDtype(_ACTIONS),
        "action_type": pd.CategoricalDtype(_ACTION_TYPES),
        "action_detail": pd.CategoricalDtype(_ACTION_DETAILS),
        "device_type": pd.CategoricalDtype(_SESSION_DEVICES),
    }
    counts = session_counts(users, seed, avg_sessions_per_user)
    booked = users["country_destination"].to_numpy() != "NDF"
    known_devices = list(MAIN_SESSION_DEVICE_BY_FIRST_DEVICE)
    first_device = pd.Categorical(users["first_device_type"], categories=known_devices).codes
    first_device = np.where(first_device < 0, known_devices.index("Other/Unknown"), first_device)

    # Contiguous blocks of users holding about _BLOCK_ROWS rows each.
    ends = np.cumsum(counts)
    block_of_user = (ends - counts) // _BLOCK_ROWS
    boundaries = np.flatnonzero(np.diff(block_of_user)) + 1
    starts = np.concatenate([[0], boundaries]).astype(np.int64)
    stops = np.concatenate([boundaries, [len(users)]]).astype(np.int64)

    pending: list[dict[str, np.ndarray]] = []
    pending_rows = 0
    for block_number, (start, stop) in enumerate(zip(starts, stops, strict=True)):
        user_index = np.repeat(np.arange(start, stop), counts[start:stop])
        if user_index.shape[0] == 0:
            continue
        rng = _rng(seed, _STREAM_SESSION_BLOCK, block_number)
        pending.append(_session_block(rng, user_index, booked, first_device))
        pending_rows += user_index.shape[0]
        if pending_rows >= batch_rows:
            merged = {c: np.concatenate([p[c] for p in pending]) for c in SESSION_COLUMNS}
            full = pending_rows - pending_rows % batch_rows
            for offset in range(0, full, batch_rows):
                yield _sessions_frame(merged, slice(offset, offset + batch_rows), dtypes)
            pending = [{c: v[full:] for c, v in merged.items()}] if full < pending_rows else []
            pending_rows -= full
    if pending_rows:
        merged = {c: np.concatenate([p[c] for p in pending]) for c in SESSION_COLUMNS}
        yield _sessions_frame(merged, slice(0, pending_rows), dtypes)


def _sessions_frame(
    columns: dict[str, np.ndarray], rows: slice, dtypes: dict[str, pd.CategoricalDtype]
) -> pd.DataFrame:
    data = {
        name: pd.Categorical.from_codes(columns[name][rows], dtype=dtypes[name])
        if name in dtypes
        else columns[name][rows].copy()
        for name in SESSION_COLUMNS
    }
    return pd.DataFrame(data, columns=list(SESSION_COLUMNS))
