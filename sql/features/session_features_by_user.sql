-- session_features_by_user: one row per user of the demo database, with the user's profile
-- and a summary of their web/app activity (the table Gretel's ESL demo synthesizes).
-- Users without any session row are kept (n_actions = 0, secs_* NULL): leaving them out
-- would teach the synthesizer that everybody browses.
-- n_distinct_action_types counts non-NULL action types. Every aggregate is cast explicitly,
-- so the result has no `numeric` columns (drivers turn those into strings or decimals).
-- Column names, order and types are promised in session_features_by_user.contract.yaml.
WITH session_stats AS (
    SELECT
        s.user_id,
        count(*)::bigint                           AS n_actions,
        count(DISTINCT s.action_type)::bigint      AS n_distinct_action_types,
        avg(s.secs_elapsed)::double precision      AS avg_secs_elapsed,
        max(s.secs_elapsed)::double precision      AS max_secs_elapsed,
        min(s.secs_elapsed)::double precision      AS min_secs_elapsed,
        sum(s.secs_elapsed)::double precision      AS total_secs_elapsed
    FROM sessions AS s
    GROUP BY s.user_id
)
SELECT
    u.id                                           AS user_id,
    u.gender                                       AS gender,
    u.age::double precision                        AS age,
    u.language                                     AS language,
    u.signup_method                                AS signup_method,
    u.date_account_created                         AS date_account_created,
    u.country_destination                          AS country_destination,
    coalesce(st.n_actions, 0)::bigint              AS n_actions,
    coalesce(st.n_distinct_action_types, 0)::bigint AS n_distinct_action_types,
    st.avg_secs_elapsed                            AS avg_secs_elapsed,
    st.max_secs_elapsed                            AS max_secs_elapsed,
    st.min_secs_elapsed                            AS min_secs_elapsed,
    st.total_secs_elapsed                          AS total_secs_elapsed,
    (u.date_first_booking IS NOT NULL)             AS booked
FROM users AS u
LEFT JOIN session_stats AS st ON st.user_id = u.id
ORDER BY u.id
