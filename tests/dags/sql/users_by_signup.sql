-- Run of {{ ds }} (Airflow's own run values may be rendered; a Trigger-form value may not).
-- Both values are bound by the driver: the excluded method, and the row limit the DAG
-- passes from its params through the task's parameters (NULL would mean no limit).
SELECT id AS user_id, gender, age, signup_method, date_account_created
FROM users
WHERE signup_method <> %(excluded_method)s
ORDER BY id LIMIT %(limit_users)s
