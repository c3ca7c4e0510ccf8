-- Jinja (rendered by Airflow) picks the columns; the value is bound by the driver.
SELECT id AS user_id, gender, age, signup_method, date_account_created
FROM users
WHERE signup_method <> %(excluded_method)s
{% if params.get("limit_users") %}ORDER BY id LIMIT {{ params.limit_users | int }}{% endif %}
