"""The assess room: how faithful and how private a synthetic table (set) is, and the gates.

Per table: :mod:`.assessment` (the assessor that runs fidelity, dependence, privacy and
rules, and writes the reports), :mod:`.fidelity`, :mod:`.dependence`, :mod:`.privacy`
(with its encoding, neighbour search and radius), :mod:`.checks` (settings and gates),
:mod:`.report_html`. Across a set: :mod:`.relationships` checks keys and counts children
per parent, :mod:`.links` measures how a parent's attributes drive its number of children,
and :mod:`.set_report` draws the set-level page. Cross-table orderings are discovered and
repaired in the profile room (:mod:`airflow_synth.core.profile.orderings`); their hold
rates are reported here. Pure functions over DataFrames; no Airflow.

The package imports nothing itself: DAG files reach :mod:`.checks` (gate settings) through
the operators, and must not pay for pandas or SDV at parse time.
"""
